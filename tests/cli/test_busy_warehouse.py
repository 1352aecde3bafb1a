"""A command that finds the warehouse held by another process (issue 15's walk: `shelfwise serve`
absorbs acknowledged events every 30 s and on its way out, and DuckDB lets no other process in
while one writes) says so in one line and exits 3, as `events absorb` does, instead of a DuckDB
traceback; once the other process lets go the same command works."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_cli import sw

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # a writer: what an absorb holds for a few seconds
print("held", flush=True)
sys.stdin.readline()
"""


def _holding(work: Path) -> subprocess.Popen[str]:
    """A process holding the workdir's warehouse as a writer (until `_let_go`)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(work / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _let_go(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()


def _events(data: Path) -> Path:
    """A folder with 30 view events of 3 users."""
    data.mkdir()
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        + "".join(f"u{i % 3},p{i % 5},view,2026-01-0{1 + i % 9}T10:00:00\n" for i in range(30))
    )
    return data


def test_a_busy_warehouse_is_one_line_and_exit_3(tmp_path: Path):
    data = _events(tmp_path / "d")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    holder = _holding(work)
    try:
        proc = sw(
            "export",
            "--workdir",
            str(work),
            "--table",
            "events",
            "--out",
            str(tmp_path / "e.csv"),
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("busy: "), proc.stderr
        assert str(work / "warehouse.duckdb") in lines[0] and f"PID {holder.pid}" in lines[0]
    finally:
        _let_go(holder)
        holder.wait(30)
    time.sleep(0.1)
    sw("export", "--workdir", str(work), "--table", "events", "--out", str(tmp_path / "e.csv"))
    assert len((tmp_path / "e.csv").read_text().splitlines()) == 31


def test_the_python_api_says_a_busy_warehouse_as_a_shelfwise_error(tmp_path: Path):
    """`Shop` raised DuckDB's own IOException (not a ShelfwiseError: a caller catching the
    documented base class crashed, 6 of 12 erasures beside a serving shop); it raises
    `WarehouseBusy`, the CLI's words, and the same call works once the holder lets go."""
    import pytest

    from shelfwise import ShelfwiseError, Shop, WarehouseBusy

    data = _events(tmp_path / "d")
    work = tmp_path / "w"
    shop = Shop(work)
    shop.ingest(data)
    holder = _holding(work)
    try:
        for call in (lambda: shop.table("events"), lambda: shop.erase("u1")):
            with pytest.raises(WarehouseBusy, match=f"^busy: the warehouse .* \\(PID {holder.pid}: ") as got:
                call()
            assert isinstance(got.value, ShelfwiseError)
    finally:
        _let_go(holder)
        holder.wait(30)
    time.sleep(0.1)
    assert len(shop.table("events")) == 30 and shop.erase("u1")["found"]


# the classifier: only DuckDB's own lock error is "busy"; an error raised while handling one, or
# raised `from None`, keeps its own message and traceback (`main` re-raises it)
LOCK_TEXT = (
    'IO Error: Could not set lock on file "{path}": Conflicting lock is held in /usr/bin/python3.12 '
    "(PID 42). See also https://duckdb.org/docs/stable/connect/concurrency"
)


def _lock_error(path: str = "/shop/work/warehouse.duckdb") -> Exception:
    import duckdb

    return duckdb.IOException(LOCK_TEXT.format(path=path))


def _raised(make) -> BaseException:  # the exception as `main` meets it, chains set by `raise`
    try:
        make()
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("nothing raised")


def _raise(exc: BaseException) -> None:
    raise exc


def test_a_lock_error_is_busy_and_names_the_warehouse():
    from shelfwise.cli import _warehouse_busy

    msg = _warehouse_busy(_raised(lambda: _raise(_lock_error())))
    assert msg and msg.startswith("busy: the warehouse /shop/work/warehouse.duckdb is in use")
    assert "(PID 42" in msg


