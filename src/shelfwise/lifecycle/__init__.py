"""Lifecycle: training runs (tuning, evaluation, bundle), later the gated registry.

Names are imported on first use (PEP 562): `shelfwise ingest` needs `ingest_dataset` only, not
the models and their libraries behind `train`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._ingest_job import ingest_dataset
    from ._train import DEFAULT_MODELS, TrainResult, TrainSettings, evaluate_workdir, make_split, train
    from ._tuning import SEARCH_SPACES, tune

_WHERE = {
    "DEFAULT_MODELS": "._train",
    "SEARCH_SPACES": "._tuning",
    "TrainResult": "._train",
    "TrainSettings": "._train",
    "evaluate_workdir": "._train",
    "ingest_dataset": "._ingest_job",
    "make_split": "._train",
    "train": "._train",
    "tune": "._tuning",
}

__all__ = [
    "DEFAULT_MODELS",
    "SEARCH_SPACES",
    "TrainResult",
    "TrainSettings",
    "evaluate_workdir",
    "ingest_dataset",
    "make_split",
    "train",
    "tune",
]


__getattr__ = lazy_exports(__name__, _WHERE)
