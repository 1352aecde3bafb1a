"""`ExposureBuffer` (a Shop's served lists, batched into the exposure log): a close re-entered
during a write (a GC finalizer run in the writing thread) logs no list twice and breaks no
write, and lists served in a forked worker reach the log though the worker never exits normally."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from shelfwise.serving._exposures import ExposureBuffer
from shelfwise.serving._feedback import EXPOSURES_DIR
from shelfwise.serving._spool import FileSpool
from shelfwise.storage._segments import iter_records


def _lists(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}_{i}", "kind": "recommendations", "items": ["p"]} for i in range(n)]


def _logged(work: Path) -> list[str]:
    d = work / EXPOSURES_DIR
    return sorted(r["id"] for r in iter_records(d)) if d.exists() else []


@pytest.mark.parametrize("where", ["append", "result"])
def test_a_close_re_entered_during_a_write_logs_each_list_once(tmp_path: Path, monkeypatch, where):
    buf = ExposureBuffer(tmp_path)
    real_append = FileSpool.append
    entered: list[bool] = []

    class Done:
        def __init__(self, fut: Any) -> None:
            self.fut = fut

        def result(self) -> Any:
            n = self.fut.result()
            if where == "result" and not entered:  # after the batch was appended
                entered.append(True)
                buf.close()  # (a Shop's finalizer, run by a GC pass in this thread)
            return n

    def append(self: FileSpool, lines: list[bytes]) -> Any:
        if where == "append" and not entered:  # before it is: the segment closed under it
            entered.append(True)
            buf.close()
        return Done(real_append(self, lines))

    monkeypatch.setattr(FileSpool, "append", append)
    buf.add(_lists("rec", 3))
    buf.flush()
    buf.close()
    assert entered and _logged(tmp_path) == ["rec_0", "rec_1", "rec_2"]


def test_a_failed_write_keeps_the_lists_for_the_next(tmp_path: Path, monkeypatch):
    buf = ExposureBuffer(tmp_path)
    real_append = FileSpool.append

    def full(self: FileSpool, lines: list[bytes]) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(FileSpool, "append", full)
    buf.add(_lists("rec", 2))
    with pytest.raises(OSError):
        buf.flush()
    buf.add(_lists("more", 1))
    assert buf.held == 3
    monkeypatch.setattr(FileSpool, "append", real_append)
    buf.close()
    assert _logged(tmp_path) == ["more_0", "rec_0", "rec_1"]


def _serve(work: Path, n: int) -> int:
    ExposureBuffer(work).add(_lists(f"rec_{n}", 10))  # as `Shop._log_served` makes it
    return n  # and leaves at once: before the buffer's half-second timer


def test_lists_served_in_forked_workers_reach_the_log(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_serve, args=(tmp_path, 1))
    p.start()
    p.join()
    with ctx.Pool(2) as pool:  # (its `with` block's end terminates the workers)
        assert pool.starmap(_serve, [(tmp_path, 2), (tmp_path, 3)]) == [2, 3]
    assert len(_logged(tmp_path)) == 30
