"""Ranking metrics over full-catalog rankings, per user, with bootstrap confidence intervals.

Every function takes the ranked ids of each user (`ids`, (n, K), -1 = padding) and the set of
held-out positives (`targets`, a CSR row per user) and returns one value per user, so that
segments and confidence intervals are just means over subsets.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hits_matrix(ids: np.ndarray, targets: sp.csr_matrix) -> np.ndarray:
    """(n, K) bool: is the item at each rank a positive? (One vectorized lookup of every
    (user, item) pair among the targets' pairs, not a membership test per user.)"""
    n, k = ids.shape
    hits = np.zeros((n, k), bool)
    if n == 0 or k == 0 or targets.nnz == 0:
        return hits
    ids = np.asarray(ids, np.int64)
    width = max(int(targets.shape[1]), int(ids.max()) + 1)
    rows = np.repeat(np.arange(targets.shape[0], dtype=np.int64), np.diff(targets.indptr))
    wanted = np.unique((rows * width + targets.indices)[rows < n])
    if len(wanted) == 0:
        return hits
    valid = ids >= 0  # -1 pads a short list: never a hit
    keys = np.arange(n, dtype=np.int64)[:, None] * width + np.where(valid, ids, 0)
    pos = np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)
    hits[:] = valid & (wanted[pos] == keys)
    return hits


def per_user_metrics(ids: np.ndarray, targets: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """HR@k, Recall@k, Precision@k, NDCG@k, MRR@k and MAP@k, one value per user."""
    hits = hits_matrix(ids[:, :k], targets)
    n_pos = np.diff(targets.indptr).astype(np.float64)
    denom = np.maximum(n_pos, 1.0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    # the ideal DCG of p positives, one sum per distinct count (the same sums as per user)
    ideal_of = np.array([discounts[:j].sum() for j in range(k + 1)])
    ideal = ideal_of[np.minimum(n_pos, k).astype(np.int64)]
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
    return bootstrap_cis({"": values}, rounds=rounds, level=level, seed=seed)[""]


def bootstrap_cis(
    values: dict[str, np.ndarray], *, rounds: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """`bootstrap_ci` of several per-user metrics of the same users: the resamples (the same
    ones each `bootstrap_ci` would draw, one seed) are drawn once for all of them."""
    out: dict[str, tuple[float, float]] = {}
    idx: dict[int, np.ndarray] = {}  # per number of users
    a = (1 - level) / 2
    for name, v in values.items():
        if len(v) == 0:
            out[name] = (float("nan"), float("nan"))
            continue
        if len(v) not in idx:
            idx[len(v)] = np.random.default_rng(seed).integers(0, len(v), size=(rounds, len(v)))
        means = v[idx[len(v)]].mean(axis=1)
        out[name] = (float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))
    return out


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


def ratio_interval_from_sums(
    n: int, sx: float, sy: float, sxx: float, syy: float, sxy: float
) -> tuple[float, float]:
    """95% interval of the rate sum(x) / sum(y) over `n` units (per unit: x its successes, y its
    trials: a user's clicked lists and lists), from the units' sums (of x, y, x*x, y*y, x*y), by
    the delta method: a unit's trials are not independent of each other, so the variance is the
    units', not the trials' (a Wilson interval over trials is too narrow when a unit has many).
    Never narrower than the Wilson interval over the trials (at 0%, 100% or one unit the delta
    method's variance is 0: a certainty it does not have); clipped to [0, 1]; (0, 0) without a
    trial. The experiment report's per-exposure rates, the console's traffic and the search
    analytics' per-query rates all take their interval from here."""
    if n == 0 or sy <= 0:
        return (0.0, 0.0)
    w_lo, w_hi = wilson_interval(int(round(sx)), int(round(sy)))
    if n < 2:
        return (w_lo, w_hi)
    mx, my = sx / n, sy / n
    r = mx / my
    vxx = (sxx - n * mx * mx) / (n - 1)
    vyy = (syy - n * my * my) / (n - 1)
    vxy = (sxy - n * mx * my) / (n - 1)
    var = max(0.0, (vxx - 2 * r * vxy + r * r * vyy) / (my * my * n))
    half = 1.959964 * var**0.5
    return (max(0.0, min(r - half, w_lo)), min(1.0, max(r + half, w_hi)))


def ratio_interval(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """`ratio_interval_from_sums` of per-unit arrays: `num[i]` successes of `den[i]` trials."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return ratio_interval_from_sums(
        len(den),
        float(num.sum()),
        float(den.sum()),
        float(num @ num),
        float(den @ den),
        float(num @ den),
    )
