"""The bundle manifest: a typed, versioned record of what a bundle holds and how it was made.

`BundleManifest.from_dict` is the one place that reads a manifest written by an older shelfwise
(upgrading it to the current schema); everything else reads the typed fields. Schema versions:

1. (no `schema_version` key) up to 0.9: budgets in wall-clock seconds, `evaluated_models` only
   in the latest 0.9 bundles.
2. `schema_version`, `not_evaluable`, `budget_caps` (the safety caps the run hit: the numbers
   of a run that hit one depend on the machine's speed).
3. the manifest is as in 2, the files are not: a model's large arrays are `.npy` files beside
   its `state.pkl` (`arrays/`, memory-mapped by every server worker), which a shelfwise reading
   only up to 2 cannot unpickle. A schema-2 bundle (arrays inside the pickle) still loads.

A manifest of a newer schema than this shelfwise reads is refused with a message that says so
(before any model file is opened), never a traceback from deep inside the unpickler.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError

SCHEMA_VERSION = 3
MANIFEST_FILE = "manifest.json"


@dataclass
class BundleManifest:
    version: str  # the bundle's name (UTC time stamp)
    created_at: str
    default_model: str
    models: list[str]
    #: sha256 of every file of the bundle but the manifest, by relative path
    files: dict[str, str] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # test fold, per model
    ci95: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    data_versions: dict[str, Any] = field(default_factory=dict)  # curated table -> version
    lineage: dict[str, Any] = field(default_factory=dict)  # train_run_id, ingest_run_id
    fusion_generators: list[str] = field(default_factory=list)
    #: model -> directory (relative) of the fit the test fold scored (fitted without its targets)
    evaluated_models: dict[str, str] = field(default_factory=dict)
    #: model -> why the bundle keeps no fit made without the test targets
    not_evaluable: dict[str, str] = field(default_factory=dict)
    refit: dict[str, Any] = field(default_factory=dict)  # models refit on all data for serving
    settings: dict[str, Any] = field(default_factory=dict)  # the run's TrainSettings
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: safety caps the run hit: {"stage", "budget", "reached"}; empty: reproducible budgets only
    budget_caps: list[dict[str, str]] = field(default_factory=list)
    search: dict[str, Any] | None = None
    serving: dict[str, Any] = field(default_factory=dict)
    erasures: list[dict[str, str]] = field(default_factory=list)
    #: keys this schema does not name (kept as they are, written back)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = MANIFEST_FILE) -> BundleManifest:
        """The manifest of any schema version up to this one's, upgraded to it."""
        raw = dict(raw)
        version = int(raw.pop("schema_version", 1))
        if version > SCHEMA_VERSION:
            raise ShelfwiseError(
                f"{source}: manifest schema {version} is newer than this shelfwise reads "
                f"(up to {SCHEMA_VERSION}); upgrade shelfwise or retrain the bundle"
            )
        missing = [k for k in ("version", "default_model", "models") if k not in raw]
        if missing:
            raise ShelfwiseError(f"{source}: not a bundle manifest (no {', '.join(missing)})")
        if version < 2:
            raw = _upgrade_v1(raw)
        names = {f.name for f in fields(cls)} - {"extra", "schema_version"}
        known = {k: v for k, v in raw.items() if k in names}
        known.setdefault("created_at", "")
        extra = {k: v for k, v in raw.items() if k not in names}
        return cls(**known, extra={**raw.get("extra", {}), **extra})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        return {**extra, **d}

    # read access by key, as the manifest's JSON reads (for code written against the dict)
    def __getitem__(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        if key == "extra" or key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


def _upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2. A bundle without `evaluated_models` keeps only the served fits: those
    refit on every interaction have seen the test targets and cannot be evaluated."""
    if "evaluated_models" not in raw:
        refit = set((raw.get("refit") or {}).get("models", []))
        raw["evaluated_models"] = {n: f"models/{n}" for n in raw["models"] if n not in refit}
        raw["not_evaluable"] = {
            n: "refit on every interaction (test targets included)" for n in sorted(refit)
        }
    raw.setdefault(
        "budget_caps",
        [
            {
                "stage": "tuning and training",
                "budget": "wall-clock seconds (bundles before manifest schema 2)",
                "reached": "not recorded: the models depend on the machine's speed",
            }
        ],
    )
    return raw


def read_manifest(bundle: str | Path) -> BundleManifest:
    path = Path(bundle) / MANIFEST_FILE
    if not path.exists():
        raise ShelfwiseError(f"{bundle}: not a bundle (no {MANIFEST_FILE})")
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise ShelfwiseError(f"{path}: not JSON ({exc})") from None
    return BundleManifest.from_dict(raw, str(path))


def write_manifest(bundle: str | Path, manifest: BundleManifest) -> None:
    """Write the manifest whole (a reader sees the old one or the new one, never half)."""
    path = Path(bundle) / MANIFEST_FILE
    tmp = path.with_name(MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, default=str))
    tmp.replace(path)
