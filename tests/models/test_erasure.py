"""Erasure reaches model state through `Recommender.forget_users`, never by attribute names."""

from __future__ import annotations

import numpy as np

from shelfwise.governance._erase import _forget_in_model
from shelfwise.models import ALS, ItemKNN, load_model
from tests.models.planted_data import planted_groups


def test_a_saved_model_forgets_the_user_and_one_without_user_state_is_left_alone(tmp_path):
    inter = planted_groups()
    ALS(factors=8, iterations=5).fit(inter).save(tmp_path / "als")
    ItemKNN().fit(inter).save(tmp_path / "itemknn")
    knn_state = (tmp_path / "itemknn" / "state.pkl").read_bytes()
    before = load_model(tmp_path / "als", inter)
    assert before.user_factors_[3].any()

    _forget_in_model(tmp_path / "als", 3, inter, "b1")
    _forget_in_model(tmp_path / "itemknn", 3, inter, "b1")

    after = load_model(tmp_path / "als", inter)
    assert not after.user_factors_[3].any() and not after.model_.user_factors[3].any()
    np.testing.assert_array_equal(after.user_factors_[4], before.user_factors_[4])
    assert (tmp_path / "itemknn" / "state.pkl").read_bytes() == knn_state  # not rewritten
