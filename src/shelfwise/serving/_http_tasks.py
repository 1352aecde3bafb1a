"""The HTTP app's background work, started and stopped by its lifespan: the search queue,
bundle refresh and search-cache warming, the exposure log's writer, the event absorber, and the
graceful stop that absorbs what was acknowledged."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ._event_ids import EventIds, RedisEventIds, SqliteEventIds
from ._exposures import exposure_lines
from ._feedback import EVENT_IDS_DB, absorb, pending_events, spooled_event_ids
from ._http_context import AppContext
from ._http_metrics import Metrics
from ._queue import WorkQueue
from ._recommend_queue import RecommendQueue
from ._search_queue import SearchQueue
from ._service import ServeSettings, Service

__all__ = [
    "absorb_now",
    "drain",
    "every",
    "flush_exposures",
    "once",
    "open_event_ids",
    "prune",
    "refresh",
    "start_recommend_queue",
    "start_search_queue",
    "start_similar_queue",
    "stop_when_cancelled",
    "warm",
]

log = logging.getLogger("uvicorn.error")


async def start_search_queue(
    service: Service, settings: ServeSettings, metrics: Metrics | None = None
) -> SearchQueue:
    """The queue of search-cache misses for `service` (see `_search_queue`), its cost
    estimates calibrated on the loaded catalog (before the page cache is warmed), started.
    With `metrics`, each batch's size, its encoder calls' sizes and its misses' waits in the
    queue are observed (does dynamic batching merge concurrent misses?)."""

    def levels() -> tuple[str, ...]:
        engine = service.snapshot.search
        return engine.levels() if engine is not None else ("lexical",)

    calls: list[int] = []  # the sizes of the current batch's encoder calls (the worker's thread)

    def run_batch(jobs: list[tuple[Any, str]]) -> list[Any]:
        calls.clear()
        return service.search_batch(jobs, encoder_calls=calls)

    def on_batch(batch: list[Any], started: float) -> None:
        assert metrics is not None
        metrics.search_batch.observe(len(batch))
        for n in calls:
            metrics.search_encoded.observe(n)
        for job in batch:
            metrics.search_wait.observe(max(0.0, started - job.arrived))

    queue = SearchQueue(
        run_batch,
        levels,
        budget_s=settings.search_budget_ms / 1000,
        limit=settings.search_queue,
        max_wait_s=settings.search_max_wait_ms / 1000,
        on_batch=on_batch if metrics is not None else None,
    )
    await asyncio.to_thread(queue.calibrate, service.calibrate_search, service.calibrate_encoder)
    queue.start()
    return queue


def start_recommend_queue(service: Service, settings: ServeSettings) -> RecommendQueue:
    """The queue of recommendation lists that need the model (see `_recommend_queue`), started."""

    def run(args: tuple[str, int, str | None, str | None, bool]) -> Any:
        user, k, context, model, personalized = args
        return service.recommend(user, k, context, model, personalized=personalized)

    queue = RecommendQueue(
        run, limit=settings.recommend_queue, max_wait_s=settings.recommend_max_wait_ms / 1000
    )
    queue.start()
    return queue


def start_similar_queue(service: Service, settings: ServeSettings) -> RecommendQueue:
    """The queue of similar-item lists that are not cached (see `_recommend_queue`), started."""

    def run(args: tuple[str, int]) -> Any:
        product_id, k = args
        return service.similar(product_id, k)

    queue = RecommendQueue(
        run,
        limit=settings.similar_queue,
        max_wait_s=settings.similar_max_wait_ms / 1000,
        what="similar items",
    )
    queue.start()
    return queue


async def stop_when_cancelled(queue: WorkQueue[Any]) -> None:
    """Runs until the server stops (its task is cancelled with the others), then stops the queue."""
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.to_thread(queue.stop)


async def every(seconds: float, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await fn(*args)
        except Exception as exc:  # a background failure must not stop serving
            log.error("%s failed: %s", fn.__name__, exc)


async def once(fn: Callable[..., Awaitable[None]], *args: Any) -> None:
    """`fn(*args)` as a task of its own, a failure logged as `every` logs it (a task's exception
    nobody awaited was said only when the task was collected, if ever)."""
    try:
        await fn(*args)
    except Exception as exc:
        log.error("%s failed: %s", fn.__name__, exc)


async def refresh(service: Service) -> None:
    before = service.snapshot
    await asyncio.to_thread(service.refresh)
    if service.snapshot is not before:
        gc.collect()  # the old snapshot goes now, not at some request's expense
        gc.freeze()
    if service.snapshot is not before and service.settings.warm_search_queries > 0:
        await warm(service, service.settings.warm_search_queries)


async def warm(service: Service, top: int) -> None:
    try:
        n = await asyncio.to_thread(service.warm_search, top)
    except Exception:
        log.exception("search cache not warmed")
        return
    gc.freeze()  # and so are the warmed pages
    log.info("search cache warmed with %d logged queries", n)


async def flush_exposures(state: dict[str, Any]) -> None:
    buf = state.get("exposure_buffer")
    if buf:
        state["exposure_buffer"] = []
        state["exposures"].append(await asyncio.to_thread(exposure_lines, buf))


async def absorb_now(workdir: Path, redis_client: Any, ctx: AppContext | None = None) -> None:
    """One absorb; with `ctx`, its outcome counted (`/metrics`, `/readyz`)."""
    try:
        res = await asyncio.to_thread(absorb, workdir, redis_client)
    except Exception as exc:
        if ctx is not None:
            ctx.absorb.record(
                ctx.metrics, "failed", str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
            )
        raise
    if ctx is not None:
        ctx.absorb.record(ctx.metrics, str(res.get("status")))
    if res.get("status") == "ok":
        log.info("absorbed events: %s", res)


async def prune(event_ids: SqliteEventIds) -> None:
    await asyncio.to_thread(event_ids.prune)


def open_event_ids(workdir: Path, redis_client: Any, settings: ServeSettings) -> EventIds:
    """The accepted event_ids, shared by the workers (and replicas, with Redis)."""
    if redis_client is not None:
        return RedisEventIds(redis_client, settings.event_id_window_s)
    store = SqliteEventIds(workdir / EVENT_IDS_DB, settings.event_id_window_s)
    store.prune()
    # spooled but maybe not remembered (a process killed between the two): remembered now
    store.remember(spooled_event_ids(workdir))
    return store


async def drain(workdir: Path, redis_client: Any, seconds: float) -> None:
    """Graceful stop: absorb what was acknowledged, for at most `seconds` in all (a worker waits
    for the lock while another worker absorbs, then takes what is left), and say what happened.
    An absorb still running at the deadline is abandoned: like a crash, it leaves the segments
    for the next absorb, which never curates an event twice."""
    result: dict[str, Any] = {}
    if seconds > 0:
        t0 = time.monotonic()

        def run() -> None:
            try:
                # another worker stopping absorbs every closed segment, this one's included:
                # waited for within the budget (half of it left this worker counting, as its
                # own, the events the other was taking; the other then said none were left)
                # (a quarter of it, up to 5 s, kept for this worker's own absorb)
                result.update(absorb(workdir, redis_client, wait_s=seconds - min(5.0, seconds / 4)))
            except Exception as exc:  # the warehouse held by a training run, a bad segment
                result.update(
                    status="failed", reason=str(exc).splitlines()[0][:200] if str(exc) else repr(exc)
                )

        worker = threading.Thread(target=run, name="shelfwise-drain", daemon=True)
        worker.start()
        await asyncio.to_thread(worker.join, seconds)
        if worker.is_alive():
            result = {"status": "timeout", "reason": f"still absorbing after {seconds:g} s"}
        took = time.monotonic() - t0
        status = result.get("status")
        if status == "ok":
            withheld = result.get("withheld_erased", 0) + result.get("withheld_by_ingest", 0)
            log.info(
                "absorbed %d acknowledged events on the way out in %.1f s: %d curated, %d quarantined "
                "by its checks (repeats, bot traffic, ...), %d withheld (erased users, past the "
                "retention period); %d rejected events quarantined",
                result.get("accepted", 0) + result.get("withheld_erased", 0),
                took,
                result.get("curated", 0),
                result.get("quarantined_by_ingest", 0),
                withheld,
                result.get("quarantined", 0),
            )
        elif status != "nothing":
            log.warning("events not absorbed on the way out: %s", result.get("reason", status))
    try:  # what this process acknowledged (the other workers say theirs; Redis: the stream)
        left = pending_events(workdir, redis_client, pid=os.getpid())
    except Exception as exc:
        log.warning("could not count the spooled events: %s", exc)
        return
    if left:
        taking = (
            " (another absorb, still running, may be taking them now)"
            if result.get("status") in ("busy", "timeout")
            else ""
        )
        log.warning(
            "%d acknowledged events left in the spool, absorbed at the next start or by "
            "`shelfwise events absorb --workdir %s`: this process's%s",
            left,
            workdir,
            taking,
        )
    elif seconds > 0:
        # (not "in the warehouse": some may have been quarantined or withheld, said above; and
        # this process's only: another worker stopping says its own)
        log.info("no acknowledged event is left in the spool by this process")
