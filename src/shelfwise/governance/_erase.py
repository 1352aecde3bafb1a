"""Right to erasure: remove one user from everything shelfwise holds, without a retrain.

- warehouse: the user's rows in every raw table (raw ids), every version of every curated table
  (pseudonym) and the quarantine (raw fields, and malformed lines that name the id);
- the anonymous sessions linked to the user: an anonymous row (no user id, a session id) of a
  session the user's own rows name (browsing before logging in) is the user's too, tied to them
  by the session id (an online identifier). Those sessions' rows go wherever the user's do
  (warehouse, spool, bundles, online state) and their anonymous pseudonyms are registered with
  the user's, so that a re-delivery withholds them alike; the report and audit count the
  sessions erased (`anonymous_sessions`);
- files: the served-events spool and its archive (`feedback/`), the exposure log (served lists),
  the consent register (the user's records go, a tombstone stays), stored marketing audiences,
  served customer profiles, and the reports that name the user (the customers report's at-risk
  lists: removed, made again by running the report);
- every bundle: the user's steps leave the history, their pseudonym is replaced by a tombstone,
  their precomputed list and purchases go, and every model that holds per-user state (ALS/BPR
  user factors) forgets the user (`Recommender.forget_users`); the manifest's file hashes are
  re-signed and the erasure noted in it. The user is then
  unknown to serving: exactly a never-seen user (cold start);
- online state (Redis, when given) and running servers (they watch `governance/erasures.jsonl`,
  forget the user and reload the bundle).

An OpenLineage run names every artifact touched; the audit entry holds the pseudonym, never the
raw id. The shop's own source files are outside shelfwise: the report says so, and ingestion
reads the register this appends to (`_erasures`) so that a later delivery or full reload of
those files does not bring the user's rows back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ._audit import AuditLog
from ._compile import MISSING_VALUES, id_sql, is_guest_user_id, lit, trim_id
from ._consent import CONSENTS_FILE, erase_consent
from ._erasures import ERASURES_FILE, erased_users
from ._lineage import DatasetRef, LineageRun, warehouse_namespace
from ._privacy import (
    ANONYMOUS_PSEUDONYM_PREFIX,
    Pseudonymizer,
    anonymous_user_id,
    is_anonymous_raw,
    refuse_pseudonym,
)


def compaction_owed(workdir: Path) -> bool:
    """Whether a rewrite of the warehouse is owed (an erasure or retention deleted rows while
    another process held the file: their bytes may remain in its freed blocks)."""
    return (workdir / COMPACT_OWED).exists()


def compact_if_owed(workdir: Path, *, owed: bool) -> dict[str, Any] | None:
    """Rewrite the warehouse when `owed` (rows were just deleted) or a rewrite is owed from
    before; a rewrite that cannot be made now stays owed (`COMPACT_OWED`), and the next erasure
    or retention run makes it. Never raises: the deletion it follows is done and registered."""
    from ..storage._warehouse import compact_warehouse

    marker = workdir / COMPACT_OWED
    if not owed and not marker.exists():
        return None
    try:
        done = compact_warehouse(workdir)
    except Exception as exc:  # noqa: BLE001 - the erasure stands; the rewrite is owed
        done = {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    if "skipped" in done:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"since": datetime.now(UTC).isoformat(), "why": done["skipped"]}))
    else:
        marker.unlink(missing_ok=True)
    return done


def refuse_guest(workdir: Path, raw_user_id: str, pseudo: str) -> None:
    """Refuse a guest checkout's placeholder id (`_compile.GUEST_USER_IDS`: WooCommerce's 0) as
    the subject of a privacy request: its rows are many guests' anonymous sessions, no one
    person's. A workdir whose curated layer names it as a customer (a dataset whose visitor ids
    count from 0, read without sessions) is answered as for any customer."""
    if not is_guest_user_id(raw_user_id):
        return
    from ..storage import read_only, tables_with_column

    with read_only(workdir) as (con, _):
        for _, t in tables_with_column(con.sql, "user_id", ("curated",)):
            if con.execute(f'SELECT 1 FROM curated."{t}" WHERE user_id = ? LIMIT 1', [pseudo]).fetchone():
                return
    raise ShelfwiseError(
        f"--user {raw_user_id!r}: a guest checkout's placeholder id, no customer: the rows that name it "
        "are read as anonymous sessions (one per order), no one person's (`shelfwise retention enforce` "
        "removes them with the rest of the old data)"
    )


def erase_user(
    workdir: str | Path, raw_user_id: str, *, actor: str | None = None, redis_client: Any = None
) -> dict[str, Any]:
    workdir = Path(workdir)
    raw_user_id = trim_id(raw_user_id)  # as curation trimmed the user's rows
    if not raw_user_id:
        raise ShelfwiseError("--user: an empty user id")
    refuse_pseudonym(raw_user_id, "--user")  # ("erased: 0 rows" of nobody, the person untouched)
    if is_anonymous_raw(raw_user_id):
        # its rows name no person (no user id, a session): nobody can ask for them; retention
        # (`shelfwise retention enforce`) removes them with the rest of the old data
        raise ShelfwiseError(
            f"--user {raw_user_id!r}: an anonymous session, not a customer: its rows carry no user id "
            "(`shelfwise retention enforce` removes them with the rest of the old data)"
        )
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(f"{workdir}: not a shelfwise workdir (no warehouse.duckdb)")
    pseudonymize = Pseudonymizer.of(workdir)
    pseudo = pseudonymize(raw_user_id)
    refuse_guest(workdir, raw_user_id, pseudo)
    lineage = LineageRun(workdir, "shelfwise.privacy.erase", []).start()
    report: dict[str, Any] = {"pseudonym": pseudo, "warehouse": {}, "files": {}, "bundles": {}}
    touched: list[DatasetRef] = []
    try:
        linked = _erase_warehouse(workdir, raw_user_id, pseudo, pseudonymize)
        report["warehouse"], report["anonymous_sessions"] = linked.counts, linked.erased_sessions
        # the user and every anonymous session linked to them (whether or not it had rows left)
        pseudos = [pseudo, *linked.pseudonyms]
        # registered at once, before files and bundles: should a later step fail, every later
        # load still withholds the user's rows and running servers still forget them (a retry
        # finishes the rest: a bundle that still holds the user is erased again)
        path = workdir / ERASURES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC).isoformat()
        with open(path, "a") as fh:  # running servers forget the user and reload
            fh.writelines(json.dumps({"pseudonym": p, "at": at}) + "\n" for p in pseudos)
        ns = warehouse_namespace(workdir)
        touched += [DatasetRef(ns, t, rows=n) for t, n in report["warehouse"].items() if n]
        report["files"] = _erase_files(workdir, raw_user_id, pseudos, linked.sessions)
        removed = drop_reports_naming(workdir, raw_user_id, pseudos)
        report["files"][REPORTS] = len(removed)
        if removed:
            names = sorted({Path(f).stem for f in removed})
            report["reports_removed"] = removed
            report["remake"] = "they named the user; make them again: " + ", ".join(
                f"`shelfwise report {_REPORT_COMMANDS.get(n, n)}`" for n in names
            )
        # the consent history goes; a tombstone remembers the erasure (servers drop the state)
        report["files"][str(CONSENTS_FILE)] = erase_consent(workdir, pseudo)
        touched += [
            DatasetRef("file", str((workdir / f).resolve()), rows=n) for f, n in report["files"].items() if n
        ]
        for b in sorted((workdir / "bundles").glob("[0-9]*")):
            n = _erase_bundle(b, pseudos)
            report["bundles"][b.name] = n
            if n:
                touched.append(DatasetRef("file", str(b.resolve()), rows=n))
        # running servers reloaded when the register moved, maybe before the bundles above were
        # scrubbed: the register's time moves again now that they are, and they reload again
        os.utime(path)  # (now)
        # last, once the erasure is registered and done everywhere: the warehouse file rewritten
        # (the freed blocks still held the rows' bytes); owed until it is, when another process
        # held the file (`compact_if_owed`)
        if any(linked.counts.values()) or compaction_owed(workdir):
            report["warehouse_compacted"] = compact_if_owed(workdir, owed=True)
        if redis_client is not None:
            from ._online_keys import online_keys

            for p in pseudos:  # what `serving._online.RedisState` holds
                redis_client.delete(*online_keys(p))
            report["redis"] = "forgotten"
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete(touched)
    report["lineage_run_id"] = lineage.run_id
    # an id nothing held (a typo, or a person whose rows have not been delivered yet): said,
    # not passed off as an erasure of data (the register still withholds its later rows)
    # (the console's kept figures go on every erasure, whatever the id: no sign of the user)
    report["found"] = (
        any(report["warehouse"].values())
        or any(report["bundles"].values())
        or any(n for f, n in report["files"].items() if f != str(CONSOLE_FIGURES))
    )
    if not report["found"]:
        report["nothing_held"] = (
            f"no row, file or bundle held {raw_user_id!r}: check the id (the erasure is recorded all "
            "the same: later deliveries withhold its rows)"
        )
    report["not_covered"] = (
        "the shop's own source files (the --data directories) are outside shelfwise; "
        "delete the user there too (later loads of them withhold the user's rows dated up to this erasure)"
    )
    earlier = earlier_exports(workdir)
    if earlier:
        report["earlier_exports"] = earlier
        report["not_covered"] += (
            f"; {len(earlier)} file(s) written out of the workdir before this erasure may hold the user's "
            "rows (`earlier_exports`: when, by whom, where, as audited): delete them, or the user in them"
        )
    AuditLog(workdir).append(
        "privacy.erase",
        actor=actor,
        pseudonym=pseudo,
        anonymous_sessions=report["anonymous_sessions"],
        warehouse=report["warehouse"],
        files=report["files"],
        bundles=report["bundles"],
        lineage_run_id=lineage.run_id,
    )
    return report


# the audited actions that write customers' rows to a file outside the workdir (the field that
# names the file); an `export` of a table whose rows name no customer is no such file
_EXPORTS = {
    "export": "out",
    "quarantine.export": "file",
    "recommend.all_users": "out",
    "insights.customers": "out",
    "audiences.export": "out",
}


def earlier_exports(workdir: Path) -> list[dict[str, Any]]:
    """The files, still there, that audited commands wrote out of the workdir with customers'
    rows (a curated table with user ids, the quarantine, lists, profiles, audiences): an erasure
    cannot reach them, so it names them. Oldest first; a file written twice is listed once, at its
    latest write. (A subject access export's file is not audited by name: a steward names it
    after the person.)"""
    from ._contracts import CONTRACTS

    personal = {n for n, c in CONTRACTS.items() if "user_id" in c.column_names}
    found: dict[str, dict[str, Any]] = {}
    for e in AuditLog(workdir).entries():
        field_ = _EXPORTS.get(str(e.get("action")))
        details = e.get("details") or {}
        if field_ is None or e.get("outcome", "ok") != "ok":
            continue
        if e["action"] == "export" and details.get("table") not in personal:
            continue
        where = str(details.get(field_) or "")
        # (a Spark job's output is a folder; one on a cluster's storage, a URI, cannot be
        # checked from here: named all the same)
        if not where or ("://" not in where and not Path(where).exists()):
            continue
        found.pop(where, None)
        found[where] = {"at": e.get("at"), "action": e["action"], "by": e.get("actor"), "file": where}
    return list(found.values())


# a raw row's ids as curation reads them (`trim_id`: `101.0` is 101), and a quarantined row's
_USER, _SESSION = id_sql("user_id"), id_sql("session_id")
_Q_USER, _Q_SESSION = "json_extract_string(raw, '$.user_id')", "json_extract_string(raw, '$.session_id')"
# a raw row is anonymous where its user id is missing (as the row checks read it, `_compile`)
_MISSING_USER = (
    "(nullif(trim(user_id), '') IS NULL OR trim(user_id) IN ("
    + ", ".join(lit(v) for v in MISSING_VALUES)
    + "))"
)


@dataclass
class _Linked:
    """What `_erase_warehouse` did: rows erased per table, and the anonymous sessions linked to
    the user (the session ids of their rows, those sessions' anonymous pseudonyms, and how many
    of them had rows erased)."""

    counts: dict[str, int] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)
    pseudonyms: list[str] = field(default_factory=list)
    erased_sessions: int = 0


def _user_tables(wh: Any, column: str) -> set[tuple[str, str]]:
    from ..storage import tables_with_column

    return set(tables_with_column(wh.sql, column, base_tables=True))


def _linked_sessions(
    wh: Any, raw: str, pseudo: str, tables: set[tuple[str, str]], versions: Any
) -> tuple[list[str], list[str]]:
    """The session ids of the user's rows: curated (as curated, the form an anonymous row's
    session is attributed by) and raw (trimmed), and Spark's Parquet versions."""
    found: set[str] = set()
    for schema, table in sorted(tables):
        value = raw if schema == "raw" else pseudo
        found |= {
            r[0]
            for r in wh.sql(
                f'SELECT DISTINCT {_SESSION} FROM "{schema}"."{table}" WHERE {_USER} = ?', [value]
            ).fetchall()
        }
    for v in versions:
        files = [str(f) for f in v.files]
        if not files:
            continue
        cols = {r[0] for r in wh.sql("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()}
        if {"user_id", "session_id"} <= cols:
            found |= {
                r[0]
                for r in wh.sql(
                    "SELECT DISTINCT trim(session_id) FROM read_parquet(?) WHERE trim(user_id) = ?",
                    [files, pseudo],
                ).fetchall()
            }
    named = sorted(s for s in found if s and s not in MISSING_VALUES)
    return _one_visit(wh, named, pseudo, tables, versions)


# the longest session whose anonymous rows are taken for the user's own: a visit (browsing
# before logging in) lasts minutes to hours; a till's or a day's session id spans days
LINKED_SESSION_HOURS = 4
_VISIT = timedelta(hours=LINKED_SESSION_HOURS)


def _one_visit(
    wh: Any,
    sessions: list[str],
    pseudo: str,
    tables: set[tuple[str, str]],
    versions: Any,
) -> tuple[list[str], list[str]]:
    """Of the sessions the user's rows name, those that are one visit of theirs: no other
    customer's rows name it and its curated rows span at most `LINKED_SESSION_HOURS`. A session
    id that is a till or a day (what the README suggests for sales without customers) is shared
    by many shoppers' anonymous sales: erasing one customer must not take them all. Returns
    (the visits, those of them with anonymous rows now): an erasure registers every visit, so
    that anonymous rows delivered later (or still spooled) are withheld; the right of access
    lists those with rows."""
    if not sessions:
        return [], []
    # session -> [first, last, another customer named it, anonymous rows]
    span: dict[str, list[Any]] = {}

    def add(rows: Any) -> None:
        for s, first, last, others, anonymous in rows:
            got = span.setdefault(s, [first, last, False, False])
            if first is not None and (got[0] is None or first < got[0]):
                got[0] = first
            if last is not None and (got[1] is None or last > got[1]):
                got[1] = last
            got[2] = got[2] or bool(others)
            got[3] = got[3] or bool(anonymous)

    anon = f"starts_with(trim(user_id), '{ANONYMOUS_PSEUDONYM_PREFIX}')"
    select = (
        "SELECT trim(session_id), min(timestamp), max(timestamp), "
        f"count(*) FILTER (WHERE trim(user_id) <> ? AND NOT {anon}), count(*) FILTER (WHERE {anon}) "
        "FROM {src} WHERE trim(session_id) IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1"
    )
    for schema, table in sorted(tables):
        if schema == "raw":  # anonymous rows as received (a quarantined one too), no time span
            rows = wh.sql(
                f'SELECT DISTINCT {_SESSION}, NULL, NULL, 0, 1 FROM "{schema}"."{table}" '
                f"WHERE {_MISSING_USER} AND {_SESSION} IN (SELECT unnest(?::VARCHAR[]))",
                [sessions],
            ).fetchall()
            add(rows)
            continue
        cols = {r[0] for r in wh.sql(f'DESCRIBE "{schema}"."{table}"').fetchall()}
        if "timestamp" in cols:
            add(wh.sql(select.format(src=f'"{schema}"."{table}"'), [pseudo, sessions]).fetchall())
    for v in versions:
        files = [str(f) for f in v.files]
        if not files:
            continue
        cols = {r[0] for r in wh.sql("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()}
        if {"user_id", "session_id", "timestamp"} <= cols:
            add(wh.sql(select.format(src="read_parquet(?)"), [pseudo, files, sessions]).fetchall())
    visits, with_rows = [], []
    for s in sessions:
        first, last, shared, anonymous = span.get(s, [None, None, False, False])
        if shared:
            continue
        if isinstance(first, datetime) and isinstance(last, datetime) and last - first > _VISIT:
            continue
        visits.append(s)
        if anonymous:
            with_rows.append(s)
    return visits, with_rows


def _erase_warehouse(workdir: Path, raw: str, pseudo: str, pseudonymize: Pseudonymizer) -> _Linked:
    from ..storage import Warehouse
    from ._parquet_versions import parquet_versions

    linked = _Linked()
    out = linked.counts
    with Warehouse(workdir) as wh:
        tables = sorted(_user_tables(wh, "user_id"))
        with_sessions = _user_tables(wh, "session_id") & set(tables)
        sessions, _ = _linked_sessions(wh, raw, pseudo, with_sessions, parquet_versions(wh))
        anon = pseudonymize.many([anonymous_user_id(s) for s in sessions])
        linked.sessions, linked.pseudonyms = sessions, anon
        erased: set[str] = set()  # the linked sessions whose anonymous rows are erased
        by_pseudo = dict(zip(anon, sessions, strict=True))
        for schema, table in tables:
            params: list[Any]
            if schema == "raw":
                where, params = f"{_USER} = ?", [raw]
                if sessions and (schema, table) in with_sessions:
                    anonymous = f"{_MISSING_USER} AND {_SESSION} IN (SELECT unnest(?::VARCHAR[]))"
                    erased |= {
                        r[0]
                        for r in wh.sql(
                            f'SELECT DISTINCT {_SESSION} FROM "{schema}"."{table}" WHERE {anonymous}',
                            [sessions],
                        ).fetchall()
                    }
                    where, params = f"{where} OR ({anonymous})", [raw, sessions]
            else:
                where, params = "trim(user_id) IN (SELECT unnest(?::VARCHAR[]))", [[pseudo, *anon]]
                if anon:
                    erased |= {
                        by_pseudo[r[0]]
                        for r in wh.sql(
                            f'SELECT DISTINCT trim(user_id) FROM "{schema}"."{table}" '
                            "WHERE trim(user_id) IN (SELECT unnest(?::VARCHAR[]))",
                            [anon],
                        ).fetchall()
                    }
            n = wh.sql(f'DELETE FROM "{schema}"."{table}" WHERE {where}', params).fetchone()
            out[f"{schema}.{table}"] = int(n[0]) if n else 0
            if schema == "curated" and out[f"{schema}.{table}"]:
                wh.refresh_version(table)
        if wh.exists("meta", "derived_as_of"):  # (the date of their latest order line, by pseudonym)
            wh.sql(
                "DELETE FROM meta.derived_as_of WHERE table_name = 'users' AND key IN (SELECT unnest(?::VARCHAR[]))",
                [[pseudo, *anon]],
            )
        out.update(_erase_parquet(wh, raw, [pseudo, *anon], sessions))
        if wh.exists("quarantine", "rows"):
            cond, params = quarantined_of(raw, sessions, [pseudo, *anon])
            n = wh.sql(f"DELETE FROM quarantine.rows WHERE {cond}", params).fetchone()
            out["quarantine.rows"] = int(n[0]) if n else 0
        wh.sql("CHECKPOINT")
    linked.erased_sessions = len(erased)
    return linked


def quarantined_of(raw: str, sessions: list[str], pseudos: list[str] | None = None) -> tuple[str, list[Any]]:
    """The condition (SQL over `quarantine.rows`, and its parameters) for a user's quarantined
    rows: theirs by the user id as received, a line that names it, an anonymous row of a
    session linked to them (its fields as received), and a curated row a later delivery took
    out of a curated version (`_load_retract`: its raw is the curated row, the user id the
    pseudonym: `pseudos`, theirs and their linked sessions'): what an erasure deletes and the
    right of access shows."""
    # (an integer id also as a float, `101.0`: curation reads it as the integer)
    written = re.escape(raw) + ("(\\.0)?" if re.fullmatch("-?[0-9]+", raw) else "")
    token = '(^|[,;\\t|"])' + written + '([,;\\t|"]|$)'
    cond = (
        f"{id_sql(_Q_USER)} = ? "
        "OR regexp_matches(coalesce(json_extract_string(raw, '$.line'), ''), ?) "
        f"OR (coalesce(nullif(trim({_Q_USER}), ''), 'NA') IN "
        f"(SELECT unnest(?::VARCHAR[])) AND {id_sql(_Q_SESSION)} "
        "IN (SELECT unnest(?::VARCHAR[])))"
    )
    from ._load_retract import RETRACTED_SOURCE

    cond += (
        f" OR (starts_with(source_file, '{RETRACTED_SOURCE}') AND {_Q_USER} IN (SELECT unnest(?::VARCHAR[])))"
    )
    return cond, [raw, token, list(MISSING_VALUES), sessions, list(pseudos or [])]


def _erase_parquet(wh: Any, raw: str, pseudos: list[str], sessions: list[str]) -> dict[str, int]:
    """Versions another engine (Spark) wrote as Parquet, and its quarantine files beside them:
    each file holding the user's rows (`pseudos`: theirs and their linked anonymous sessions')
    is rewritten without them (the catalog's views read the files, so the curated table no
    longer shows them)."""
    from ._parquet_versions import parquet_versions, quarantine_dirs, refresh_versions, rewrite_files

    versions = parquet_versions(wh)
    out: dict[str, int] = {}
    changed: dict[str, int] = {}  # per file
    for v in versions:
        gone = rewrite_files(v.files, "user_id", "trim(user_id) IN (SELECT unnest($2::VARCHAR[]))", [pseudos])
        changed.update(gone)
        if gone:  # named as DuckDB's versions are (a shop's script reads one report on either engine)
            out[f"curated.{v.table}__v{v.version}"] = sum(gone.values())
    for _, _, folder in quarantine_dirs(versions):
        gone = rewrite_files(
            sorted(folder.glob("*.parquet")),
            "raw",
            f"{id_sql(_Q_USER)} = $2 OR ("
            f"coalesce(nullif(trim({_Q_USER}), ''), 'NA') IN (SELECT unnest($3::VARCHAR[])) "
            f"AND {id_sql(_Q_SESSION)} IN (SELECT unnest($4::VARCHAR[])))",
            [raw, list(MISSING_VALUES), sessions],
        )
        if gone:  # the files of the rows `quarantine.rows` indexes (as retention names them)
            out["quarantine.parquet"] = out.get("quarantine.parquet", 0) + sum(gone.values())
    refresh_versions(wh, versions, changed)
    return out


def _rewrite_jsonl(path: Path, drop: Any) -> int:
    """`path` (JSON lines no one appends to) without the records `drop` says: a new file
    renamed over it (`storage._segments`); the lines removed."""
    from ..storage._segments import _rewrite_file

    return _rewrite_file(path, drop)


def served_events_of(raw: str, sessions: Iterable[str]) -> Callable[[Any], bool]:
    """Whether a served-event record (`{"event": {...}}` or the event itself) is the user's:
    theirs by id, or an anonymous event of a session linked to them. What an erasure deletes
    and a subject access export shows."""
    linked = set(sessions)

    def raw_event(rec: Any) -> bool:
        ev = rec.get("event", rec) if isinstance(rec, dict) else None
        if not isinstance(ev, dict):
            return False
        user = trim_id(ev.get("user_id") or "")
        if user == raw:
            return True
        return (not user or user in MISSING_VALUES) and trim_id(ev.get("session_id") or "") in linked

    return raw_event


def _erase_files(workdir: Path, raw: str, pseudos: list[str], sessions: list[str]) -> dict[str, int]:
    raw_event = served_events_of(raw, sessions)
    mine = set(pseudos)

    out: dict[str, int] = {}
    groups = [
        ("feedback", "events-*.jsonl", raw_event),
        # (the open segments of posted events are left to their absorb, which withholds the
        # user's events dated up to the erasure and keeps a returning shopper's later ones)
        ("spool/events", "closed", raw_event),
        ("spool/rejected", "closed", raw_event),
        ("spool/exposures", "all", lambda r: r.get("user") in mine),
        # insights (issue 18): stored marketing audiences and served profiles, by pseudonym
        ("audiences", "*/members.jsonl", lambda r: r.get("user") in mine),
        ("insights/profiles", "*.jsonl", lambda r: r.get("user") in mine),
    ]
    from ..storage._segments import rewrite_segments

    for folder, pattern, drop in groups:
        if folder.startswith("spool/"):  # a running server's open segment rewritten in place
            out[folder] = rewrite_segments(workdir / folder, drop, closed_only=pattern == "closed")
            continue
        n = sum(_rewrite_jsonl(p, drop) for p in sorted((workdir / folder).glob(pattern)))
        out[folder] = n
    out[str(CONSOLE_FIGURES)] = drop_console_figures(workdir)
    out["tmp/absorb"] = _drop_stale_absorbs(workdir)
    # a converted copy a load left when its process died (or an older version kept): raw ids
    out[CONVERTED] = drop_converted(workdir)
    return out


def _drop_stale_absorbs(workdir: Path) -> int:
    """Remove the staging folders (`tmp/absorb-*`, served events copied for their ingest) an
    absorber left when it died, as the next absorb would, under the absorbers' lock; while an
    absorb runs it is left to it (it withholds the erased user's events and removes its own)."""
    import shutil

    from ..storage._segments import absorb_lock

    with absorb_lock(workdir) as locked:
        if not locked:
            return 0
        stale = sorted((workdir / "tmp").glob("absorb-*"))
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return len(stale)


# where a shop's data in another format is converted for a load (and removed after it)
CONVERTED = "converted"


@contextmanager
def converted_copy(workdir: Path) -> Iterator[Path]:
    """A folder of this load's own for a converted copy (`converted/<pid>-<random>/`), held
    while the load runs and removed after it, whatever its outcome: an erasure or a retention
    run, or another load, removes only the copies of loads no longer running."""
    import shutil

    from ..storage._segments import own_folder

    folder, fd = own_folder(Path(workdir) / CONVERTED, f"{os.getpid()}-{os.urandom(4).hex()}")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def drop_converted(workdir: Path) -> int:
    """Remove the converted copies of loads no longer running (one a load left when its process
    died, or an older version's `converted/<format>/`): the files removed. A running load's
    copy is left to it."""
    from ..storage._segments import remove_unheld_folders

    return remove_unheld_folders(Path(workdir) / CONVERTED)


# a rewrite of the warehouse owed (`compact_if_owed`)
COMPACT_OWED = Path("governance") / "compact_owed.json"
REPORTS = "reports"
# report files whose `shelfwise report` subcommand is named otherwise
_REPORT_COMMANDS = {"search-analytics": "search", "demand-category": "demand --level category"}


def drop_reports_naming(workdir: Path, raw: str | None, pseudos: list[str]) -> list[str]:
    """Remove the reports (`reports/<name>.json` and its `.html`) that name the user (by a
    pseudonym, or by the raw id when given): the customers report lists at-risk customers by
    pseudonym. Made again from what is left by running the report again; returns the files
    removed."""
    folder = workdir / REPORTS
    if not folder.is_dir():
        return []
    needles = [p.encode() for p in pseudos] + ([json.dumps(raw).encode()] if raw is not None else [])
    naming: set[str] = set()
    for f in sorted(folder.iterdir()):
        if f.suffix not in (".json", ".html") or not f.is_file():
            continue
        text = f.read_bytes()
        # the raw id only as a whole JSON string (an id like "42" is in many HTML numbers)
        if any(n in text for n in (needles if f.suffix == ".json" else needles[: len(pseudos)])):
            naming.add(f.stem)
    removed = []
    for stem in sorted(naming):
        for f in (folder / f"{stem}.json", folder / f"{stem}.html"):
            if f.exists():
                f.unlink()
                removed.append(f.name)
    return removed


# the console keeps the figures its pages need between server runs (top queries, attributed
# lists, experiment events): derived from the data an erasure or retention removes, so they go
# with it and are made again from what is left
CONSOLE_FIGURES = Path("state") / "console"


def drop_console_figures(workdir: Path) -> int:
    """Remove the console's kept figures (caches); the number of files removed."""
    n = 0
    for f in sorted((workdir / CONSOLE_FIGURES).glob("*.json")):
        f.unlink(missing_ok=True)
        n += 1
    return n


def erased_while_training(workdir: Path, bundle: Path, since: datetime) -> dict[str, int]:
    """Remove from a bundle a training just wrote the users erased since `since` (naive UTC, when
    the training began reading the data): an erasure made while it ran scrubbed the bundles there
    were then and the warehouse, not the history this run had already read, and the bundle it
    wrote held the user again. Called once the bundle is in `bundles/` and before it is
    registered: an erasure registered after that call finds the bundle there (it appends to the
    register before it lists the bundles). Returns {"users": erased users it held, "steps": their
    steps removed}."""
    late = sorted(p for p, at in erased_users(workdir).items() if at >= since)
    if not late:
        return {"users": 0, "steps": 0}
    from ..features import Interactions

    held = set(Interactions.load(bundle / "interactions.npz").user_ids.astype(str))
    steps = _erase_bundle(bundle, late)
    return {"users": len(held & set(late)), "steps": steps}


def _erase_bundle(path: Path, pseudos: list[str]) -> int:
    """Remove users (one customer and their linked anonymous sessions) from a bundle in place,
    holding the bundle's lock (a server loading it meanwhile waits, and never reads a model
    scrubbed beside a manifest naming its old hash); returns the steps removed (0: none in it)."""
    from ..storage._segments import folder_lock

    with folder_lock(path, shared=False):
        return _erase_bundle_locked(path, pseudos)


def _erase_bundle_locked(path: Path, pseudos: list[str]) -> int:
    from ..features import Interactions
    from ..models import read_manifest, write_manifest
    from ..storage import file_sha256

    inter = Interactions.load(path / "interactions.npz")
    hits = np.flatnonzero(np.isin(inter.user_ids.astype(str), np.asarray(pseudos, dtype=str)))
    if len(hits) == 0:
        return 0
    users = [int(u) for u in hits]
    keep = ~np.isin(inter.user_idx, hits)
    user_ids = inter.user_ids.astype(object).copy()
    for u in users:
        user_ids[u] = f"erased_{u}"  # the index stays (model state is indexed by it); the id is gone
    steps = int((~keep).sum())
    # (`take` keeps the other users' steps with their weight changes, `raises`, and drops theirs)
    erased = replace(inter.take(keep), user_ids=user_ids)
    # the models forget first (the served fits and the train-fold fits kept for `evaluate` alike):
    # should one fail, the bundle's history still names the user and a retry erases it again
    for model_dir in sorted(
        {p.parent for p in [*path.glob("models/*/state.pkl"), *path.glob("evaluated/*/state.pkl")]}
    ):
        _forget_in_model(model_dir, users, erased, path.name)
    sv = path / "serving.npz"
    if sv.exists():
        with np.load(sv) as z:
            arrays = {k: z[k] for k in z.files}
        if "toplist" in arrays:
            arrays["toplist"][[u for u in users if u < len(arrays["toplist"])]] = -1
        if "purchase_user" in arrays:
            m = ~np.isin(arrays["purchase_user"], hits)
            for k in ("purchase_user", "purchase_item", "purchase_ts"):
                arrays[k] = arrays[k][m]
        # written beside and renamed over: a server loading the bundle meanwhile reads the old
        # file or the new one, never half of one ("Truncated central directory")
        np.savez_compressed(path / ".serving.npz.tmp.npz", **arrays)  # type: ignore[arg-type]
        os.replace(path / ".serving.npz.tmp.npz", sv)
    erased.save(path / ".interactions.tmp.npz")
    os.replace(path / ".interactions.tmp.npz", path / "interactions.npz")
    manifest = read_manifest(path)
    manifest.files = {rel: file_sha256(path / rel) for rel in manifest.files if (path / rel).exists()}
    at = datetime.now(UTC).isoformat()
    present = set(inter.user_ids[hits].astype(str))
    manifest.erasures.extend({"pseudonym": p, "at": at} for p in pseudos if p in present)
    write_manifest(path, manifest)
    return steps


def _forget_in_model(model_dir: Path, users: list[int], interactions: Any, bundle: str) -> None:
    """The saved model in `model_dir` forgets `users`, through the model's own `forget_users`
    (loaded, told, saved back); models holding no per-user state are left as they are."""
    from ..models import IncompatibleModel, load_model, model_class

    try:
        if not model_class(model_dir).holds_user_state:
            return
        model = load_model(model_dir, interactions)
    except IncompatibleModel as exc:
        raise ShelfwiseError(
            f"bundle {bundle}: cannot erase the user from {model_dir.name}, written by a shelfwise whose "
            f"models this version cannot read ({exc}); retrain, then delete bundle {bundle}"
        ) from exc
    model.forget_users(users)
    model.save(model_dir)
