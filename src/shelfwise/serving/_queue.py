"""What the server's work queues share: a bounded deque of jobs, one worker thread that takes
them, and the refusal (`Overloaded`) that the HTTP layer answers with 503 and `Retry-After`.

The queues differ in what they take at once and how they admit: the search queue
(`_search_queue`) takes every waiting miss as one batch and plans a pipeline level per miss; the
list queue (`_recommend_queue`: recommendations and similar items that need the model) takes one
job at a time and refuses what cannot be answered within its time. A subclass says how many jobs
it takes (`_take`) and what it does with them (`_compute`), and applies its own admission in
its `submit` before it calls `_enqueue`.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Overloaded", "WorkQueue", "resolve"]


class Overloaded(Exception):
    """Work refused at admission (`kind` "queue_full" or "too_slow") or, once queued, when it
    waited past its time ("expired"); `retry_after_s` is when the queue should have drained."""

    def __init__(self, kind: str, detail: str, retry_after_s: float):
        super().__init__(detail)
        self.kind = kind
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))  # Retry-After takes whole seconds


class _HasFuture(Protocol):
    future: asyncio.Future[Any]


J = TypeVar("J", bound=_HasFuture)


@dataclass
class WorkQueue(Generic[J]):
    """The deque and the worker thread. Its fields take no constructor argument, so that a
    subclass (a dataclass) declares its own, positional ones included."""

    _jobs: deque[J] = field(default_factory=deque, init=False, repr=False)
    _busy: int = field(default=0, init=False, repr=False)  # jobs taken and not answered yet
    _answered: set[int] = field(default_factory=set, init=False, repr=False)  # of the jobs taken
    _cv: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _stop: bool = field(default=False, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def depth(self) -> int:
        """Jobs waiting or in progress."""
        return len(self._jobs) + self._busy

    def _enqueue(self, job: J) -> None:
        """Queue an admitted job (on the event loop) and wake the worker."""
        with self._cv:
            self._jobs.append(job)
            self._cv.notify()

    def name(self) -> str:
        """The worker thread's name."""
        return "work-queue"

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name=self.name(), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(10)

    def _take(self) -> list[J]:
        """The jobs the worker takes at once (called holding the lock, the deque not empty)."""
        return [self._jobs.popleft()]

    def _compute(self, jobs: list[J]) -> None:
        """Answer the jobs taken (each through `_finish`)."""
        raise NotImplementedError

    def _finish(self, job: J, result: Any, exc: BaseException | None) -> None:
        """Answer one job taken: it stops counting in `depth` before its answer is scheduled on
        its loop, so that whoever awaited it sees the queue without it."""
        with self._cv:
            self._busy = max(0, self._busy - 1)
            self._answered.add(id(job))
        job.future.get_loop().call_soon_threadsafe(resolve, job.future, result, exc)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._stop:
                    self._cv.wait()
                if self._stop:
                    break
                taken = self._take()
                jobs = [j for j in taken if not j.future.cancelled()]  # the client went away
                self._busy = len(jobs)
                self._answered = set()
            try:
                if jobs:
                    self._compute(jobs)
            except Exception as exc:  # noqa: BLE001 - every job taken is answered, never left hanging
                for j in jobs:
                    if id(j) not in self._answered:
                        self._finish(j, None, exc)
            finally:
                with self._cv:
                    self._busy = 0


def resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """Set a job's outcome (on its event loop, through `call_soon_threadsafe`)."""
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
