"""Content-based recommendations from item text embeddings: the cold-start path for products
that nobody has interacted with yet."""

from __future__ import annotations

from typing import Self

import numpy as np

from ..features import Interactions
from ._base import Recommender, Results, top_k


class Content(Recommender):
    """A user is the recency-weighted mean of their last `last` items' text embeddings; items
    are ranked by cosine to it. Embeddings are given to `fit`, not learned."""

    name = "content"
    sequential = True

    def __init__(self, last: int = 5, decay: float = 0.7):
        self.last = last
        self.decay = decay

    def fit(self, interactions: Interactions, *, item_embeddings: np.ndarray | None = None) -> Self:
        """`item_embeddings`: (n_items, dim) L2-normalized, in the interactions' item order; a
        refit without them keeps those of the previous fit (the catalog is the same)."""
        if item_embeddings is not None:
            self.item_embeddings_ = np.asarray(item_embeddings, np.float32)
        return super().fit(interactions)

    def _fit(self, interactions: Interactions) -> None:
        if not hasattr(self, "item_embeddings_") or len(self.item_embeddings_) != interactions.n_items:
            raise ValueError("Content.fit needs item_embeddings= with one row per item")

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        emb = self.item_embeddings_
        prof = np.zeros((len(users), emb.shape[1]), np.float32)
        for r, u in enumerate(users):
            seq = history.sequence(int(u))[-self.last :]
            if len(seq):
                w = np.power(self.decay, np.arange(len(seq) - 1, -1, -1)).astype(np.float32)
                prof[r] = (w[:, None] * emb[seq]).sum(0)
        norms = np.linalg.norm(prof, axis=1, keepdims=True)
        prof /= np.maximum(norms, 1e-9)
        return prof @ emb.T

    def similar_items(self, items: np.ndarray, k: int = 10) -> Results:
        s = self.item_embeddings_[np.asarray(items)] @ self.item_embeddings_.T
        s[np.arange(len(items)), np.asarray(items)] = -np.inf
        return top_k(s, k)
