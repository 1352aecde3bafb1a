"""Judged queries as ranking evidence for new ones: the training queries' vectors (the main
encoder) and the gains their judgments gave products. A new query's nearest judged queries
("deckover paint" for "deck over paint", "3/4 in. plywood" for "3/4 plywood") say which of its
candidates were judged relevant to a query like it; the ranker reads that as NEIGHBOUR_FEATURES
(on Home Depot the relevant products of a held-out query are often judged for another query).
Out of fold while training: a training query only sees the queries of the other folds (as the
product prior, see `_training.fit_ranker`), so the ranker learns how far to trust a neighbour
as it will meet one for an unseen query. Cost per query: one (judged queries x 384) product
and a gather over the k neighbours' judgments (~0.1 ms for 5k judged queries)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["NEIGHBOUR_FEATURES", "QueryNeighbours"]

NEIGHBOUR_FEATURES = [
    "nb_top_sim",  # the nearest judged query's cosine (how alike the best neighbour is)
    "nb_sim",  # the cosine of the nearest judged query that judged this candidate (0: none did)
    "nb_gain",  # the cosine-weighted mean gain the neighbours gave this candidate (-1: none)
    "nb_first_gain",  # the gain the nearest neighbour that judged it gave it (-1: none)
    "nb_gain_sim",  # max over neighbours of gain x cosine (-1: none)
]
NEIGHBOURS = 20  # judged queries consulted per query


class QueryNeighbours:
    """The judged queries' unit vectors, their judgments (catalog row, gain) in CSR form, and
    the fold of each query (for out-of-fold features while training)."""

    def __init__(
        self, vectors: np.ndarray, starts: np.ndarray, rows: np.ndarray, gains: np.ndarray, folds: np.ndarray
    ):
        self.vectors = np.ascontiguousarray(vectors, np.float32)
        self.starts, self.rows, self.gains = starts, rows, gains
        self.folds = folds

    @classmethod
    def of(cls, vectors: np.ndarray, judged: list[dict[int, float]], folds: list[int]) -> QueryNeighbours:
        starts = np.zeros(len(judged) + 1, np.int64)
        starts[1:] = np.cumsum([len(j) for j in judged])
        rows = np.fromiter((r for j in judged for r in j), np.int64, int(starts[-1]))
        gains = np.fromiter((g for j in judged for g in j.values()), np.float32, int(starts[-1]))
        return cls(np.asarray(vectors, np.float32), starts, rows, gains, np.asarray(folds, np.int16))

    def __len__(self) -> int:
        return len(self.starts) - 1

    def features(self, vec: np.ndarray, cands: np.ndarray, fold: int | None = None) -> np.ndarray:
        """(len(cands), len(NEIGHBOUR_FEATURES)) for a query with unit vector `vec`; `fold`:
        the training query's own fold, whose queries are left out."""
        n = len(cands)
        out = np.zeros((n, len(NEIGHBOUR_FEATURES)), np.float32)
        out[:, 2:] = -1.0
        if not len(self) or not n:
            return out
        sims = self.vectors @ np.asarray(vec, np.float32)
        if fold is not None:
            sims[self.folds == fold] = -np.inf
        k = min(NEIGHBOURS, len(self))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        top = top[np.isfinite(sims[top])]
        if not len(top):
            return out
        out[:, 0] = sims[top[0]]
        # the neighbours' judgments, nearest neighbour first, matched to the candidates
        lo, hi = self.starts[top], self.starts[top + 1]
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])
        sim = np.repeat(sims[top], hi - lo).astype(np.float64)
        rows, gain = self.rows[idx], self.gains[idx].astype(np.float64)
        order = np.argsort(cands, kind="stable")
        at = np.searchsorted(cands, rows, sorter=order)
        at = np.minimum(at, n - 1)
        hit = cands[order[at]] == rows
        if not hit.any():
            return out
        pos, sim, gain = order[at[hit]], sim[hit], gain[hit]
        wsum, wg = np.zeros(n), np.zeros(n)
        np.add.at(wsum, pos, sim)
        np.add.at(wg, pos, sim * gain)
        best = np.zeros(n)
        np.maximum.at(best, pos, sim)
        first = np.full(n, -1.0)
        # the nearest neighbour's gain: entries are nearest first, so the first entry per row
        _, once = np.unique(pos, return_index=True)
        first[pos[once]] = gain[once]
        gs = np.full(n, -1.0)
        np.maximum.at(gs, pos, gain * sim)
        out[:, 1] = best
        out[:, 2] = np.where(wsum > 0, wg / np.maximum(wsum, 1e-12), -1.0)
        out[:, 3] = first
        out[:, 4] = gs
        return out

    def save(self, path: Path) -> None:
        np.savez(
            path, vectors=self.vectors, starts=self.starts, rows=self.rows, gains=self.gains, folds=self.folds
        )

    @classmethod
    def load(cls, path: Path) -> QueryNeighbours:
        z = np.load(path)
        return cls(z["vectors"], z["starts"], z["rows"], z["gains"], z["folds"])
