"""Recommenders behind one interface, the registry `name -> class`, saved models' loading and
the bundle manifest schema."""

from ._base import IncompatibleModel, Recommender, Results, shared_scores, top_k
from ._content import Content
from ._factorization import ALS, BPR, EASE
from ._fusion import Fusion, NoRankerData
from ._loading import load_model, load_models, model_class
from ._manifest import SCHEMA_VERSION, BundleManifest, read_manifest, write_manifest
from ._neighbours import ItemKNN, Transitions
from ._popularity import Popularity
from ._sasrec import SASRec, SASRecConfig

RECOMMENDERS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (Popularity, ItemKNN, Transitions, ALS, BPR, EASE, SASRec, Content, Fusion)
}

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
    "read_manifest",
    "shared_scores",
    "top_k",
    "write_manifest",
]
