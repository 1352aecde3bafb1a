"""Spool segments on disk (`serving._spool` writes them): their names, whether a writer still
holds one, and rewriting them for erasure and retention without losing a running writer's lines.

A segment is `<time>-<host>-<pid>.jsonl.open` while its writer appends to it (holding an
exclusive `flock` on it) and `.jsonl` once closed. `rewrite_segments` removes lines: a closed
segment, or an open one whose writer is gone, through a new file renamed over it; a live
writer's open segment in place, while holding the folder's gate (`.rewrite.lock`) exclusively:
every write holds it shared, so no line is appended between the rewrite's read and its
truncation (a file renamed over a segment its writer still appends to would lose every later
line with the old file).

Every reader of segments reads through `read_segment` (or `segment_lines`, `iter_records`,
`count_segment_lines`, built on it): it holds the gate shared while it reads one file, so it
never sees a segment half rewritten (truncated, or new lines over the old), only the whole
file before or after a rewrite. The gate is held for the read of that one file, never while a
caller parses or works on what was read: a rewrite waits for a reader that long at most.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
GATE = ".rewrite.lock"  # writes hold it shared, an in-place rewrite exclusively


@contextmanager
def absorb_lock(workdir: str | Path) -> Iterator[bool]:
    """The lock one absorber of served events holds at a time (`spool/.absorb.lock`): True when
    taken, False when another process holds it (never waits). An erasure takes it to remove
    the staging folders (`tmp/absorb-*`) a dead absorber left."""
    spool = Path(workdir) / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    with open(spool / ".absorb.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def folder_lock(folder: str | Path, *, shared: bool, name: str = ".lock") -> Iterator[None]:
    """A lock over a folder's files (`<folder>/<name>`, waited for): readers share it, a writer
    that rewrites several of them in place (an erasure scrubbing a model bundle) holds it alone,
    so a reader never sees one file new and another old (a bundle's state beside a manifest
    still naming the old hash). A folder whose lock file cannot be written (a read-only copy,
    which nobody rewrites) is read without it."""
    try:  # (read-only and 0666: flock needs no write access; a server run by another user locks too)
        fd = os.open(Path(folder) / name, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    with os.fdopen(fd, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


OWNER_LOCK = ".lock"


def own_folder(root: str | Path, name: str) -> tuple[Path, int]:
    """A new folder `root/name` held by this process: (the folder, the descriptor of its lock,
    held exclusively until closed or until the process ends). `remove_unheld_folders` tells the
    folders of processes no longer running from those of running ones, whatever their ids
    (in containers every server may be process 1)."""
    folder = Path(root) / name
    # made under a dot name and renamed once its lock is held: `remove_unheld_folders` never
    # sees it without its lock (it would take it for a folder of before)
    making = folder.with_name("." + name)
    making.mkdir(parents=True)
    fd = os.open(making / OWNER_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    making.rename(folder)
    return folder, fd


def remove_unheld_folders(root: str | Path) -> int:
    """Remove what `root` holds but the folders a running process holds (`own_folder`): the
    folders of processes that ended, and anything else (a layout of before). Returns the files
    removed."""
    import shutil

    root = Path(root)
    if not root.is_dir():
        return 0
    n = 0
    for entry in sorted(root.iterdir()):
        lock = entry / OWNER_LOCK
        if entry.name.startswith(".") and not lock.exists():
            continue  # one being made (`own_folder`): its lock comes next
        if entry.is_dir() and lock.exists():
            fd = os.open(lock, os.O_WRONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running process's
            finally:
                os.close(fd)
        if entry.is_dir():
            n += sum(1 for p in entry.rglob("*") if p.is_file() and p.name != OWNER_LOCK)
            shutil.rmtree(entry, ignore_errors=True)
        else:
            n += 1
            entry.unlink(missing_ok=True)
    return n


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


def segment_stem(path: Path) -> str:
    """`<time>-<host>-<pid>`: a segment's name, the same while open and once closed."""
    name = path.name
    for suffix in (OPEN_SUFFIX, CLOSED_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _under_gate(path: str | Path, read: Callable[[Any], T]) -> T | None:
    """`read(file)` of the segment at `path`, while the folder's gate is held shared (no
    rewrite runs meanwhile; writers and other readers go on); None when the segment is gone.

    A `.jsonl.open` its writer closed meanwhile (renamed, the same file) is read under its
    closed name. The gate is opened for reading: a reader creates nothing (it may have no
    right to write the folder). A folder without a gate has had no writer since it was made
    (a writer opens the gate before its first segment), so none of its segments can be
    rewritten in place (only renamed over, whole): it is read without one."""
    path = Path(path)
    names = [path]
    if path.name.endswith(OPEN_SUFFIX):
        names.append(path.with_name(path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX))

    def attempt() -> T | None:
        for p in names:
            try:
                with open(p, "rb") as fh:
                    return read(fh)
            except FileNotFoundError:
                continue
        return None

    try:
        gate = open(path.parent / GATE, "rb")
    except FileNotFoundError:
        return attempt()
    with gate:
        fcntl.flock(gate, fcntl.LOCK_SH)
        try:
            return attempt()
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)


