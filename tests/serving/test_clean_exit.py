"""A stopped `shelfwise serve` exits 0, never aborts, when a background thread is inside DuckDB.

A daemon thread inside DuckDB while the interpreter finalizes aborts the process (exit -6:
DuckDB issue #13904, see `serving._exit`). `tests.serving._slow_read` keeps the console's warm-up
thread inside a DuckDB query until the end, so every stop here happens during such a read. On
the code before `serving._exit`, Ctrl-C (SIGINT) crashed the server every time (-6, or -11;
not only the abort's message shows then: the status is checked too) and SIGTERM ended it by the
signal uvicorn raises again after its shutdown (exit -15)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.serving.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
# what glibc / libstdc++ / CPython print when the process aborts in a thread's unwinding
ABORTED = re.compile(r"terminate called|FATAL: exception not rethrown|Fatal Python error|core dumped")


def slow_read_server(work: Path, marker: Path, *args: str) -> Server:
    marker.unlink(missing_ok=True)
    env = {
        "SLOW_READ_MARKER": str(marker),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    s = Server(
        work,
        "--absorb-seconds",
        "0",
        "--reload-seconds",
        "0",
        *args,
        env=env,
        module="tests.serving._slow_read",
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, f"the warm-up read never started: {s.logs()[-3000:]}"
        assert s.proc.poll() is None, s.logs()[-3000:]
        time.sleep(0.1)
    return s


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_during_a_background_duckdb_read_exits_0(served_workdir, sig):
    _, work = served_workdir
    s = slow_read_server(work, work / f"inside-{sig.name}")
    rc = s.stop(sig)
    logs = s.logs()
    assert not ABORTED.search(logs), logs[-3000:]
    assert rc == 0, (rc, logs[-3000:])
    # the orderly shutdown ran whole before the end
    assert "Application shutdown complete" in logs and "Finished server process" in logs


@pytest.mark.slow
def test_two_workers_stop_cleanly_during_background_duckdb_reads(served_workdir):
    """The forked workers (`--workers 2`) end by the SIGTERM that uvicorn raises again after its
    shutdown, before any finalization: no abort either, and the supervisor says so if one did."""
    _, work = served_workdir
    s = slow_read_server(work, work / "inside-workers", "--workers", "2")
    rc = s.stop(signal.SIGTERM)
    logs = s.logs()
    assert not ABORTED.search(logs) and "while stopping" not in logs, logs[-3000:]
    assert rc == 0, (rc, logs[-3000:])
    assert logs.count("Application shutdown complete") == 2, logs[-3000:]


def test_a_served_process_ends_before_finalization(tmp_path):
    """The exit path of a worker that uvicorn spawned (`--workers N --no-preload`, out of reach
    of `clean_exit`: it returns after Ctrl-C and exits): once its app has served, the interpreter's
    exit runs the exit functions and ends the process before finalization, with a daemon thread
    inside a DuckDB query (aborted every time before). An app made elsewhere (`server_process`
    not called: a test's TestClient) leaves its program's exit alone."""
    script = textwrap.dedent(
        """
        import atexit, sys, threading, time
        import duckdb
        from shelfwise.serving import _exit

        atexit.register(lambda: print("exit functions ran", flush=True))
        inside = threading.Event()

        def pause(x):
            time.sleep(0.01)
            return x

        def read():
            con = duckdb.connect()
            con.create_function("pause", pause, ["BIGINT"], "BIGINT")
            inside.set()
            con.sql("SELECT sum(pause(i)) FROM range(100000000) t(i)").fetchall()

        threading.Thread(target=read, daemon=True).start()
        inside.wait()
        time.sleep(0.2)
        if sys.argv[1] == "served":
            _exit.server_process()
        _exit.served()
        sys.exit(int(sys.argv[2]))
        """
    )
    (tmp_path / "served.py").write_text(script)

    def run(mode: str, code: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(tmp_path / "served.py"), mode, str(code)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    for _ in range(3):
        proc = run("served", 0)
        assert proc.returncode == 0 and not ABORTED.search(proc.stderr), (proc.returncode, proc.stderr)
        assert proc.stdout.count("exit functions ran") == 1, proc.stdout
    # not a server's process: its own exit status and finalization (DuckDB's crash at
    # finalization, most times: an abort or, now and then, a segmentation fault, as the
    # Ctrl-C crash of the code before `serving._exit` was either: see the module docstring)
    proc = run("elsewhere", 3)
    assert proc.returncode in (3, -signal.SIGABRT, -signal.SIGSEGV), (proc.returncode, proc.stderr)
    assert proc.stdout.count("exit functions ran") == 1
