"""Ending a process without the interpreter's finalization (shared by `serve` and `ingest`)."""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

__all__ = ["leave"]


def leave(code: int = 0) -> NoReturn:
    """Run the exit functions (`logging.shutdown` among them; each one's error is printed, not
    raised), flush the standard streams and end with `os._exit(code)`: no teardown of the modules'
    objects, and no daemon thread ended inside native code (DuckDB issue #13904)."""
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed or broken stream: nothing left to say there
                pass
        os._exit(code)
