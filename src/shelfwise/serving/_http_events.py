"""Event intake (`POST /v1/events`): the body read within its limits, a verdict per event
(rejected with its reasons, a duplicate of an accepted event_id, or accepted: `_intake`, which
`Shop.send_events` shares), and the accepted events made durable (fsync'ed or in Redis) before
the answer.

The body is read by hand rather than as a pydantic parameter: the size limit is enforced while
reading, and a batch is answered per event (a mixed batch is a 207) instead of all-or-nothing.
Its schema is documented by hand (`_http_models.events_request_body`).

"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request

from ._event_ids import EventIds, InFlight
from ._http_auth import REQUIREMENT, authorize
from ._http_context import JSON, AppContext
from ._http_models import ErrorBody, EventsAccepted, EventsRejected, error_responses, events_request_body
from ._intake import answer, rejected_lines, to_store, verdicts
from ._service import ServeSettings

__all__ = ["events_router", "read_events"]

log = logging.getLogger("uvicorn.error")


async def read_events(request: Request, settings: ServeSettings) -> list[Any]:
    """The posted list of events (or `{"events": [...]}`), refused whole when too large (413),
    not JSON (400), not a list or empty (422)."""
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
    return body


async def _claim(in_flight: InFlight, ids: list[str]) -> tuple[list[str], set[str]]:
    """Claim `ids` for this request: (the ids claimed, to look up and release; those that a
    concurrent request of this process accepted meanwhile, duplicates). Waits while another
    request holds any of them."""
    taken: set[str] = set()
    while busy := in_flight.claim(ids):
        for eid, claim in busy.items():
            if await asyncio.wrap_future(claim):
                taken.add(eid)
        ids = [i for i in ids if i not in taken]
    return ids, taken


async def _claim_shared(store: EventIds, ids: list[str]) -> set[str]:
    """Claim `ids` in the store the other processes (and replicas) share: the duplicates among
    them; the others are this request's until remembered or released. While another process is
    accepting any of them nothing is claimed: asks again, backing off (2 ms, doubling, up to
    100 ms), until that one remembered them (duplicates) or let them go (or died, or held them
    past the store's `claim_ttl_s`, which bounds the wait)."""
    delay = 0.002
    while (got := await asyncio.to_thread(store.claim, ids)).busy:
        await asyncio.sleep(delay)
        delay = min(2 * delay, 0.1)
    return got.duplicates


def events_router(ctx: AppContext) -> APIRouter:
    settings = ctx.settings
    metrics = ctx.metrics
    in_flight = InFlight()  # this process's event_ids being accepted (a worker has its own app)
    router = APIRouter(tags=["events"])

    @router.post(
        "/v1/events",
        status_code=202,
        response_model=EventsAccepted,
        summary="Post shopper events (views, clicks, carts, purchases, ...)",
        responses={
            207: {
                "model": EventsRejected,
                "description": "Some events rejected (quarantined), the others accepted",
            },
            **error_responses(400, 401, 403, 413, 503),
            422: {
                "model": EventsRejected | ErrorBody,
                "description": "No event acceptable (each one's reasons), or the body is not a list of events",
            },
        },
        openapi_extra={
            "requestBody": events_request_body(settings.max_events_per_request),
            "security": REQUIREMENT,
        },
    )
    async def post_events(request: Request) -> Any:
        s = authorize(ctx, request, "events.post")
        poster = getattr(request.state, "caller", None)
        body = await read_events(request, settings)
        received = datetime.now(UTC).isoformat()
        results, valid, errors = verdicts(body, s.event_references(), settings.max_id_chars)
        bad_lines = rejected_lines(body, errors, received, poster)
        ids = list({eid for _, _, _, eid in valid if eid is not None})
        store: EventIds = ctx.state["event_ids"]
        # ids a concurrent request of this process is accepting are waited for in memory, those
        # of another process through the store; the others claimed, in both, until remembered
        ids, taken = await _claim(in_flight, ids)
        stored = False
        claimed: list[str] = []
        withheld_ids: set[str] = set()  # stored nowhere: their claims let go, a retry withheld again
        try:
            seen = await _claim_shared(store, ids) if ids else set()
            claimed = [i for i in ids if i not in seen]
            seen |= taken
            batch = to_store(valid, seen, results, received, poster, s.withholds())
            ok_lines, ok_events, ok_ids = batch.lines, batch.events, batch.ids
            withheld_ids = set(batch.withheld_ids)
            try:  # durable (fsync'ed / in Redis) before we answer; the rejected first: once the
                # accepted are stored the answer is "accepted", whatever happens after
                if bad_lines:
                    await asyncio.wrap_future(ctx.state["rejected"].append(bad_lines))
                if ok_lines:
                    await asyncio.wrap_future(ctx.state["events"].append(ok_lines))
            except Exception as exc:
                log.error("events not stored: %s", exc)
                raise HTTPException(503, "events could not be stored; nothing was accepted, retry") from None
            stored = True
            duplicates = len(valid) - len(ok_lines) - batch.withheld
            metrics.events.labels("accepted").inc(len(ok_lines))
            if batch.withheld:
                metrics.events.labels("withheld").inc(batch.withheld)
            if ok_lines:
                ctx.events_accepted()
            metrics.events.labels("quarantined").inc(len(bad_lines))
            if duplicates:
                metrics.events.labels("duplicate").inc(duplicates)
            if ok_ids:
                try:  # after the spool: a crash in between makes a retry spool again (the warehouse
                    # drops it), never an acknowledged event that is not stored
                    await asyncio.to_thread(store.remember, ok_ids)
                except Exception as exc:  # its claims stay: other processes wait `claim_ttl_s`
                    log.error("event_ids not remembered (the warehouse still drops repeats): %s", exc)
        finally:  # a retry waiting for these ids is a duplicate now, or (not stored) asks again
            try:
                let_go = claimed if not stored else [i for i in claimed if i in withheld_ids]
                if let_go:
                    await asyncio.to_thread(store.release, let_go)
            except Exception as exc:  # its claims stay: other processes wait `claim_ttl_s`
                log.error("event_id claims not released: %s", exc)
            finally:
                in_flight.release([i for i in ids if i in withheld_ids], False)
                in_flight.release([i for i in ids if i not in withheld_ids], stored)
        if ok_events:
            await asyncio.to_thread(s.record_events, ok_events)
        out, status = answer(len(body), results, errors, len(ok_lines), duplicates, batch.withheld)
        return JSON(out, status_code=status)

    return router
