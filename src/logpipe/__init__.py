"""logpipe: an Apache httpd piped logger that loads access-log lines into PostgreSQL."""

__version__ = "0.1.0"
