"""Right to erasure: remove one user from everything shelfwise holds, without a retrain.

- warehouse: the user's rows in every raw table (raw ids), every version of every curated table
  (pseudonym) and the quarantine (raw fields, and malformed lines that name the id);
- files: the served-events spool and its archive (`feedback/`), the exposure log (served lists),
  the consent register (the user's records go, a tombstone stays), stored marketing audiences and
  served customer profiles;
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
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ._audit import AuditLog
from ._consent import CONSENTS_FILE, erase_consent
from ._erasures import ERASURES_FILE
from ._lineage import DatasetRef, LineageRun, warehouse_namespace
from ._privacy import Pseudonymizer, SecretStore, is_anonymous_raw


def erase_user(
    workdir: str | Path, raw_user_id: str, *, actor: str | None = None, redis_client: Any = None
) -> dict[str, Any]:
    workdir = Path(workdir)
    if not raw_user_id.strip():
        raise ShelfwiseError("--user: an empty user id")
    if is_anonymous_raw(raw_user_id.strip()):
        # its rows name no person (no user id, a session): nobody can ask for them; retention
        # (`shelfwise retention enforce`) removes them with the rest of the old data
        raise ShelfwiseError(
            f"--user {raw_user_id!r}: an anonymous session, not a customer: its rows carry no user id "
            "(`shelfwise retention enforce` removes them with the rest of the old data)"
        )
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(f"{workdir}: not a shelfwise workdir (no warehouse.duckdb)")
    pseudo = Pseudonymizer(SecretStore(workdir).pseudonym_key())(raw_user_id)
    lineage = LineageRun(workdir, "shelfwise.privacy.erase", []).start()
    report: dict[str, Any] = {"pseudonym": pseudo, "warehouse": {}, "files": {}, "bundles": {}}
    touched: list[DatasetRef] = []
    try:
        report["warehouse"] = _erase_warehouse(workdir, raw_user_id, pseudo)
        # registered at once, before files and bundles: should a later step fail, every later
        # load still withholds the user's rows and running servers still forget them (a retry
        # finishes the rest: a bundle that still holds the user is erased again)
        path = workdir / ERASURES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:  # running servers forget the user and reload
            fh.write(json.dumps({"pseudonym": pseudo, "at": datetime.now(UTC).isoformat()}) + "\n")
        ns = warehouse_namespace(workdir)
        touched += [DatasetRef(ns, t, rows=n) for t, n in report["warehouse"].items() if n]
        report["files"] = _erase_files(workdir, raw_user_id, pseudo)
        # the consent history goes; a tombstone remembers the erasure (servers drop the state)
        report["files"][str(CONSENTS_FILE)] = erase_consent(workdir, pseudo)
        touched += [
            DatasetRef("file", str((workdir / f).resolve()), rows=n) for f, n in report["files"].items() if n
        ]
        for b in sorted((workdir / "bundles").glob("[0-9]*")):
            n = _erase_bundle(b, pseudo)
            report["bundles"][b.name] = n
            if n:
                touched.append(DatasetRef("file", str(b.resolve()), rows=n))
        if redis_client is not None:
            from ._online_keys import online_keys

            redis_client.delete(*online_keys(pseudo))  # what `serving._online.RedisState` holds
            report["redis"] = "forgotten"
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete(touched)
    report["lineage_run_id"] = lineage.run_id
    report["not_covered"] = (
        "the shop's own source files (the --data directories) are outside shelfwise; "
        "delete the user there too (later loads of them withhold the user's rows dated up to this erasure)"
    )
    AuditLog(workdir).append(
        "privacy.erase",
        actor=actor,
        pseudonym=pseudo,
        warehouse=report["warehouse"],
        files=report["files"],
        bundles=report["bundles"],
        lineage_run_id=lineage.run_id,
    )
    return report


def _erase_warehouse(workdir: Path, raw: str, pseudo: str) -> dict[str, int]:
    from ..storage import Warehouse

    out: dict[str, int] = {}
    with Warehouse(workdir) as wh:
        tables = wh.sql(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE column_name = 'user_id' AND table_schema IN ('raw', 'curated') "
            "AND table_name IN (SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema = information_schema.columns.table_schema)"
        ).fetchall()
        for schema, table in tables:
            value = raw if schema == "raw" else pseudo
            n = wh.sql(f'DELETE FROM "{schema}"."{table}" WHERE trim(user_id) = ?', [value]).fetchone()
            out[f"{schema}.{table}"] = int(n[0]) if n else 0
            if schema == "curated" and out[f"{schema}.{table}"]:
                # the version's recorded size and content hash describe what it now holds (a
                # bundle trained afterwards states the rows it was trained on)
                count, digest = wh.fingerprint(f'curated."{table}"')
                wh.sql(
                    "UPDATE meta.table_versions SET row_count = ?, content_hash = ? WHERE physical_name = ?",
                    [count, digest, table],
                )
        out.update(_erase_parquet(wh, raw, pseudo))
        if wh.exists("quarantine", "rows"):
            token = '(^|[,;\\t|"])' + re.escape(raw) + '([,;\\t|"]|$)'
            n = wh.sql(
                "DELETE FROM quarantine.rows WHERE trim(json_extract_string(raw, '$.user_id')) = ? "
                "OR regexp_matches(coalesce(json_extract_string(raw, '$.line'), ''), ?)",
                [raw, token],
            ).fetchone()
            out["quarantine.rows"] = int(n[0]) if n else 0
        wh.sql("CHECKPOINT")
    return out


def _erase_parquet(wh: Any, raw: str, pseudo: str) -> dict[str, int]:
    """Versions another engine (Spark) wrote as Parquet, and its quarantine files beside them:
    each file holding the user's rows is rewritten without them (the catalog's views read the
    files, so the curated table no longer shows them)."""
    from ._parquet_versions import parquet_versions, quarantine_dirs, refresh_versions, rewrite_files

    versions = parquet_versions(wh)
    out: dict[str, int] = {}
    for v in versions:
        out.update(rewrite_files(v.files, "user_id", "trim(user_id) = $2", [pseudo]))
    for _, _, folder in quarantine_dirs(versions):
        out.update(
            rewrite_files(
                sorted(folder.glob("*.parquet")),
                "raw",
                "trim(json_extract_string(raw, '$.user_id')) = $2",
                [raw],
            )
        )
    refresh_versions(wh, versions, out)
    return out


def _rewrite_jsonl(path: Path, drop: Any) -> int:
    kept, dropped = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                rec = json.loads(line) if line.strip() else None
            except ValueError:
                rec = None
            if rec is not None and drop(rec):
                dropped += 1
            else:
                kept.append(line)
    if dropped:
        tmp = path.with_name(path.name + ".erase-tmp")
        with open(tmp, "wb") as fh:
            fh.writelines(kept)
        tmp.replace(path)
    return dropped


def _erase_files(workdir: Path, raw: str, pseudo: str) -> dict[str, int]:
    def raw_event(rec: dict[str, Any]) -> bool:
        ev = rec.get("event", rec)
        return isinstance(ev, dict) and str(ev.get("user_id", "")).strip() == raw

    out: dict[str, int] = {}
    groups = [
        ("feedback", "events-*.jsonl", raw_event),
        ("spool/events", "*.jsonl", raw_event),
        ("spool/rejected", "*.jsonl", raw_event),
        ("spool/exposures", "*.jsonl*", lambda r: r.get("user") == pseudo),
        # insights (issue 18): stored marketing audiences and served profiles, by pseudonym
        ("audiences", "*/members.jsonl", lambda r: r.get("user") == pseudo),
        ("insights/profiles", "*.jsonl", lambda r: r.get("user") == pseudo),
    ]
    for folder, pattern, drop in groups:
        n = sum(_rewrite_jsonl(p, drop) for p in sorted((workdir / folder).glob(pattern)))
        out[folder] = n
    out[str(CONSOLE_FIGURES)] = drop_console_figures(workdir)
    return out


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


def _erase_bundle(path: Path, pseudo: str) -> int:
    """Remove one user from a bundle in place; returns the steps removed (0: not in it)."""
    from ..features import Interactions
    from ..models import read_manifest, write_manifest
    from ..storage import file_sha256

    inter = Interactions.load(path / "interactions.npz")
    hits = np.flatnonzero(inter.user_ids.astype(str) == pseudo)
    if len(hits) == 0:
        return 0
    u = int(hits[0])
    keep = inter.user_idx != u
    user_ids = inter.user_ids.astype(object).copy()
    user_ids[u] = f"erased_{u}"  # the index stays (model state is indexed by it); the id is gone
    steps = int((~keep).sum())
    erased = Interactions(
        inter.user_idx[keep],
        inter.item_idx[keep],
        inter.weight[keep],
        inter.timestamp[keep],
        user_ids,
        inter.item_ids,
    )
    # the models forget first (the served fits and the train-fold fits kept for `evaluate` alike):
    # should one fail, the bundle's history still names the user and a retry erases it again
    for model_dir in sorted(
        {p.parent for p in [*path.glob("models/*/state.pkl"), *path.glob("evaluated/*/state.pkl")]}
    ):
        _forget_in_model(model_dir, u, erased, path.name)
    sv = path / "serving.npz"
    if sv.exists():
        with np.load(sv) as z:
            arrays = {k: z[k] for k in z.files}
        if "toplist" in arrays and u < len(arrays["toplist"]):
            arrays["toplist"][u] = -1
        if "purchase_user" in arrays:
            m = arrays["purchase_user"] != u
            for k in ("purchase_user", "purchase_item", "purchase_ts"):
                arrays[k] = arrays[k][m]
        np.savez_compressed(sv, **arrays)  # type: ignore[arg-type]
    erased.save(path / "interactions.npz")
    manifest = read_manifest(path)
    manifest.files = {rel: file_sha256(path / rel) for rel in manifest.files if (path / rel).exists()}
    manifest.erasures.append({"pseudonym": pseudo, "at": datetime.now(UTC).isoformat()})
    write_manifest(path, manifest)
    return steps


def _forget_in_model(model_dir: Path, user: int, interactions: Any, bundle: str) -> None:
    """The saved model in `model_dir` forgets `user`, through the model's own `forget_users`
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
    model.forget_users([user])
    model.save(model_dir)
