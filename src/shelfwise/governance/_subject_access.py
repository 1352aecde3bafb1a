"""The right of access: everything shelfwise holds about one user, with the lineage of each part.

`shelfwise privacy export --user ID --out FILE` writes one JSON document:

    {"format": "shelfwise.subject-access/1", "user_id", "pseudonym", "generated_at",
     "parts": {NAME: {"lineage": {...}, "rows": [...]}, ...}, "not_covered": [...]}

Parts (each only when it holds something, but for consent and erasure, always present):

- `raw.<table>`: the rows as delivered (raw ids), with the loads they came from (file, sha256, run);
- `curated.<table>@v<N>`: every kept version of every curated table (pseudonymized rows), with
  the version's run, time and contract, and whether it is the current one;
- `quarantine`: quarantined rows that name the user (their raw fields or malformed lines);
- `spool/…`, `feedback`: served events (accepted, rejected, archived) with file and line;
- `exposures`: the served lists logged for the user (recommendations and search pages);
- `bundles/<version>`: the user's steps in each model bundle's history (what models learned from);
- `consent`: the consent register's records for the user and the current flags;
- `erasure`: when the user was last erased, if ever;
- `audit`: the audit entries that name the user's pseudonym;
- more parts from the caller (`Shop` adds the customer profile, computed by insights).

Matching is exact on the id (after trimming, as erasure matches): a user `u1` never sees the rows
of `u10`. The file is written owner-only (it holds personal data); the audit entry names the
pseudonym and counts, never the id or the path.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError
from ._audit import AuditLog
from ._compile import trim_id
from ._consent import Consents, consent_history
from ._erasures import erased_users
from ._online_keys import REDIS_EVENTS, REDIS_REJECTED, online_keys
from ._privacy import Pseudonymizer, anonymous_user_id, refuse_pseudonym

FORMAT = "shelfwise.subject-access/1"

__all__ = ["FORMAT", "subject_access", "write_subject_access"]


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, bytes | bytearray):
        return v.decode("utf-8", "replace")
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def _records(cur: Any) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [{c: _jsonable(v) for c, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


class _Positional:
    """A DuckDB connection whose `sql(query, params)` takes parameters as `Warehouse.sql` does."""

    def __init__(self, con: Any):
        self.con = con

    def sql(self, query: str, params: Any = None) -> Any:
        return self.con.execute(query, params) if params is not None else self.con.sql(query)


def _warehouse_parts(
    workdir: Path, raw: str, pseudo: str
) -> tuple[dict[str, Any], list[str], list[str], list[str]]:
    """The user's rows in the warehouse, with the anonymous rows of the sessions linked to them
    (their own rows' sessions: what an erasure deletes as theirs); those sessions' ids and
    anonymous pseudonyms; and the ids of those with anonymous rows now (what is listed)."""
    from ..storage import read_only, tables_with_column
    from ._erase import _MISSING_USER, _SESSION, _USER, _linked_sessions, _user_tables, quarantined_of
    from ._parquet_versions import parquet_versions

    where = str((workdir / "warehouse.duckdb").resolve())
    parts: dict[str, Any] = {}
    with read_only(workdir) as (con, _):
        tables = tables_with_column(con.sql, "user_id", base_tables=True)
        wh = _Positional(con)  # (the erasure's queries take their parameters as a Warehouse does)
        with_sessions = _user_tables(wh, "session_id") & {(a, b) for a, b in tables}
        # listed: those with anonymous rows now (a customer's own order id links none yet)
        sessions, listed = _linked_sessions(wh, raw, pseudo, with_sessions, parquet_versions(con))
        anon = Pseudonymizer.of(workdir).many([anonymous_user_id(x) for x in sessions])
        versions = {
            r[0]: r[1:]
            for r in con.sql(
                "SELECT physical_name, table_name, version, run_id, created_at, contract_version, row_count "
                "FROM meta.table_versions"
            ).fetchall()
        }
        current = {
            r[0]: r[1]
            for r in con.sql("SELECT table_name, max(version) FROM meta.table_versions GROUP BY 1").fetchall()
        }
        has_loads = bool(
            con.sql(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'meta' "
                "AND table_name = 'raw_loads'"
            ).fetchone()[0]
        )
        for schema, table in tables:
            if schema == "raw":
                params: list[Any]
                cond, params = f"{_USER} = ?", [raw]
                if sessions and (schema, table) in with_sessions:
                    cond = f"{cond} OR ({_MISSING_USER} AND {_SESSION} IN (SELECT unnest(?::VARCHAR[])))"
                    params = [raw, sessions]
            else:
                cond, params = "trim(user_id) IN (SELECT unnest(?::VARCHAR[]))", [[pseudo, *anon]]
            rows = _records(con.execute(f'SELECT * FROM "{schema}"."{table}" WHERE {cond}', params))
            if not rows:
                continue
            if schema == "raw":
                loads = sorted({int(r["_load"]) for r in rows if r.get("_load") is not None})
                lineage: dict[str, Any] = {"layer": "raw", "table": f"raw.{table}", "location": where}
                if loads and has_loads:
                    lineage["loads"] = _records(
                        con.execute(
                            "SELECT load_id, run_id, source_file, source_sha256, loaded_at FROM meta.raw_loads "
                            "WHERE table_name = ? AND load_id IN (SELECT unnest(?::INTEGER[])) ORDER BY load_id",
                            [table, loads],
                        )
                    )
                parts[f"raw.{table}"] = {"lineage": lineage, "rows": rows}
            else:
                name, version, run_id, created, contract, _ = versions.get(
                    table, (table, None, None, None, None, None)
                )
                lineage = {
                    "layer": "curated",
                    "table": f"curated.{name}",
                    "version": version,
                    "physical_table": f"curated.{table}",
                    "current": version is not None and current.get(name) == version,
                    "run_id": run_id,
                    "created_at": _jsonable(created),
                    "contract": contract,
                    "location": where,
                }
                key = f"curated.{name}@v{version}" if version is not None else f"curated.{table}"
                parts[key] = {"lineage": lineage, "rows": rows}
        parts.update(_parquet_parts(con, [pseudo, *anon], versions, current))
        if con.sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quarantine' AND table_name = 'rows'"
        ).fetchone()[0]:
            cond, params = quarantined_of(
                raw, sessions, [pseudo, *anon]
            )  # (what the erasure deletes as theirs)
            rows = _records(
                con.execute(f"SELECT * FROM quarantine.rows WHERE {cond} ORDER BY quarantine_id", params)
            )
            if rows:
                parts["quarantine"] = {
                    "lineage": {"layer": "quarantine", "table": "quarantine.rows", "location": where},
                    "rows": rows,
                }
    return parts, sessions, anon, listed


def _parquet_parts(
    con: Any, pseudos: list[str], versions: dict[str, tuple[Any, ...]], current: dict[str, Any]
) -> dict[str, Any]:
    """The user's rows in the curated versions another engine (Spark) wrote as Parquet (their
    quarantined rows are in `quarantine.rows`, which indexes the Spark quarantine files)."""
    from ._parquet_versions import parquet_versions

    parts: dict[str, Any] = {}
    for v in parquet_versions(con):
        files = [str(f) for f in v.files]
        if not files:  # (a location no longer reachable from here: nothing to read)
            continue
        if "user_id" not in {
            r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()
        }:
            continue
        rows = _records(
            con.execute(
                "SELECT * FROM read_parquet(?) WHERE trim(user_id) IN (SELECT unnest(?::VARCHAR[]))",
                [files, pseudos],
            )
        )
        if not rows:
            continue
        _, _, run_id, created, contract, _ = versions[v.physical]
        parts[f"curated.{v.table}@v{v.version}"] = {
            "lineage": {
                "layer": "curated",
                "table": f"curated.{v.table}",
                "version": v.version,
                "physical_table": v.physical,
                "current": current.get(v.table) == v.version,
                "run_id": run_id,
                "created_at": _jsonable(created),
                "contract": contract,
                "location": v.physical,
                "format": "parquet",
            },
            "rows": rows,
        }
    return parts


def _jsonl_matches(path: Path, match: Any) -> list[dict[str, Any]]:
    """The records of a JSON-lines file that `match`, with their line numbers. Read with the
    spool's reader: a spool segment whole, never half rewritten by an erasure or retention
    run (`storage._segments.read_segment`; a file elsewhere, without a gate, is read as is);
    nothing for a file gone meanwhile (absorbed)."""
    from ..storage._segments import read_segment

    data = read_segment(path)
    out: list[dict[str, Any]] = []
    for n, line in enumerate(io.BytesIO(data or b""), 1):
        try:
            rec = json.loads(line) if line.strip() else None
        except ValueError:
            continue
        if isinstance(rec, dict) and match(rec):
            out.append({"line": n, "record": rec})
    return out


def _file_parts(
    workdir: Path, raw: str, pseudo: str, sessions: Sequence[str] = (), anon: Sequence[str] = ()
) -> dict[str, Any]:
    """The user's records in the served-event files and logs, by the erasure's rule: their own
    events and the anonymous events of the sessions linked to them; the lists served to them
    and to those sessions."""
    from ._erase import served_events_of

    raw_event, mine = served_events_of(raw, sessions), {pseudo, *anon}

    groups = [
        ("feedback", "feedback", "events-*.jsonl", raw_event),
        ("spool/events", "spool/events", "*.jsonl*", raw_event),
        ("spool/rejected", "spool/rejected", "*.jsonl*", raw_event),
        ("exposures", "spool/exposures", "*.jsonl*", lambda r: r.get("user") in mine),
        # profiling kept about them: marketing audiences they are in, the served profiles
        ("audiences", "audiences", "*/members.jsonl", lambda r: r.get("user") == pseudo),
        ("profiles", "insights/profiles", "*.jsonl", lambda r: r.get("user") == pseudo),
    ]
    parts: dict[str, Any] = {}
    for name, folder, pattern, match in groups:
        rows, files = [], []
        for p in sorted((workdir / folder).glob(pattern)):
            hits = _jsonl_matches(p, match)
            if hits:
                files.append(str(p.resolve()))
                rows += [{"file": str(p.resolve()), **h} for h in hits]
        if rows:
            parts[name] = {
                "lineage": {"layer": "files", "location": str((workdir / folder).resolve()), "files": files},
                "rows": rows,
            }
    return parts


def _bundle_parts(workdir: Path, pseudos: list[str]) -> dict[str, Any]:
    """Each bundle's history steps of the user and of their linked anonymous sessions."""
    import numpy as np

    from ..features import Interactions
    from ..models import read_manifest

    parts: dict[str, Any] = {}
    for b in sorted((workdir / "bundles").glob("[0-9]*")):
        if not (b / "interactions.npz").exists():
            continue
        inter = Interactions.load(b / "interactions.npz")
        hits = np.flatnonzero(np.isin(inter.user_ids.astype(str), np.asarray(pseudos, dtype=str)))
        if not len(hits):
            continue
        m = np.isin(inter.user_idx, hits)
        # a step's weight changes by its later events (`Interactions.raises`): the user's too
        changes: dict[int, list[dict[str, Any]]] = {}
        if inter.raises is not None:
            step, ts, w = inter.raises
            mine = m[step]
            for r, t, v in zip(step[mine], ts[mine], w[mine], strict=True):
                changes.setdefault(int(r), []).append({"timestamp": int(t), "weight": float(v)})
        manifest = read_manifest(b)
        parts[f"bundles/{b.name}"] = {
            "lineage": {
                "layer": "bundle",
                "bundle": manifest.version,
                "location": str(b.resolve()),
                "file": "interactions.npz",
                "data_versions": manifest.data_versions,
                "train_run_id": manifest.lineage.get("train_run_id"),
            },
            "rows": [
                {
                    "product_id": str(inter.item_ids[inter.item_idx[r]]),
                    "weight": float(inter.weight[r]),
                    "timestamp": int(inter.timestamp[r]),
                }
                | ({"weight_changes": changes[int(r)]} if int(r) in changes else {})
                for r in np.flatnonzero(m)
            ],
        }
    return parts


