"""Operations endpoints: liveness, readiness, Prometheus metrics, and the admin reload."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from ._feedback import oldest_pending
from ._http_auth import REQUIREMENT, authorize
from ._http_context import JSON, AppContext
from ._http_models import Health, Ready, Reloaded, error_responses
from ._recommend_queue import RecommendQueue
from ._search_queue import SearchQueue

__all__ = ["ops_router", "queue_status"]


def queue_status(queue: SearchQueue | None) -> dict[str, Any] | None:
    if queue is None:
        return None
    return {
        "depth": queue.depth(),
        "limit": queue.limit,
        "budget_ms": round(queue.budget_s * 1000, 1),
        "max_wait_ms": round(queue.max_wait_s * 1000, 1),
        "cost_ms": {k: round(v * 1000, 3) for k, v in list(queue.cost_s.items())},
    }


def recommend_queue_status(queue: RecommendQueue | None) -> dict[str, Any] | None:
    if queue is None:
        return None
    return {
        "depth": queue.depth(),
        "limit": queue.limit,
        "max_wait_ms": round(queue.max_wait_s * 1000, 1),
        "cost_ms": round(queue.cost_s * 1000, 3),
    }


def ops_router(ctx: AppContext) -> APIRouter:
    metrics = ctx.metrics
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
    async def healthz() -> Any:
        return JSON({"status": "ok"})

    @router.get(
        "/readyz",
        response_model=Ready,
        summary="Readiness: the bundle is loaded",
        responses={503: {"model": Ready, "description": 'Loading: `{"status": "loading"}`'}},
    )
    async def readyz() -> Any:
        s = ctx.state.get("service")
        if s is None:
            return JSON({"status": "loading"}, status_code=503)
        pending, oldest = await event_backlog(ctx)
        why = ctx.absorb.degraded(oldest, ctx.settings.absorb_interval_s)
        last = ctx.absorb.last_success
        return JSON(
            {
                "status": "degraded" if why else "ready",
                "degraded_because": why or None,
                "absorb": {
                    "last_success": None
                    if last is None
                    else datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds"),
                    "failures_in_a_row": ctx.absorb.failures_in_a_row,
                    "last_error": ctx.absorb.last_error,
                    "oldest_pending_age_s": None if oldest is None else round(time.time() - oldest, 1),
                },
                "bundle_version": s.snapshot.version,
                "swaps": s.swaps,
                "search_cache_warmed": s.search_warm,  # null while warming
                # acknowledged, not yet in the warehouse (absorbed every --absorb-seconds)
                "events_pending": pending,
                "search_queue": queue_status(ctx.state.get("search_queue")),
                "recommend_queue": recommend_queue_status(ctx.state.get("recommend_queue")),
                "similar_queue": recommend_queue_status(ctx.state.get("similar_queue")),
            }
        )

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        set_gauges(ctx)
        await event_backlog(ctx)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.post(
        "/v1/admin/reload",
        response_model=Reloaded,
        responses=error_responses(401, 403, 503),
        openapi_extra={"security": REQUIREMENT},
        summary="Load a new bundle, rules and experiments now (instead of at the next check)",
    )
    async def reload(request: Request) -> Any:
        s = authorize(ctx, request, "serve.admin")
        changed = await asyncio.to_thread(s.refresh)
        return JSON({"changed": changed, "bundle_version": s.snapshot.version})

    return router


async def event_backlog(ctx: AppContext) -> tuple[int, float | None]:
    """(acknowledged events not yet in the warehouse, when the oldest of them was spooled), the
    backlog's gauges set to them."""
    pending = await ctx.pending_count()
    oldest = await asyncio.to_thread(oldest_pending, ctx.workdir, ctx.state.get("redis")) if pending else None
    ctx.metrics.events_pending.set(pending)
    ctx.metrics.events_pending_age.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
    return pending, oldest


def set_gauges(ctx: AppContext) -> None:
    """This process's gauges (queue depths, search stage costs, bundle swaps) as they are now:
    at a scrape it answers, and every second in each worker (`_app`), so that a sum over the
    workers is not of the values each had when it last answered a scrape (a depth of 217 read
    for minutes after the load was gone)."""
    metrics = ctx.metrics
    s = ctx.state.get("service")
    if s is not None:
        metrics.swaps.set(s.swaps)
    queue: SearchQueue | None = ctx.state.get("search_queue")
    if queue is not None:
        metrics.search_depth.set(queue.depth())
        for level, cost in list(queue.cost_s.items()):
            metrics.search_cost.labels(level).set(cost)
    rq: RecommendQueue | None = ctx.state.get("recommend_queue")
    if rq is not None:
        metrics.recommend_depth.set(rq.depth())
    sq: RecommendQueue | None = ctx.state.get("similar_queue")
    if sq is not None:
        metrics.similar_depth.set(sq.depth())
