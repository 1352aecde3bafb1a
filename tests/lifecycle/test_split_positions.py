"""A global time split needs real times: a sequences file (S3-Rec's Beauty: order only) is
converted with step k of every user at 2015-01-01 + k hours, so a "point in time" cut was a cut by
sequence length stated with invented dates (the test users were exactly those with 34+ items).
`train --split global_time` refuses such data, naming leave-last-out; real times split as before,
and a bundle trained so before is still evaluated as it was measured."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.features import Interactions
from shelfwise.lifecycle._train import make_split, timestamps_are_positions

HOUR = 3600


def _sequences(lengths: list[int], real: bool = False) -> Interactions:
    users, items, ts = [], [], []
    rng = np.random.default_rng(3)
    for u, n in enumerate(lengths):
        start = int(rng.integers(0, 10**6)) if real else 0
        for k in range(n):
            users.append(f"u{u}")
            items.append(f"i{(u * 7 + k) % 23}")
            ts.append(1_420_070_400 + (start + k * int(rng.integers(1, 5000)) if real else k * HOUR))
    return Interactions.from_arrays(users, items, ts)


def test_positions_are_told_from_times():
    assert timestamps_are_positions(_sequences([5, 8, 3, 12, 6]))
    assert not timestamps_are_positions(_sequences([5, 8, 3, 12, 6], real=True))
    assert not timestamps_are_positions(_sequences([9]))  # one user: nothing to tell it by
    # two shoppers buying on the same two days (date-only times) are no pattern of positions
    assert not timestamps_are_positions(_sequences([2, 2]))
    assert not timestamps_are_positions(_sequences([3, 3, 3, 3]))  # (fewer than 5 users of 3+ steps)


def test_training_a_global_time_split_of_positions_is_refused_and_evaluating_one_is_not(tmp_path):
    from shelfwise import Shop

    seq = _sequences([5, 8, 3, 12, 6, 7, 9, 4, 10, 11])
    assert make_split(seq, "global_time").protocol == "global_time"  # (an old bundle's evaluation)
    assert len(make_split(seq, "leave_last_out").test) > 0
    data = tmp_path / "d"
    data.mkdir()
    rows = [
        f"u{u},i{(u * 7 + k) % 23},purchase,{1_420_070_400 + k * HOUR}" for u in range(10) for k in range(6)
    ]
    (data / "events.csv").write_text("user_id,product_id,event_type,timestamp\n" + "\n".join(rows) + "\n")
    (data / "products.csv").write_text("product_id,title\n" + "".join(f"i{i},item {i}\n" for i in range(23)))
    with pytest.raises(
        ShelfwiseError, match="needs real event times, and these are positions.*--split leave_last_out"
    ):
        Shop(tmp_path / "w").train(data, models=["popularity"], split="global_time", tune_trials=1)
