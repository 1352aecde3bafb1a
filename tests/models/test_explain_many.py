"""`explain_many` (the console's shopper page explains its top items at once) gives each item
what a leave-one-out re-scoring for that item alone gives (`explain`'s definition)."""

import numpy as np

from shelfwise.models import RECOMMENDERS
from tests.models.planted_data import planted_groups


def _one(model, user: int, item: int, top: int = 3) -> list[dict]:
    """The definition, one item at a time: the history items whose removal lowers its score most."""
    hist = model._history(None)
    base = float(model._score(np.array([user]), hist)[0, item])
    drops = []
    for pos in np.unique(hist.sequence(user))[-50:]:
        mask = ~((hist.user_idx == user) & (hist.item_idx == pos))
        drops.append((base - float(model._score(np.array([user]), hist.take(mask))[0, item]), int(pos)))
    drops.sort(reverse=True)
    return [{"item": i, "contribution": round(d, 6)} for d, i in drops[:top] if d > 0]


def test_explain_many_equals_explain_per_item() -> None:
    inter = planted_groups()
    for name in ("transitions", "itemknn"):
        model = RECOMMENDERS[name]().fit(inter)
        for user in (0, 3):
            items = [int(i) for i in model.recommend(np.array([user]), k=5).ids[0] if i >= 0]
            many = model.explain_many(user, items)
            assert set(many) == set(items)
            assert all(many[i] == _one(model, user, i) == model.explain(user, i) for i in items), name
            assert any(many[i] for i in items), name  # something explained: the check is not vacuous
