"""`python -m shelfwise.cli`."""

import sys

from . import main

sys.exit(main())