def test_a_lock_on_another_file_names_that_file_not_the_warehouse():
    from shelfwise.cli import _warehouse_busy

    msg = _warehouse_busy(_lock_error("/shop/work/features/store.duckdb"))
    assert msg and msg.startswith("busy: the file /shop/work/features/store.duckdb is in use")
    assert "warehouse" not in msg and "PID 42" in msg


def test_an_error_raised_while_handling_a_lock_error_is_not_busy():
    from shelfwise.cli import _warehouse_busy

    def permission():
        try:
            raise _lock_error()
        except Exception:
            raise PermissionError("cannot write /shop/work/tmp/e.csv")  # noqa: B904

    def from_none():
        try:
            raise _lock_error()
        except Exception:
            raise ValueError("no such table: events") from None

    def unrelated_duckdb():  # a DuckDB IO error of another kind, during the lock error
        import duckdb

        try:
            raise _lock_error()
        except Exception:
            raise duckdb.IOException("IO Error: No space left on device")  # noqa: B904

    for make in (permission, from_none, unrelated_duckdb):
        exc = _raised(make)
        assert _warehouse_busy(exc) is None, (make.__name__, exc)
    assert _warehouse_busy(ValueError(LOCK_TEXT.format(path="/w/warehouse.duckdb"))) is None  # not DuckDB's


def test_main_reraises_what_is_not_busy_and_exits_3_on_a_lock(monkeypatch, capsys):
    import pytest

    import shelfwise.cli as cli

    def command_meeting_a_lock(**_):
        raise _lock_error()

    monkeypatch.setattr(cli, "app", command_meeting_a_lock)
    assert cli.main([]) == 3
    assert capsys.readouterr().err.startswith("busy: the warehouse /shop/work/warehouse.duckdb")

    def command_failing_after_a_lock(**_):
        try:
            raise _lock_error()
        except Exception:
            raise PermissionError("cannot write e.csv")  # noqa: B904

    monkeypatch.setattr(cli, "app", command_failing_after_a_lock)
    with pytest.raises(PermissionError, match="cannot write e.csv") as info:
        cli.main([])
    assert "busy" not in capsys.readouterr().err
    assert "Could not set lock" in str(info.value.__context__)  # the traceback shows both


def test_a_training_run_waits_for_a_writer_instead_of_failing(tmp_path: Path):
    """A server's absorb holds the warehouse for seconds; a training run's read that met one
    lost every fit made before it (an SRE's walk). Within `waiting_for_the_warehouse` a read
    waits for the writer to let go; outside it, it is told at once."""
    import threading

    import duckdb

    from shelfwise.storage import read_only, waiting_for_the_warehouse

    data = tmp_path / "d"
    data.mkdir()
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nu1,p1,view,2026-01-01T10:00:00\n"
    )
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    holder = _holding(work)
    try:
        with read_only(work):
            raise AssertionError("read while another process writes")
    except duckdb.IOException:
        pass

    def let_go() -> None:
        time.sleep(1.5)
        _let_go(holder)

    threading.Thread(target=let_go).start()
    t0 = time.monotonic()
    with waiting_for_the_warehouse(30), read_only(work) as (con, curated):
        assert "events" in curated and con.sql("SELECT count(*) FROM curated.events").fetchone() == (1,)
    assert time.monotonic() - t0 >= 1.0
    holder.wait(30)


def test_waits_that_end_out_of_order_leave_no_wait_behind(tmp_path: Path):
    """Two runs on two threads each wait for the warehouse; the first to start ends first. The
    wait was a saved-and-restored value, put back by the later exit: every read of the process
    then waited two minutes for a writer instead of being told at once (two tests of the full
    suite took 120 s each)."""
    import duckdb

    from shelfwise.storage import read_only, waiting_for_the_warehouse

    data = _events(tmp_path / "d")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    first, second = waiting_for_the_warehouse(60), waiting_for_the_warehouse(30)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    holder = _holding(work)
    try:
        t0 = time.monotonic()
        try:
            with read_only(work):
                raise AssertionError("read while another process writes")
        except duckdb.IOException:
            pass
        assert time.monotonic() - t0 < 5
    finally:
        _let_go(holder)
        holder.wait(30)
