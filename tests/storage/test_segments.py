"""Erasure and retention rewrite spool segments without losing what a running server appends
afterwards, and reach the open segment a stopped server left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shelfwise.serving._spool import FileSpool
from shelfwise.storage._segments import CLOSED_SUFFIX, OPEN_SUFFIX, rewrite_segments


def _line(user: str, n: int) -> bytes:
    return json.dumps({"user": user, "n": n}).encode()


def _records(directory: Path) -> list[dict]:
    out = []
    for p in sorted(directory.iterdir()):
        if p.name.endswith((CLOSED_SUFFIX, OPEN_SUFFIX)):
            out += [json.loads(x) for x in p.read_text().splitlines()]
    return out


def test_a_live_writers_open_segment_is_rewritten_in_place_and_keeps_later_lines(tmp_path: Path) -> None:
    spool = FileSpool(tmp_path, rotate_seconds=3600, fsync=False)
    spool.append([_line("erased", 1), _line("kept", 2)]).result(10)
    spool.append([_line("erased", 3)]).result(10)
    (open_seg,) = [p for p in tmp_path.iterdir() if p.name.endswith(OPEN_SUFFIX)]
    assert rewrite_segments(tmp_path, lambda r: r["user"] == "erased") == 2
    # the writer goes on appending to the same file: nothing written after the rewrite is lost
    spool.append([_line("kept", 4), _line("kept", 5)]).result(10)
    spool.close()
    assert not open_seg.exists()
    assert [r["n"] for r in _records(tmp_path)] == [2, 4, 5]


def test_a_stopped_writers_open_segment_is_rewritten_too(tmp_path: Path) -> None:
    """A server killed (no graceful stop) leaves `.jsonl.open`: no lock held, rewritten whole."""
    code = (
        "import os, sys, json\n"
        "from shelfwise.serving._spool import FileSpool\n"
        "s = FileSpool(sys.argv[1], rotate_seconds=3600, fsync=False)\n"
        "s.append([json.dumps({'user': u, 'n': i}).encode() for i, u in enumerate(['old', 'new', 'old'])]).result(10)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=dict(os.environ))
    assert [p.name.endswith(OPEN_SUFFIX) for p in tmp_path.iterdir() if not p.name.startswith(".")] == [True]
    assert rewrite_segments(tmp_path, lambda r: r["user"] == "old") == 2
    assert [r["n"] for r in _records(tmp_path)] == [1]
    assert rewrite_segments(tmp_path, lambda r: r["user"] == "old", closed_only=True) == 0


# -- readers -----------------------------------------------------------------------------------
# Every reader of the spool reads a segment whole, between rewrites: an erasure or retention
# rewriting a live writer's open segment in place (new lines written over the old, then the
# file cut) is never seen half done.


def _exposure(n: int) -> dict:
    return {"kind": "search", "id": f"s{n}", "query": "mug", "user": "u_1", "experiment": "x",
            "variant": "a", "bundle": "1", "n": n}  # fmt: skip


def _event(n: int, *, with_id: bool) -> dict:
    ev = {"user_id": "u1", "session_id": "S1", "product_id": "P1", "event_type": "view",
          "timestamp": f"2024-03-02T10:00:0{n}Z", "n": n}  # fmt: skip
    if with_id:
        ev["event_id"] = f"e{n}"
    return {"event": ev, "received_at": "2024-03-02T10:00:00+00:00", "n": n}


def _search_pages(work: Path, monkeypatch) -> list:
    from shelfwise.search._analytics import served_search_pages

    return [r["n"] for r in served_search_pages(work)]


def _experiment_exposures(work: Path, monkeypatch) -> list:
    import shelfwise.serving._experiments as experiments

    monkeypatch.setattr(experiments, "attributed_events", lambda workdir: {})
    monkeypatch.setattr(
        experiments, "experiment_summary", lambda exposures, attributed, **kw: {"exposures": exposures}
    )
    return [int(e[2][1:]) for e in experiments.experiment_report(work)["exposures"]]  # the list ids, s<n>


def _spooled_ids(work: Path, monkeypatch) -> list:
    from shelfwise.serving._feedback import spooled_event_ids

    return [int(i[1:]) for i in spooled_event_ids(work)]


def _served_since(work: Path, monkeypatch) -> list:
    from shelfwise.serving._feedback import served_since

    return [ev["n"] for ev in served_since(work, "0")]


def _subject_access(work: Path, monkeypatch) -> list:
    from shelfwise.governance._subject_access import _file_parts

    return [r["record"]["n"] for r in _file_parts(work, "u1", "pseudo")["spool/events"]["rows"]]


def _console_tally(work: Path, monkeypatch) -> list:
    """The console's served-lists tally: every line's list id, or [-1] when it counted more
    lines than distinct ids (a torn file reads line 2 twice)."""
    from shelfwise.web._data import ExposureTally

    t = ExposureTally(work / "spool" / "exposures").update()
    ids = sorted(int(i[1:]) for i in t.ids)
    return ids if sum(t.served.values()) == len(ids) else [-1]


READERS = {
    "search analytics": ("exposures", _exposure, _search_pages),
    "console tally": ("exposures", _exposure, _console_tally),
    "experiment report": ("exposures", _exposure, _experiment_exposures),
    "spooled event ids": ("events", lambda n: _event(n, with_id=True), _spooled_ids),
    "served since": ("events", lambda n: _event(n, with_id=False), _served_since),
    "subject access": ("events", lambda n: _event(n, with_id=False), _subject_access),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_a_reader_never_sees_a_segment_half_rewritten(tmp_path: Path, monkeypatch, reader: str) -> None:
    """A live writer's open segment holds lines 1, 2, 3 (of one length); an erasure removes
    line 1 in place. The rewrite is stopped after it wrote line 2 over line 1 (the file then
    reads 2, 2, 3) and the reader is run then: it must read the whole file before (1, 2, 3) or
    after (2, 3) the rewrite. A reader that waits for the rewrite (on the folder's gate) lets it
    go on: what is stopped is the rewrite, never the reader, so nothing here waits on time."""
    import threading
    import types

    import shelfwise.storage._segments as segments

    folder, make, read = READERS[reader]
    work = tmp_path / "w"
    spool = FileSpool(work / "spool" / folder, rotate_seconds=3600, fsync=False)
    try:
        lines = [json.dumps(make(n)).encode() for n in (1, 2, 3)]
        assert len({len(x) for x in lines}) == 1
        spool.append(lines).result(10)
        assert read(work, monkeypatch) == [1, 2, 3]

        result: list = []
        progressed = threading.Event()  # the reader is done, or waits for the gate

        def run_reader() -> None:
            try:
                result.append(read(work, monkeypatch))
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                result.append(exc)
            finally:
                progressed.set()

        real_flock = segments.fcntl.flock

        def flock(fd, op):  # the reader asking for the gate while the rewrite holds it
            if op == segments.fcntl.LOCK_SH and threading.current_thread() is reader_thread:
                progressed.set()
            return real_flock(fd, op)

        monkeypatch.setattr(segments, "fcntl", types.SimpleNamespace(**{
            k: getattr(segments.fcntl, k) for k in ("LOCK_SH", "LOCK_EX", "LOCK_UN", "LOCK_NB")
        }, flock=flock))  # fmt: skip

        class Stopped:
            """The open segment as the rewrite writes it: stopped after its first line."""

            def __init__(self, fh):
                self._fh = fh

            def __getattr__(self, name):
                return getattr(self._fh, name)

            def __iter__(self):
                return iter(self._fh)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self._fh.__exit__(*exc)

            def writelines(self, kept):
                kept = list(kept)
                self._fh.write(kept[0])
                self._fh.flush()
                reader_thread.start()  # the file reads 2, 2, 3 now
                assert progressed.wait(30)
                self._fh.writelines(kept[1:])

        real_open = open

        def fake_open(path, mode="r", *args, **kwargs):
            fh = real_open(path, mode, *args, **kwargs)
            return Stopped(fh) if mode == "r+b" else fh

        reader_thread = threading.Thread(target=run_reader)
        monkeypatch.setattr(segments, "open", fake_open, raising=False)
        assert rewrite_segments(work / "spool" / folder, lambda r: r["n"] == 1) == 1
        reader_thread.join(30)
        assert result and result[0] in ([1, 2, 3], [2, 3]), result
        monkeypatch.undo()
        assert read(work, monkeypatch) == [2, 3]
    finally:
        monkeypatch.undo()
        spool.close()


def test_a_segment_closed_or_removed_while_read_is_read_under_its_closed_name_or_left_out(
    tmp_path: Path,
) -> None:
    from shelfwise.storage._segments import iter_records, read_segment, segment_lines

    spool = FileSpool(tmp_path, rotate_seconds=3600, fsync=False)
    spool.append([_line("a", 1), _line("b", 2)]).result(10)
    (open_seg,) = [p for p in tmp_path.iterdir() if p.name.endswith(OPEN_SUFFIX)]
    assert segment_lines(open_seg) == [_line("a", 1) + b"\n", _line("b", 2) + b"\n"]
    spool.close()  # renamed to .jsonl: a reader that listed it open still reads it
    assert not open_seg.exists()
    assert read_segment(open_seg) == _line("a", 1) + b"\n" + _line("b", 2) + b"\n"
    assert [r["n"] for r in iter_records(tmp_path)] == [1, 2]
    for p in tmp_path.iterdir():
        if p.name.endswith(CLOSED_SUFFIX):
            p.unlink()  # absorbed
    assert read_segment(open_seg) is None and segment_lines(open_seg) is None
    assert list(iter_records(tmp_path)) == []


def test_a_reader_creates_no_gate(tmp_path: Path) -> None:
    """A folder no writer has used (an archive, one copied for an audit) is read as is: the
    reader writes nothing there, and reads a folder it may not write."""
    from shelfwise.storage._segments import GATE, segment_lines

    seg = tmp_path / f"1-host-1{CLOSED_SUFFIX}"
    seg.write_bytes(_line("a", 1) + b"\n" + b'{"cut": ')  # a last line a crash cut short
    tmp_path.chmod(0o500)
    try:
        assert segment_lines(seg) == [_line("a", 1) + b"\n"]
    finally:
        tmp_path.chmod(0o700)
    assert not (tmp_path / GATE).exists()


def test_a_reader_asking_for_what_was_written_since_skips_older_segments_unopened(tmp_path: Path) -> None:
    """`written_since` leaves out the segments last written before it (their modification time);
    an open segment closed while the folder was listed is told by its closed name, one gone
    meanwhile is never skipped (then found gone: left out)."""
    from shelfwise.storage._segments import iter_records, last_written

    old, new = tmp_path / f"1-host-1{CLOSED_SUFFIX}", tmp_path / f"2-host-1{CLOSED_SUFFIX}"
    old.write_bytes(_line("a", 1) + b"\n")
    new.write_bytes(_line("b", 2) + b"\n")
    os.utime(old, (1000.0, 1000.0))
    os.utime(new, (3000.0, 3000.0))
    assert [r["n"] for r in iter_records(tmp_path, written_since=2000.0)] == [2]
    assert [r["n"] for r in iter_records(tmp_path, written_since=None)] == [1, 2]
    assert last_written(tmp_path / f"2-host-1{OPEN_SUFFIX}") == 3000.0  # (closed meanwhile)
    assert last_written(tmp_path / f"9-host-1{OPEN_SUFFIX}") == float("inf")
