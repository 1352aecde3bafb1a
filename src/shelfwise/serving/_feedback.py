"""The feedback loop: events the server accepted flow into the warehouse through the governed path.

`absorb(workdir)` takes the closed spool segments (and the Redis stream when one is configured):

- accepted events are written to one canonical `events.jsonl` and ingested with
  `Ingestor(mode="append")`: the very contracts, cleaning, pseudonymization, set checks (duplicates,
  robots) and quarantine as a file load, with lineage and an audit entry;
- events the server rejected go straight to `quarantine.rows` with the reason it answered;
- the accepted segments are then archived under `feedback/` (a full reload of the shop's files
  with `shelfwise train --data` replays them, so served feedback is never lost), rejected ones
  are deleted. Beside an archive, `events-<stamp>.refused.json` lists (hashed) the event_ids of
  it that the ingest refused (robot traffic, say), which a restarted server does not replay.

Only one absorber runs at a time (a file lock); when another process holds the warehouse (a
training run), absorb reports `busy` and leaves every segment for the next try.

Exactly once, also when an absorber dies half-way (between the ingest and the archiving, say):
every served event reaches the warehouse with an `event_id`, the client's idempotency key or,
where it sent none, where it was spooled (`spool:<segment>:<line>`, `redis:<stream id>`), and
ingestion never curates an event_id twice (`duplicate_row`). A segment absorbed again after a
crash is therefore dropped row by row instead of doubled; a rejected row already quarantined
from its segment and line is not quarantined again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError
from ..governance._contracts import CONTRACTS
from ..governance._online_keys import REDIS_EVENTS, REDIS_REJECTED  # the key names, shared
from ..storage._segments import absorb_lock, count_segment_lines, iter_segments, segment_lines
from ..storage._warehouse import writer_holds_it
from ._spool import CLOSED_SUFFIX, all_segments, ready_segments, segment_stem

SPOOL = Path("spool")
EVENTS_DIR = SPOOL / "events"
REJECTED_DIR = SPOOL / "rejected"
EXPOSURES_DIR = SPOOL / "exposures"
FEEDBACK_DIR = Path("feedback")
# the ingestion job of an absorb of served events (the console tells these loads from the
# deliveries of the shop's files by it)
SERVED_EVENTS_JOB = "shelfwise.events"
EVENT_IDS_DB = SPOOL / "event_ids.sqlite"
# beside `feedback/events-<stamp>.jsonl`: the ids of its events the ingest did not curate, as
# sha256 digests (a client's id is its own text: an erasure, which rewrites the archive, need
# not find it here too)
REFUSED_SUFFIX = ".refused.json"

__all__ = [
    "EVENTS_DIR",
    "EVENT_IDS_DB",
    "EXPOSURES_DIR",
    "FEEDBACK_DIR",
    "REDIS_EVENTS",
    "REDIS_REJECTED",
    "REJECTED_DIR",
    "AbsorbFailed",
    "absorb",
    "absorb_mark",
    "ingest_events",
    "oldest_pending",
    "pending_events",
    "read_lines",
    "served_since",
    "spooled_event_ids",
    "write_events",
]


def absorb(workdir: str | Path, redis_client: Any = None, *, wait_s: float = 0.0) -> dict[str, Any]:
    """Ingest what the server accepted and quarantine what it rejected; idempotent per segment.

    `wait_s`: while another absorber holds the lock (another worker stopping, the periodic
    absorb), try again until this many seconds have passed, then answer `busy`."""
    deadline = time.monotonic() + wait_s
    while True:
        res = _absorb_once(Path(workdir), redis_client)
        if res["status"] != "busy" or time.monotonic() >= deadline:
            return res
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _absorb_once(workdir: Path, redis_client: Any) -> dict[str, Any]:
    import duckdb

    from ..governance import AuditLog
    from ..governance._erasures import Erasures

    with absorb_lock(workdir) as locked:
        if not locked:
            return {"status": "busy", "reason": "another absorb is running"}
        for stale in (workdir / "tmp").glob("absorb-*"):  # of an absorber that died (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        mask_archives_once(workdir)
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
        try:  # (the staged copy holds shoppers' events: gone whatever happens)
            posted = itertools.chain(
                (
                    (json.loads(line), f"spool:{segment_stem(seg)}:{n}")
                    for seg in ev_segments
                    for n, line in enumerate(segment_lines(seg) or (), 1)
                ),
                ((json.loads(line), f"redis:{i}") for i, line in redis_ev),
            )
            # (each event with who sent it: the registered key's name, counted below)
            sent = [
                (_canonical_event(rec, locator), str(rec.get("posted_by") or "")) for rec, locator in posted
            ]
            # the events of a user erased after they were posted (still spooled when the erasure
            # ran) are stored nowhere: not ingested (ingestion would withhold them), not archived
            erasures = Erasures.of(workdir)
            withheld = 0
            if erasures is not None:
                kept = [(ev, by) for ev, by in sent if not erasures.withholds(ev)]
                withheld, sent = len(sent) - len(kept), kept
            events = _masked([ev for ev, _ in sent])
            # who sent the events absorbed: the audit entry ties them to the keys' names
            posters = Counter(by for _, by in sent)
            del sent
            lines = [json.dumps(ev, ensure_ascii=False).encode() + b"\n" for ev in events]
            n_events = write_events(tmp / "events.jsonl", lines)
            report: dict[str, Any] = {"status": "ok", "accepted": n_events, "quarantined": 0}
            archive = workdir / FEEDBACK_DIR
            if withheld:
                report["withheld_erased"] = withheld
            if posters and set(posters) != {""}:  # (a shop without registered people: nobody to name)
                report["posted_by"] = {k or "(not recorded)": v for k, v in sorted(posters.items())}
            try:
                if n_events:
                    rep = ingest_events(workdir, tmp, archive / f"events-{stamp}.jsonl")
                    ev = rep.tables.get("events")
                    report["ingest_run_id"] = rep.run_id
                    report["curated"] = ev.rows_curated if ev else 0
                    report["quarantined_by_ingest"] = ev.rows_quarantined if ev else 0
                    if ev and ev.rows_withheld:  # (erased users, past the retention period)
                        report["withheld_by_ingest"] = ev.rows_withheld
                    refused = _refused_ids(workdir, rep.run_id) if ev and ev.rows_quarantined else []
                    if refused:
                        (tmp / "refused.json").write_text(
                            json.dumps(
                                {"run_id": rep.run_id, "event_id_sha256": [_digest(i) for i in refused]}
                            )
                        )
                rejected = _rejected_rows(rej_segments, redis_rej)
                if rejected:
                    report["quarantined"] = _quarantine(workdir, rejected, report.get("ingest_run_id"))
            except duckdb.IOException as exc:  # the warehouse is held by another process (training)
                if writer_holds_it(exc):
                    return {"status": "busy", "reason": str(exc).splitlines()[0][:200]}
                raise AbsorbFailed(_failed(exc, n_events)) from exc
            except duckdb.Error as exc:
                if _held_here(exc):  # another connection of this process, closing: again shortly
                    import gc

                    gc.collect()  # (one dropped in a reference cycle closes when collected)
                    return {"status": "busy", "reason": str(exc).splitlines()[0][:200]}
                # (out of memory, a full disk: said in one line, the events stay in the spool; a
                # raw traceback was all `shelfwise events absorb` gave, walk48b F0)
                raise AbsorbFailed(_failed(exc, n_events)) from exc
            archive.mkdir(parents=True, exist_ok=True)
            if n_events:
                # the refused ids first: a server reading the archive (`served_since`) finds them
                # beside it
                if (tmp / "refused.json").exists():
                    shutil.move(str(tmp / "refused.json"), archive / f"events-{stamp}{REFUSED_SUFFIX}")
                shutil.move(str(tmp / "events.jsonl"), archive / f"events-{stamp}.jsonl")
            for seg in ev_segments + rej_segments:
                seg.unlink(missing_ok=True)
            if redis_client is not None:
                if redis_ev:
                    redis_client.xdel(REDIS_EVENTS, *[i for i, _ in redis_ev])
                if redis_rej:
                    redis_client.xdel(REDIS_REJECTED, *[i for i, _ in redis_rej])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        AuditLog(workdir).append("events.absorb", **{k: v for k, v in report.items() if k != "status"})
        return report


def _held_here(exc: BaseException) -> bool:
    """Whether DuckDB refused the warehouse because this process holds it open already with
    other settings (a reader's connection not yet closed: seen at a server's stop, where the
    drain's absorb then gave up and left its events in the spool): a wait, as for another
    process's hold, not a failure."""
    return "different configuration than existing connections" in str(exc)


class AbsorbFailed(ShelfwiseError):
    """The warehouse refused an absorb (not busy: out of memory, a full disk...); the events
    stay in the spool for the next absorb."""


def _failed(exc: BaseException, n_events: int) -> str:
    first = str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
    hint = ""
    if "out of memory" in first.lower():
        hint = (
            " (the warehouse's memory limit while it loads, IngestSettings.memory_limit; a very "
            "long text in a curated table needs ~2,048 times its size to read)"
        )
    return (
        f"events not absorbed: the warehouse refused them: {first}{hint}; the {n_events:,} "
        "acknowledged events stay in the spool and the next absorb tries again"
    )


def read_lines(path: Path) -> list[bytes]:
    """The complete lines of an archive (`feedback/events-*.jsonl`: renamed over whole when
    rewritten, never in place; a spool segment is read with `segment_lines`). A last line
    without its newline is a write that a crash cut short: not an event."""
    with open(path, "rb") as fh:
        return [line for line in fh if line.strip() and line.endswith(b"\n")]


def oldest_pending(workdir: str | Path, redis_client: Any = None) -> float | None:
    """When (Unix seconds) the oldest acknowledged event not yet in the warehouse was spooled:
    its segment's opening (segments are named by it), or the Redis stream's first entry; None
    when nothing waits. A backlog that keeps ageing is an absorb that keeps failing."""
    stamps: list[float] = []
    for p in all_segments(Path(workdir) / EVENTS_DIR):
        head = segment_stem(p).split("-", 1)[0]
        try:
            if head.isdigit() and p.stat().st_size:
                stamps.append(int(head) / 1e9)
        except FileNotFoundError:  # absorbed meanwhile
            continue
    if redis_client is not None:
        first = redis_client.xrange(REDIS_EVENTS, "-", "+", count=1)
        if first:
            stamps.append(int(first[0][0].decode().split("-")[0]) / 1e3)
    return min(stamps) if stamps else None


def pending_events(workdir: str | Path, redis_client: Any = None, *, pid: int | None = None) -> int:
    """Acknowledged events not yet in the warehouse: the lines of every event segment (the open
    ones of running servers included; `pid`: only those of that process), plus the Redis stream
    when one is given."""
    # by name: one closed while the folder was listed is counted once (under its closed name)
    segments = {segment_stem(p): p for p in all_segments(Path(workdir) / EVENTS_DIR)}
    if pid is not None:
        segments = {s: p for s, p in segments.items() if s.endswith(f"-{pid}")}
    n = sum(count_segment_lines(p) for p in segments.values())  # (0 for one absorbed meanwhile)
    if redis_client is not None:
        n += int(redis_client.xlen(REDIS_EVENTS))
    return n


def pending_in_open_segments(workdir: str | Path) -> int:
    """Of `pending_events` (the files alone), those in segments a live server is still writing:
    `shelfwise events absorb` takes closed segments and those of a process that is gone
    (`ready_segments`); a running server absorbs its own."""
    from ._spool import ready_segments

    folder = Path(workdir) / EVENTS_DIR
    ready = {p.name for p in ready_segments(folder)}
    return sum(count_segment_lines(p) for p in all_segments(folder) if p.name not in ready)


def served_stamp(workdir: str | Path) -> tuple[Any, ...]:
    """What changes when an event is spooled or absorbed, by any process: each spool segment's
    name and size, and the absorbed archive folder's modification time (a file added to it;
    not a listing: a server absorbing every minute leaves thousands)."""
    workdir = Path(workdir)
    spool = []
    for p in all_segments(workdir / EVENTS_DIR):
        try:
            spool.append((p.name, p.stat().st_size))
        except OSError:  # (absorbed while listed: the archive's listing says it)
            continue
    try:
        archived = (workdir / FEEDBACK_DIR).stat().st_mtime_ns
    except OSError:
        archived = None
    return (tuple(sorted(spool)), archived)


def served_since(workdir: str | Path, as_of: str) -> list[dict[str, Any]]:
    """The served events a bundle whose warehouse read was at `as_of` (a UTC stamp,
    `%Y%m%dT%H%M%S%fZ`, see `absorb_mark`) did not learn from, in arrival order, each once:
    those absorbed after it (the archive `feedback/events-<stamp>.jsonl`, stamped when their
    absorb began) and those still in the spool (the open segments of a server killed before it
    absorbed them included). An event is known by the id it is curated under (the client's
    `event_id`, else where it was spooled): a segment absorbed while this reads, or absorbed
    twice after a crash, is not counted twice. An archived event its absorb refused (robot
    traffic: a set check that the caller's row check cannot make) is left out; a spooled one
    has not been judged yet and counts."""
    workdir = Path(workdir)
    # the spool is read first: a segment absorbed in between is then met again in its archive
    # (and dropped by id there), never missed
    # (a segment absorbed meanwhile is left out: its archive is read below; one closed meanwhile
    # is read under its closed name)
    spooled: list[dict[str, Any]] = []
    for seg, lines in iter_segments(workdir / EVENTS_DIR):
        stem = segment_stem(seg)
        for n, line in enumerate(lines, 1):
            ev = _loads(line)
            if isinstance(ev, dict) and isinstance(ev.get("event"), dict):
                spooled.append(_with_id(ev["event"], f"spool:{stem}:{n}"))
    archived: list[dict[str, Any]] = []
    archive = workdir / FEEDBACK_DIR
    if archive.is_dir():
        for path in sorted(archive.glob("events-*.jsonl")):
            if path.stem.removeprefix("events-") <= as_of:
                continue
            try:
                lines = read_lines(path)
            except FileNotFoundError:  # erased or moved meanwhile
                continue
            # written before its archive was moved here, so never missed for an archive read
            refused = _refused(path.with_name(path.stem + REFUSED_SUFFIX))
            archived += [
                ev
                for ev in map(_loads, lines)
                if isinstance(ev, dict) and not (refused and _digest(ev.get("event_id")) in refused)
            ]
    out, seen = [], set()
    for ev in archived + spooled:
        eid = ev.get("event_id")
        if eid is not None and eid in seen:
            continue
        seen.add(eid)
        out.append(ev)
    return out


def _digest(event_id: Any) -> str:
    """How `.refused.json` names an event_id: the sha256 of it as curated (trimmed)."""
    return hashlib.sha256(str(event_id or "").strip().encode()).hexdigest()


def _refused(path: Path) -> set[str]:
    """The event_id digests listed in an archive's `.refused.json` (none without one: an
    archive written before these lists were, or one whose events were all curated)."""
    try:
        ids = json.loads(path.read_bytes()).get("event_id_sha256")
    except (FileNotFoundError, ValueError, AttributeError):
        return set()
    return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()


def _refused_ids(workdir: Path, run_id: str) -> list[str]:
    """The event_ids of an absorb's events that its ingest (run `run_id`) quarantined and the
    warehouse has not curated. By id, not by line: erasure and retention rewrite archives. An
    id quarantined as a `duplicate_row` of a curated event is the curated one's: kept. The ids
    of a robot's events (`bot_traffic`) are the point; those quarantined for a reason of the
    row check are refused by the server's replay anyway."""
    from ..storage import Warehouse

    with Warehouse(workdir) as wh:
        has_ids = wh.sql(
            "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'curated' AND table_name = 'events' "
            "AND column_name = 'event_id'"
        ).fetchone()
        ids = [
            str(r[0])
            for r in wh.sql(
                "SELECT DISTINCT id FROM (SELECT trim(json_extract_string(raw, '$.event_id')) AS id "
                "FROM quarantine.rows WHERE run_id = ? AND table_name = 'events') q "
                "WHERE id IS NOT NULL AND id <> '' ORDER BY id",
                [run_id],
            ).fetchall()
        ]
        if ids and has_ids and has_ids[0]:
            # the few quarantined ids looked up in the curated ids (the small side is the
            # probe's table: an absorb does not hash every curated event's id)
            curated = {
                str(r[0])
                for r in wh.sql(
                    "SELECT DISTINCT event_id FROM curated.events WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
                    [ids],
                ).fetchall()
            }
            ids = [i for i in ids if i not in curated]
    return ids


def absorb_mark(workdir: str | Path, wait_s: float = 60.0) -> str:
    """Now, as the UTC stamp archives are named by, taken while no absorb runs (waiting up to
    `wait_s` for one to end): every archive stamped before it was in the warehouse already, so a
    training that reads the warehouse after this mark learned them all (`served_since`)."""
    workdir = Path(workdir)
    deadline = time.monotonic() + wait_s
    while True:
        with absorb_lock(workdir) as locked:
            if locked or time.monotonic() >= deadline:
                return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        time.sleep(0.1)


# the columns an events file must name (`_load_columns.map_columns`)
HEADER_COLUMNS = (*CONTRACTS["events"].required_columns, "product_id")


def _with_id(ev: dict[str, Any], locator: str) -> dict[str, Any]:
    """The event with the id absorbing gives it: the client's `event_id`, else `locator`."""
    eid = ev.get("event_id")
    return ev if eid is not None and str(eid).strip() else {**ev, "event_id": locator}


def _loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def spooled_event_ids(workdir: str | Path) -> list[str]:
    """The clients' event_ids in the event segments not yet absorbed."""
    out = []
    for _, lines in iter_segments(Path(workdir) / EVENTS_DIR):
        for line in lines:
            if b'"event_id"' in line:  # most lines have none: not parsed
                eid = json.loads(line).get("event", {}).get("event_id")
                if isinstance(eid, str) and eid.strip():
                    out.append(eid.strip())
    return out


def write_events(path: Path, lines: Any) -> int:
    """One events.jsonl from JSON lines (newline added where missing); returns the count."""
    n = 0
    with open(path, "wb") as out:
        for line in lines:
            out.write(line if line.endswith(b"\n") else line + b"\n")
            n += 1
    return n


def ingest_events(
    workdir: Path, data_dir: Path, archived_as: Path | None = None, *, archives: list[Path] | None = None
) -> Any:
    """Served events go into the warehouse like any file load, appended (the governed path).
    `archived_as`: the archive `data_dir`'s events.jsonl becomes once absorbed, which the
    lineage, the raw layer and the quarantine name (the temporary file is gone by then);
    `archives`: a replay, `data_dir/events/` linking to these archives: the lineage, the raw
    layer (`feedback/`) and the quarantine (each archive and its line) name them."""
    from ..governance import DatasetRef, Ingestor

    recorded: dict[Path, Path] | None = None
    if archived_as is not None:
        recorded = {data_dir / "events.jsonl": archived_as}
    elif archives:
        recorded = {data_dir / "events": archives[0].parent}
    inputs = [DatasetRef("file", str(p.resolve())) for p in archives] if archives is not None else None
    return Ingestor(
        workdir, mode="append", job=SERVED_EVENTS_JOB, recorded_as=recorded, lineage_inputs=inputs
    ).run(data_dir)


# written once the archives of before (free text kept as typed) were masked
MASKED_MARK = "masked.v1"


def mask_archives_once(workdir: Path) -> int:
    """The archives written before absorbs masked free text (`_masked`), masked once (a new
    file renamed over each, as every rewrite of an archive is; under the absorbers' lock): they
    are kept and replayed into every full load. Returns the archives rewritten."""
    from ..storage._segments import replace_lines

    folder = workdir / FEEDBACK_DIR
    mark = folder / MASKED_MARK
    if mark.exists() or not folder.is_dir():
        return 0
    n = 0
    for path in sorted(folder.glob("events-*.jsonl")):
        lines = read_lines(path)
        events = [json.loads(line) for line in lines]
        before = [json.dumps(ev, ensure_ascii=False) for ev in events]
        _masked([ev for ev in events if isinstance(ev, dict)])  # (in place)
        after = [json.dumps(ev, ensure_ascii=False) for ev in events]
        if before == after:
            continue
        replace_lines(path, [line.encode() + b"\n" for line in after])
        n += 1
    mark.write_text("")
    return n


def _masked(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with personal data in their free text masked (`query`, `text`: an e-mail or a
    phone number a shopper typed) as curation masks it: the served-events archive is kept and
    replayed into every full load, and it kept them as typed."""
    from ..governance._contracts import CONTRACTS, Kind
    from ..governance._privacy import mask_pii_many

    for col in CONTRACTS["events"].columns:
        if col.kind is not Kind.TEXT or not col.mask_personal:
            continue
        rows = [i for i, ev in enumerate(events) if isinstance(ev.get(col.name), str) and ev[col.name]]
        for i, text in zip(rows, mask_pii_many([events[i][col.name] for i in rows]), strict=True):
            events[i][col.name] = text
    return events


def _canonical_event(record: dict[str, Any], locator: str) -> dict[str, Any]:
    """The spool holds {"event": {...}, "received_at": ...}; ingestion takes the event, with
    its `locator` as event_id when the client sent none (what makes a second absorb of the same
    segment harmless), and every column the events contract needs in a file's header (an
    anonymous view without a `user_id` key, a search without `product_id`: accepted as such, their
    absorb failed on "missing required column" until then, holding up every absorb and train)."""
    ev = _with_id(record["event"], locator)
    return {**dict.fromkeys(HEADER_COLUMNS), **ev}


def _rejected_rows(
    segments: list[Path], redis_entries: list[tuple[str, bytes]]
) -> list[tuple[str, int, dict[str, Any]]]:
    """(source, line, record) of each rejected event: a segment's name and line, or the Redis
    stream's entry id (`redis:<stream>/<id>`, line 1): what tells an absorb that died before
    removing them from what was quarantined before (a per-absorb line number of the stream was
    taken for rows earlier absorbs had quarantined, and the new rejections were dropped)."""
    rows = []
    for seg in segments:
        name = segment_stem(seg) + CLOSED_SUFFIX  # the same whether the writer closed it or died
        for n, line in enumerate(segment_lines(seg) or (), 1):
            rows.append((name, n, json.loads(line)))
    rows += [(f"redis:{REDIS_REJECTED}/{i}", 1, json.loads(line)) for i, line in redis_entries]
    return rows


def _quarantine(workdir: Path, rows: list[tuple[str, int, dict[str, Any]]], run_id: str | None) -> int:
    from ..governance._ingest import QUARANTINE_DDL
    from ..storage import Warehouse

    run_id = run_id or str(uuid.uuid4())
    with Warehouse(workdir) as wh:
        wh.sql("CREATE SEQUENCE IF NOT EXISTS quarantine.qid_seq")
        wh.sql(QUARANTINE_DDL)
        fields = [
            json.dumps(
                raw if isinstance(raw := rec.get("event"), dict) else {"line": json.dumps(raw)},
                ensure_ascii=False,
            )
            for _, _, rec in rows
        ]
        # one pass over the quarantine for the whole batch (a query per row scanned it per row):
        # the lines an absorb that died before removing their segment quarantined already, and
        # the events rejected before (a client retrying a batch whose events it was told were
        # rejected: a re-send, not one more open fault, as a re-sent bad row of a file)
        done: set[tuple[str, int]] = set()
        again: set[str] = set()
        if rows:
            for source, line, raw in wh.sql(
                """SELECT source_file, source_line, raw::VARCHAR FROM quarantine.rows
                   WHERE table_name = 'events' AND starts_with(source_file, 'http:')
                   AND (source_file IN (SELECT unnest(?::VARCHAR[]))
                        OR raw::VARCHAR IN (SELECT unnest(?::VARCHAR[])))""",
                [sorted({f"http:{source}" for source, _, _ in rows}), fields],
            ).fetchall():
                done.add((source, int(line)))
                again.add(raw)
        batch: list[list[Any]] = []
        for (source, line, rec), raw_fields in zip(rows, fields, strict=True):
            if (f"http:{source}", line) in done:
                continue  # quarantined already by an absorb that died before removing the segment
            failures = rec.get("failures") or [{"reason": "malformed_row", "detail": "rejected"}]
            batch.append(
                [
                    run_id,
                    f"http:{source}",
                    line,
                    failures[0]["reason"],
                    [f["reason"] for f in failures],
                    "; ".join(f["detail"] for f in failures)[:1000],
                    raw_fields,
                    "redelivered" if raw_fields in again else "open",
                ]
            )
            again.add(raw_fields)
        if batch:  # one prepared statement for the batch (not one parsed per row)
            wh.db.executemany(
                "INSERT INTO quarantine.rows VALUES (nextval('quarantine.qid_seq'), ?, 'events', ?, ?, ?, ?, ?, ?, "
                "?, now()::TIMESTAMP, NULL)",
                batch,
            )
    return len(batch)
