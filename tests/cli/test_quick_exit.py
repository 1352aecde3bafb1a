"""A command that says it holds nothing open (`leave_quickly`: `ingest` on DuckDB) ends its
process without the interpreter's teardown, after the exit handlers and with its output flushed;
any other command, or a failed one, exits as Python does."""

from __future__ import annotations

import subprocess
import sys

# an exit handler, a module-level object whose finalizer only the interpreter's teardown runs,
# and output still in stdout's buffer when the process ends (stdout is a pipe: block-buffered)
PROGRAM = """
import atexit, sys
from shelfwise.cli import exit_with, leave_quickly
atexit.register(lambda: print("exit handler ran"))
class Finalized:
    def __del__(self):
        print("teardown ran")
kept = Finalized()
print("the answer")
{flag}
exit_with({code})
"""


def _run(flag: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM.format(flag=flag, code=code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_command_done_with_everything_skips_the_teardown():
    proc = _run("leave_quickly()")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["the answer", "exit handler ran"]


def test_otherwise_the_process_exits_as_python_does():
    for flag, code in (("pass", 0), ("leave_quickly()", 2), ("leave_quickly(False)", 0)):
        proc = _run(flag, code)
        assert proc.returncode == code, (flag, proc.stderr)
        assert proc.stdout.splitlines() == ["the answer", "exit handler ran", "teardown ran"], flag


def test_ingest_on_duckdb_leaves_quickly_with_its_work_written(demo_data, tmp_path):
    """`shelfwise ingest` (DuckDB) ends without the teardown (~0.45 s of every load), its JSON
    answer whole and its warehouse closed: readable, no write-ahead log left to replay."""
    import json

    from tests.conftest import events_head

    data = events_head(demo_data, tmp_path / "data", 400)
    work = tmp_path / "w"
    program = PROGRAM.format(
        flag="",
        code=f"__import__('shelfwise.cli').cli.main(['ingest', '--data', {str(data)!r}, '--workdir', {str(work)!r}, '--json'])",
    )
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "the answer" and out[-1] == "exit handler ran" and "teardown ran" not in out
    report = json.loads("\n".join(out[1:-1]))
    assert report["status"] == "COMPLETE" and report["tables"]["events"]["balanced"]
    assert not (work / "warehouse.duckdb.wal").exists()
    import duckdb

    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        n = con.sql("SELECT count(*) FROM curated.events").fetchone()
    finally:
        con.close()
    assert n is not None and n[0] == report["tables"]["events"]["rows_curated"]
