"""Spool segments on disk (`serving._spool` writes them): their names, whether a writer still
holds one, and rewriting them for erasure and retention without losing a running writer's lines.

A segment is `<time>-<host>-<pid>.jsonl.open` while its writer appends to it (holding an
exclusive `flock` on it) and `.jsonl` once closed. `rewrite_segments` removes lines: a closed
segment, or an open one whose writer is gone, through a new file renamed over it; a live
writer's open segment in place, while holding the folder's gate (`.rewrite.lock`) exclusively:
every write holds it shared, so no line is appended between the rewrite's read and its
truncation (a file renamed over a segment its writer still appends to would lose every later
line with the old file).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
GATE = ".rewrite.lock"  # writes hold it shared, an in-place rewrite exclusively


def _writer_gone(path: Path) -> bool:
    """Whether nobody holds the open segment's lock (its writer ended, however it ended)."""
    try:
        with open(path, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
    except FileNotFoundError:  # closed (renamed) meanwhile: taken as a closed segment next time
        return False


def all_segments(directory: str | Path) -> list[Path]:
    """Every segment, open ones of live writers included (what is acknowledged and not absorbed)."""
    d = Path(directory)
    if not d.exists():
        return []
    return sorted(p for p in d.iterdir() if p.name.endswith((CLOSED_SUFFIX, OPEN_SUFFIX)))


def rewrite_segments(directory: str | Path, drop: Any, *, closed_only: bool = False) -> int:
    """Remove the lines `drop(record)` says from every segment of `directory` (the open ones of
    live writers too, unless `closed_only`); returns the lines removed. The folder's gate is
    held exclusively for the pass: no writer appends or closes a segment meanwhile, and two
    rewrites (an erasure and a retention run) take turns. See the module's text."""
    d = Path(directory)
    if not d.exists():
        return 0
    n = 0
    with open(d / GATE, "ab") as gate:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            for p in all_segments(d):
                if p.name.endswith(CLOSED_SUFFIX) or (not closed_only and _writer_gone(p)):
                    n += _rewrite_file(p, drop)  # (an absorber may be reading it: renamed over, whole)
                elif not closed_only:
                    n += _rewrite_open(p, drop)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
    return n


def _kept_lines(fh: Any, drop: Any) -> tuple[list[bytes], int]:
    kept, dropped = [], 0
    for line in fh:
        try:
            rec = json.loads(line) if line.strip() else None
        except ValueError:
            rec = None
        if rec is not None and drop(rec):
            dropped += 1
        else:
            kept.append(line)
    return kept, dropped


def _rewrite_file(path: Path, drop: Any) -> int:
    """A file no one writes: the kept lines to a new file renamed over it (readers see one or
    the other, whole; the new file's name is no segment's: `*.jsonl*` never matches it)."""
    try:
        with open(path, "rb") as fh:
            kept, dropped = _kept_lines(fh, drop)
    except FileNotFoundError:  # absorbed meanwhile
        return 0
    if dropped:
        tmp = path.with_name(f".rewrite-{os.getpid()}-{time.time_ns()}.tmp")
        with open(tmp, "wb") as fh:
            fh.writelines(kept)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    return dropped


def _rewrite_open(path: Path, drop: Any) -> int:
    """A live writer's open segment, rewritten in place (the caller holds the gate: the writer
    appends to the same file afterwards, at its new end)."""
    try:
        fh = open(path, "r+b")
    except FileNotFoundError:  # (closed before the gate was taken: rewritten as closed next time)
        return 0
    with fh:
        kept, dropped = _kept_lines(fh, drop)
        if dropped:
            fh.seek(0)
            fh.writelines(kept)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
    return dropped
