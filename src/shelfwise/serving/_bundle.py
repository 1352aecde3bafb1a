"""The bundle: the one directory serving loads (never model internals from elsewhere).

bundles/<version>/
  manifest.json         `models.BundleManifest` (typed, versioned; older schemas are upgraded on
                        reading): version, created_at, default model, models, metrics, protocol,
                        data versions (curated table versions + contract versions),
                        lineage run ids, sha256 of every file
  interactions.npz      the full curated history (pseudonymized users) used at query time
  catalog.json          stock / category / brand / title per item index (read by earlier versions)
  catalog/              the same as flat arrays, memory-mapped on load (`search._compact`): the
                        pages are the file's, shared by every worker, a bundle swapped in later too
  serving.npz           precomputed top lists of the default model for known users, and the
                        users' purchases (for repurchase rules), so serving answers in a lookup
  models/<name>/        each model's params.json + state.pkl (what is served: refit on all data)
  evaluated/<name>/     the train-fold fit of each model that was refit, as `train` evaluated it
                        (what `shelfwise evaluate` scores; manifest `evaluated_models` maps names)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ..features import Catalog, Interactions
from ..models import (
    SCHEMA_VERSION,
    BundleManifest,
    Recommender,
    load_models,
    read_manifest,
    write_manifest,
)
from ..search._compact import Coded
from ..storage import file_sha256

BUNDLES_DIR = "bundles"
CATALOG_DIR = "catalog"
CURRENT = "CURRENT"
EVALUATED_DIR = "evaluated"


def write_bundle(
    workdir: str | Path,
    *,
    models: dict[str, Recommender],
    default_model: str,
    interactions: Interactions,
    catalog: Catalog,
    manifest: dict[str, Any],
    extra_dirs: dict[str, Path] | None = None,
    serving_arrays: dict[str, np.ndarray] | None = None,
    make_current: bool = True,
) -> Path:
    """Write a bundle; `extra_dirs` (name -> a built directory, e.g. the search index) are
    moved into it before the file hashes are taken."""
    root = Path(workdir) / BUNDLES_DIR
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = root / version
    tmp = root / f".{version}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "models").mkdir(parents=True)
    interactions.save(tmp / "interactions.npz")
    (tmp / "catalog.json").write_text(
        json.dumps(
            {
                "in_stock": catalog.in_stock.astype(bool).tolist(),
                "category": list(catalog.categories),
                "brand": list(catalog.brands) or [""] * len(catalog.categories),
                "title": list(catalog.titles),
            },
            ensure_ascii=False,
        )
    )
    _save_catalog(tmp / CATALOG_DIR, catalog)
    if serving_arrays:
        np.savez_compressed(tmp / "serving.npz", **serving_arrays)  # type: ignore[arg-type]
    for name, m in models.items():
        m.save(tmp / "models" / name)
    for name, src in (extra_dirs or {}).items():
        shutil.move(str(src), str(tmp / name))
    files = {str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    full = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "default_model": default_model,
        "models": sorted(models),
        **manifest,
        "files": files,
        "schema_version": SCHEMA_VERSION,
    }
    write_manifest(tmp, BundleManifest.from_dict(full))
    tmp.rename(path)  # a bundle appears whole or not at all
    if make_current:
        pointer = root / CURRENT
        pointer_tmp = root / f".{CURRENT}.tmp"
        pointer_tmp.write_text(version)
        pointer_tmp.replace(pointer)
    return path


def current_bundle(workdir: str | Path) -> Path:
    root = Path(workdir) / BUNDLES_DIR
    pointer = root / CURRENT
    if not pointer.exists():
        if any(root.glob("*/manifest.json")):  # trained, but nothing is live
            raise ShelfwiseError(
                f"{workdir}: no bundle is in production: the trained ones are candidates (their gates "
                "failed, or they wait for an approval); see `shelfwise models list` and `models gates`, "
                "then `models approve` / `models promote`"
            )
        raise ShelfwiseError(
            f"{workdir}: no trained bundle; run `shelfwise train --data DIR --workdir {workdir}` first"
        )
    return root / pointer.read_text().strip()


def _save_catalog(folder: Path, catalog: Catalog) -> None:
    """The per-item catalog columns serving reads, as flat arrays: category paths and brands
    coded (a code per item, each distinct value once), titles as one UTF-8 blob."""
    from ..search._compact import Strings, save_array

    folder.mkdir()
    n = len(catalog.categories)
    save_array(folder, "in_stock", np.asarray(catalog.in_stock, bool))
    if catalog.listed is not None:
        save_array(folder, "listed", np.asarray(catalog.listed, bool))
    Coded.of(catalog.categories).save(folder, "category")
    Coded.of(list(catalog.brands) or [""] * n).save(folder, "brand")
    Strings.of(catalog.titles).save(folder, "title")
    if catalog.groups:  # (a catalog of variants: each item's group, `Catalog.groups`)
        Coded.of(catalog.groups).save(folder, "group")


def _load_catalog(path: Path) -> tuple[np.ndarray, Coded, Sequence[str], Sequence[str], np.ndarray | None]:
    """(in stock, categories, brands, titles, listed) per item index: memory-mapped from
    `catalog/` (a bundle of an earlier version: parsed from catalog.json, the categories coded
    alike so that readers have one shape to handle). `listed` is None where every item is
    (a shop without a products table, or a bundle written before items were told apart)."""
    from ..search._compact import Strings, load_array

    folder = path / CATALOG_DIR
    if folder.is_dir():
        return (
            load_array(folder, "in_stock"),
            Coded.load(folder, "category"),
            Coded.load(folder, "brand"),
            Strings.load(folder, "title"),
            load_array(folder, "listed") if (folder / "listed.npy").exists() else None,
        )
    cat = json.loads((path / "catalog.json").read_text())
    n = len(cat["category"])
    return (
        np.asarray(cat["in_stock"], bool),
        Coded.of(cat["category"]),
        list(cat.get("brand") or [""] * n),
        list(cat.get("title") or [""] * n),
        None,
    )


def _load_groups(path: Path) -> Coded | None:
    """Per item index, its group (style): None where the catalog had none (every product its
    own group) or the bundle was written before groups were kept."""
    folder = path / CATALOG_DIR
    if (folder / "group.codes.npy").exists():
        return Coded.load(folder, "group")
    return None


@dataclass
class Bundle:
    path: Path
    manifest: BundleManifest
    interactions: Interactions
    models: dict[str, Recommender]
    in_stock: np.ndarray
    # per item index; memory-mapped views (`search._compact`) for bundles with `catalog/`
    categories: Coded  # category paths, coded (each distinct path stored once)
    brands: Sequence[str]
    titles: Sequence[str]
    arrays: dict[str, np.ndarray]
    # per item index: in the curated products table (None: every item; see `Catalog.listed`)
    listed: np.ndarray | None = None
    # per item index: its group (style, `Catalog.groups`); None: every product is its own
    groups: Coded | None = None

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def default(self) -> Recommender:
        return self.models[self.manifest.default_model]

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> Bundle:
        """The bundle in `path`, its files checked against the manifest's hashes (`verify`),
        read under the bundle's shared lock (an erasure rewrites them under it alone)."""
        from ..storage._segments import folder_lock

        with folder_lock(path, shared=True):
            return cls._load(Path(path), verify=verify)

    @classmethod
    def _load(cls, path: Path, *, verify: bool) -> Bundle:
        manifest = read_manifest(path)
        if verify:
            for rel, digest in manifest.files.items():
                f = path / rel
                if not f.exists() or file_sha256(f) != digest:
                    raise ShelfwiseError(
                        f"{f}: bundle file missing or changed since it was written (sha256 mismatch)"
                    )
        inter = Interactions.load(path / "interactions.npz")
        in_stock, categories, brands, titles, listed = _load_catalog(path)
        models = load_models(
            {n: path / "models" / n for n in manifest.models},
            inter,
            fusion_generators=manifest.fusion_generators,
            bundle=manifest.version,
        )
        arrays: dict[str, np.ndarray] = {}
        if (path / "serving.npz").exists():
            with np.load(path / "serving.npz") as z:
                arrays = {k: z[k] for k in z.files}
        return cls(
            path,
            manifest,
            inter,
            models,
            in_stock,
            categories,
            brands,
            titles,
            arrays,
            listed,
            _load_groups(path),
        )


