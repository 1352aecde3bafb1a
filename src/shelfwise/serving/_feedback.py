"""The feedback loop: events the server accepted flow into the warehouse through the governed path.

`absorb(workdir)` takes the closed spool segments (and the Redis stream when one is configured):

- accepted events are written to one canonical `events.jsonl` and ingested with
  `Ingestor(mode="append")`: the very contracts, cleaning, pseudonymization, set checks (duplicates,
  robots) and quarantine as a file load, with lineage and an audit entry;
- events the server rejected go straight to `quarantine.rows` with the reason it answered;
- the accepted segments are then archived under `feedback/` (a full reload of the shop's files
  with `shelfwise train --data` replays them, so served feedback is never lost), rejected ones
  are deleted.

Only one absorber runs at a time (a file lock); when another process holds the warehouse (a
training run), absorb reports `busy` and leaves every segment for the next try.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._spool import ready_segments

SPOOL = Path("spool")
EVENTS_DIR = SPOOL / "events"
REJECTED_DIR = SPOOL / "rejected"
EXPOSURES_DIR = SPOOL / "exposures"
FEEDBACK_DIR = Path("feedback")
REDIS_EVENTS = "shelfwise:events"
REDIS_REJECTED = "shelfwise:rejected"


@contextmanager
def _lock(workdir: Path) -> Iterator[bool]:
    (workdir / SPOOL).mkdir(parents=True, exist_ok=True)
    with open(workdir / SPOOL / ".absorb.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def absorb(workdir: str | Path, redis_client: Any = None) -> dict[str, Any]:
    """Ingest what the server accepted and quarantine what it rejected; idempotent per segment."""
    import duckdb

    from ..governance import AuditLog

    workdir = Path(workdir)
    with _lock(workdir) as locked:
        if not locked:
            return {"status": "busy", "reason": "another absorb is running"}
        ev_segments = ready_segments(workdir / EVENTS_DIR)
        rej_segments = ready_segments(workdir / REJECTED_DIR)
        redis_ev: list[tuple[str, bytes]] = []
        redis_rej: list[tuple[str, bytes]] = []
        if redis_client is not None:
            redis_ev = [(i.decode(), f[b"e"]) for i, f in redis_client.xrange(REDIS_EVENTS, "-", "+")]
            redis_rej = [(i.decode(), f[b"e"]) for i, f in redis_client.xrange(REDIS_REJECTED, "-", "+")]
        if not (ev_segments or rej_segments or redis_ev or redis_rej):
            return {"status": "nothing", "accepted": 0, "quarantined": 0}
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        tmp = workdir / "tmp" / f"absorb-{stamp}"
        tmp.mkdir(parents=True, exist_ok=True)
        lines = [line for seg in ev_segments for line in read_lines(seg)] + [line for _, line in redis_ev]
        n_events = write_events(tmp / "events.jsonl", (_canonical_line(line) for line in lines))
        report: dict[str, Any] = {"status": "ok", "accepted": n_events, "quarantined": 0}
        try:
            if n_events:
                rep = ingest_events(workdir, tmp)
                ev = rep.tables.get("events")
                report["ingest_run_id"] = rep.run_id
                report["curated"] = ev.rows_curated if ev else 0
                report["quarantined_by_ingest"] = ev.rows_quarantined if ev else 0
            rejected = _rejected_rows(rej_segments, [line for _, line in redis_rej])
            if rejected:
                report["quarantined"] = _quarantine(workdir, rejected, report.get("ingest_run_id"))
        except duckdb.IOException as exc:  # the warehouse is held by another process (training)
            shutil.rmtree(tmp, ignore_errors=True)
            return {"status": "busy", "reason": str(exc).splitlines()[0][:200]}
        archive = workdir / FEEDBACK_DIR
        archive.mkdir(parents=True, exist_ok=True)
        if n_events:
            shutil.move(str(tmp / "events.jsonl"), archive / f"events-{stamp}.jsonl")
        for seg in ev_segments + rej_segments:
            seg.unlink(missing_ok=True)
        if redis_client is not None:
            if redis_ev:
                redis_client.xdel(REDIS_EVENTS, *[i for i, _ in redis_ev])
            if redis_rej:
                redis_client.xdel(REDIS_REJECTED, *[i for i, _ in redis_rej])
        shutil.rmtree(tmp, ignore_errors=True)
        AuditLog(workdir).append("events.absorb", **{k: v for k, v in report.items() if k != "status"})
        return report


def read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as fh:
        return [line for line in fh if line.strip()]


def write_events(path: Path, lines: Any) -> int:
    """One events.jsonl from JSON lines (newline added where missing); returns the count."""
    n = 0
    with open(path, "wb") as out:
        for line in lines:
            out.write(line if line.endswith(b"\n") else line + b"\n")
            n += 1
    return n


def ingest_events(workdir: Path, data_dir: Path) -> Any:
    """Served events go into the warehouse like any file load, appended (the governed path)."""
    from ..governance import Ingestor

    return Ingestor(workdir, mode="append", job="shelfwise.events").run(data_dir)


def _canonical_line(line: bytes) -> bytes:
    """The spool holds {"event": {...}, "received_at": ...}; ingestion takes the event."""
    rec = json.loads(line)
    return json.dumps(rec["event"], ensure_ascii=False).encode() + b"\n"


def _rejected_rows(segments: list[Path], redis_lines: list[bytes]) -> list[tuple[str, int, dict[str, Any]]]:
    rows = []
    for seg in segments:
        with open(seg, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    rows.append((str(seg.name), n, json.loads(line)))
    rows += [("redis:" + REDIS_REJECTED, n, json.loads(line)) for n, line in enumerate(redis_lines, 1)]
    return rows


def _quarantine(workdir: Path, rows: list[tuple[str, int, dict[str, Any]]], run_id: str | None) -> int:
    from ..governance._ingest import QUARANTINE_DDL
    from ..storage import Warehouse

    run_id = run_id or str(uuid.uuid4())
    with Warehouse(workdir) as wh:
        wh.sql("CREATE SEQUENCE IF NOT EXISTS quarantine.qid_seq")
        wh.sql(QUARANTINE_DDL)
        for source, line, rec in rows:
            failures = rec.get("failures") or [{"reason": "malformed_row", "detail": "rejected"}]
            raw = rec.get("event")
            wh.sql(
                "INSERT INTO quarantine.rows VALUES (nextval('quarantine.qid_seq'), ?, 'events', ?, ?, ?, ?, ?, ?, "
                "'open', now()::TIMESTAMP, NULL)",
                [
                    run_id,
                    f"http:{source}",
                    line,
                    failures[0]["reason"],
                    [f["reason"] for f in failures],
                    "; ".join(f["detail"] for f in failures)[:1000],
                    json.dumps(
                        raw if isinstance(raw, dict) else {"line": json.dumps(raw)}, ensure_ascii=False
                    ),
                ],
            )
    return len(rows)
