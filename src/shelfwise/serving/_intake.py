"""Event intake, whoever sends: `POST /v1/events` and `Shop.send_events` give each event a verdict
(rejected with its reasons, a duplicate of an accepted event_id, withheld: an erased user's dated
at or before their erasure, or accepted), spool the accepted
ones and quarantine the rejected ones the same way, and answer alike.

The HTTP route waits asynchronously (`_http_events`); `send_events` here is the same path for a
caller in Python: it claims event_ids in the store the server's processes share (so a batch sent
from a notebook and retried over HTTP lands once), writes the same spool segments (fsync'ed, or
Redis with a client) and lets the next absorb (`shelfwise events absorb`, `train`) take them in.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..governance._contracts import EVENTS, Kind
from ..governance._privacy import looks_like_pseudonym
from ..governance._row_check import check_record
from ._service import online_event

log = logging.getLogger(__name__)

__all__ = [
    "EVENT_FIELDS",
    "WITHHELD_DETAIL",
    "Accepted",
    "answer",
    "rejected_lines",
    "send_events",
    "to_store",
    "verdicts",
]

EVENT_FIELDS = frozenset(EVENTS.column_names)

_NOTE = (
    "the rejected events are quarantined; the others were accepted (or were duplicates): "
    "do not send them again"
)


_NUMBER_FIELDS = frozenset(c.name for c in EVENTS.columns if c.kind is Kind.FLOAT)


def _is_nan(v: Any) -> bool:
    """A NaN, or text that spells one (`nan`, `NaN`, ` -nan `)."""
    if isinstance(v, float):
        return math.isnan(v)
    return isinstance(v, str) and v.strip().lstrip("+-").lower() == "nan"


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
        # (from Python, `Shop.send_events`, any other object: JSON holds none of them)
        if f in EVENT_FIELDS and (isinstance(v, bool) or not isinstance(v, str | int | float | None))
    ]
    # a number field saying "NaN" is no number, as "inf" is none: refused (in a file, `nan` is how
    # pandas writes an empty cell and reads as missing; a client posting it meant a value, and
    # its purchase was curated without revenue while it was told "accepted": walk48b F1)
    failures += [
        {"field": f, "reason": "invalid_type", "detail": f"{f}: not a number: {v}"}
        for f, v in ev.items()
        if f in _NUMBER_FIELDS and _is_nan(v)
    ]
    if failures:
        # the rest of the event checked too: every failure said at once, not the next one at the
        # retry (README: "every failure is collected")
        bad = {f["field"] for f in failures}
        rest = check_record(EVENTS, {k: v for k, v in ev.items() if k not in bad}, known=known)
        failures += [
            {"field": f.field, "reason": f.reason.value, "detail": f.detail}
            for f in rest.failures
            if f.field not in bad
        ]
        return failures, None
    chk = check_record(EVENTS, ev, known=known)
    failures = [{"field": f.field, "reason": f.reason.value, "detail": f.detail} for f in chk.failures]
    uid = chk.values.get("user_id")
    if isinstance(uid, str) and looks_like_pseudonym(uid):  # it would be a new shopper, of nobody
        failures.append(
            {
                "field": "user_id",
                "reason": "invalid_value",
                "detail": "user_id: a warehouse pseudonym (what curated tables and exports show): "
                "send the shop's own user id",
            }
        )
    eid = chk.values.get("event_id")
    if eid is not None and len(eid) > max_id_chars and not any(f["field"] == "event_id" for f in failures):
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
        eid = chk.values.get("event_id") if chk is not None else _given_event_id(ev)
        if failures:
            errors.append({"index": i, **failures[0], "all": failures})
            results.append({"index": i, "status": "rejected", "event_id": eid, "errors": failures})
        else:
            valid.append((i, ev, chk, eid))
            results.append({"index": i, "status": "accepted", "event_id": eid})
    return results, valid, errors


def _given_event_id(ev: Any) -> str | None:
    """The event_id of an event rejected before its row check (an unknown field, a value that is
    no text or number), as the check would read it: the client learns which of its events it was
    (the quarantine keeps the id too)."""
    from ..governance._compile import trim_id

    v = ev.get("event_id") if isinstance(ev, dict) else None
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        return None
    if isinstance(v, float) and v.is_integer():  # (as ids are read: 123.0 is 123)
        v = int(v)
    return trim_id(v) or None


WITHHELD_DETAIL = (
    "the user (or the session's customer) was erased after this event's time: events dated at or "
    "before an erasure are not kept"
)


@dataclass
class Accepted:
    """What a batch stores: spool lines, the events for the online state, the event_ids to
    remember; `withheld`: the events of an erased user dated at or before their erasure,
    stored nowhere (their ids neither: a claim on them is to be let go)."""

    lines: list[bytes] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    withheld: int = 0
    withheld_ids: list[str] = field(default_factory=list)


def to_store(
    valid: list[tuple[int, dict[str, Any], Any, str | None]],
    seen: set[str],
    results: list[dict[str, Any]],
    received: str,
    poster: str | None = None,
    withholds: Callable[[dict[str, Any]], bool] | None = None,
) -> Accepted:
    """The valid events to store: an event_id in `seen` (accepted before, or earlier in this
    batch) makes its event a duplicate (its result says so). `poster`: the registered person
    or service whose key sent them, kept beside each (`posted_by`; none in single-user mode).
    `withholds` (`Erasures.withholds`): an event it names is `withheld`, not stored: the next
    absorb would leave it out of the warehouse, and a client told `accepted` believed it kept."""
    out = Accepted()
    by = {"posted_by": poster} if poster else {}
    for i, ev, chk, eid in valid:
        if eid is not None and eid in seen:
            results[i]["status"] = "duplicate"
            continue
        if withholds is not None and withholds(ev):
            results[i].update(status="withheld", detail=WITHHELD_DETAIL)
            out.withheld += 1
            if eid is not None:
                out.withheld_ids.append(eid)
            continue
        if eid is not None:
            seen.add(eid)  # a repeat later in this batch is a duplicate of this one
            out.ids.append(eid)
        elif "event_id" in ev:  # "", "null": no id; the absorber gives it one of its own
            ev = {k: v for k, v in ev.items() if k != "event_id"}
        out.lines.append(orjson.dumps({"event": ev, "received_at": received, **by}))
        out.events.append(online_event(chk.values, ev["timestamp"]))
    if out.withheld_ids and out.ids:  # (an id withheld, then accepted later in the batch: accepted)
        stored = set(out.ids)
        out.withheld_ids = [i for i in out.withheld_ids if i not in stored]
    return out


def rejected_lines(
    body: list[Any], errors: list[dict[str, Any]], received: str, poster: str | None = None
) -> list[bytes]:
    """The quarantine spool's lines of the rejected events (`poster` as in `to_store`)."""
    by = {"posted_by": poster} if poster else {}
    return [
        orjson.dumps({"event": body[e["index"]], "failures": e["all"], "received_at": received, **by})
        for e in errors
    ]


