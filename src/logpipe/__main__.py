"""`python -m logpipe` runs the same program as the `logpipe` console script."""

import signal
import sys

from logpipe import SUBCOMMANDS

# Apache may send SIGTERM (graceful restart) or SIGHUP to a logger it has only
# just started: set the piped logger's dispositions before any further import.
if len(sys.argv) < 2 or sys.argv[1] not in SUBCOMMANDS:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)

from logpipe.cli import main

sys.exit(main())
