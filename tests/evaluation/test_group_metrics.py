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
