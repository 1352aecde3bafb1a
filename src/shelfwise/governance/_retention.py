"""Retention: how long each kind of data is kept, enforced by `shelfwise retention enforce`.

`<workdir>/config/retention.json` (defaults below when absent; `null` keeps forever):

    {"events_days": null, "quarantine_days": 365, "served_log_days": 365, "bundles_keep": 5,
     "curated_versions_kept": 10, "consent_history_days": null}

- `events_days`: behaviour events older than this leave every version of `curated.events` (the
  Parquet versions Spark wrote too: their files are rewritten), the raw layer (by their parsed
  timestamp; a row whose time cannot be read, by the time it was loaded), the served-events archive (`feedback/`) and the histories and purchase lists of
  the bundles kept (the steps begun before the cutoff: a rollback serves no older history),
  and the quarantine (a quarantined event dated before the cutoff, with the Spark loads'
  quarantine files; one whose time cannot be read is left to `quarantine_days`);
- `quarantine_days`: quarantined rows older than this (by quarantine time) are deleted, with the
  quarantine files of the Spark loads they came from;
- `served_log_days`: exposure-log lines older than this are deleted;
- `consent_history_days`: superseded consent records older than this leave the consent register
  (each user's current consent and the erasure tombstones are kept: they are what is obeyed);
- `bundles_keep`: only the newest N bundles are kept, plus the ones that `bundles/CURRENT` and the
  registry's production and candidate aliases name (older bundles hold older histories).

Each run is audited and emits an OpenLineage run naming what it changed.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ._audit import AuditLog
from ._lineage import DatasetRef, LineageRun, warehouse_namespace

RETENTION_FILE = Path("config") / "retention.json"
DEFAULTS: dict[str, int | None] = {
    "events_days": None,
    "quarantine_days": 365,
    "served_log_days": 365,
    "bundles_keep": 5,
    # the curated events table's last versions kept (and those a kept bundle learned from): a
    # server absorbing events every 30 s made a full copy of the table each time
    "curated_versions_kept": 10,
    "consent_history_days": None,  # the history of consent is its proof: kept unless the shop says
}


def load_retention(workdir: str | Path) -> dict[str, int | None]:
    path = Path(workdir) / RETENTION_FILE
    out = dict(DEFAULTS)
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except ValueError as exc:
            raise ShelfwiseError(f"{path}: not valid JSON: {exc}") from None
        unknown = set(doc) - set(DEFAULTS)
        if unknown:
            raise ShelfwiseError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        for k, v in doc.items():
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ShelfwiseError(f"{path}: {k} must be a whole number >= 0 or null")
            out[k] = v
    return out


def prune_curated_versions(wh: Any, table: str) -> list[int]:
    """After a load published a version of `table`: drop its versions older than the last
    `curated_versions_kept` (config/retention.json; null keeps every one), but those a bundle
    in the workdir learned from (its manifest's `data_versions`)."""
    keep = load_retention(wh.workdir)["curated_versions_kept"]
    if keep is None:
        return []
    pinned: set[int] = set()
    for manifest in sorted((Path(wh.workdir) / "bundles").glob("*/manifest.json")):
        try:
            v = json.loads(manifest.read_text()).get("data_versions", {}).get(table, {}).get("version")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(v, int):
            pinned.add(v)
    return list(wh.drop_versions(table, keep, pinned))


def enforce_retention(
    workdir: str | Path, *, actor: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    from ..storage import Warehouse
    from ._compile import timestamp_expr

    workdir = Path(workdir)
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(f"{workdir}: not a shelfwise workdir (no warehouse.duckdb)")
    policy = load_retention(workdir)
    now = now or datetime.now(UTC)
    days = policy["events_days"]
    # (one cutoff for every copy of the events: warehouse, archive, bundles)
    events_cutoff = None if days is None else (now - timedelta(days=days)).replace(tzinfo=None)
    lineage = LineageRun(workdir, "shelfwise.retention", []).start()
    deleted: dict[str, int] = {}
    try:
        with Warehouse(workdir) as wh:
            if events_cutoff is not None:
                cutoff = events_cutoff
                for (name,) in wh.sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'curated' "
                    "AND table_type = 'BASE TABLE' AND table_name LIKE 'events__v%'"
                ).fetchall():
                    n = wh.sql(f'DELETE FROM curated."{name}" WHERE "timestamp" < ?', [cutoff]).fetchone()
                    deleted[f"curated.{name}"] = int(n[0]) if n else 0
                    if deleted[f"curated.{name}"]:
                        wh.refresh_version(name)
                deleted.update(_expire_parquet_events(wh, cutoff))
                if wh.exists("raw", "events"):
                    ts = timestamp_expr("nullif(trim(\"timestamp\"), '')")
                    if wh.exists("meta", "raw_loads"):
                        # a row whose time cannot be read ("yesterday", "31/02/2026 25:61") ages
                        # from its load: it was kept for ever, shop ids and all
                        ts = (
                            f"coalesce({ts}, (SELECT m.loaded_at FROM meta.raw_loads m "
                            "WHERE m.load_id = raw.events._load))"
                        )
                    n = wh.sql(f"DELETE FROM raw.events WHERE ({ts}) < ?", [cutoff]).fetchone()
                    deleted["raw.events"] = int(n[0]) if n else 0
                # the quarantined events dated before it (shop ids and text as received): kept
                # until `quarantine_days` after their quarantine, a later load of the same old
                # rows leaving nothing anywhere; one whose time cannot be read ages from there
                deleted.update(_expire_parquet_quarantine_events(wh, cutoff))
                if wh.exists("quarantine", "rows"):
                    n = wh.sql(
                        f"DELETE FROM quarantine.rows WHERE table_name = 'events' AND ({_QUARANTINED_AT}) < ?",
                        [cutoff],
                    ).fetchone()
                    deleted["quarantine.rows (events_days)"] = int(n[0]) if n else 0
            if policy["quarantine_days"] is not None:
                cutoff = (now - timedelta(days=policy["quarantine_days"])).replace(tzinfo=None)
                # (first: the Spark loads' quarantine times are read from the rows deleted below)
                deleted.update(_expire_parquet_quarantine(wh, cutoff))
                if wh.exists("quarantine", "rows"):
                    n = wh.sql("DELETE FROM quarantine.rows WHERE quarantined_at < ?", [cutoff]).fetchone()
                    deleted["quarantine.rows"] = int(n[0]) if n else 0
            wh.sql("CHECKPOINT")
        deleted_rows = any(deleted.values())  # (their bytes leave the file too, at the end)
        if events_cutoff is not None:
            from ._erase import _rewrite_jsonl
            from ._row_check import parse_timestamp

            cutoff = events_cutoff

            def old_event(rec: dict[str, Any]) -> bool:
                t = parse_timestamp(str(rec.get("timestamp", "")).strip())
                return t is not None and t < cutoff

            deleted["feedback"] = sum(
                _rewrite_jsonl(p, old_event) for p in (workdir / "feedback").glob("*.jsonl")
            )
            from ._erase import CONVERTED, drop_converted

            # (a converted copy a load left when its process died: the shop's events, all dates)
            deleted[CONVERTED] = drop_converted(workdir)
        if policy["served_log_days"] is not None:
            from ..storage._segments import rewrite_segments

            limit = (now - timedelta(days=policy["served_log_days"])).timestamp()
            # every segment: a stopped server's open one, and a running server's (in place)
            deleted["spool/exposures"] = rewrite_segments(
                workdir / "spool" / "exposures", lambda r: float(r.get("at", limit)) < limit
            )
        if policy["consent_history_days"] is not None:
            from ._consent import CONSENTS_FILE, prune_history

            deleted[str(CONSENTS_FILE)] = prune_history(
                workdir, now - timedelta(days=policy["consent_history_days"])
            )
        deleted["bundles"] = _prune_bundles(workdir, policy["bundles_keep"])
        if events_cutoff is not None:  # the bundles kept: a rollback serves no older history
            deleted["bundles/history"] = sum(
                _expire_bundle(b, events_cutoff)
                for b in sorted((workdir / "bundles").glob("[0-9]*"))
                if b.is_dir()
            )
        from ._erase import CONSOLE_FIGURES, compact_if_owed, drop_console_figures

        deleted[str(CONSOLE_FIGURES)] = drop_console_figures(workdir)
        # last, the rest done: the warehouse file rewritten without the deleted rows' bytes
        compacted = compact_if_owed(workdir, owed=deleted_rows)
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    ns = warehouse_namespace(workdir)
    lineage.complete([DatasetRef(ns, t, rows=n) for t, n in deleted.items() if n and "." in t])
    AuditLog(workdir).append("retention.enforce", actor=actor, policy=policy, deleted=deleted)
    out = {"policy": policy, "deleted": deleted, "lineage_run_id": lineage.run_id}
    if compacted is not None:
        out["warehouse_compacted"] = compacted
    return out


def _quarantined_time() -> str:
    """SQL of a quarantined event's own time (its `timestamp` field as received, parsed as the
    row checks parse it; NULL when it has none, it cannot be read or it is implausible, before
    1990: an epoch's zero is no time of the event)."""
    from ._compile import timestamp_expr

    ts = timestamp_expr("nullif(trim(json_extract_string(raw, '$.timestamp')), '')")
    return f"CASE WHEN ({ts}) >= TIMESTAMP '1990-01-01' THEN ({ts}) END"


_QUARANTINED_AT = _quarantined_time()


def _expire_parquet_quarantine_events(wh: Any, cutoff: datetime) -> dict[str, int]:
    """A Spark load's quarantined events dated before `cutoff`: their files rewritten without them
    (`quarantine.rows`, which indexes them, loses them next)."""
    from ._parquet_versions import parquet_versions, quarantine_dirs, rewrite_files

    n = 0
    for table, _, folder in quarantine_dirs(parquet_versions(wh)):
        if table == "events":
            gone = rewrite_files(
                sorted(folder.glob("*.parquet")), "raw", f"({_QUARANTINED_AT}) < $2", [cutoff]
            )
            n += sum(gone.values())
    return {"quarantine.parquet (events_days)": n} if n else {}


def _expire_parquet_events(wh: Any, cutoff: datetime) -> dict[str, int]:
    """Spark-written versions of curated.events: files rewritten without the events before `cutoff`."""
    from ._parquet_versions import parquet_versions, refresh_versions, rewrite_files

    versions = parquet_versions(wh, "events")
    out: dict[str, int] = {}
    changed: dict[str, int] = {}
    for v in versions:
        gone = rewrite_files(v.files, "timestamp", '"timestamp" < $2', [cutoff])
        changed.update(gone)
        out[f"curated.events__v{v.version}"] = sum(gone.values())  # named as DuckDB's versions are
    refresh_versions(wh, versions, changed)
    return out


def _expire_parquet_quarantine(wh: Any, cutoff: datetime) -> dict[str, int]:
    """A Spark load's quarantine files go once its rows are older than `cutoff` (by the time they
    were quarantined, as `quarantine.rows` records it; the run's start where no row is left)."""
    from ._parquet_versions import parquet_versions, quarantine_dirs

    n = 0
    for table, run_id, folder in quarantine_dirs(parquet_versions(wh)):
        row = wh.sql(
            "SELECT coalesce((SELECT max(quarantined_at) FROM quarantine.rows WHERE run_id = ? AND table_name = ?), "
            "(SELECT started_at FROM meta.runs WHERE run_id = ?))",
            [run_id, table, run_id],
        ).fetchone()
        at = row[0] if row else None
        if at is None or at >= cutoff:
            continue
        files = sorted(folder.glob("*.parquet"))
        if files:
            counted = wh.sql("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]]).fetchone()
            n += int(counted[0]) if counted else 0
        shutil.rmtree(folder)
    return {"quarantine.parquet": n}


def _expire_bundle(path: Path, cutoff: datetime) -> int:
    """A bundle's history without the steps begun before `cutoff` (with their weight changes)
    and its purchase list (the repurchase rule's) without the purchases before it; returns the
    steps removed. A step is dated by its first event, as the history is (`Interactions`); the
    models' fitted parameters are derived from the history, not events, and stay. Under the
    bundle's lock (a server loading it waits); the manifest records the trim (`retention`:
    `evaluate` says its numbers are measured on what is left)."""
    from ..storage._segments import folder_lock

    with folder_lock(path, shared=False):
        return _expire_bundle_locked(path, cutoff)


def _expire_bundle_locked(path: Path, cutoff: datetime) -> int:
    from ..features import Interactions
    from ..models import read_manifest, write_manifest
    from ..storage import file_sha256

    if not (path / "interactions.npz").exists():
        return 0
    limit = int(cutoff.replace(tzinfo=UTC).timestamp())
    inter = Interactions.load(path / "interactions.npz")
    keep = inter.timestamp >= limit
    n = int((~keep).sum())
    sv = path / "serving.npz"
    arrays: dict[str, np.ndarray] = {}
    if sv.exists():
        with np.load(sv) as z:
            arrays = {k: z[k] for k in z.files}
    recent = arrays["purchase_ts"] >= limit if "purchase_ts" in arrays else None
    if n == 0 and (recent is None or recent.all()):
        return 0
    # each file written whole beside the old one and renamed over it, then the manifest: a
    # server loading the bundle meanwhile reads either file whole (a crash leaves a hash to
    # mend, never a half-written archive)
    changed: list[str] = []
    if recent is not None and not recent.all():
        for k in ("purchase_user", "purchase_item", "purchase_ts"):
            arrays[k] = arrays[k][recent]
        tmp = path / ".serving.retention.npz"
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, sv)
        changed.append("serving.npz")
    if n:
        tmp = path / ".interactions.retention.npz"
        inter.take(keep).save(tmp)
        os.replace(tmp, path / "interactions.npz")
        changed.append("interactions.npz")
    manifest = read_manifest(path)
    manifest.files |= {rel: file_sha256(path / rel) for rel in changed if rel in manifest.files}
    if n:
        done = manifest.extra.get("retention") or {}
        manifest.extra["retention"] = {
            "cutoff": cutoff.isoformat(),
            "steps_removed": int(done.get("steps_removed", 0)) + n,
        }
    write_manifest(path, manifest)
    return n


def _prune_bundles(workdir: Path, keep: int | None) -> int:
    if keep is None:
        return 0
    root = workdir / "bundles"
    bundles = sorted(p for p in root.glob("[0-9]*") if p.is_dir())
    protected = set(b.name for b in bundles[-keep:]) if keep else set()
    if (root / "CURRENT").exists():
        protected.add((root / "CURRENT").read_text().strip())
    if (workdir / "mlflow.db").exists():
        from ._model_versions import registered_versions

        # (the registry's snapshot while it is unchanged: no MLflow import, see `registered_versions`)
        versions = registered_versions(workdir, use_snapshot=True)
        bundle_of = {v["version"]: str(v["bundle"]) for v in versions}
        for v in versions:
            if v["aliases"]:
                protected.add(str(v["bundle"]))
            if "production" in v["aliases"] and v.get("previous_production") in bundle_of:
                # what `models rollback` goes back to: kept while its successor serves
                protected.add(bundle_of[v["previous_production"]])
    n = 0
    for b in bundles:
        if b.name not in protected:
            shutil.rmtree(b)
            n += 1
    return n
