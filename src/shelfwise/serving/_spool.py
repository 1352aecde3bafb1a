"""Durable, append-only logs for what the server receives: posted events, rejected events,
served lists (exposures).

`FileSpool` writes JSON lines into segment files with *group commit*: `append` returns a future
that completes only after the batch is written and fsync'ed, and every batch waiting at that
moment shares one fsync (thousands of acknowledged events per second on one disk). A segment is
`<time>-<host>-<pid>.jsonl.open` while written and renamed to `.jsonl` when closed (every
`rotate_seconds`, at `rotate_bytes`, and on a graceful stop); the absorber only takes closed
segments and the open segments of processes that are gone (a crash loses nothing acknowledged).

`RedisSpool` appends to a Redis stream instead (several replicas, one queue); acknowledged
means Redis has it, so run Redis with `appendonly yes` and `appendfsync always` for the same
durability (README: scaling out).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"


class FileSpool:
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
        self._queue: queue.Queue[tuple[list[bytes], Future[int]] | None] = queue.Queue()
        self._fh: Any = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._written = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"spool-{self.directory.name}", daemon=True)
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
        """Write what is queued, close the segment (graceful stop)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    # -- writer thread ------------------------------------------------------------------------
    def _open(self) -> None:
        name = f"{time.time_ns()}-{socket.gethostname()}-{os.getpid()}{OPEN_SUFFIX}"
        self._path = self.directory / name
        self._fh = open(self._path, "ab", buffering=1 << 20)
        self._opened_at = time.monotonic()
        self._written = 0

    def _close_segment(self) -> None:
        if self._fh is None or self._path is None:
            return
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self._fh.close()
        if self._written:
            self._path.rename(self._path.with_name(self._path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX))
        else:
            self._path.unlink(missing_ok=True)
        self._fh, self._path = None, None

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                item = ...  # type: ignore[assignment]
            batch: list[tuple[list[bytes], Future[int]]] = []
            if item is None:
                stop = True
            elif item is not ...:
                batch.append(item)  # type: ignore[arg-type]
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
                    if self._fh is None:
                        self._open()
                    n = 0
                    for lines, _ in batch:
                        for line in lines:
                            self._fh.write(line + b"\n")
                        n += len(lines)
                    self._fh.flush()
                    if self.fsync:
                        os.fsync(self._fh.fileno())
                    self._written += n
                    for lines, fut in batch:
                        fut.set_result(len(lines))
                except Exception as exc:  # the disk failed: nobody is told "accepted"
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
            if self._fh is not None and (
                stop
                or time.monotonic() - self._opened_at >= self.rotate_seconds
                or self._written >= self.rotate_bytes
            ):
                self._close_segment()
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
            if "-".join(parts[1:-1]) == host and not _pid_alive(pid):
                out.append(p)
    return out


class RedisSpool:
    """The same interface over a Redis stream (one queue shared by every replica)."""

    def __init__(self, client: Any, stream: str, maxlen: int | None = None):
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self._queue: queue.Queue[tuple[list[bytes], Future[int]] | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"redis-spool-{stream}", daemon=True)
        self._thread.start()

    def append(self, lines: list[bytes]) -> Future[int]:
        fut: Future[int] = Future()
        if self._closed:
            fut.set_exception(RuntimeError("spool is closed"))
            return fut
        self._queue.put((lines, fut))
        return fut

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch = []
            if item is None:
                stop = True
            else:
                batch.append(item)
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            if not batch:
                continue
            try:
                pipe = self.client.pipeline(transaction=False)
                for lines, _ in batch:
                    for line in lines:
                        pipe.xadd(self.stream, {"e": line})
                pipe.execute()
                for lines, fut in batch:
                    fut.set_result(len(lines))
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
