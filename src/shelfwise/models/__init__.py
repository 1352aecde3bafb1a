"""Recommenders behind one interface, the registry `name -> class`, saved models' loading and
the bundle manifest schema.

SASRec (torch) is imported on first use: serving a bundle without it, or training without it,
does not pay for torch's import.
"""

from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._base import IncompatibleModel, Recommender, Results, product_groups, shared_scores, top_k
from ._content import Content
from ._factorization import ALS, BPR, EASE
from ._fusion import Fusion, NoRankerData
from ._loading import load_model, load_models, model_class
from ._manifest import SCHEMA_VERSION, BundleManifest, read_manifest, write_manifest
from ._neighbours import ItemKNN, Transitions
from ._popularity import Popularity

if TYPE_CHECKING:
    from ._sasrec import SASRec, SASRecConfig

_LAZY = {"SASRec": "._sasrec", "SASRecConfig": "._sasrec"}
__getattr__ = lazy_exports(__name__, _LAZY)


class _Registry(Mapping[str, type[Recommender]]):
    """`name -> class` in the order given; a lazily imported class (given by its model name,
    exported under `lazy[name]`) is imported when it is looked up."""

    def __init__(self, entries: tuple[type[Recommender] | str, ...], lazy: dict[str, str]) -> None:
        self._classes: dict[str, type[Recommender] | None] = {}
        for entry in entries:
            if isinstance(entry, str):
                self._classes[entry] = None
            else:
                self._classes[entry.name] = entry
        self._lazy = lazy  # model name -> exported class name

    def __getitem__(self, name: str) -> type[Recommender]:
        cls = self._classes[name]
        if cls is None:
            export = self._lazy[name]
            cls = self._classes[name] = getattr(import_module(_LAZY[export], __name__), export)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)


RECOMMENDERS: Mapping[str, type[Recommender]] = _Registry(
    (Popularity, ItemKNN, Transitions, ALS, BPR, EASE, "sasrec", Content, Fusion), {"sasrec": "SASRec"}
)

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "RECOMMENDERS",
    "SCHEMA_VERSION",
    "BundleManifest",
    "Content",
    "Fusion",
    "IncompatibleModel",
    "ItemKNN",
    "NoRankerData",
    "Popularity",
    "Recommender",
    "Results",
    "SASRec",
    "SASRecConfig",
    "Transitions",
    "load_model",
    "load_models",
    "model_class",
    "product_groups",
    "read_manifest",
    "shared_scores",
    "top_k",
    "write_manifest",
]
