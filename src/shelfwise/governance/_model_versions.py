"""The model registry, read side: the registered bundle versions with their aliases and tags.

Governance reads it (the data catalog lists models, retention keeps the bundles an alias points
at) and the gated registry (`lifecycle._registry`) builds on it; kept here, below both, so that
governance does not import the lifecycle.

Every read through MLflow also writes what it read to `state/registry_versions.json` with the
registry file's size and mtime (its stamp); a reader that only needs the versions (the catalog,
the console's pages) takes that snapshot while the stamp still matches, without importing MLflow
(seconds in a fresh process). The gated registry's writes refresh it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

MODEL = "shelfwise-bundle"
HEADLINE = "ndcg@10"
# the headline of a catalog with product groups (served lists show one product per group)
GROUP_HEADLINE = "group_ndcg@10"

__all__ = [
    "GROUP_HEADLINE",
    "HEADLINE",
    "chosen_metric",
    "bundle_path",
    "MODEL",
    "REGISTRY_SNAPSHOT",
    "alias_version",
    "mlflow_client",
    "no_telemetry",
    "registered_versions",
    "tracking_uri",
]

REGISTRY_SNAPSHOT = Path("state") / "registry_versions.json"


def no_telemetry() -> None:
    """Before MLflow is first imported: its usage telemetry off (MLflow 3 fetches a config from
    config.mlflow-telemetry.io and sends usage records at import and on each logged run; a
    shop's training must not call anyone). A shop that sets MLFLOW_DISABLE_TELEMETRY itself
    keeps its value. Every import of mlflow in shelfwise goes through this module (this
    function at module import, `lifecycle._train` calling it again before its own import)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


no_telemetry()
_REGISTRY_FILES = ("mlflow.db", "mlflow.db-wal", "mlflow.db-journal")


def tracking_uri(workdir: Path) -> str:
    """The workdir's SQLite tracking and registry store (`mlflow.db`).

    A new workdir's store starts as a copy of an empty, already migrated one, kept per MLflow
    version in the shelfwise cache: creating the tables runs MLflow's alembic migrations, which
    cost about ten seconds on every new shop otherwise.
    """
    db = (Path(workdir) / "mlflow.db").resolve()
    if not db.exists():
        _seed_store(db)
    return f"sqlite:///{db.as_posix()}"


def _seed_store(db: Path) -> None:
    import sqlite3

    import mlflow

    from ..features._text_encoder import cache_dir

    template = cache_dir() / "mlflow" / f"empty-{mlflow.__version__}.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        staging = template.with_name(f"{template.name}.{os.getpid()}.tmp")
        staging.unlink(missing_ok=True)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{staging.as_posix()}", (template.parent / "unused").as_uri())
        store.engine.dispose()
        os.replace(staging, template)  # whole or absent: a concurrent creator writes the same
    db.parent.mkdir(parents=True, exist_ok=True)
    staging = db.with_name(f"{db.name}.{os.getpid()}.tmp")
    shutil.copyfile(template, staging)
    con = sqlite3.connect(staging)
    try:  # the default experiment's artifacts belong in this workdir, as for a store made here
        with con:
            con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                ((db.parent / "mlruns").as_uri(),),
            )
    finally:
        con.close()
    try:
        os.link(staging, db)  # never over a store another process made meanwhile
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: an exclusive create, then the copy
        try:
            with open(db, "xb") as out, open(staging, "rb") as src:
                shutil.copyfileobj(src, out)
        except FileExistsError:
            pass
    finally:
        staging.unlink()


def mlflow_client(workdir: Path) -> Any:
    """An MLflow client on the workdir's registry (`mlflow.db`)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    from mlflow import MlflowClient

    uri = tracking_uri(workdir)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(client: Any, alias: str) -> str | None:
    """The version an alias (`production`, `candidate`) points at, if any."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(MODEL, alias).version)
    except MlflowException:
        return None


