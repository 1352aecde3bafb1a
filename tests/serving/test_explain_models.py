"""`because`: the history items behind a recommended item, from the transitions or item-kNN
model, asked in the order that can answer (stub models with known answers)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from shelfwise.features import Interactions
from shelfwise.serving._recommend import Recommendations


def _recs(models: dict) -> Recommendations:
    inter = Interactions(
        user_idx=np.array([0, 0], np.int32),
        item_idx=np.array([0, 1], np.int32),
        weight=np.ones(2, np.float32),
        timestamp=np.array([1, 2], np.int64),
        user_ids=np.array(["u"], object),
        item_ids=np.array(["P0", "P1", "P2"], object),
    )
    recs = Recommendations.__new__(Recommendations)
    recs.bundle = SimpleNamespace(interactions=inter, models=models)  # type: ignore[assignment]
    return recs


def _model(reasons: list[int]) -> SimpleNamespace:
    return SimpleNamespace(explain=lambda user, item, history=None: [{"item": i} for i in reasons])


def test_an_item_knn_reason_is_given_when_transitions_find_none() -> None:
    """Transitions were asked alone when the bundle had them: their [] (no step from the last
    items leads to it) was the answer for most long sessions whose items item-kNN links."""
    recs = _recs({"transitions": _model([]), "itemknn": _model([0])})
    assert recs.explain(0, 2) == ["P0"]
    assert _recs({"transitions": _model([1]), "itemknn": _model([0])}).explain(0, 2) == ["P1"]
    # a list from item-kNN is explained by item-kNN first
    assert _recs({"transitions": _model([1]), "itemknn": _model([0])}).explain(0, 2, "itemknn") == ["P0"]
    assert _recs({"popularity": _model([1])}).explain(0, 2) == []
