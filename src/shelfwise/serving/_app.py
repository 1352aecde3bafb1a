"""The HTTP API (FastAPI under uvicorn): the app, its lifespan and its error answers.

The parts live beside it: the routers (`_http_lists`: recommendations, similar items, search,
suggestions; `_http_events`: event intake; `_http_ops`: health, readiness, metrics, reload;
`_http_docs`: the offline API docs), the API-key dependency (`_http_auth`), the request and
answer shapes of `/openapi.json` (`_http_models`), Prometheus metrics (`_http_metrics`), what
the routers share (`_http_context`) and the background work (`_http_tasks`).

Every answer carries the bundle version and a `recommendation_id` / `search_id`; every served
list is written to the exposure log with that id, so a later event posted with the id is
attributed to the list, the model and the experiment variant that produced it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import _http_tasks as tasks
from ._event_ids import SqliteEventIds
from ._exit import served, server_process
from ._feedback import EVENTS_DIR, EXPOSURES_DIR, REDIS_EVENTS, REDIS_REJECTED, REJECTED_DIR
from ._http_auth import DENIAL_WINDOW_S, SCHEMES, authenticate, authorize
from ._http_consent import consent_router
from ._http_context import JSON, AppContext, key_first
from ._http_docs import docs_router, mount_assets
from ._http_events import events_router
from ._http_lists import lists_router
from ._http_metrics import Metrics, MetricsMiddleware
from ._http_ops import ops_router
from ._online import RedisState
from ._service import ServeSettings, Service
from ._spool import FileSpool, RedisSpool

__all__ = ["CONFIG_ENV", "app_from_env", "create_app"]

log = logging.getLogger("uvicorn.error")  # configured by uvicorn: our messages show with its own

CONFIG_ENV = "SHELFWISE_SERVE_CONFIG"


def create_app(workdir: str | Path, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    ctx = AppContext(Path(workdir), settings, Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _serving(ctx):
            yield

    app = FastAPI(
        title="shelfwise",
        version="1",
        lifespan=lifespan,
        default_response_class=JSON,
        description="Search, recommendations and event collection for one shop. "
        "Limits: " + ", ".join(f"{k}={v}" for k, v in asdict(settings).items() if k.startswith("max_")),
        docs_url=None,  # served from the package by `_http_docs` (FastAPI's own load a CDN)
        redoc_url=None,
    )
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    # a /v1/ request without a known key is a 401 before any validation error is said
    app.state.authenticate = lambda request: authenticate(ctx, request)
    _error_answers(app)

    # Every router of the app, in one place. Another part of shelfwise that serves pages or
    # endpoints from `shelfwise serve` (the web console at /console) adds its router here,
    # built from the same context (service, settings; the API key: `_http_auth.authorize(ctx, request)`).
    from ..insights import insights_router  # POST /v1/ask (issue 18)
    from ..web import mount_console  # the team's console at /console (issue 17)

    routers: list[APIRouter] = [
        ops_router(ctx),
        lists_router(ctx),
        events_router(ctx),
        consent_router(ctx),  # PUT /v1/users/{id}/consent (issue 19)
        docs_router(app.title, app.openapi_url or "/openapi.json"),
        insights_router(workdir, guard=lambda request, action: authorize(ctx, request, action)),
    ]
    for router in routers:
        app.include_router(router)
    mount_console(app, workdir, lambda: ctx.state.get("service"))  # the team's console (issue 17)
    mount_assets(app)
    _security_as_configured(app, ctx)
    return app


def _security_as_configured(app: FastAPI, ctx: AppContext) -> None:
    """`/openapi.json` asks for the API key only where the shop needs one: in single-user mode
    (nobody registered) the operations declare no security requirement (the schemes stay listed),
    so that a client or API tester does not expect a 401 that never comes. The schemes are the
    hand-declared ones of `_http_auth` (the check is no FastAPI dependency)."""
    full = app.openapi  # FastAPI's, built once and cached
    open_schema: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        schema = full()
        schema.setdefault("components", {})["securitySchemes"] = SCHEMES
        if ctx.keys_required():
            return schema
        if not open_schema:
            copy = json.loads(json.dumps(schema))
            for ops in copy["paths"].values():
                for op in ops.values():
                    op.pop("security", None)
            open_schema.update(copy)
        return open_schema

    app.openapi = openapi  # type: ignore[method-assign]


# the member types pydantic puts in a union's error location
_TYPE_TAGS = frozenset({"bool", "none", "int", "float", "str", "list", "dict", "literal", "strict"})


def _error_answers(app: FastAPI) -> None:
    """One error shape for every error answer: `{"error": message}`, plus `details` (one
    `field: reason` per problem) when the request failed validation."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSON:
        try:
            key_first(request)
        except StarletteHTTPException as refused:
            return JSON({"error": refused.detail}, status_code=refused.status_code, headers=refused.headers)
        problems: list[str] = []
        fields: set[str] = set()
        for e in exc.errors():
            # pydantic names a union's member types in the location ("personalization.bool",
            # "personalization.none"): the field is the name, said once; a body-level problem
            # has no field (it read ": Value error, ...")
            parts = [
                str(x)
                for x in e.get("loc", ())
                if x not in ("query", "path", "body", "header")
                and str(x) not in _TYPE_TAGS
                and "[" not in str(x)
            ]
            loc = ".".join(parts) or "body"
            if loc in fields:
                continue
            fields.add(loc)
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}")
        return JSON({"error": "; ".join(problems), "details": problems}, status_code=422)

    # Starlette's own (404 for an unknown path, 405 for a wrong method) included
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSON:
        body = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
        return JSON(body, status_code=exc.status_code, headers=exc.headers)


