"""Item-to-item models: ItemKNN (cosine, through implicit) and sequential co-visitation."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..features import Interactions
from ._base import GroupedCounts


def step_pairs(interactions: Interactions, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """The item pairs (a, b) that are `distance` steps apart in one user's sequence, a first
    (the rows are sorted by user, then time)."""
    return _pairs(interactions.user_idx, interactions.item_idx, distance)


def _pairs(u: np.ndarray, it: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """`step_pairs` of a sequence given as its users and items (sorted by user, then time)."""
    same = u[distance:] == u[:-distance]
    return it[:-distance][same], it[distance:][same]


def _group_runs(u: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sequence of steps (users `u`, groups `g`, sorted by user, then time) with each run of
    one user's consecutive steps in one group as one step."""
    first = np.ones(len(g), bool)
    first[1:] = (u[1:] != u[:-1]) | (g[1:] != g[:-1])
    return u[first], g[first]


def _recent_history(
    history: Interactions, users: np.ndarray, last: int | None, decay: float
) -> sp.csr_matrix:
    """(len(users), n_items) rows holding each user's last `last` items, weighted by recency
    (`decay` ** steps-ago); `last=None` keeps all with weight 1 (decay=1)."""
    users = np.asarray(users, np.int64)
    off = history.offsets
    lo, hi = off[users], off[users + 1]
    if last is not None:
        lo = np.maximum(lo, hi - last)
    lens = hi - lo
    total = int(lens.sum())
    if total == 0:
        return sp.csr_matrix((len(users), history.n_items), dtype=np.float32)
    # every user's steps lo..hi in one go, in the order a loop over the users would list them
    rows = np.repeat(np.arange(len(users), dtype=np.int64), lens)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    cols = history.item_idx[np.repeat(lo, lens) + within]
    age = np.repeat(lens, lens) - 1 - within  # steps ago: 0 for the latest
    m = sp.csr_matrix(
        (np.power(decay, age).astype(np.float32), (rows, cols)),
        shape=(len(users), history.n_items),
        dtype=np.float32,
    )
    m.sum_duplicates()
    return m


class ItemKNN(GroupedCounts):
    """Item-item cosine neighbours (implicit's CosineRecommender), scored from the history.
    `last`/`decay` weigh the query-time history by position (the last steps count most);
    `half_life_days` weighs the training data by age (recent co-occurrences count most).
    Fitted with product groups, the neighbours are those of groups (users x groups columns):
    a variant's similar items are its style's neighbours (its own style left out)."""

    name = "itemknn"
    evidence_scores = True  # (cosine sums: 0 is no neighbour in the history)

    def __init__(
        self,
        neighbours: int = 100,
        last: int | None = None,
        decay: float = 1.0,
        half_life_days: float | None = None,
    ):
        self.neighbours = neighbours
        self.last = last
        self.decay = decay
        self.half_life_days = half_life_days

    def _fit(self, interactions: Interactions) -> None:
        from implicit.nearest_neighbours import ItemItemRecommender, normalize

        # what implicit's CosineRecommender does (cosine = the dot product of L2-normalized item
        # columns), but handing the normalized matrix over as CSR: given implicit's own COO it
        # warns at every fit that it converts it (the result is the same, bit for bit)
        seen = interactions.decayed_seen(self.half_life_days)
        groups = self._grouping()
        if groups is not None:
            # a shopper's cell per group, not per size: viewing four sizes of a style is
            # one interest in it, not four (capped at the newest step's decay weight, <= 1)
            seen = (seen @ self._members()).tocsr()
            seen.data = np.minimum(seen.data, 1.0)
        weighted = normalize(seen.T).T.tocsr()
        model = ItemItemRecommender(K=self.neighbours, num_threads=0)
        model.fit(weighted, show_progress=False)
        sim = model.similarity.tocsr().astype(np.float32)
        if groups is not None:
            self.tiebreak_ = _tiebreak(groups, interactions)
        self.similarity_ = sim

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        h = _recent_history(history, users, self.last, self.decay)
        return _scored(
            h, self.similarity_, self._grouping(), self._members(), getattr(self, "tiebreak_", None)
        )


