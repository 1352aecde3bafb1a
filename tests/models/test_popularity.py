"""Popularity ranks every user by one global order: its own `recommend` (the first k unseen
items of that order) gives each row the scores the generic whole-row ranking gives, never a seen
item, and breaks equal counts by item index."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.features import Interactions
from shelfwise.models import Popularity
from shelfwise.models._base import Recommender


@pytest.fixture(scope="module")
def shop() -> Interactions:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 2000, 30_000)
    items = rng.zipf(1.3, 30_000) % 400  # a long tail: many items share a count
    return Interactions.from_arrays([f"u{u}" for u in users], [f"i{i}" for i in items], np.arange(len(users)))


@pytest.mark.parametrize("k", [1, 10, 50, 500])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_same_scores_as_ranking_each_whole_row_and_no_seen_item(shop, k, exclude_seen):
    model = Popularity().fit(shop)
    users = np.arange(shop.n_users)
    fast = model.recommend(users, k, exclude_seen=exclude_seen)
    generic = Recommender.recommend(model, users, k, exclude_seen=exclude_seen)
    assert fast.ids.shape == generic.ids.shape == (shop.n_users, k)
    assert np.array_equal(fast.scores, generic.scores)  # the same scores in the same places
    assert np.array_equal(fast.ids >= 0, generic.ids >= 0)  # padding where items run out
    if exclude_seen:
        seen = shop.seen()
        for u in range(0, shop.n_users, 7):
            got = fast.ids[u][fast.ids[u] >= 0]
            assert not set(got) & set(seen[u].indices), u
            assert len(set(got)) == len(got)


def test_equal_counts_are_ordered_by_item_index(shop):
    model = Popularity().fit(shop)
    res = model.recommend(np.arange(shop.n_users), 50, exclude_seen=True)
    ties = 0
    for ids, scores in zip(res.ids, res.scores, strict=True):
        same = (scores[1:] == scores[:-1]) & (ids[1:] >= 0)
        assert (ids[1:][same] > ids[:-1][same]).all()
        ties += int(same.sum())
    assert ties > 0  # the data has ties for the order to break
