"""`python -m shelfwise.cli`."""

from . import exit_with, main

exit_with(main())
