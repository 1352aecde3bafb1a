"""Admission control for the lists the server has to compute: recommendations and similar items.

A list that is a lookup (a precomputed top list, a cached list, the cold-start list) is answered
on the event loop. One that needs the model (a shopper with events since the bundle, a user whose
list was not precomputed; the similar items of a product not asked for since the bundle) costs
milliseconds of CPU; those go to a queue of this kind (one for recommendations, one for similar
items, so that a flood of one does not refuse the other), one worker thread computing them in
arrival order, so that under overload the server answers 503 with `Retry-After` for the work it
cannot do in time instead of queueing without bound:

- at the door, a miss is refused when `limit` misses already wait or are in progress
  (`queue_full`), or when its predicted answer time (the misses ahead of it and itself, at the
  measured cost per miss) is beyond `max_wait_s` (`too_slow`);
- a miss admitted but still waiting when its `max_wait_s` has passed (the estimate was too
  optimistic: a burst of slow users) is refused when the worker reaches it (`expired`) rather
  than computed for a client that has given up.

The cost per miss is a moving average of what the worker measures (seeded with a prior).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._queue import Overloaded, WorkQueue

__all__ = ["RecommendQueue"]

log = logging.getLogger("uvicorn.error")

EWMA = 0.2  # weight of a new measurement in the cost estimate
PRIOR_S = 0.003  # cost per miss until measured


@dataclass
class _Job:
    args: Any
    arrived: float
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


@dataclass
class RecommendQueue(WorkQueue[_Job]):
    """`run(args) -> answer` computes one list (the service's `recommend`, or `similar`);
    `what` names the lists in refusals and the worker thread."""

    run: Callable[[Any], Any]
    limit: int = 256
    max_wait_s: float = 0.2
    cost_s: float = PRIOR_S
    computed: int = 0
    what: str = "recommendation"

    def name(self) -> str:
        return f"{self.what.replace(' ', '-')}-queue"

    def submit(self, args: Any) -> asyncio.Future[Any]:
        """Queue a miss (on the event loop); raises `Overloaded` when it cannot be answered
        within `max_wait_s`. The future resolves to the answer, or to the exception computing it
        raised (an `Overloaded` with kind "expired" when it waited past its time)."""
        depth = self.depth()
        wait = (depth + 1) * self.cost_s  # the misses ahead of it, then its own
        if depth >= self.limit:
            raise Overloaded(
                "queue_full", f"{self.what} queue full ({depth} misses, limit {self.limit})", wait
            )
        # an idle queue admits (unless no wait at all is allowed): the estimate is only updated by
        # lists computed, so refusing on it when nothing is queued would, after one slow list (a GC
        # pause, a cold page cache), refuse every later one for good
        if wait > self.max_wait_s and (depth > 0 or self.max_wait_s <= 0):
            raise Overloaded(
                "too_slow",
                f"{self.what} lists too slow (predicted answer in {wait * 1000:.0f} ms, limit "
                f"{self.max_wait_s * 1000:.0f} ms)",
                wait,
            )
        loop = asyncio.get_running_loop()
        job = _Job(args, time.monotonic(), loop.create_future(), loop)
        self._enqueue(job)
        return job.future

    def _compute(self, jobs: list[_Job]) -> None:
        for job in jobs:  # one at a time (`_take`)
            self._answer(job)

    def _answer(self, job: _Job) -> None:
        result: Any = None
        error: BaseException | None = None
        waited = time.monotonic() - job.arrived
        if waited > self.max_wait_s:  # it already waited past its time (predictions were checked at submit)
            error = Overloaded(
                "expired",
                f"{self.what} list waited {waited * 1000:.0f} ms, limit {self.max_wait_s * 1000:.0f} ms",
                len(self._jobs) * self.cost_s,
            )
        else:
            t0 = time.perf_counter()
            try:
                result = self.run(job.args)
            except Exception as exc:  # answered as the request's error
                error = exc
            else:
                self.cost_s = (1 - EWMA) * self.cost_s + EWMA * (time.perf_counter() - t0)
                self.computed += 1
        self._finish(job, result, error)
