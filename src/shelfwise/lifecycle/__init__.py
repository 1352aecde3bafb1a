"""Lifecycle: training runs (tuning, evaluation, bundle), later the gated registry."""

from ._train import (
    DEFAULT_MODELS,
    TrainResult,
    TrainSettings,
    evaluate_workdir,
    ingest_dataset,
    make_split,
    train,
)
from ._tuning import SEARCH_SPACES, tune

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
