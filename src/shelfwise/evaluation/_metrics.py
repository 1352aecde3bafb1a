"""Ranking metrics over full-catalog rankings, per user, with bootstrap confidence intervals.

Every function takes the ranked ids of each user (`ids`, (n, K), -1 = padding) and the set of
held-out positives (`targets`, a CSR row per user) and returns one value per user, so that
segments and confidence intervals are just means over subsets.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hits_matrix(ids: np.ndarray, targets: sp.csr_matrix) -> np.ndarray:
    """(n, K) bool: is the item at each rank a positive?"""
    n, k = ids.shape
    hits = np.zeros((n, k), bool)
    for r in range(n):
        pos = targets.indices[targets.indptr[r] : targets.indptr[r + 1]]
        if len(pos):
            hits[r] = np.isin(ids[r], pos)
    return hits


def per_user_metrics(ids: np.ndarray, targets: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """HR@k, Recall@k, Precision@k, NDCG@k, MRR@k and MAP@k, one value per user."""
    hits = hits_matrix(ids[:, :k], targets)
    n_pos = np.diff(targets.indptr).astype(np.float64)
    denom = np.maximum(n_pos, 1.0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.array([discounts[: int(min(p, k))].sum() for p in n_pos])
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    cum_hits = np.cumsum(hits, axis=1)
    precision_at_i = cum_hits / np.arange(1, k + 1)
    ap = (precision_at_i * hits).sum(axis=1) / np.minimum(denom, k)
    return {
        f"hr@{k}": hits.any(axis=1).astype(np.float64),
        f"recall@{k}": hits.sum(axis=1) / denom,
        f"precision@{k}": hits.sum(axis=1) / k,
        f"ndcg@{k}": np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0),
        f"mrr@{k}": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
        f"map@{k}": ap,
    }


def graded_ndcg_at_k(ranked: list[int], gains: dict[int, float], k: int = 10) -> float:
    """NDCG@k of one ranked list with graded gains (unlisted items gain 0; the ideal is built
    from the positive gains): search judgments and re-ranker hold-outs."""
    dcg = sum(gains.get(d, 0.0) / np.log2(r + 2) for r, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / np.log2(r + 2) for r, g in enumerate(ideal))
    return float(dcg / idcg) if idcg > 0 else 0.0


def bootstrap_ci(
    values: np.ndarray, *, rounds: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(rounds, len(values)))
    means = values[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def coverage(ids: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog that appears in at least one top-k list."""
    top = ids[:, :k]
    return float(len(np.unique(top[top >= 0])) / max(n_items, 1))


def novelty(ids: np.ndarray, item_counts: np.ndarray, k: int) -> float:
    """Mean self-information -log2(p(item)) of recommended items (higher = less obvious)."""
    top = ids[:, :k]
    top = top[top >= 0]
    if len(top) == 0:
        return float("nan")
    p = (item_counts + 1.0) / (item_counts.sum() + len(item_counts))
    return float(np.mean(-np.log2(p[top])))


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% with the default z): unlike the normal
    approximation it stays within [0, 1] and is not degenerate at 0 or n successes. (0, 0) for
    n = 0. The same as statsmodels' `proportion_confint(..., method="wilson")`."""
    if n <= 0:
        return (0.0, 0.0)
    p = successes / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, float(c - h)), min(1.0, float(c + h)))
