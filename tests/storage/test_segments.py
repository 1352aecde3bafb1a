"""Erasure and retention rewrite spool segments without losing what a running server appends
afterwards, and reach the open segment a stopped server left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
