"""Prometheus metrics of the HTTP API: latency and status per route template, cache outcomes,
posted events, the search, recommendation and similar-items queues (`/metrics`). Per process, or across uvicorn workers through
`PROMETHEUS_MULTIPROC_DIR`."""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "Metrics", "MetricsMiddleware"]

# (up to 30 s: under overload the tail is seconds, and a top bucket of 2.5 s hid it)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
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
        self.errors = Counter(
            "shelfwise_errors_total", "5xx answers (load shed on purpose, 503 with Retry-After, not counted)",
            ["endpoint"], **kw,
        )  # fmt: skip
        self.cache = Counter("shelfwise_cache_total", "list lookups by outcome", ["surface", "outcome"], **kw)
        self.events = Counter("shelfwise_events_total", "posted events by outcome", ["outcome"], **kw)
        # the event pipeline: acknowledged events reach the warehouse by the absorbs (walk48b F2)
        self.absorbs = Counter(
            "shelfwise_absorbs_total",
            "event absorbs by outcome (ok, nothing, busy, failed)",
            ["outcome"],
            **kw,
        )
        self.absorb_last_success = Gauge(
            "shelfwise_absorb_last_success_timestamp_seconds",
            "when an absorb last ended without failing (Unix time)",
            multiprocess_mode="max",
            **kw,
        )
        self.events_pending = Gauge(
            "shelfwise_events_pending",
            "acknowledged events not yet in the warehouse (the spool's backlog)",
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.events_pending_age = Gauge(
            "shelfwise_events_pending_age_seconds",
            "how long the oldest acknowledged event not yet in the warehouse has waited (0: none)",
            multiprocess_mode="mostrecent",
            **kw,
        )
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
        # the recommendation queue (see `_recommend_queue`): lists that need the model
        self.recommend_depth = Gauge(
            "shelfwise_recommend_queue_depth",
            "recommendation lists waiting for the model or in progress",
            multiprocess_mode="livesum",
            **kw,
        )
        self.recommend_shed = Counter(
            "shelfwise_recommend_shed_total",
            "recommendation requests refused with 503 (overload)",
            ["reason"],
            **kw,
        )
        # the similar-items queue (the same kind): lists not cached
        self.similar_depth = Gauge(
            "shelfwise_similar_queue_depth",
            "similar-item lists waiting for the model or in progress",
            multiprocess_mode="livesum",
            **kw,
        )
        self.similar_shed = Counter(
            "shelfwise_similar_shed_total",
            "similar-item requests refused with 503 (overload)",
            ["reason"],
            **kw,
        )
        # does dynamic batching merge concurrent misses? the misses the search worker took at
        # once, the queries encoded in one encoder call, and how long a miss waited to be taken
        self.search_batch = Histogram(
            "shelfwise_search_batch_size",
            "search misses computed together (one batch of the search queue)",
            buckets=BATCH_BUCKETS,
            **kw,
        )
        self.search_encoded = Histogram(
            "shelfwise_search_encoder_batch_size",
            "queries encoded together by one encoder call of a search batch",
            buckets=BATCH_BUCKETS,
            **kw,
        )
        self.search_wait = Histogram(
            "shelfwise_search_queue_wait_seconds",
            "time a search miss waited in the queue before the worker took it",
            buckets=LATENCY_BUCKETS,
            **kw,
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
    # (the template as documented: `{user_id}`, not its `{user_id:path}` convertor)
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"


class MetricsMiddleware:
    """Latency and status per route template (a raw ASGI middleware: no per-request task)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]
        shed = [False]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                # a 503 with Retry-After is load shed on purpose (counted by the shed metrics),
                # not an error: a burst that sheds must not read as the server failing
                shed[0] = status[0] == 503 and any(
                    k.lower() == b"retry-after" for k, _ in message.get("headers") or ()
                )
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
            if status[0] >= 500 and not shed[0]:
                m.errors.labels(ep).inc()