def read_segment(path: str | Path, offset: int = 0) -> bytes | None:
    """The bytes of a segment from `offset` on, the whole file as it is between rewrites (see
    `_under_gate`); None when it is gone (absorbed, removed). Its last line may lack its
    newline: a write still going on, or one that a crash cut short."""

    def read(fh: Any) -> bytes:
        if offset:
            fh.seek(offset)
        return fh.read()  # type: ignore[no-any-return]

    return _under_gate(path, read)


def complete_lines(data: bytes) -> list[bytes]:
    """The complete, non-blank lines of what `read_segment` read, each with its newline. A
    last line without its newline is a write still going on or cut short by a crash: never
    acknowledged (the answer waits for the fsync), so not a record."""
    return [line for line in io.BytesIO(data) if line.strip() and line.endswith(b"\n")]


def segment_lines(path: str | Path) -> list[bytes] | None:
    """The complete lines of a segment (`complete_lines`); None when it is gone."""
    data = read_segment(path)
    return None if data is None else complete_lines(data)


def count_segment_lines(path: str | Path) -> int:
    """The lines of a segment (0 when it is gone), counted a chunk at a time."""

    def count(fh: Any) -> int:
        n = 0
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
        return n

    return _under_gate(path, count) or 0


def iter_segments(
    directory: str | Path, *, written_since: float | None = None
) -> Iterator[tuple[Path, list[bytes]]]:
    """Every segment of `directory` (oldest first) with its complete lines, each read whole
    under the gate and released before it is yielded; a segment gone meanwhile is left out,
    one listed under both names (closed while the folder was listed) is read once.
    `written_since` (epoch seconds): only the segments last written at or after it; an older
    one (`last_written`) holds no line written since, and is not opened."""
    seen: set[str] = set()
    for path in all_segments(directory):
        stem = segment_stem(path)
        if stem in seen:
            continue
        seen.add(stem)
        if written_since is not None and last_written(path) < written_since:
            continue
        lines = segment_lines(path)
        if lines is not None:
            yield path, lines


def last_written(path: Path) -> float:
    """When a segment was last written (epoch seconds: its modification time, which a line
    appended and a rewrite by an erasure or retention run move later; closing renames it,
    writing nothing): none of its lines was written after it. +inf when it cannot be told (gone
    meanwhile: read, never skipped, by a caller that asks). A `.jsonl.open` closed meanwhile is
    its `.jsonl`."""
    names = [path]
    if path.name.endswith(OPEN_SUFFIX):
        names.append(path.with_name(path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX))
    for p in names:
        try:
            return p.stat().st_mtime
        except FileNotFoundError:
            continue
    return float("inf")


def iter_records(directory: str | Path, *, written_since: float | None = None) -> Iterator[Any]:
    """The JSON value of every complete line of every segment of `directory`, oldest first
    (`iter_segments`; `written_since`: of the segments last written since then); lines that
    are not JSON are skipped."""
    for _, lines in iter_segments(directory, written_since=written_since):
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue


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
        replace_lines(path, kept)
    return dropped


def replace_lines(path: Path, lines: Any) -> None:
    """`path` (a file no one writes) replaced by `lines` (bytes, each ending in a newline): a new
    file, fsync'ed, renamed over it (readers see one or the other, whole; the new file's name is
    no segment's: `*.jsonl*` never matches it)."""
    tmp = path.with_name(f".rewrite-{os.getpid()}-{time.time_ns()}.tmp")
    with open(tmp, "wb") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


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
