"""The queue of search-cache misses: admission control, a latency budget and dynamic batching.

A cache hit is answered on the event loop; a miss costs milliseconds of CPU (the encoder, the
retrievers, the ranker's features and LightGBM) and goes here. One worker thread takes every
miss waiting (up to `MAX_BATCH`) at once, so that:

- the queries of the batch that need the encoder are encoded in one call (dynamic batching with
  no added wait: while a batch is computed the next one gathers);
- each miss gets a level (`SearchEngine.query`: "full", "fused", "lexical") from its deadline
  (`budget_s` after it arrived) and what waits behind it (the queue, or its recent peak depth
  when that is deeper: requests on their way are not queued yet): the richest level that still
  lets every waiting miss finish within its budget at the cheapest level. What each level costs
  per query is measured as the worker runs (the median of its last `WINDOW` queries, seeded by
  a calibration on start: one query slowed down by a garbage collection or by another process
  taking the core does not reprice the level, a machine that stays slower does; a level not
  chosen for a while is priced a little lower at each idle moment, so that it is tried again),
  so the plan follows the machine's real speed. A level's cost is what a query costs encoded
  alone; the query encoder's call has a fixed part (`encoder_s`: seconds per call and per query,
  calibrated on start and scaled by what the calls take), which the plan counts once per batch
  and level: the second and later misses of a batch planned at a level share its encoder call,
  so under concurrency the richer levels cost less per miss and more misses get them;
- a miss that cannot be done in time is refused at the door (503 with `Retry-After`, counted):
  when `limit` misses are already waiting or in progress, or when the predicted wait even at the
  cheapest level is beyond `max_wait_s`. Below that, the queue absorbs bursts by degrading.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..search import LEVELS
from ._queue import Overloaded, WorkQueue

__all__ = ["MAX_BATCH", "Overloaded", "SearchQueue"]

log = logging.getLogger("uvicorn.error")

MAX_BATCH = 64  # misses taken at once (one encoder call): bounds the batch's own latency
# a level's cost estimate is the median of its last WINDOW per-query costs (a moving average
# was repriced by one outlier: a 285 ms query, preempted, lifted "full" from 21 to 74 ms, above
# a 40 ms budget, and ~30 lone misses were then answered "fused" until the estimate decayed)
WINDOW = 31
DECAY = 0.98  # per batch, for the estimate of a level that batch did not run (see `_learn`)
PEAK_DECAY_S = 1.0
# what a request costs the server besides its engine work (HTTP parsing, validation, the page's
# JSON, the exposure log): not in the measured per-level costs, but every miss waiting pays it
OVERHEAD_S = 0.001
PRIOR_S = {"full": 0.02, "fused": 0.005, "lexical": 0.001}  # until calibrated


@dataclass
class _Job:
    args: Any
    deadline: float
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    level: str = "full"
    arrived: float = 0.0  # when it was queued (`time.monotonic()`)


@dataclass
class SearchQueue(WorkQueue[_Job]):
    """`run_batch(jobs: list[(args, level)]) -> list[answer]` computes a batch (the service's
    `search_batch`); `levels()` names the levels the current engine has, richest first;
    `on_batch(jobs, started)`, when given, is told of each batch computed (its jobs, their levels
    set, and when the worker took it): the server's metrics (batch sizes, queue waits)."""

    run_batch: Callable[[list[tuple[Any, str]]], list[Any]]
    levels: Callable[[], tuple[str, ...]]
    budget_s: float = 0.04
    limit: int = 256
    max_wait_s: float = 0.5
    cost_s: dict[str, float] = field(default_factory=lambda: dict(PRIOR_S))
    # per level that encodes queries: (seconds per encoder call, seconds per query), as measured
    # at calibration times `_encoder_scale` (see `_learn`); a level absent pays each query's
    # whole cost, encoder call included (no saving from batching assumed)
    encoder_s: dict[str, tuple[float, float]] = field(default_factory=dict)
    on_batch: Callable[[list[_Job], float], None] | None = None
    batches: int = 0
    _samples: dict[str, deque[float]] = field(default_factory=dict, repr=False)  # see WINDOW
    _encoder_ratio: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _peak: float = 0.0  # recent peak depth (decays with `PEAK_DECAY_S`)
    _peak_at: float = 0.0

    def name(self) -> str:
        return "search-queue"

    # -- the event loop's side ----------------------------------------------------------------
    def submit(self, args: Any) -> asyncio.Future[Any]:
        """Queue a miss (called on the event loop); raises `Overloaded` when it cannot be done
        in time. The future resolves to the answer, or to the exception computing it raised."""
        depth = self.depth()
        cheapest = self.cost_s[self._levels()[-1]]
        wait = depth * cheapest
        if depth >= self.limit:
            raise Overloaded("queue_full", f"search queue full ({depth} misses, limit {self.limit})", wait)
        if wait > self.max_wait_s:
            raise Overloaded(
                "too_slow",
                f"search queue too slow (predicted wait {wait * 1000:.0f} ms, limit "
                f"{self.max_wait_s * 1000:.0f} ms)",
                wait,
            )
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        job = _Job(args, now + self.budget_s, loop.create_future(), loop, arrived=now)
        self._enqueue(job)
        self._peak = max(depth + 1.0, self.recent_peak(now))
        self._peak_at = now
        return job.future

    def recent_peak(self, now: float) -> float:
        """The deepest the queue has recently been (exponentially forgotten over ~1 s): misses
        that are on their way but not queued yet (in the socket, the HTTP parser) are unseen,
        and a closed-loop client sends the next request the moment one is answered, so the
        recent depth is the best guess of what will wait behind a miss started now."""
        return self._peak * math.exp(-(now - self._peak_at) / PEAK_DECAY_S)

    # -- the worker ---------------------------------------------------------------------------
    def calibrate(
        self,
        measure: Callable[[str], float],
        encoder: Callable[[str], tuple[float, float]] | None = None,
    ) -> None:
        """Seed the cost estimates: `measure(level)` is the seconds one query takes at a level
        (run before anything else loads the machine: the warm-up of the page cache waits);
        `encoder(level)` the (per call, per query) seconds of that level's encoder call."""
        for level in self._levels():
            try:
                self.cost_s[level] = max(measure(level), 1e-5)
            except Exception as exc:  # a calibration failure keeps the priors
                log.warning("search queue: %s level not calibrated: %s", level, exc)
            if encoder is not None and level != "lexical":
                try:
                    fixed, per_query = encoder(level)
                    # the call's fixed part is in the level's cost: never more than it
                    self.encoder_s[level] = (min(fixed, self.cost_s[level] * 0.9), per_query)
                except Exception as exc:
                    log.warning("search queue: %s encoder not calibrated: %s", level, exc)
        log.info(
            "search queue: budget %.0f ms, cost per query %s, encoder per call/query %s",
            self.budget_s * 1000,
            {k: round(v * 1000, 2) for k, v in self.cost_s.items()},
            {k: (round(a * 1000, 2), round(b * 1000, 2)) for k, (a, b) in self.encoder_s.items()},
        )

    def _encoder(self, level: str) -> tuple[float, float]:
        """(per call, per query) seconds of `level`'s encoder call now: the calibrated ones
        times the median ratio of what recent calls took to what they predicted."""
        fixed, per_query = self.encoder_s.get(level, (0.0, 0.0))
        ratios = self._encoder_ratio.get(level)
        scale = statistics.median(ratios) if ratios else 1.0
        return fixed * scale, per_query * scale

    def _levels(self) -> tuple[str, ...]:
        try:
            return self.levels() or LEVELS
        except Exception:
            return LEVELS

    def _take(self) -> list[_Job]:
        # every miss waiting, up to MAX_BATCH: their queries are encoded in one call
        return [self._jobs.popleft() for _ in range(min(MAX_BATCH, len(self._jobs)))]

    def plan(self, batch: list[_Job], now: float) -> None:
        """Set each job's level: in arrival order, the richest level that ends within the job's
        deadline and still leaves every miss behind it (in the batch and in the queue) time to be
        answered at the cheapest level within the newest deadline."""
        levels = self._levels()
        cheapest = self.cost_s[levels[-1]] + OVERHEAD_S
        queued = len(self._jobs)
        expected = self.recent_peak(now)  # what will wait, seen or not (see `recent_peak`)
        last = max(self._jobs[-1].deadline if self._jobs else batch[-1].deadline, now + self.budget_s)
        # a level's encoder call is paid once per batch: later misses at it skip its fixed part
        fixed = {level: self._encoder(level)[0] for level in levels if level in self.encoder_s}
        called: set[str] = set()

        def cost(level: str) -> float:
            return self.cost_s[level] - (fixed.get(level, 0.0) if level in called else 0.0)

        t = now
        for i, job in enumerate(batch):
            behind = max(len(batch) - i - 1 + queued, expected - i - 1)
            job.level = levels[-1]
            for level in levels:
                end = t + cost(level)
                if end <= job.deadline and end + behind * cheapest <= last:
                    job.level = level
                    break
            t += cost(job.level)
            if job.level in fixed:
                called.add(job.level)

    def _compute(self, batch: list[_Job]) -> None:
        started = time.monotonic()
        self.plan(batch, started)
        t0 = time.perf_counter()
        try:
            answers: list[Any] = self.run_batch([(j.args, j.level) for j in batch])
            error: BaseException | None = None
        except Exception as exc:  # answered as an error to every job of the batch
            answers, error = [], exc
        took = time.perf_counter() - t0
        self.batches += 1
        if error is None:
            self._learn(batch, answers, took)
        for i, job in enumerate(batch):
            result = answers[i] if error is None else None
            self._finish(job, result, error)
        if self.on_batch is not None:
            try:
                self.on_batch(batch, started)
            except Exception as exc:  # metrics must not fail a batch
                log.warning("search queue: on_batch failed: %s", exc)

    def _learn(self, batch: list[_Job], answers: list[Any], took: float) -> None:
        """Update the per-level cost estimates from what each computed job of a batch cost
        (`extra["cost_s"]`: its engine time and its share of the batch's encoder call): the
        median of the level's last `WINDOW` costs. A level not run in a batch has its estimate
        (and the costs it is the median of) lowered a little (`DECAY`, down to the next cheaper
        level's): an estimate made on a busy moment would otherwise never be revised, since the
        level it prices would never be chosen again."""
        seen = set()
        calls: set[tuple[str, int, float]] = set()
        for a in answers:
            level, cost = a.extra.get("level"), a.extra.get("cost_s")
            share, n = a.extra.get("encoder_s"), a.extra.get("encoder_batch")
            if level in self.encoder_s and share is not None and n is not None:
                # priced as if encoded alone (what `cost_s` means): its share of the call out,
                # a call of its own in. `n == 0`: its vector was cached (the call encoded
                # nothing): no measure of the encoder (a ratio ~0 would scale it down to
                # nothing), and its cost gets the call it would have made
                if n:
                    calls.add((level, int(n), float(share)))
                fixed, per_query = self._encoder(level)
                if cost is not None:
                    cost = cost - share + fixed + per_query
            if level in self.cost_s and cost is not None:
                window = self._samples.get(level)
                if window is None:  # the calibrated (or prior) cost counts as one measurement
                    window = self._samples[level] = deque([self.cost_s[level]], maxlen=WINDOW)
                window.append(float(cost))
                seen.add(level)
        for level, n, share in calls:  # what each encoder call took vs. its prediction
            fixed, per_query = self.encoder_s[level]
            if fixed + n * per_query > 0:
                ratios = self._encoder_ratio.setdefault(level, deque(maxlen=WINDOW))
                ratios.append(share * n / (fixed + n * per_query))
        for level in seen:
            self.cost_s[level] = statistics.median(self._samples[level])
        if self._jobs:  # misses wait: no room to try a richer level again now
            return
        levels = self._levels()
        for richer, cheaper in zip(levels, levels[1:], strict=False):
            if richer not in seen:
                floor = self.cost_s[cheaper]
                self.cost_s[richer] = max(self.cost_s[richer] * DECAY, floor)
                window = self._samples.get(richer)
                if window:
                    self._samples[richer] = deque((max(c * DECAY, floor) for c in window), maxlen=WINDOW)
