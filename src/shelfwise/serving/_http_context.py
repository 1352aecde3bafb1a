"""What the HTTP routers share: the app's state (service, spools, queue), its settings and
metrics, the orjson response class, text checks and the exposure log of served lists."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from ._exposures import exposure_record
from ._feedback import pending_events
from ._http_metrics import Metrics
from ._service import Answer, ServeSettings, Service

__all__ = [
    "JSON",
    "NOT_TEXT",
    "AbsorbHealth",
    "AppContext",
    "clean_text",
    "key_first",
    "on_invalid_request",
    "text_pattern",
    "with_experiment",
]


class JSON(JSONResponse):
    """orjson-serialised answers: the endpoints build dicts and return this response directly
    (FastAPI then neither validates nor serialises them again). A JSONResponse, so that FastAPI
    documents the endpoints' models as their JSON answers."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# control characters and undecodable bytes (U+FFFD) are not text: a 422
_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffd"
NOT_TEXT = re.compile(f"[{_CONTROL}]")


def key_first(request: Request) -> None:
    """Raise the 401 of a `/v1/` request without a known API key, when the app says how
    (`app.state.authenticate`, `_http_auth.authenticate`): asked before a validation error is
    answered."""
    check = getattr(request.app.state, "authenticate", None)
    if check is not None and request.url.path.startswith("/v1/"):
        try:
            check(request)
        except HTTPException as exc:
            if exc.status_code != 503:  # (the bundle still loading: the validation answer stands)
                raise


def on_invalid_request(answer: Callable[[Request, RequestValidationError], Response]) -> type[APIRoute]:
    """A route class (`APIRouter(route_class=...)`) whose routes answer a request FastAPI's
    validation refused with `answer(request, error)` instead of the app's JSON 422; `answer`
    may raise (an HTTPException, or the error itself for the app's own answer)."""

    class Route(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    key_first(request)  # (raises the 401 of a caller without a key)
                    return answer(request, exc)

            return route

    return Route


def text_pattern(*, non_blank: bool = False) -> str:
    """The JSON-schema `pattern` of what `clean_text` accepts (for the OpenAPI document); with
    `non_blank`, at least one character that is not white space."""
    if non_blank:
        return f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"
    return f"^[^{_CONTROL}]*$"


def clean_text(value: str, name: str, max_chars: int) -> str:
    if len(value) > max_chars:
        raise HTTPException(422, f"{name}: longer than {max_chars} characters")
    if NOT_TEXT.search(value):
        raise HTTPException(422, f"{name}: not text (binary or control characters)")
    return value


def clean_user_id(value: str, max_chars: int) -> str:
    """A shopper's id from a path, checked as `clean_text` and not blank once trimmed as
    curation trims ids (`/v1/recommendations/%20` was served, a shopper " " counted in an
    experiment's arm, whose events ingestion refuses as `missing_required`)."""
    from ..governance._compile import trim_id
    from ..governance._privacy import looks_like_pseudonym

    clean_text(value, "user_id", max_chars)
    if not trim_id(value):
        raise HTTPException(422, "user_id: empty (only spaces)")
    if looks_like_pseudonym(trim_id(value)):  # it names nobody: a cold-start list would mislead
        raise HTTPException(422, f"user_id {value!r} is a pseudonym: give the shop's own user id")
    return value


# /readyz says "degraded" after this many failed absorbs in a row (a busy warehouse is no failure)
ABSORB_FAILURES_DEGRADED = 3


@dataclass
class AbsorbHealth:
    """This worker's absorbs (the one at start and the periodic ones): what `/readyz` and
    `/metrics` say of the event pipeline. One absorb failing out of memory every 30 s left the
    server "ready" for as long as it ran, the spool growing (walk48b F2)."""

    last_success: float | None = None  # Unix time of the last absorb that ended ok (or had nothing)
    failures_in_a_row: int = 0
    last_error: str | None = None

    def record(self, metrics: Metrics, outcome: str, error: str | None = None) -> None:
        """One absorb's `outcome`: ok, nothing, busy or failed."""
        metrics.absorbs.labels(outcome).inc()
        if outcome in ("ok", "nothing"):
            self.last_success = time.time()
            self.failures_in_a_row = 0
            metrics.absorb_last_success.set(self.last_success)
        elif outcome == "failed":
            self.failures_in_a_row += 1
            self.last_error = error

    def degraded(self, oldest_pending: float | None, interval_s: float) -> list[str]:
        """Why events are not reaching the warehouse, if they are not: absorbs failing in a row,
        or an acknowledged event waiting ten absorb intervals (at least 5 minutes)."""
        why = []
        if self.failures_in_a_row >= ABSORB_FAILURES_DEGRADED:
            why.append(f"the last {self.failures_in_a_row} absorbs failed: {self.last_error}")
        if interval_s > 0 and oldest_pending is not None:
            age = time.time() - oldest_pending
            if age > max(10 * interval_s, 300.0):
                why.append(f"the oldest acknowledged event has waited {age:.0f} s for the warehouse")
        return why


@dataclass
class AppContext:
    """One app's shared state. `state` is filled by the lifespan (service, spools, the search
    queue, the event-id store); the routers read it per request."""

    workdir: Path
    settings: ServeSettings
    metrics: Metrics
    state: dict[str, Any] = field(default_factory=dict)
    absorb: AbsorbHealth = field(default_factory=AbsorbHealth)
    # (counted at, count) of the spool's pending events, see `pending_count`
    _pending: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def service(self) -> Service:
        s: Service | None = self.state.get("service")
        if s is None:
            raise HTTPException(503, "not ready: the bundle is still loading")
        return s

    def keys_required(self) -> bool:
        """Whether calls need an API key: people are registered (and active) in the shop."""
        s: Service | None = self.state.get("service")
        if s is not None:
            return s.registered()
        from ..governance import People

        people = People(self.workdir)
        return people.governed and any(p.active for p in people.load().values())

    def expose(self, kind: str, served_id: str, ans: Answer, user: str | None, extra: dict[str, Any]) -> None:
        """Log a served list under its id (written every 0.5 s in one batch), so that events
        posted with the id are attributed to the list, model and experiment variant."""
        rec = exposure_record(kind, served_id, ans, user, extra)  # (as `Shop(...)(served=True)` logs it)
        # (serialized, and a search's query masked, off the event loop: `flush_exposures`)
        self.state["exposure_buffer"].append(rec)

    def count_cache(self, surface: str, ans: Answer) -> None:
        hit = ans.source.startswith(("precomputed:", "cached:"))
        self.metrics.cache.labels(surface, "hit" if hit else "miss").inc()

    async def pending_count(self) -> int:
        """The spool's acknowledged events, counted again only after this worker accepted events
        or a second passed: a readiness probe may come every few hundred ms, and counting reads
        every spooled line (a backlog can be large while a training run holds the warehouse)."""
        if time.monotonic() - self._pending[0] > 1.0:
            n = await asyncio.to_thread(pending_events, self.workdir, self.state.get("redis"))
            self._pending[:] = [time.monotonic(), float(n)]
        return int(self._pending[1])

    def events_accepted(self) -> None:
        self._pending[0] = 0.0  # the next /readyz counts again


def with_experiment(out: dict[str, Any], ans: Answer) -> None:
    if ans.experiment:
        out["experiment"] = {"name": ans.experiment, "variant": ans.variant.name if ans.variant else None}
