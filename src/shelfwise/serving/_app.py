"""The HTTP API (FastAPI under uvicorn): parsing, validation, limits, metrics, serialization.

(No `from __future__ import annotations` here: FastAPI reads the endpoint annotations, which
name limits from the settings, at definition time.)

Every answer carries the bundle version and a `recommendation_id` / `search_id`; every served
list is written to the exposure log with that id, so a later event posted with the id is
attributed to the list, the model and the experiment variant that produced it.
"""

import asyncio
import gc
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..governance._contracts import EVENTS
from ..governance._row_check import check_record, parse_timestamp
from ._event_ids import EventIds, RedisEventIds, SqliteEventIds
from ._feedback import (
    EVENT_IDS_DB,
    EVENTS_DIR,
    EXPOSURES_DIR,
    REDIS_EVENTS,
    REDIS_REJECTED,
    REJECTED_DIR,
    absorb,
    pending_events,
    spooled_event_ids,
)
from ._online import RedisState
from ._search_queue import Overloaded, SearchQueue
from ._service import Answer, SearchArgs, ServeSettings, Service
from ._spool import FileSpool, RedisSpool

log = logging.getLogger("uvicorn.error")  # configured by uvicorn: our messages show with its own

EVENT_FIELDS = frozenset(EVENTS.column_names)
CONFIG_ENV = "SHELFWISE_SERVE_CONFIG"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _Metrics:
    def __init__(self) -> None:
        multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.registry = CollectorRegistry() if not multiproc else None
        reg = self.registry if self.registry is not None else CollectorRegistry()
        kw: dict[str, Any] = {"registry": reg}
        self.latency = Histogram(
            "shelfwise_request_seconds", "request latency", ["endpoint"], buckets=LATENCY_BUCKETS, **kw
        )
        self.requests = Counter(
            "shelfwise_requests_total", "requests by status", ["endpoint", "status"], **kw
        )
        self.errors = Counter("shelfwise_errors_total", "5xx answers", ["endpoint"], **kw)
        self.cache = Counter("shelfwise_cache_total", "list lookups by outcome", ["surface", "outcome"], **kw)
        self.events = Counter("shelfwise_events_total", "posted events by outcome", ["outcome"], **kw)
        self.children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.swaps = Gauge("shelfwise_bundle_swaps", "bundles hot-swapped in", multiprocess_mode="max", **kw)
        # the search queue (see `_search_queue`): misses waiting or in progress, refused misses,
        # pages computed per level, stages skipped to stay within the latency budget
        self.search_depth = Gauge(
            "shelfwise_search_queue_depth",
            "search misses waiting or in progress",
            multiprocess_mode="livesum",
            **kw,
        )
        self.search_shed = Counter(
            "shelfwise_search_shed_total", "search misses refused with 503 (overload)", ["reason"], **kw
        )
        self.search_level = Counter(
            "shelfwise_search_computed_total", "search pages computed, by pipeline level", ["level"], **kw
        )
        self.search_degraded = Counter(
            "shelfwise_search_degraded_total", "search pages answered below the full pipeline", **kw
        )
        self.search_skipped = Counter(
            "shelfwise_search_stage_skipped_total", "search stages skipped for the budget", ["stage"], **kw
        )
        self.search_cost = Gauge(
            "shelfwise_search_level_cost_seconds",
            "estimated CPU seconds per query at each pipeline level",
            ["level"],
            multiprocess_mode="mostrecent",
            **kw,
        )

    def render(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return generate_latest(reg)


def _endpoint(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class _MetricsMiddleware:
    """Latency and status per route template (a raw ASGI middleware: no per-request task)."""

    def __init__(self, app: Any, metrics: _Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            ep = _endpoint(scope)
            m = self.metrics
            key = (ep, status[0])
            children = m.children.get(key)
            if children is None:  # labelled children are looked up once, not per request
                children = m.children[key] = (m.latency.labels(ep), m.requests.labels(ep, str(status[0])))
            children[0].observe(time.perf_counter() - t0)
            children[1].inc()
            if status[0] >= 500:
                m.errors.labels(ep).inc()


_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")  # control characters, undecodable bytes


def _clean_text(value: str, name: str, max_chars: int) -> str:
    if len(value) > max_chars:
        raise HTTPException(422, f"{name}: longer than {max_chars} characters")
    if _NOT_TEXT.search(value):
        raise HTTPException(422, f"{name}: not text (binary or control characters)")
    return value


def create_app(workdir: str | Path, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    workdir = Path(workdir)
    metrics = _Metrics()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis_client = None
        if settings.redis_url:
            import redis

            redis_client = redis.Redis.from_url(settings.redis_url)
            redis_client.ping()
        online = RedisState(redis_client) if redis_client is not None else None
        import torch

        torch.set_num_threads(1)  # one request's query encoding must not take every core
        service = await asyncio.to_thread(Service, workdir, settings, online=online)
        gc.freeze()  # the loaded bundle is long-lived: keep it out of every garbage collection
        if redis_client is not None:
            events: Any = RedisSpool(redis_client, REDIS_EVENTS)
            rejected: Any = RedisSpool(redis_client, REDIS_REJECTED)
        else:
            events = FileSpool(workdir / EVENTS_DIR, fsync=settings.fsync)
            rejected = FileSpool(workdir / REJECTED_DIR, fsync=settings.fsync)
        exposures = FileSpool(workdir / EXPOSURES_DIR, fsync=False, rotate_seconds=60)
        event_ids = await asyncio.to_thread(_open_event_ids, workdir, redis_client, settings)
        state.update(
            event_ids=event_ids,
            service=service,
            events=events,
            rejected=rejected,
            exposures=exposures,
            redis=redis_client,
            exposure_buffer=[],
            search_queue=await _search_queue(service, settings),
        )
        tasks = [asyncio.create_task(_every(0.5, _flush_exposures, state))]
        tasks.append(asyncio.create_task(_stop_when_cancelled(state["search_queue"])))
        if settings.warm_search_queries > 0:
            tasks.append(asyncio.create_task(_warm(service, settings.warm_search_queries)))
        if settings.reload_interval_s > 0:
            tasks.append(asyncio.create_task(_every(settings.reload_interval_s, _refresh, service)))
        if isinstance(event_ids, SqliteEventIds):  # forget ids older than the window, hourly
            tasks.append(asyncio.create_task(_every(3600, _prune, event_ids)))
        if settings.absorb_interval_s > 0:
            # at once (what a killed predecessor acknowledged), then every interval
            tasks.append(asyncio.create_task(_absorb(workdir, redis_client)))
            tasks.append(
                asyncio.create_task(_every(settings.absorb_interval_s, _absorb, workdir, redis_client))
            )
        log.info("serving bundle %s from %s", service.snapshot.version, workdir)
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with suppress(asyncio.CancelledError):
                    await t
            await _flush_exposures(state)
            # graceful stop: whatever was acknowledged is already on disk; close the segments so
            # the absorber can take them at once
            for spool in (events, rejected, exposures):
                await asyncio.to_thread(spool.close)
            await _drain(workdir, redis_client, settings.drain_seconds)
            await asyncio.to_thread(event_ids.close)

    app = FastAPI(
        title="shelfwise",
        version="1",
        lifespan=lifespan,
        default_response_class=JSON,
        description="Search, recommendations and event collection for one shop. "
        "Limits: " + ", ".join(f"{k}={v}" for k, v in asdict(settings).items() if k.startswith("max_")),
    )
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    from ..web import mount_console  # the team's console at /console (issue 17)

    mount_console(app, workdir, lambda: state.get("service"))

    def svc(request: Request | None = None, action: str = "serve.call") -> Service:
        s: Service | None = state.get("service")
        if s is None:
            raise HTTPException(503, "not ready: the bundle is still loading")
        if s.keys and request is not None:  # people are registered: an API key is required
            key = request.headers.get("x-api-key")
            auth = request.headers.get("authorization", "")
            if key is None and auth.lower().startswith("bearer "):
                key = auth[7:].strip()
            allowed, name = s.caller(key, action)
            if not allowed:
                from ..governance import AuditLog

                AuditLog(workdir).append(
                    "access.denied",
                    actor=name or "anonymous",
                    outcome="denied",
                    denied_action=action,
                    path=request.url.path,
                )
                if name is None:
                    raise HTTPException(401, "an API key is required (header X-API-Key)")
                raise HTTPException(403, f"{name} may not {action}")
        return s

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSON:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body"))
            problems.append(f"{loc}: {e.get('msg', 'invalid')}")
        return JSON({"error": "; ".join(problems), "details": problems}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSON:
        body = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
        return JSON(body, status_code=exc.status_code, headers=exc.headers)

    def expose(kind: str, served_id: str, ans: Answer, user: str | None, extra: dict[str, Any]) -> None:
        rec = {
            "id": served_id,
            "kind": kind,
            "at": time.time(),
            "user": user,
            "bundle": ans.bundle,
            "model": ans.model,
            "experiment": ans.experiment,
            "variant": ans.variant.name if ans.variant else None,
            "items": ans.items,
            **extra,
        }
        state["exposure_buffer"].append(orjson.dumps(rec))  # written every 0.5 s in one batch

    def with_experiment(out: dict[str, Any], ans: Answer) -> None:
        if ans.experiment:
            out["experiment"] = {"name": ans.experiment, "variant": ans.variant.name if ans.variant else None}

    def count_cache(surface: str, ans: Answer) -> None:
        hit = ans.source.startswith(("precomputed:", "cached:"))
        metrics.cache.labels(surface, "hit" if hit else "miss").inc()

    K = Annotated[int, Query(ge=1, le=settings.max_k, description=f"1..{settings.max_k}")]

    @app.get("/healthz")
    async def healthz() -> JSON:
        return JSON({"status": "ok"})

    pending_cache: list[float] = [0.0, 0.0]  # (counted at, count)

    async def pending_count() -> int:
        """The spool's acknowledged events, counted again only after this worker accepted events
        or a second passed: a readiness probe may come every few hundred ms, and counting reads
        every spooled line (a backlog can be large while a training run holds the warehouse)."""
        if time.monotonic() - pending_cache[0] > 1.0:
            n = await asyncio.to_thread(pending_events, workdir, state.get("redis"))
            pending_cache[:] = [time.monotonic(), float(n)]
        return int(pending_cache[1])

    @app.get("/readyz")
    async def readyz() -> JSON:
        s = state.get("service")
        if s is None:
            return JSON({"status": "loading"}, status_code=503)
        return JSON(
            {
                "status": "ready",
                "bundle_version": s.snapshot.version,
                "swaps": s.swaps,
                "search_cache_warmed": s.search_warm,  # null while warming
                # acknowledged, not yet in the warehouse (absorbed every --absorb-seconds)
                "events_pending": await pending_count(),
                "search_queue": _queue_status(state.get("search_queue")),
            }
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        s = state.get("service")
        if s is not None:
            metrics.swaps.set(s.swaps)
        queue: SearchQueue | None = state.get("search_queue")
        if queue is not None:
            metrics.search_depth.set(queue.depth())
            for level, cost in list(queue.cost_s.items()):
                metrics.search_cost.labels(level).set(cost)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/recommendations/{user_id}")
    async def recommendations(
        request: Request,
        user_id: Annotated[str, PathParam(min_length=1, max_length=settings.max_id_chars)],
        k: K = 10,
        context: Annotated[str | None, Query(max_length=settings.max_query_chars)] = None,
    ) -> JSON:
        s = svc(request)
        _clean_text(user_id, "user_id", settings.max_id_chars)
        if context is not None:
            _clean_text(context, "context", settings.max_query_chars)
        ans = s.recommend(user_id, k, context or None)
        rid = s.new_id("rec")
        count_cache("recommendations", ans)
        expose("recommendations", rid, ans, ans.user, {"context": context})
        out: dict[str, Any] = {
            "recommendation_id": rid,
            "bundle_version": ans.bundle,
            "user_id": user_id,
            "model": ans.model,
            "source": ans.source.split(":")[0],
            "items": ans.items,
        }
        with_experiment(out, ans)
        return JSON(out)

    @app.get("/v1/items/{product_id}/similar")
    async def similar(
        request: Request,
        product_id: Annotated[str, PathParam(min_length=1, max_length=settings.max_id_chars)],
        k: K = 10,
    ) -> JSON:
        s = svc(request)
        _clean_text(product_id, "product_id", settings.max_id_chars)
        ans = s.similar(product_id, k)
        if ans is None:
            raise HTTPException(404, f"product_id: unknown product {product_id!r}")
        rid = s.new_id("rec")
        count_cache("similar", ans)
        expose("similar", rid, ans, None, {"product_id": product_id})
        return JSON(
            {
                "recommendation_id": rid,
                "bundle_version": ans.bundle,
                "product_id": product_id,
                "model": ans.model,
                "items": ans.items,
            }
        )

    @app.get("/v1/search")
    async def search(
        request: Request,
        q: Annotated[str, Query(description="the query text")],
        k: K = 10,
        offset: Annotated[int, Query(ge=0, le=1000)] = 0,
        category: Annotated[str | None, Query(max_length=256)] = None,
        brand: Annotated[str | None, Query(max_length=256)] = None,
        price_min: Annotated[float | None, Query(ge=0, le=1e9)] = None,
        price_max: Annotated[float | None, Query(ge=0, le=1e9)] = None,
        in_stock: bool | None = None,
        sort: Annotated[str, Query(pattern="^(relevance|price_asc|price_desc|popularity)$")] = "relevance",
        user_id: Annotated[str | None, Query(max_length=settings.max_id_chars)] = None,
    ) -> JSON:
        from ..search import Filters

        s = svc(request)
        q = _clean_text(q, "q", settings.max_query_chars)
        if not q.strip():
            raise HTTPException(422, "q: empty")
        for name, v in (("category", category), ("brand", brand), ("user_id", user_id)):
            if v is not None:
                _clean_text(v, name, 256)
        filters = Filters(category, brand, price_min, price_max, in_stock)
        # a cache hit is answered on the event loop; a miss goes to the search queue, which
        # answers it within the latency budget (skipping stages when it is deep) or refuses it
        ans = s.search(q, k, filters=filters, sort=sort, offset=offset, raw_user=user_id, cached_only=True)
        if ans is None:
            try:
                ans = await state["search_queue"].submit(SearchArgs(q, k, filters, sort, offset, user_id))
            except Overloaded as exc:
                metrics.search_shed.labels(exc.kind).inc()
                raise HTTPException(
                    503, f"overloaded: {exc}; retry later", headers={"Retry-After": exc.retry_after}
                ) from None
        assert ans is not None
        level = ans.extra.get("level")
        if level is not None:  # computed for this request (not a cache hit)
            metrics.search_level.labels(level).inc()
            if ans.extra.get("degraded"):
                metrics.search_degraded.inc()
            for stage in ans.extra.get("skipped", ()):
                metrics.search_skipped.labels(stage).inc()
        sid = s.new_id("srch")
        count_cache("search", ans)
        expose(
            "search",
            sid,
            ans,
            s.pseudonymize(user_id) if user_id else None,
            {"query": q, "offset": offset, "sort": sort, "filtered": filters.active()},
        )
        snap = s.snapshot
        titles = snap.bundle.titles
        out = {
            "search_id": sid,
            "bundle_version": ans.bundle,
            "query": q,
            "corrected_query": ans.extra.get("corrected_query"),
            "total": ans.extra.get("total", 0),
            "match": ans.extra.get("match"),
            "fallback": ans.extra.get("fallback"),
            "stages": ans.extra.get("stages", []),
            "degraded": bool(ans.extra.get("degraded")),
            "items": [
                {"product_id": p, "title": titles[snap.item_index[p]] if p in snap.item_index else None}
                for p in ans.items
            ],
            "facets": ans.extra.get("facets", {}),
        }
        with_experiment(out, ans)
        return JSON(out)

    @app.get("/v1/suggest")
    async def suggest(
        request: Request,
        q: Annotated[str, Query(max_length=settings.max_query_chars)],
        k: Annotated[int, Query(ge=1, le=20)] = 8,
    ) -> JSON:
        s = svc(request)
        q = _clean_text(q, "q", settings.max_query_chars)
        engine = s.snapshot.search
        return JSON(
            {"query": q, "suggestions": engine.suggest(q, k) if engine is not None and q.strip() else []}
        )

    @app.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> JSON:
        s = svc(request)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            raise HTTPException(413, f"body larger than {settings.max_body_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise HTTPException(413, f"body larger than {settings.max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"body is not valid JSON: {exc}") from None
        if isinstance(body, dict) and isinstance(body.get("events"), list) and len(body) == 1:
            body = body["events"]
        if not isinstance(body, list):
            raise HTTPException(422, "body: expected a JSON list of events")
        if len(body) > settings.max_events_per_request:
            raise HTTPException(413, f"more than {settings.max_events_per_request} events in one request")
        if not body:
            raise HTTPException(422, "body: empty list")
        snap = s.snapshot
        known = {"product_id": snap.item_index}
        received = datetime.now(UTC).isoformat()
        # each event gets a verdict: rejected (invalid), duplicate (its event_id was accepted
        # before, or earlier in this batch) or accepted (spooled)
        results: list[dict[str, Any]] = []
        valid: list[tuple[int, dict[str, Any], Any, str | None]] = []
        bad_lines, errors = [], []
        for i, ev in enumerate(body):
            failures: list[dict[str, str]] = []
            eid: str | None = None
            if not isinstance(ev, dict):
                failures.append(
                    {"field": "", "reason": "malformed_row", "detail": "an event must be a JSON object"}
                )
            else:
                unknown = sorted(set(ev) - EVENT_FIELDS)
                failures += [
                    {"field": f, "reason": "unknown_field", "detail": f"{f}: not an event field"}
                    for f in unknown[:10]
                ]
                if not failures:
                    chk = check_record(EVENTS, ev, known=known)
                    failures += [
                        {"field": f.field, "reason": f.reason.value, "detail": f.detail} for f in chk.failures
                    ]
                    eid = chk.values.get("event_id")
                    if eid is not None and len(eid) > settings.max_id_chars:
                        failures.append(
                            {
                                "field": "event_id",
                                "reason": "invalid_value",
                                "detail": f"event_id: longer than {settings.max_id_chars} characters",
                            }
                        )
            if failures:
                bad_lines.append(orjson.dumps({"event": ev, "failures": failures, "received_at": received}))
                errors.append({"index": i, **failures[0], "all": failures})
                results.append({"index": i, "status": "rejected", "event_id": eid, "errors": failures})
            else:
                valid.append((i, ev, chk, eid))
                results.append({"index": i, "status": "accepted", "event_id": eid})
        ids = list({eid for _, _, _, eid in valid if eid is not None})
        store: EventIds = state["event_ids"]
        seen = await asyncio.to_thread(store.seen, ids) if ids else set()
        ok_lines, ok_events, ok_ids = [], [], []
        for i, ev, chk, eid in valid:
            if eid is not None:
                if eid in seen:
                    results[i]["status"] = "duplicate"
                    continue
                seen.add(eid)  # a repeat later in this batch is a duplicate of this one
                ok_ids.append(eid)
            elif "event_id" in ev:  # "", "null": no id; the absorber gives it one of its own
                ev = {k: v for k, v in ev.items() if k != "event_id"}
            ok_lines.append(orjson.dumps({"event": ev, "received_at": received}))
            ts = parse_timestamp(str(ev["timestamp"]).strip())
            ok_events.append(
                {
                    "user_id": ev["user_id"],
                    "product_id": (str(ev.get("product_id") or "")).strip(),
                    "_type": chk.values["event_type"],
                    "_ts": ts.replace(tzinfo=UTC).timestamp() if ts else None,
                }
            )
        waits = []
        if ok_lines:
            waits.append(asyncio.wrap_future(state["events"].append(ok_lines)))
        if bad_lines:
            waits.append(asyncio.wrap_future(state["rejected"].append(bad_lines)))
        try:
            await asyncio.gather(*waits)  # durable (fsync'ed / in Redis) before we answer
        except Exception as exc:
            log.error("events not stored: %s", exc)
            raise HTTPException(503, "events could not be stored; nothing was accepted, retry") from None
        duplicates = len(valid) - len(ok_lines)
        metrics.events.labels("accepted").inc(len(ok_lines))
        if ok_lines:
            pending_cache[0] = 0.0  # the next /readyz counts again
        metrics.events.labels("quarantined").inc(len(bad_lines))
        if duplicates:
            metrics.events.labels("duplicate").inc(duplicates)
        if ok_ids:
            try:  # after the spool: a crash in between makes a retry spool again (the warehouse
                # drops it), never an acknowledged event that is not stored
                await asyncio.to_thread(store.remember, ok_ids)
            except Exception as exc:
                log.error("event_ids not remembered (the warehouse still drops repeats): %s", exc)
        if ok_events:
            await asyncio.to_thread(s.record_events, ok_events)
        out: dict[str, Any] = {
            "accepted": len(ok_lines),
            "rejected": len(errors),
            "duplicates": duplicates,
            "results": results,
        }
        if not errors:
            return JSON(out, status_code=202)
        first = errors[0]
        out.update(
            error=f"event {first['index']}: {first['detail']}",
            errors=errors[:100],
            note="the rejected events are quarantined; the others were accepted (or were duplicates): "
            "do not send them again",
        )
        # 422 only when nothing of the batch was acceptable; a mixed batch is a 207 (multi-status):
        # a success, so that a client does not retry (and duplicate) the accepted events
        return JSON(out, status_code=422 if len(errors) == len(body) else 207)

    @app.post("/v1/admin/reload")
    async def reload(request: Request) -> JSON:
        s = svc(request, "serve.admin")
        changed = await asyncio.to_thread(s.refresh)
        return JSON({"changed": changed, "bundle_version": s.snapshot.version})

    return app


async def _search_queue(service: Service, settings: ServeSettings) -> SearchQueue:
    """The queue of search-cache misses for `service` (see `_search_queue`), its cost
    estimates calibrated on the loaded catalog (before the page cache is warmed), started."""

    def levels() -> tuple[str, ...]:
        engine = service.snapshot.search
        return engine.levels() if engine is not None else ("lexical",)

    queue = SearchQueue(
        service.search_batch,
        levels,
        budget_s=settings.search_budget_ms / 1000,
        limit=settings.search_queue,
        max_wait_s=settings.search_max_wait_ms / 1000,
    )
    await asyncio.to_thread(queue.calibrate, service.calibrate_search)
    queue.start()
    return queue


def _queue_status(queue: SearchQueue | None) -> dict[str, Any] | None:
    if queue is None:
        return None
    return {
        "depth": queue.depth(),
        "limit": queue.limit,
        "budget_ms": round(queue.budget_s * 1000, 1),
        "max_wait_ms": round(queue.max_wait_s * 1000, 1),
        "cost_ms": {k: round(v * 1000, 3) for k, v in list(queue.cost_s.items())},
    }


async def _stop_when_cancelled(queue: SearchQueue) -> None:
    """Runs until the server stops (its task is cancelled with the others), then stops the queue."""
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.to_thread(queue.stop)


async def _every(seconds: float, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await fn(*args)
        except Exception as exc:  # a background failure must not stop serving
            log.error("%s failed: %s", fn.__name__, exc)


async def _refresh(service: Service) -> None:
    before = service.snapshot
    await asyncio.to_thread(service.refresh)
    if service.snapshot is not before:
        gc.collect()  # the old snapshot goes now, not at some request's expense
        gc.freeze()
    if service.snapshot is not before and service.settings.warm_search_queries > 0:
        await _warm(service, service.settings.warm_search_queries)


async def _warm(service: Service, top: int) -> None:
    try:
        n = await asyncio.to_thread(service.warm_search, top)
    except Exception:
        log.exception("search cache not warmed")
        return
    gc.freeze()  # and so are the warmed pages
    log.info("search cache warmed with %d logged queries", n)


async def _flush_exposures(state: dict[str, Any]) -> None:
    buf = state.get("exposure_buffer")
    if buf:
        state["exposure_buffer"] = []
        state["exposures"].append(buf)


async def _absorb(workdir: Path, redis_client: Any) -> None:
    res = await asyncio.to_thread(absorb, workdir, redis_client)
    if res.get("status") == "ok":
        log.info("absorbed events: %s", res)


async def _prune(event_ids: SqliteEventIds) -> None:
    await asyncio.to_thread(event_ids.prune)


def _open_event_ids(workdir: Path, redis_client: Any, settings: ServeSettings) -> EventIds:
    """The accepted event_ids, shared by the workers (and replicas, with Redis)."""
    if redis_client is not None:
        return RedisEventIds(redis_client, settings.event_id_window_s)
    store = SqliteEventIds(workdir / EVENT_IDS_DB, settings.event_id_window_s)
    store.prune()
    # spooled but maybe not remembered (a process killed between the two): remembered now
    store.remember(spooled_event_ids(workdir))
    return store


async def _drain(workdir: Path, redis_client: Any, seconds: float) -> None:
    """Graceful stop: absorb what was acknowledged, for at most `seconds` in all (a worker waits
    for the lock while another worker absorbs, then takes what is left), and say what happened.
    An absorb still running at the deadline is abandoned: like a crash, it leaves the segments
    for the next absorb, which never curates an event twice."""
    result: dict[str, Any] = {}
    if seconds > 0:
        t0 = time.monotonic()

        def run() -> None:
            try:
                result.update(absorb(workdir, redis_client, wait_s=seconds / 2))
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
            log.info(
                "absorbed %d acknowledged events into the warehouse on the way out in %.1f s (%d of "
                "them quarantined by its checks, e.g. repeats; %d rejected events quarantined)",
                result.get("accepted", 0),
                took,
                result.get("quarantined_by_ingest", 0),
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
        log.warning(
            "%d acknowledged events left in the spool, absorbed at the next start or by "
            "`shelfwise events absorb --workdir %s`",
            left,
            workdir,
        )
    elif seconds > 0:
        log.info("every acknowledged event is in the warehouse")


def app_from_env() -> FastAPI:
    """uvicorn factory (each worker process builds its app from the same configuration)."""
    cfg = json.loads(os.environ[CONFIG_ENV])
    return create_app(cfg["workdir"], ServeSettings(**cfg["settings"]))