def load_evaluated_models(bundle: Bundle) -> tuple[dict[str, Recommender], dict[str, str]]:
    """The fits `train` evaluated on the test fold (fitted without its targets), by name, and the
    models that have none with the reason (the manifest's `not_evaluable`: for bundles from
    before evaluated fits were kept, the models refit on every interaction)."""
    from ..storage._segments import folder_lock

    manifest = bundle.manifest
    not_evaluable = dict(manifest.not_evaluable)
    paths = manifest.evaluated_models
    # the served fits that are also the evaluated ones are loaded already
    served = {n: bundle.models[n] for n, rel in paths.items() if rel == f"models/{n}" and n != "fusion"}
    # under the bundle's shared lock, as `Bundle.load` read the rest: an erasure or retention
    # rewrites the files under it alone, and fits of the rewritten bundle do not go with the
    # interactions read before it
    with folder_lock(bundle.path, shared=True):
        if read_manifest(bundle.path).files != manifest.files:
            raise ShelfwiseError(
                f"{bundle.path}: the bundle was rewritten (an erasure or retention) while it was read: run it again"
            )
        out = load_models(
            {n: bundle.path / rel for n, rel in paths.items() if n not in served},
            bundle.interactions,
            fusion_generators=manifest.fusion_generators,
            loaded=served,
            bundle=bundle.version,
        )
    if "fusion" in paths and "fusion" not in out:
        not_evaluable["fusion"] = "a generator has no train-fold fit"
    return out, not_evaluable
