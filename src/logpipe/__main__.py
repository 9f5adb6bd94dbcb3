"""`python -m logpipe` runs the same program as the `logpipe` console script."""

import sys

from logpipe.cli import main

sys.exit(main())
