"""Errors shelfwise raises for bad input: each names the file, the line (when there is one) and the reason."""

from __future__ import annotations


class ShelfwiseError(Exception):
    """Base class of the errors shelfwise reports to users (the CLI prints them, exit status 2)."""


class SourceError(ShelfwiseError):
    """A source file cannot be used: missing, unreadable, no header, wrong columns."""

    def __init__(self, file: str, line: int | None, reason: str):
        self.file, self.line, self.reason = file, line, reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class ContractViolation(ShelfwiseError):
    """Curated data broke its contract: a bug in cleaning, never the user's fault. The run fails."""


class AccessDenied(ShelfwiseError):
    """The identity is missing, wrong, or its role does not permit the action (exit status 4)."""