def subject_access(
    workdir: str | Path,
    raw_user_id: str,
    *,
    extra: dict[str, Any] | None = None,
    redis_client: Any = None,
) -> dict[str, Any]:
    """The access document (not written, not audited: see `write_subject_access`)."""
    workdir = Path(workdir)
    raw = trim_id(raw_user_id)
    if not raw:
        raise ShelfwiseError("--user: an empty user id")
    refuse_pseudonym(raw, "--user")  # (its "document" would be an empty one of nobody)
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(f"{workdir}: not a shelfwise workdir (no warehouse.duckdb)")
    pseudo = Pseudonymizer.of(workdir)(raw)
    from ._erase import refuse_guest

    refuse_guest(workdir, raw, pseudo)
    parts: dict[str, Any] = {}
    held, sessions, anon, listed = _warehouse_parts(workdir, raw, pseudo)
    parts.update(held)
    parts.update(_file_parts(workdir, raw, pseudo, sessions, anon))
    parts.update(_bundle_parts(workdir, [pseudo, *anon]))
    from ._consent import CONSENTS_FILE, PRIVACY_FILE
    from ._erasures import ERASURES_FILE

    parts["consent"] = {
        "lineage": {
            "layer": "register",
            "location": str((workdir / CONSENTS_FILE).resolve()),
            "defaults": str(PRIVACY_FILE),
        },
        "current": Consents.of(workdir).current(pseudo),
        "rows": consent_history(workdir, pseudo),
    }
    erased = erased_users(workdir).get(pseudo)
    parts["erasure"] = {
        "lineage": {"layer": "register", "location": str((workdir / ERASURES_FILE).resolve())},
        "erased_at": erased.isoformat() if erased else None,
    }
    audit = [
        {k: e.get(k) for k in ("seq", "at", "action", "actor", "outcome")}
        for e in AuditLog(workdir).entries()
        if isinstance(e.get("details"), dict) and e["details"].get("pseudonym") == pseudo
    ]
    if audit:
        parts["audit"] = {
            "lineage": {"layer": "audit", "location": str(AuditLog(workdir).path.resolve())},
            "rows": audit,
        }
    if redis_client is not None:
        parts.update(_redis_parts(redis_client, raw, pseudo, sessions))
    parts.update(extra or {})
    return {
        "format": FORMAT,
        "user_id": raw,
        "pseudonym": pseudo,
        # the anonymous sessions their own rows share a session id with: those sessions'
        # anonymous rows are in the warehouse, quarantine, served-event, served-log and bundle
        # parts above (an erasure deletes them as theirs)
        "linked_anonymous_sessions": listed,
        "generated_at": datetime.now(UTC).isoformat(),
        "parts": parts,
        "not_covered": [
            "the shop's own source files (the --data directories) are outside shelfwise",
            *(
                []
                if redis_client is not None
                else [
                    "events waiting in a Redis event stream and online state in Redis (`serve "
                    "--redis-url`): pass the same --redis-url to include them"
                ]
            ),
        ],
    }


