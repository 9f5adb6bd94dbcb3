"""`python -m logpipe` runs the same program as the `logpipe` console script."""

import signal
import sys

from logpipe import SUBCOMMANDS

# Apache may send SIGTERM (graceful restart) or SIGHUP to a logger it has only
# just started: set the piped logger's dispositions before any further import.
PIPED = len(sys.argv) < 2 or sys.argv[1] not in SUBCOMMANDS
if PIPED:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)

from logpipe.messages import PrefixedStderr

# The piped logger's and its writer's stderr is Apache's ErrorLog: every line there,
# a traceback's too, carries the logpipe[PID]: prefix operators grep for.
if PIPED or sys.argv[1] == "_writer":
    sys.stderr = PrefixedStderr(sys.stderr)  # type: ignore[assignment]

from logpipe.cli import main

sys.exit(main())