@asynccontextmanager
async def _serving(ctx: AppContext) -> AsyncIterator[None]:
    """Load the service, open the spools, start the background work; on the way out, stop it
    and absorb what was acknowledged (within `drain_seconds`)."""
    workdir, settings, state = ctx.workdir, ctx.settings, ctx.state
    redis_client = None
    if settings.redis_url:
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url)
        redis_client.ping()
    online = RedisState(redis_client) if redis_client is not None else None
    from ._bundle import current_bundle
    from ._prefork import preloaded_snapshot

    snapshot = preloaded_snapshot(current_bundle(workdir))  # `serve --workers N` loaded it before the fork
    service = await asyncio.to_thread(
        Service, workdir, settings, online=online, snapshot=snapshot, replay_served=True
    )
    if "torch" in sys.modules:  # a bundle's model scores with torch: one request must not take every core
        sys.modules["torch"].set_num_threads(1)
    gc.freeze()  # the loaded bundle is long-lived: keep it out of every garbage collection
    if redis_client is not None:
        events: Any = RedisSpool(redis_client, REDIS_EVENTS)
        rejected: Any = RedisSpool(redis_client, REDIS_REJECTED)
    else:
        events = FileSpool(workdir / EVENTS_DIR, fsync=settings.fsync)
        rejected = FileSpool(workdir / REJECTED_DIR, fsync=settings.fsync)
    exposures = FileSpool(workdir / EXPOSURES_DIR, fsync=False, rotate_seconds=60)
    event_ids = await asyncio.to_thread(tasks.open_event_ids, workdir, redis_client, settings)
    state.update(
        event_ids=event_ids,
        service=service,
        events=events,
        rejected=rejected,
        exposures=exposures,
        redis=redis_client,
        exposure_buffer=[],
        search_queue=await tasks.start_search_queue(service, settings, ctx.metrics),
        recommend_queue=tasks.start_recommend_queue(service, settings),
        similar_queue=tasks.start_similar_queue(service, settings),
    )
    running = [asyncio.create_task(tasks.every(0.5, tasks.flush_exposures, state))]
    running.append(asyncio.create_task(tasks.every(1.0, _gauges, ctx)))
    running.append(asyncio.create_task(tasks.every(DENIAL_WINDOW_S, _denials_due, ctx)))
    running.append(asyncio.create_task(tasks.stop_when_cancelled(state["search_queue"])))
    running.append(asyncio.create_task(tasks.stop_when_cancelled(state["recommend_queue"])))
    running.append(asyncio.create_task(tasks.stop_when_cancelled(state["similar_queue"])))
    if settings.warm_search_queries > 0:
        running.append(asyncio.create_task(tasks.warm(service, settings.warm_search_queries)))
    if settings.reload_interval_s > 0:
        running.append(asyncio.create_task(tasks.every(settings.reload_interval_s, tasks.refresh, service)))
    if isinstance(event_ids, SqliteEventIds):  # forget ids older than the window, hourly
        running.append(asyncio.create_task(tasks.every(3600, tasks.prune, event_ids)))
    if settings.absorb_interval_s > 0:
        # at once (what a killed predecessor acknowledged), then every interval
        running.append(asyncio.create_task(tasks.once(tasks.absorb_now, workdir, redis_client, ctx)))
        running.append(
            asyncio.create_task(
                tasks.every(settings.absorb_interval_s, tasks.absorb_now, workdir, redis_client, ctx)
            )
        )
    log.info("serving bundle %s from %s", service.snapshot.version, workdir)
    if service.replayed:
        log.info(
            "online state: %d served event(s) the bundle did not learn from replayed (absorbed since, or spooled)",
            service.replayed,
        )
    try:
        yield
    finally:
        for t in running:
            t.cancel()
        for t in running:
            with suppress(asyncio.CancelledError):
                await t
        await tasks.flush_exposures(state)
        # graceful stop: whatever was acknowledged is already on disk; close the segments so
        # the absorber can take them at once
        for spool in (events, rejected, exposures):
            await asyncio.to_thread(spool.close)
        await tasks.drain(workdir, redis_client, settings.drain_seconds)
        await asyncio.to_thread(event_ids.close)
        if (denials := state.get("denials")) is not None:  # the denials counted, not yet audited
            await asyncio.to_thread(denials.flush)
        served()  # the orderly shutdown is done: `serve` may end the process (see `_exit`)


async def _denials_due(ctx: AppContext) -> None:
    """The denial counts of the windows that have passed, audited (off the event loop)."""
    from ._http_auth import denials

    await asyncio.to_thread(denials(ctx).flush, passed_only=True)


async def _gauges(ctx: AppContext) -> None:
    from ._http_ops import set_gauges

    set_gauges(ctx)


def app_from_env() -> FastAPI:
    """uvicorn factory (each worker process builds its app from the same configuration)."""
    cfg = json.loads(os.environ[CONFIG_ENV])
    server_process()  # its end after serving: `_exit`
    return create_app(cfg["workdir"], ServeSettings(**cfg["settings"]))