def _registry_stamp(workdir: Path) -> list[Any]:
    """What the registry's files look like now: any write through MLflow changes it."""
    out: list[Any] = []
    for name in _REGISTRY_FILES:
        try:
            st = (workdir / name).stat()
            out.append([st.st_size, st.st_mtime_ns])
        except OSError:
            out.append(None)
    try:  # SQLite's file change counter (header bytes 24-27): two commits within one clock tick
        with open(workdir / "mlflow.db", "rb") as fh:  # that keep the size still differ in it
            fh.seek(24)
            out.append(int.from_bytes(fh.read(4), "big"))
    except OSError:
        out.append(None)
    return out


def _read_snapshot(workdir: Path) -> list[dict[str, Any]] | None:
    try:
        snap = json.loads((workdir / REGISTRY_SNAPSHOT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(snap, dict) or snap.get("stamp") != _registry_stamp(workdir):
        return None  # the registry changed since: read it through MLflow
    versions = snap.get("versions")
    return versions if isinstance(versions, list) else None


def _write_snapshot(workdir: Path, stamp: list[Any], versions: list[dict[str, Any]]) -> None:
    path = workdir / REGISTRY_SNAPSHOT
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as fh:
            json.dump({"stamp": stamp, "versions": versions}, fh)
        os.replace(fh.name, path)  # whole or not at all: readers never see half a snapshot
    except OSError:
        pass  # a read-only workdir: the next reader goes through MLflow as before


def bundle_path(workdir: str | Path, source: str) -> str:
    """A registered version's bundle folder in this workdir: MLflow keeps the absolute path it
    was registered from, so a workdir copied or moved elsewhere (its old folder removed) finds
    the bundle under the same name in its own `bundles/`."""
    here = Path(workdir) / "bundles" / Path(source).name
    if here.is_dir():
        return str(here)
    # the registered path only when it is this workdir's: a copy of a workdir whose bundle
    # retention removed read (and put live) the original workdir's bundle of that name
    try:
        inside = Path(source).resolve().is_relative_to(Path(workdir).resolve())
    except (OSError, ValueError):
        inside = False
    return source if inside else str(here)


def _with_presence(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each version's `bundle_gone`: its folder was removed (retention keeps only the newest
    bundles and those the aliases name): such a version can never go live again."""
    return [
        {**r, "bundle_gone": bool(r.get("path")) and not (Path(r["path"]) / "manifest.json").exists()}
        for r in rows
    ]


def registered_versions(
    workdir: str | Path, client: Any = None, *, use_snapshot: bool = False
) -> list[dict[str, Any]]:
    """Every registered bundle version, oldest first, with its aliases, headline metric, gates
    and approvals ([] when none is registered). `use_snapshot`: the snapshot of the last read
    when the registry has not changed since (no MLflow import; see the module docstring)."""
    workdir = Path(workdir)
    if use_snapshot and client is None and (got := _read_snapshot(workdir)) is not None:
        return _with_presence(
            [{**r, "path": bundle_path(workdir, r["path"])} if r.get("path") else r for r in got]
        )
    from mlflow.exceptions import MlflowException

    client = client if client is not None else mlflow_client(workdir)
    before = _registry_stamp(workdir)
    try:
        mvs = client.search_model_versions(f"name='{MODEL}'")
    except MlflowException:
        return []
    prod, cand = alias_version(client, "production"), alias_version(client, "candidate")
    out = []
    for mv in sorted(mvs, key=lambda m: int(m.version)):
        tags = dict(mv.tags)
        aliases = [a for a, v in (("production", prod), ("candidate", cand)) if v == str(mv.version)]
        out.append(
            {
                "version": str(mv.version),
                "bundle": tags.get("bundle_version"),
                "path": bundle_path(workdir, mv.source),
                "aliases": aliases,
                "default_model": tags.get("default_model"),
                HEADLINE: float(tags["ndcg_at_10"]) if tags.get("ndcg_at_10") else None,
                # what that number measures (split, targets, candidates): two versions' numbers
                # are on one scale only when it is the same
                "measured_as": tags.get("measured_as") or _measured_as_of(workdir, mv.source),
                # the metric its gates read (the one that chose its default model) and its value
                **_gate_metric(workdir, mv.source, tags),
                "registered_by": tags.get("registered_by"),
                "approved_by": tags.get("approved_by"),
                # who had approved a version rolled back ("eve (rolled back)"): it needs a new
                # approval to go live again
                "approval_withdrawn": tags.get("approval_withdrawn"),
                "gates": json.loads(tags.get("gates", "[]")),
                # a candidate a newer one replaced awaits no approval any more (its tag stays)
                "status": "superseded"
                if tags.get("status", "candidate") == "candidate" and "candidate" not in aliases
                else tags.get("status", "candidate"),
                "previous_production": tags.get("previous_production"),
            }
        )
    if _registry_stamp(workdir) == before:  # nothing was written while we read
        _write_snapshot(workdir, before, out)
    return _with_presence(out)


def chosen_metric(manifest: Any) -> str:
    """The metric that chose a bundle's default model, which its gates read: the manifest's
    `default_chosen_by` (`train`: the validation `group_ndcg@10` where the catalog has product
    groups, else `ndcg@10`) when the bundle's test numbers hold it; a bundle without one (trained
    before it was kept, or with no validation users to choose by) the group NDCG@10 where its test
    numbers have it (its catalog has groups, as `train` would have chosen), else `ndcg@10`."""
    default = manifest.get("default_model")
    measured = ((manifest.get("metrics") or {}).get(default)) or {}
    chosen = manifest.get("default_chosen_by")
    metric = chosen.get("metric") if isinstance(chosen, dict) else None
    if isinstance(metric, str) and (metric in measured or not measured):
        return metric
    return GROUP_HEADLINE if GROUP_HEADLINE in measured else HEADLINE


def _manifest_at(workdir: str | Path, source: str) -> dict[str, Any] | None:
    try:
        got = json.loads((Path(bundle_path(workdir, source)) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) else None


def measured_as(manifest: Any) -> str:
    """What a bundle's test numbers measure, from its manifest: the split, its targets and the
    candidates (the cut dates and users differ from run to run; what a target is must not)."""
    p = manifest.get("protocol") or {}
    desc = str(p.get("split_description", ""))
    targets = desc.split("targets: ", 1)[1] if "targets: " in desc else "each user's held-out step"
    # full ranking over the catalog, however many products it lists today: a delivery that adds
    # a product (nearly every one) must not make two bundles "not comparable", which let a worse
    # candidate pass this gate
    candidates = re.sub(r"^full ranking \((the [\d,]+ listed items|all items)\)$", "full ranking (the catalog)",
                        str(p.get("candidates")))  # fmt: skip
    return f"{p.get('split')} ({targets}; {candidates})"


def _gate_metric(workdir: str | Path, source: str, tags: dict[str, str]) -> dict[str, Any]:
    """`gate_metric` and `gate_score` of a registered version: its tags, or (registered before
    they were kept) its manifest's (`chosen_metric`)."""
    metric, score = tags.get("gate_metric"), tags.get("gate_score")
    if not metric:
        manifest = _manifest_at(workdir, source)
        if manifest is None:
            return {
                "gate_metric": HEADLINE,
                "gate_score": float(tags["ndcg_at_10"]) if tags.get("ndcg_at_10") else None,
            }
        metric = chosen_metric(manifest)
        got = ((manifest.get("metrics") or {}).get(manifest.get("default_model")) or {}).get(metric)
        return {"gate_metric": metric, "gate_score": None if got is None else float(got)}
    return {"gate_metric": metric, "gate_score": float(score) if score else None}


def _measured_as_of(workdir: str | Path, source: str) -> str | None:
    """`measured_as` of a version registered before the tag was kept, from its manifest."""
    manifest = _manifest_at(workdir, source)
    return None if manifest is None else measured_as(manifest)
