"""Recommenders behind one interface, and the registry `name -> class`."""

from ._base import Recommender, Results, shared_scores, top_k
from ._content import Content
from ._factorization import ALS, BPR, EASE
from ._fusion import Fusion
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
    "Content",
    "Fusion",
    "RECOMMENDERS",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "Results",
    "SASRec",
    "SASRecConfig",
    "Transitions",
    "shared_scores",
    "top_k",
]
