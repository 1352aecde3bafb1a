"""Loading saved models: what a bundle reader (serving, evaluation, erasure) needs to get the
models of a bundle back, without knowing any model's internals."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ShelfwiseError
from ..features import Interactions
from ._base import IncompatibleModel, Recommender


def model_class(path: str | Path) -> type[Recommender]:
    """The class of the model saved in `path` (its params.json names it)."""
    from . import RECOMMENDERS

    meta = json.loads((Path(path) / "params.json").read_text())
    cls = RECOMMENDERS.get(str(meta.get("model")))
    if cls is None:
        raise IncompatibleModel(
            f"{path}: unknown model {meta.get('model')!r} (known: {sorted(RECOMMENDERS)})"
        )
    return cls


def load_model(
    path: str | Path,
    interactions: Interactions,
    *,
    generators: Mapping[str, Recommender] | None = None,
) -> Recommender:
    """The model saved in `path`, answering from `interactions`; a fusion is given its
    (loaded) `generators`. Raises `IncompatibleModel` when this version cannot read it."""
    from ._fusion import Fusion

    cls = model_class(path)
    try:
        if issubclass(cls, Fusion):
            return cls.load(path, interactions, generators=generators)
        return cls.load(path, interactions)
    except (pickle.UnpicklingError, AttributeError, ModuleNotFoundError, EOFError) as exc:
        raise IncompatibleModel(
            f"{path}: {cls.__name__} state unreadable ({type(exc).__name__}: {exc})"
        ) from exc


def load_models(
    paths: Mapping[str, str | Path],
    interactions: Interactions,
    *,
    fusion_generators: Sequence[str] = (),
    loaded: Mapping[str, Recommender] | None = None,
    bundle: str = "",
) -> dict[str, Recommender]:
    """Every model of `paths` (name -> directory) and of `loaded` (models already loaded,
    reused as they are); "fusion", last, over its `fusion_generators` (a fusion whose
    generators are not all there is left out). A model this version cannot read fails with
    the bundle to retrain named."""
    out: dict[str, Recommender] = dict(loaded or {})
    try:
        for name, path in paths.items():
            if name != "fusion":
                out[name] = load_model(path, interactions)
        if "fusion" in paths and all(g in out for g in fusion_generators):
            out["fusion"] = load_model(
                paths["fusion"], interactions, generators={g: out[g] for g in fusion_generators}
            )
    except IncompatibleModel as exc:
        where = f"bundle {bundle}" if bundle else "this bundle"
        raise ShelfwiseError(
            f"{where} was written by a shelfwise whose models this version cannot read ({exc}); "
            f"retrain to replace {where}: `shelfwise train --workdir WORKDIR`"
        ) from exc
    return out
