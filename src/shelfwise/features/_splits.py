"""Point-in-time splits: nothing from a user's future reaches the data a model is fitted on.

A `Fold` is what an evaluation asks: for these users, given this history (everything they did
before the held-out moment), rank the catalog; `targets` holds what they did next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._interactions import Interactions


@dataclass
class Fold:
    name: str
    users: np.ndarray  # (n,) user indices that are evaluated
    history: Interactions  # what is known at query time
    targets: sp.csr_matrix  # (n, n_items) 1 where the item is a held-out positive

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class Split:
    protocol: str  # "leave_last_out" or "global_time"
    train: Interactions  # what models are fitted on
    validation: Fold  # for tuning, early stopping and the ranker
    test: Fold  # reported once
    description: str


def _targets(users: np.ndarray, items: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(users)), [len(i) for i in items])
    cols = np.concatenate(items) if items else np.empty(0, np.int64)
    m = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(users), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def leave_last_out(inter: Interactions, min_steps: int = 3) -> Split:
    """Each user's last step is the test target, the one before it the validation target.

    Models are fitted on everything before both; the test history also contains the validation
    step (it happened before the test step). Users with fewer than `min_steps` steps stay in
    training and are not evaluated.
    """
    off = inter.offsets
    lengths = np.diff(off)
    rank_from_end = np.empty(len(inter), np.int64)
    for u in np.flatnonzero(lengths):  # position counted from the user's last step (0 = last)
        rank_from_end[off[u] : off[u + 1]] = np.arange(lengths[u] - 1, -1, -1)
    evaluated = lengths >= min_steps
    row_eval = np.repeat(evaluated, lengths)
    train = inter.take(~row_eval | (rank_from_end >= 2))
    upto_val = inter.take(~row_eval | (rank_from_end >= 1))
    users = np.flatnonzero(evaluated)
    val_items = inter.item_idx[off[users + 1] - 2]
    test_items = inter.item_idx[off[users + 1] - 1]
    # users whose last two steps share a timestamp (ratings given in one second: 415 of
    # MovieLens's 943): which one is "last" is the input's order, said with the protocol
    tied = int(np.sum(inter.timestamp[off[users + 1] - 1] == inter.timestamp[off[users + 1] - 2]))
    ties = (
        f"; {tied:,} of the {len(users):,} users' last two steps share a timestamp to the second (times "
        "are read in whole seconds; the input's order decides which is the test target)"
        if tied
        else ""
    )
    return Split(
        "leave_last_out",
        train,
        Fold("validation", users, train, _targets(users, [np.array([i]) for i in val_items], inter.n_items)),
        Fold("test", users, upto_val, _targets(users, [np.array([i]) for i in test_items], inter.n_items)),
        f"leave-last-out: per user with >= {min_steps} steps, the last step is the test target and "
        f"the one before it the validation target; models are fitted on the earlier steps (each "
        f"user's: other users' later steps are in training; global_time cuts the whole shop at one "
        f"time){ties}",
    )


def global_time(
    inter: Interactions,
    test_fraction: float = 0.1,
    validation_fraction: float = 0.1,
    targets: str = "next",
) -> Split:
    """Global temporal split as in "Time to Split" (Gusak et al., RecSys 2025): two global
    cut-off times, a shop's life as it is lived: models are fitted on everything before the
    validation cut, tuned on the period between the cuts, and tested after the test cut.

    `targets="next"` (the default): the users evaluated after a cut are those active before it
    who come back after it, and each one's target is the first item new to them after the cut
    (the next thing they did, seen items being excluded from every ranking). `targets="all"`:
    every item new to the user in the window, and users with no history before the cut too
    (the cold-start segment)."""
    if len(inter) == 0:
        raise ValueError("no interactions to split")
    if targets not in ("next", "all"):
        raise ValueError(f"unknown global_time targets {targets!r} (next, all)")
    t_test = np.quantile(inter.timestamp, 1 - test_fraction)
    t_val = np.quantile(inter.timestamp, 1 - test_fraction - validation_fraction)
    # what was known at each cut: a step begun before it weighs what its events before it
    # weigh (a view before the cut stays a view when the purchase of the item came after it)
    train = inter.before(t_val)
    upto_test = inter.before(t_test)

    def fold(name: str, hist: Interactions, lo: float, hi: float) -> Fold:
        window = (inter.timestamp >= lo) & (inter.timestamp < hi)
        seen = hist.seen()
        # vectorized: per user, the distinct window items not already in their history
        wu, wi = inter.user_idx[window], inter.item_idx[window]
        fresh = np.asarray(seen[wu, wi]).ravel() == 0
        wu, wi = wu[fresh], wi[fresh]
        if targets == "next":
            # rows are ordered by (user, time): a user's first row in the window is their next step
            warm = hist.lengths()[wu] > 0
            wu, wi = wu[warm], wi[warm]
            users, first = np.unique(wu, return_index=True)
            return Fold(name, users, hist, _targets(users, [wi[[f]] for f in first], inter.n_items))
        users = np.unique(wu)
        pos = np.searchsorted(users, wu)
        order = np.argsort(pos, kind="stable")
        splits = np.split(wi[order], np.cumsum(np.bincount(pos, minlength=len(users)))[:-1])
        items = [np.unique(s) for s in splits]
        return Fold(name, users, hist, _targets(users, items, inter.n_items))

    what = (
        "the first item new to each user active before the cut"
        if targets == "next"
        else "every item new to the user in the window (users with no history too)"
    )
    return Split(
        "global_time",
        train,
        fold("validation", train, t_val, t_test),
        fold("test", upto_test, t_test, np.inf),
        f"global time split: fitted before {_when(t_val)}, validated on [{_when(t_val)}, {_when(t_test)}), "
        f"tested on >= {_when(t_test)} (UTC); targets: {what}",
    )


def _when(epoch_s: float) -> str:
    """A cut as a reader reads it (it printed epoch seconds: "fitted before 889237269")."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(epoch_s), UTC).strftime("%Y-%m-%d %H:%M:%S")
