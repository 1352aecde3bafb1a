"""`python -m shelfwise`: the `shelfwise` command (as `python -m shelfwise.cli`)."""

from .cli import exit_with, main

exit_with(main())
