"""Popularity: the baseline every other model must beat, and the cold-start fallback."""

from __future__ import annotations

import numpy as np

from ..features import Interactions
from ._base import Recommender


class Popularity(Recommender):
    """Most interacted-with items, overall or within the last `window_days` of the data."""

    name = "popularity"

    def __init__(self, window_days: float | None = None, weighted: bool = False):
        self.window_days = window_days
        self.weighted = weighted

    def _fit(self, interactions: Interactions) -> None:
        mask = np.ones(len(interactions), bool)
        if self.window_days and len(interactions):
            mask = interactions.timestamp >= interactions.timestamp.max() - self.window_days * 86400
        w = interactions.weight[mask] if self.weighted else None
        counts = np.bincount(interactions.item_idx[mask], weights=w, minlength=interactions.n_items)
        # tiny tie-breaker on all-time counts keeps the order stable when the window is sparse
        total = np.bincount(interactions.item_idx, minlength=interactions.n_items)
        self.scores_ = (counts + 1e-6 * total / max(total.max(), 1)).astype(np.float32)

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(users), len(self.scores_)))
