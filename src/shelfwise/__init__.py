"""shelfwise: a governed search and recommendation engine for online shops."""

__version__ = "0.1.0"
