"""logpipe: an Apache httpd piped logger that loads access-log lines into PostgreSQL."""

__version__ = "0.1.0"

# Words that select a command; anything else runs the piped logger.
SUBCOMMANDS = ("initdb", "load", "replay", "drain", "status", "report", "prune",
               "_writer", "resolve", "digest", "serve", "archive")
