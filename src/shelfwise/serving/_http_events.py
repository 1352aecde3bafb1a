"""Event intake (`POST /v1/events`): the body read within its limits, a verdict per event
(rejected with its reasons, a duplicate of an accepted event_id, or accepted), and the accepted
events made durable (fsync'ed or in Redis) before the answer.

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

from ..governance._contracts import EVENTS
from ..governance._row_check import check_record
from ._event_ids import EventIds, InFlight
from ._http_auth import REQUIREMENT, authorize
from ._http_context import JSON, AppContext
from ._http_models import ErrorBody, EventsAccepted, EventsRejected, error_responses, events_request_body
from ._service import ServeSettings, online_event

__all__ = ["events_router", "read_events", "verdicts"]

log = logging.getLogger("uvicorn.error")

EVENT_FIELDS = frozenset(EVENTS.column_names)

_NOTE = (
    "the rejected events are quarantined; the others were accepted (or were duplicates): "
    "do not send them again"
)


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


def _failures(ev: Any, known: dict[str, Any], max_id_chars: int) -> tuple[list[dict[str, str]], Any]:
    """(failures, the row check) of one posted event."""
    if not isinstance(ev, dict):
        return [{"field": "", "reason": "malformed_row", "detail": "an event must be a JSON object"}], None
    unknown = sorted(set(ev) - EVENT_FIELDS)
    failures = [
        {"field": f, "reason": "unknown_field", "detail": f"{f}: not an event field"} for f in unknown[:10]
    ]
    # a field is text or a number (or null); an object, a list or true/false is not a value the
    # warehouse's columns hold (the row check would read it as its text)
    failures += [
        {"field": f, "reason": "invalid_type", "detail": f"{f}: expected text or a number"}
        for f, v in ev.items()
        if f in EVENT_FIELDS and isinstance(v, dict | list | bool)
    ]
    if failures:
        return failures, None
    chk = check_record(EVENTS, ev, known=known)
    failures = [{"field": f.field, "reason": f.reason.value, "detail": f.detail} for f in chk.failures]
    eid = chk.values.get("event_id")
    if eid is not None and len(eid) > max_id_chars:
        failures.append(
            {
                "field": "event_id",
                "reason": "invalid_value",
                "detail": f"event_id: longer than {max_id_chars} characters",
            }
        )
    return failures, chk


def verdicts(
    body: list[Any], known: dict[str, Any], max_id_chars: int
) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any], Any, str | None]], list[dict[str, Any]]]:
    """Per event: (results, the valid events as (index, event, row check, event_id), errors).
    Every result starts `accepted` or `rejected`; duplicates are found against the store later."""
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, dict[str, Any], Any, str | None]] = []
    errors: list[dict[str, Any]] = []
    for i, ev in enumerate(body):
        failures, chk = _failures(ev, known, max_id_chars)
        eid = chk.values.get("event_id") if chk is not None else None
        if failures:
            errors.append({"index": i, **failures[0], "all": failures})
            results.append({"index": i, "status": "rejected", "event_id": eid, "errors": failures})
        else:
            valid.append((i, ev, chk, eid))
            results.append({"index": i, "status": "accepted", "event_id": eid})
    return results, valid, errors


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
        s = authorize(ctx, request)
        body = await read_events(request, settings)
        snap = s.snapshot
        received = datetime.now(UTC).isoformat()
        results, valid, errors = verdicts(body, {"product_id": snap.item_index}, settings.max_id_chars)
        bad_lines = [
            orjson.dumps({"event": body[e["index"]], "failures": e["all"], "received_at": received})
            for e in errors
        ]
        ids = list({eid for _, _, _, eid in valid if eid is not None})
        store: EventIds = ctx.state["event_ids"]
        # ids a concurrent request of this process is accepting are waited for in memory, those
        # of another process through the store; the others claimed, in both, until remembered
        ids, taken = await _claim(in_flight, ids)
        stored = False
        claimed: list[str] = []
        try:
            seen = await _claim_shared(store, ids) if ids else set()
            claimed = [i for i in ids if i not in seen]
            seen |= taken
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
                ok_events.append(online_event(chk.values, ev["timestamp"]))
            waits = []
            if ok_lines:
                waits.append(asyncio.wrap_future(ctx.state["events"].append(ok_lines)))
            if bad_lines:
                waits.append(asyncio.wrap_future(ctx.state["rejected"].append(bad_lines)))
            try:
                await asyncio.gather(*waits)  # durable (fsync'ed / in Redis) before we answer
            except Exception as exc:
                log.error("events not stored: %s", exc)
                raise HTTPException(503, "events could not be stored; nothing was accepted, retry") from None
            stored = True
            duplicates = len(valid) - len(ok_lines)
            metrics.events.labels("accepted").inc(len(ok_lines))
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
                if claimed and not stored:
                    await asyncio.to_thread(store.release, claimed)
            except Exception as exc:  # its claims stay: other processes wait `claim_ttl_s`
                log.error("event_id claims not released: %s", exc)
            finally:
                in_flight.release(ids, stored)
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
        note = (
            _NOTE
            if len(errors) < len(body)
            else "every event was rejected (each quarantined): fix them and send again"
        )
        out.update(error=f"event {first['index']}: {first['detail']}", errors=errors[:100], note=note)
        # 422 only when nothing of the batch was acceptable; a mixed batch is a 207 (multi-status):
        # a success, so that a client does not retry (and duplicate) the accepted events
        return JSON(out, status_code=422 if len(errors) == len(body) else 207)

    return router
