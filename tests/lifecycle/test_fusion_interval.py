"""The fusion against its best generator on the held-out validation users: the difference of
NDCG@10 with its paired 95% interval (bootstrap over those users, the evaluation's rounds and
seed), and a gain called one only when that interval excludes 0. Known answers on hand-made
per-user gains."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.lifecycle._train import fusion_versus_parts


def _info(gains: dict[str, np.ndarray]) -> dict:
    return {
        "holdout_users": len(gains["fusion"]),
        "holdout_ndcg@10": {g: float(v.mean()) for g, v in gains.items()},
    }


def test_a_small_gain_on_every_user_is_a_gain_because_the_interval_is_paired() -> None:
    """Every held-out user gets 0.01 more NDCG@10 from the fusion than from its best part,
    whose users range from 0 to 1: paired by user the difference is 0.01 on every resample
    ([+0.01, +0.01]); the two models' own intervals (unpaired) would overlap almost wholly."""
    part = np.tile([0.0, 0.98], 100)
    gains = {"fusion": part + 0.01, "transitions": part, "popularity": part / 2}
    info = _info(gains)
    line = fusion_versus_parts(info, gains, rounds=1000, seed=0)
    vs = info["holdout_vs_best_part"]
    assert vs["part"] == "transitions" and vs["users"] == 200
    assert vs["difference"] == pytest.approx(0.01) and vs["ci95"] == pytest.approx([0.01, 0.01])
    assert vs["gain_shown"] is True and info["beats_parts"] is True
    assert "1,000 rounds, seed 0" in vs["method"]
    assert (
        line.endswith(": a gain") and "(transitions): +0.0100, paired 95% interval [+0.0100, +0.0100]" in line
    )


def test_a_point_estimate_above_the_best_part_with_an_interval_over_0_is_no_gain() -> None:
    """51 of 100 users score 1 with the fusion, 49 score 0; the best part scores 0.5 for each:
    0.51 > 0.50 makes the fusion the default (the point estimate, as before), but the paired
    interval of +0.01 covers 0, and neither the line nor the record calls it a gain."""
    fusion = np.array([1.0] * 51 + [0.0] * 49)
    gains = {"fusion": fusion, "itemknn": np.full(100, 0.5)}
    info = _info(gains)
    line = fusion_versus_parts(info, gains, rounds=1000, seed=0)
    vs = info["holdout_vs_best_part"]
    lo, hi = vs["ci95"]
    assert lo < 0 < hi and vs["gain_shown"] is False and info["beats_parts"] is True
    # the percentile bootstrap of the per-user differences, the evaluation's intervals' method
    from shelfwise.evaluation import bootstrap_ci

    assert (lo, hi) == bootstrap_ci(fusion - 0.5, rounds=1000, seed=0)
    assert "covers 0: no gain shown (made the default on its point estimate)" in line
    assert "gain" not in line.replace("no gain shown", "")


def test_without_per_user_gains_the_line_is_the_point_estimates_alone() -> None:
    info = {"holdout_ndcg@10": {"fusion": 0.3, "itemknn": 0.2}}
    line = fusion_versus_parts(info, None, rounds=1000, seed=0)
    assert line == "fusion: held-out validation ndcg@10 0.3000 vs best part 0.2000 (itemknn)"
    assert "holdout_vs_best_part" not in info and info["beats_parts"] is True
