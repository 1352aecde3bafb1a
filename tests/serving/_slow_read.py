"""`python -m tests.serving._slow_read serve ...`: `shelfwise serve` whose console warm-up (the
`console-warm` daemon thread every server starts once it is ready) stays inside one DuckDB query
until the process ends, as a long warehouse read (a figure refresh, a profile fit) does on a
large shop, so that a test stops the server while a background thread is inside DuckDB, every
time. The query is DuckDB's own (`range`), slowed by a Python function that sleeps 10 ms per
row: DuckDB takes the GIL back for each call, as its query loop does every few milliseconds to
look for Ctrl-C, which is where a thread that the interpreter is finalizing is ended. It runs on
an in-memory database: the server's own absorb on the way out needs the warehouse file, which a
read-only connection of the same process would refuse it.

Once inside, the thread writes its name to the file `$SLOW_READ_MARKER`. The patch is made when
this module is imported, so the workers that uvicorn spawns (`--no-preload`, which import it
again as their main module) and those forked (`--workers N`) have it too."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shelfwise.web import _data

ROWS = 100_000_000  # at 10 ms a row: longer than any test


def _pause(x: int) -> int:
    time.sleep(0.01)
    return x


def _read_until_the_end(workdir: Path, lexical: Any = None, stop: Any = None) -> list[str]:
    import duckdb

    con = duckdb.connect()
    con.create_function("pause", _pause, ["BIGINT"], "BIGINT")
    Path(os.environ["SLOW_READ_MARKER"]).write_text(threading.current_thread().name)
    con.sql(f"SELECT sum(pause(i)) FROM range({ROWS}) t(i)").fetchall()
    return []


_data.warm_up = _read_until_the_end

if __name__ == "__main__":
    from shelfwise.cli import main

    sys.exit(main())