class Transitions(GroupedCounts):
    """Sequential co-visitation: how often item b follows item a within `window` steps.

    A pair at distance d counts 1/d; backward pairs count `backward`. Counts are normalized by
    the source item's popularity ** `alpha` (so hubs do not dominate). A user is scored from
    their last `last` items, the most recent weighted most (`decay` per step back). Fitted
    with product groups, it counts how often group b follows group a, a shopper's consecutive
    steps in one style one step of it (a step to another size of the same style is no
    transition).
    """

    name = "transitions"
    sequential = True
    evidence_scores = True  # (follow counts: 0 is never seen to follow)

    def __init__(
        self,
        window: int = 3,
        backward: float = 0.5,
        alpha: float = 0.5,
        last: int = 5,
        decay: float = 0.6,
    ):
        self.window = window
        self.backward = backward
        self.alpha = alpha
        self.last = last
        self.decay = decay

    def _fit(self, interactions: Interactions) -> None:
        groups = self._grouping()
        n = interactions.n_items if groups is None else int(groups.max()) + 1
        src, dst, val = [], [], []
        seq = interactions.user_idx, interactions.item_idx
        if groups is not None:
            # the steps as groups, a shopper's consecutive steps in one group one step (a view
            # of A-S then the purchase of A-M is one step of A: the step after them is one step
            # after A, not two)
            seq = _group_runs(interactions.user_idx, groups[interactions.item_idx])
        for d in range(1, self.window + 1):
            a, b = _pairs(*seq, d)
            src += [a, b]
            dst += [b, a]
            w = np.float32(1.0 / d)
            val += [np.full(len(a), w, np.float32), np.full(len(a), w * self.backward, np.float32)]
        if src:
            c = sp.csr_matrix(
                (np.concatenate(val), (np.concatenate(src), np.concatenate(dst))),
                shape=(n, n),
                dtype=np.float32,
            )
            c.sum_duplicates()
            # (an item, or a group, following itself is no transition: by group, a step to
            # another size of one style, or back to it after another, relates nothing new)
            c.setdiag(0)
            c.eliminate_zeros()
        else:
            c = sp.csr_matrix((n, n), dtype=np.float32)
        pop = np.asarray(c.sum(axis=1)).ravel()
        norm = np.where(pop > 0, 1.0 / np.power(np.maximum(pop, 1e-9), self.alpha), 0.0).astype(np.float32)
        self.transitions_ = sp.diags(norm) @ c
        if groups is not None:
            self.tiebreak_ = _tiebreak(groups, interactions)

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        h = _recent_history(history, users, self.last, self.decay)
        return _scored(
            h, self.transitions_, self._grouping(), self._members(), getattr(self, "tiebreak_", None)
        )


def _tiebreak(groups: np.ndarray, interactions: Interactions) -> np.ndarray:
    """A factor per item just above 1 (up to 1 + 1e-4): its steps over the most of its group's,
    so that of a group's variants (equal group scores) the most interacted-with ranks first,
    without moving a group past another whose score differs by more than 0.01%."""
    counts = np.bincount(interactions.item_idx, minlength=len(groups)).astype(np.float64)
    return (1.0 + 1e-4 * GroupedCounts.within_group_share(groups, counts)).astype(np.float32)


def _scored(
    h: sp.csr_matrix,
    weights: sp.csr_matrix,
    groups: np.ndarray | None,
    members: sp.csr_matrix | None,
    tiebreak: np.ndarray | None,
) -> np.ndarray:
    """Users' scores from their history rows `h` (users x items) and item-item `weights`, or,
    with groups (`members`: their items x groups matrix), group-group weights: the history's
    groups scored, each item given its group's score times its tie-breaker."""
    if groups is None or members is None:
        return np.asarray((h @ weights).todense(), dtype=np.float32)
    by_group = np.asarray(((h @ members) @ weights).todense(), np.float32)
    out = by_group[:, groups]
    if tiebreak is not None:
        out *= tiebreak[None, :]
    return out
