"""Client names: reverse DNS lookups (`logpipe resolve`) and registrable domains."""
