"""Popularity: the baseline every other model must beat, and the cold-start fallback."""

from __future__ import annotations

import numpy as np

from ..features import Interactions
from ._base import GroupedCounts, Results


class Popularity(GroupedCounts):
    """Most interacted-with items, overall or within the last `window_days` of the data.
    Fitted with the catalog's product groups (`fit(..., groups=)`), most interacted-with
    groups: a style counts every size's steps, each variant ranked by its group's count and,
    within the group, by its own."""

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
        scores = counts + 1e-6 * total / max(total.max(), 1)
        groups = self._grouping()
        if groups is not None:
            # a group's steps as the items' are: a shopper's consecutive steps in one group (four
            # sizes looked at in a row, a view of one size then the purchase of another) are one
            # step of it, as one product's funnel is one step (`Interactions.from_arrays`), of the
            # run's strongest weight (its purchase, not the view that began it); the runs of the
            # steps in the window
            g = groups[interactions.item_idx[mask]]
            u = interactions.user_idx[mask]
            w = interactions.weight[mask].astype(np.float64)
            first = np.ones(len(g), bool)
            first[1:] = (u[1:] != u[:-1]) | (g[1:] != g[:-1])
            starts = np.flatnonzero(first)
            by_group = np.bincount(
                g[starts],
                weights=(np.maximum.reduceat(w, starts) if len(starts) else None) if self.weighted else None,
                minlength=int(groups.max()) + 1,
            )
            # the group's count, then (below 1, under the next whole step) the variant's own
            scores = by_group[groups] + 0.5 * self.within_group_share(groups, scores)
        self.scores_ = scores.astype(np.float32)
        self.order_ = np.argsort(-self.scores_, kind="stable")  # equal scores by item index

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(users), len(self.scores_)))

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        history: Interactions | None = None,
    ) -> Results:
        """Every user's list is the one global order (the scores' descending order, equal
        scores by item index) less the items they have seen: each row reads the first k + (its
        batch's most seen) items of that order instead of ranking the whole catalog. Items
        with equal counts (common at a top-k boundary) made every row of the generic path rank
        its whole row (6 s for Beauty's 22k users and 12k items, once per evaluation)."""
        hist = self._history(history)
        users = np.asarray(users, np.int64)
        scores = np.asarray(self.scores_, np.float32)
        m, n = len(scores), len(users)
        order = getattr(self, "order_", None)
        if order is None or len(order) != m:  # (a model saved before the order was kept)
            order = self.order_ = np.argsort(-scores, kind="stable")
        position = np.empty(m, np.int64)
        position[order] = np.arange(m)
        ids = np.full((n, k), -1, np.int64)
        if k <= 0 or m == 0 or n == 0:
            return Results(ids, np.full((n, k), -np.inf, np.float32))
        seen = hist.seen()[users] if exclude_seen else None
        for start in range(0, n, self.scoring_batch_size):
            stop = min(start + self.scoring_batch_size, n)
            if seen is None:
                ids[start:stop, : min(k, m)] = order[:k]
                continue
            rows = seen[start:stop]
            per_row = np.diff(rows.indptr)
            width = min(m, k + int(per_row.max(initial=0)))
            hidden = np.zeros((stop - start, width), bool)
            pos = position[rows.indices]
            r = np.repeat(np.arange(stop - start), per_row)
            inside = pos < width
            hidden[r[inside], pos[inside]] = True
            # the first k unhidden positions of each row, in order (a stable sort puts False first)
            first = np.argsort(hidden, axis=1, kind="stable")[:, : min(k, width)]
            got = order[first]
            got[np.take_along_axis(hidden, first, axis=1)] = -1  # fewer than k unseen items
            ids[start:stop, : got.shape[1]] = got
        out = np.where(ids >= 0, scores[np.maximum(ids, 0)], -np.inf).astype(np.float32)
        return Results(ids, out)
