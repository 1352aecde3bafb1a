"""Time decay of the training data: when tastes drift, recent co-occurrences should win."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.features import Interactions, global_time
from shelfwise.lifecycle import tune
from shelfwise.lifecycle._tuning import half_lives_for
from shelfwise.models import ALS, EASE, ItemKNN

DAY = 86400
PAIRS = 8


def drifting(seed: int = 0) -> Interactions:
    """Anchor a_i was bought with b_i by 30 shoppers long ago (days 0-200) and with c_i by 10
    shoppers in the last two weeks (days 350-364): by count b_i is a_i's neighbour, by recency
    c_i is."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    n = 0
    for i in range(PAIRS):
        for partner, count, lo, hi in (("b", 30, 0, 200), ("c", 10, 350, 364)):
            for _ in range(count):
                t0 = int(rng.uniform(lo, hi) * DAY)
                users += [f"u{n}", f"u{n}"]
                items += [f"a{i}", f"{partner}{i}"]
                ts += [t0, t0 + 60]
                n += 1
    return Interactions.from_arrays(users, items, ts)


def _next_after_anchor(model, inter: Interactions) -> float:
    """Share of anchors whose first recommendation is the recent partner c_i."""
    index = {p: j for j, p in enumerate(inter.item_ids)}
    hits = 0
    for i in range(PAIRS):
        hist = Interactions.of_one_user(np.array([index[f"a{i}"]]), inter.item_ids)
        top = model.recommend(np.array([0]), 1, exclude_seen=True, history=hist).ids[0][0]
        hits += inter.item_ids[top] == f"c{i}"
    return hits / PAIRS


@pytest.mark.parametrize(
    ("make", "half_life"),
    [
        (lambda h: ItemKNN(neighbours=20, half_life_days=h), 30.0),
        (lambda h: EASE(l2=1.0, half_life_days=h), 30.0),
        # in ALS a decayed step stays a positive whose confidence falls towards 1 (not to 0):
        # the old pairs keep some pull, so it takes a shorter half-life to follow the drift
        (lambda h: ALS(factors=16, iterations=30, regularization=0.1, alpha=5.0, half_life_days=h), 7.0),
    ],
    ids=["itemknn", "ease", "als"],
)
def test_decay_follows_the_drift_and_no_decay_follows_the_counts(make, half_life):
    inter = drifting()
    assert _next_after_anchor(make(None).fit(inter), inter) == 0.0  # b_i by count
    assert _next_after_anchor(make(half_life).fit(inter), inter) == 1.0  # c_i by recency


def test_decayed_cells_take_the_newest_step():
    inter = Interactions.from_arrays(
        ["u", "u", "v"], ["x", "x", "x"], [0, 20 * DAY, 30 * DAY], collapse=False
    )
    m = inter.decayed_seen(10.0).toarray()
    # u's newest x is 10 days (one half-life) before the newest step of the data; v's is the newest
    assert m.tolist() == [[0.5], [1.0]]
    assert inter.decayed_seen(None).toarray().tolist() == [[1.0], [1.0]]


def test_tuning_tries_half_lives_only_when_the_data_spans_them():
    assert half_lives_for(drifting()) == [None, 7.0, 30.0, 90.0]
    seconds = Interactions.from_arrays(["u"] * 5, list("abcde"), range(5))  # one step per second
    assert half_lives_for(seconds) == [None]


def test_tuning_picks_a_half_life_when_the_validation_period_has_drifted():
    """The drift data plus shoppers who bought a_i on day 346 and c_i later (days 352 / 360):
    under a global time split the validation targets are those recent c_i."""
    base = drifting()
    users = [str(base.user_ids[u]) for u in base.user_idx]
    items = [str(base.item_ids[i]) for i in base.item_idx]
    ts = base.timestamp.tolist()
    for i in range(PAIRS):
        for n, day in enumerate([352] * 4 + [360] * 4):
            users += [f"late{i}-{n}"] * 2
            items += [f"a{i}", f"c{i}"]
            ts += [346 * DAY + n, day * DAY + 100 * i + n]
    split = global_time(
        Interactions.from_arrays(users, items, ts), test_fraction=0.03, validation_fraction=0.05
    )
    params, trials, _ = tune("itemknn", split, budget_s=60, max_trials=12, seed=0)
    assert trials[0]["params"]["half_life_days"] is None  # the defaults come first
    assert params["half_life_days"] is not None, trials
    assert max(t["validation_ndcg@10"] for t in trials) > trials[0]["validation_ndcg@10"] + 0.05