def _redis_parts(client: Any, raw: str, pseudo: str, sessions: list[str]) -> dict[str, Any]:
    """What a shared Redis holds about the user: served events not yet absorbed (accepted and
    rejected streams; theirs and their linked sessions' anonymous ones) and the online state
    serving keeps (recent items, purchases)."""
    from ._erase import served_events_of

    theirs = served_events_of(raw, sessions)
    parts: dict[str, Any] = {}
    for name, stream in (("redis/events", REDIS_EVENTS), ("redis/rejected", REDIS_REJECTED)):
        rows = []
        for entry_id, fields in client.xrange(stream):
            line = fields.get(b"e", fields.get("e"))
            try:
                rec = json.loads(line)
            except (TypeError, ValueError):
                continue
            if theirs(rec):
                rows.append(
                    {"entry": entry_id.decode() if isinstance(entry_id, bytes) else entry_id, "record": rec}
                )
        if rows:
            parts[name] = {"lineage": {"layer": "redis stream", "key": stream}, "rows": rows}
    recent_key, bought_key, _ = online_keys(pseudo)
    recent = [x.decode() if isinstance(x, bytes) else x for x in client.lrange(recent_key, 0, -1)]
    bought = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in client.hgetall(bought_key).items()
    }
    if recent or bought:
        parts["redis/online"] = {
            "lineage": {"layer": "redis online state", "keys": [recent_key, bought_key]},
            "rows": [{"recent_items": recent, "purchases": bought}],
        }
    return parts


def write_subject_access(
    workdir: str | Path,
    raw_user_id: str,
    out: str | Path,
    *,
    actor: str | None = None,
    extra: dict[str, Any] | None = None,
    redis_client: Any = None,
) -> dict[str, Any]:
    """Write the access document to `out` (owner-only) and audit it; returns a summary
    (`pseudonym`, `out`, `parts`: rows per part, `erased_at`: when the user was erased, the
    document's time, in UTC without an offset as curated timestamps are; None when never). `redis_client`: also what a shared Redis holds."""
    doc = subject_access(workdir, raw_user_id, extra=extra, redis_client=redis_client)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1, default=str)
    counts = {name: len(p.get("rows", [])) for name, p in doc["parts"].items()}
    AuditLog(workdir).append("privacy.export", actor=actor, pseudonym=doc["pseudonym"], parts=counts)
    at = doc["parts"]["erasure"]["erased_at"]
    return {"pseudonym": doc["pseudonym"], "out": str(out), "parts": counts, "erased_at": at}
