"""Durable, append-only logs for what the server receives: posted events, rejected events,
served lists (exposures).

`FileSpool` writes JSON lines into segment files with *group commit*: `append` returns a future
that completes only after the batch is written and fsync'ed, and every batch waiting at that
moment shares one fsync (thousands of acknowledged events per second on one disk). A segment is
`<time>-<host>-<pid>.jsonl.open` while written and renamed to `.jsonl` when closed (every
`rotate_seconds`, at `rotate_bytes`, and on a graceful stop); the absorber only takes closed
segments and the open segments of processes that are gone (a crash loses nothing acknowledged).
A writer holds an exclusive `flock` on its open segment for as long as it writes it (the kernel
drops it when the process dies, `kill -9` included): that, not the pid in the name, tells a
live writer from a dead one, since a restarted container often gets its old pid back.
Erasure and retention rewrite segments (`rewrite_segments`): a closed one, or an open one whose
writer is gone, through a new file renamed over it; a live writer's open segment in place, while
holding the folder's gate (`.rewrite.lock`) exclusively: every write holds it shared, so no
line is appended between the rewrite's read and its truncation (a file renamed over a segment
its writer still appends to would lose every later line with the old file). Readers read
segments through `storage._segments.read_segment` (and what is built on it), which holds the
gate shared while it reads a file: never one half rewritten.

`RedisSpool` appends to a Redis stream instead (several replicas, one queue); acknowledged
means Redis has it, so run Redis with `appendonly yes` and `appendfsync always` for the same
durability (README: scaling out).
"""

from __future__ import annotations

import fcntl
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..storage._segments import (
    CLOSED_SUFFIX,
    GATE,
    OPEN_SUFFIX,
    _writer_gone,
    all_segments,
    rewrite_segments,
    segment_stem,
)

__all__ = [
    "CLOSED_SUFFIX",
    "OPEN_SUFFIX",
    "FileSpool",
    "RedisSpool",
    "all_segments",
    "ready_segments",
    "rewrite_segments",
    "segment_stem",
]


Item = tuple[list[bytes], Future[int]]


class _GroupCommit:
    """One writer thread; `append` returns a future completed when the batch is stored, and every
    batch waiting at that moment is stored together (one fsync / one round trip for all)."""

    poll_seconds: float | None = None  # wake up this often even when idle (for rotation)

    def __init__(self, name: str):
        self._queue: queue.Queue[Item | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def append(self, lines: list[bytes]) -> Future[int]:
        """Queue JSON lines (without newlines); the future completes once they are durable."""
        fut: Future[int] = Future()
        if self._closed:
            fut.set_exception(RuntimeError("spool is closed"))
            return fut
        self._queue.put((lines, fut))
        return fut

    def close(self) -> None:
        """Store what is queued, then stop (graceful stop)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _store(self, batch: list[Item]) -> None:
        raise NotImplementedError

    def _idle(self, stopping: bool) -> None:
        """Called after every wake-up (rotation, closing)."""

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[Item] = []
            try:
                first = self._queue.get(timeout=self.poll_seconds)
                if first is None:
                    stop = True
                else:
                    batch.append(first)
            except queue.Empty:
                pass
            while True:  # group commit: take everything already waiting
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                try:
                    self._store(batch)
                    for lines, fut in batch:
                        fut.set_result(len(lines))
                except Exception as exc:  # storage failed: nobody is told "accepted"
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
            self._idle(stop)


class FileSpool(_GroupCommit):
    poll_seconds = 0.5

    def __init__(
        self,
        directory: str | Path,
        *,
        rotate_seconds: float = 5.0,
        rotate_bytes: int = 64 << 20,
        fsync: bool = True,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        self.fsync = fsync
        self._fh: Any = None
        self._gate = open(self.directory / GATE, "ab")  # (see `rewrite_segments`)
        self._path: Path | None = None
        self._opened_at = 0.0
        self._written = 0
        super().__init__(f"spool-{self.directory.name}")

    def _open(self) -> None:
        name = f"{time.time_ns()}-{socket.gethostname()}-{os.getpid()}{OPEN_SUFFIX}"
        self._path = self.directory / name
        # locked before it has its name, so that no absorber ever sees it open and unlocked
        tmp = self.directory / f".{name}.new"
        self._fh = open(tmp, "ab", buffering=1 << 20)
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        tmp.rename(self._path)
        self._opened_at = time.monotonic()
        self._written = 0

    def _close_segment(self) -> None:
        if self._fh is None or self._path is None:
            return
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        # renamed (or removed) while still locked: an absorber never takes it open and unlocked;
        # and under the gate: not while a rewrite holds the file open (`rewrite_segments`)
        fcntl.flock(self._gate, fcntl.LOCK_SH)
        try:
            if self._written:
                self._path.rename(self._path.with_name(self._path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX))
            else:
                self._path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        self._fh.close()
        self._fh, self._path = None, None

    def _store(self, batch: list[Item]) -> None:
        if self._fh is None:
            self._open()
        fcntl.flock(self._gate, fcntl.LOCK_SH)  # no in-place rewrite while lines go in
        try:
            for lines, _ in batch:
                for line in lines:
                    self._fh.write(line + b"\n")
                    self._written += len(line) + 1  # bytes: what rotate_bytes is compared with
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)

    def close(self) -> None:
        super().close()
        self._gate.close()

    def _idle(self, stopping: bool) -> None:
        if self._fh is not None and (
            stopping
            or time.monotonic() - self._opened_at >= self.rotate_seconds
            or self._written >= self.rotate_bytes
        ):
            self._close_segment()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ready_segments(directory: str | Path) -> list[Path]:
    """Closed segments, plus open ones left by a process of this host that is gone."""
    d = Path(directory)
    if not d.exists():
        return []
    out = []
    host = socket.gethostname()
    for p in sorted(d.iterdir()):
        if p.name.endswith(CLOSED_SUFFIX):
            out.append(p)
        elif p.name.endswith(OPEN_SUFFIX):
            parts = p.name[: -len(OPEN_SUFFIX)].split("-")
            try:
                pid = int(parts[-1])
            except ValueError:
                continue
            if "-".join(parts[1:-1]) == host and (not _pid_alive(pid) or _writer_gone(p)):
                out.append(p)
    return out


class RedisSpool(_GroupCommit):
    """The same interface over a Redis stream (one queue shared by every replica)."""

    def __init__(self, client: Any, stream: str):
        self.client = client
        self.stream = stream
        super().__init__(f"redis-spool-{stream}")

    def _store(self, batch: list[Item]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for lines, _ in batch:
            for line in lines:
                pipe.xadd(self.stream, {"e": line})
        pipe.execute()