def answer(
    n: int,
    results: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    accepted: int,
    duplicates: int,
    withheld: int = 0,
) -> tuple[dict[str, Any], int]:
    """The answer to a batch of `n` events and its HTTP status: 202 when none was rejected, 207
    (multi-status: a success, so that a client does not retry, and duplicate, the accepted
    events) when some were, 422 when all were. `withheld`: an erased user's events (each
    result says so), not an error: sending them again changes nothing."""
    out: dict[str, Any] = {
        "accepted": accepted,
        "rejected": len(errors),
        "duplicates": duplicates,
        "withheld": withheld,
        "results": results,
    }
    if not errors:
        return out, 202
    first = errors[0]
    note = (
        _NOTE if len(errors) < n else "every event was rejected (each quarantined): fix them and send again"
    )
    out.update(error=f"event {first['index']}: {first['detail']}", errors=errors[:100], note=note)
    return out, 422 if len(errors) == n else 207


def send_events(
    workdir: Path,
    body: list[Any],
    known: dict[str, Any],
    *,
    redis_client: Any = None,
    poster: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Store a batch as `POST /v1/events` does (the server's default limits and settings):
    (the answer without its status, the accepted events for the online state). A
    ShelfwiseError when the events could not be stored: then none was accepted (a retry is
    safe; its rejected events may be quarantined a second time, never lost)."""
    from ..errors import ShelfwiseError
    from ..governance._erasures import Erasures
    from ._event_ids import RedisEventIds, SqliteEventIds
    from ._feedback import EVENT_IDS_DB, EVENTS_DIR, REDIS_EVENTS, REDIS_REJECTED, REJECTED_DIR
    from ._service import ServeSettings
    from ._spool import FileSpool, RedisSpool

    settings = ServeSettings()
    received = datetime.now(UTC).isoformat()
    results, valid, errors = verdicts(body, known, settings.max_id_chars)
    ids = list({eid for _, _, _, eid in valid if eid is not None})
    # the store the server's processes share (not `open_event_ids`: its catching up with the
    # whole spool is a server's start, and a notebook sending in a loop paid it per call)
    store: Any = (
        RedisEventIds(redis_client, settings.event_id_window_s)
        if redis_client is not None
        else SqliteEventIds(workdir / EVENT_IDS_DB, settings.event_id_window_s)
    )

    def spooled(lines: list[bytes], spool_dir: str | Path, stream: str) -> None:
        """The lines durable (one segment of their own, closed: absorbable at once)."""
        spool: Any = (
            RedisSpool(redis_client, stream)
            if redis_client is not None
            else FileSpool(workdir / spool_dir, fsync=settings.fsync)
        )
        try:
            spool.append(lines).result()
        finally:
            spool.close()

    claimed: list[str] = []
    stored = False
    try:
        delay = 0.002  # another process accepting some of them: asked again until it is done
        while (got := store.claim(ids)).busy:
            time.sleep(delay)
            delay = min(2 * delay, 0.1)
        claimed = [i for i in ids if i not in got.duplicates]
        erasures = Erasures.of(workdir)
        withholds = erasures.withholds if erasures is not None else None
        batch = to_store(valid, set(got.duplicates), results, received, poster, withholds)
        try:
            # the rejected first: once the accepted are stored, the answer is "accepted"
            if errors:
                spooled(rejected_lines(body, errors, received, poster), REJECTED_DIR, REDIS_REJECTED)
            if batch.lines:
                spooled(batch.lines, EVENTS_DIR, REDIS_EVENTS)
        except Exception as exc:  # noqa: BLE001 - a disk's, a Redis's: said as the route says it
            raise ShelfwiseError(f"events could not be stored; nothing was accepted, retry ({exc})") from exc
        stored = True
        if batch.withheld_ids:  # stored nowhere: a retry is withheld again
            store.release([i for i in claimed if i in set(batch.withheld_ids)])
        if batch.ids:  # after the spool, as the route does: a failure here lets a retry
            try:  # through to the spool, and the warehouse drops that repeat
                store.remember(batch.ids)
            except Exception as exc:  # noqa: BLE001
                log.error("event_ids not remembered (the warehouse still drops repeats): %s", exc)
    finally:
        try:
            if claimed and not stored:
                store.release(claimed)
        finally:
            store.close()
    duplicates = len(valid) - len(batch.lines) - batch.withheld
    out, _ = answer(len(body), results, errors, len(batch.lines), duplicates, batch.withheld)
    return out, batch.events
