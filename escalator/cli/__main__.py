"""`python -m escalator.cli`: the same as the `escalator` command."""

import sys

from escalator.cli.main import main

sys.exit(main())
