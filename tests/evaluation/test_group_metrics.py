"""Group-level metrics (a catalog of size variants under styles): a list collapsed to one product
per style, a hit on any variant of the held-out product's style."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shelfwise.evaluation._harness import group_lists
from shelfwise.evaluation._metrics import per_user_metrics


def test_a_hit_on_another_size_of_the_held_out_style_counts_at_group_level() -> None:
    # items 0-3: style 0 (four sizes); 4-5: style 1; 6: style 2
    groups = np.array([0, 0, 0, 0, 1, 1, 2])
    ids = np.array([[1, 2, 3, 4, 6], [4, 5, 6, -1, -1]])
    # user 0 held out size 0 of style 0 (not on its list: a miss by item, a hit by style);
    # user 1 held out item 6, third on its list by item, second by style (4 and 5 are one style)
    targets = sp.csr_matrix((np.ones(2, np.float32), ([0, 1], [0, 6])), shape=(2, 7))
    by_item = per_user_metrics(ids, targets, 5)
    assert by_item["hr@5"].tolist() == [0.0, 1.0]
    g_ids, g_targets = group_lists(ids, targets, groups)
    assert g_ids.tolist() == [[0, 1, 2, -1, -1], [1, 2, -1, -1, -1]]
    by_group = per_user_metrics(g_ids, g_targets, 5)
    assert by_group["hr@5"].tolist() == [1.0, 1.0]
    assert by_group["ndcg@5"][0] == 1.0 and round(float(by_group["ndcg@5"][1]), 4) == round(1 / np.log2(3), 4)


def test_new_group_metrics_leave_the_history_s_groups_out() -> None:
    """A user whose target is another size of a style in their history is no new-group user; for
    the others the lists lose the groups of their history and a hit is a new group."""
    from shelfwise.evaluation._harness import new_group_lists
    from shelfwise.features import Fold, Interactions

    groups = np.array([0, 0, 1, 1, 2, 2])
    item_ids = np.array([f"i{i}" for i in range(6)], dtype=object)
    # u0 saw item 0 (style 0), target item 1 (style 0 again); u1 saw item 0, target item 4 (style 2)
    history = Interactions.from_arrays(["u0", "u1"], ["i0", "i0"], [1, 2], item_ids=item_ids)
    users = np.array([int(np.flatnonzero(history.user_ids == u)[0]) for u in ("u0", "u1")])
    targets = sp.csr_matrix((np.ones(2, np.float32), ([0, 1], [1, 4])), shape=(2, 6))
    ids = np.array([[1, 2, 4, -1], [1, 3, 5, 2]])
    out, fresh, eligible = new_group_lists(ids, Fold("test", users, history, targets), groups)
    assert eligible.tolist() == [False, True]
    assert out[1].tolist() == [1, 2, -1, -1]  # style 0 (in the history) left out, one per style
    assert per_user_metrics(out[1:], fresh[1:], 2)["hr@2"].tolist() == [1.0]
