"""benchmarks/insights.py's churn diagnostics on known answers: the per-customer signal check
(year-to-year rank correlation of order counts, index of dispersion; nothing after the origin
read) and the paired-bootstrap differences between our model and an anchor."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

AS_OF = pd.Timestamp("2020-01-01")


def _orders(per_year: dict[str, int], start: pd.Timestamp, years: int) -> pd.DataFrame:
    """Each customer orders `per_year[u]` times a year, evenly spread, for `years` years."""
    rows = []
    for u, n in per_year.items():
        for y in range(years):
            for k in range(n):
                rows.append((u, start + pd.Timedelta(days=365 * y + 1 + k * (360 // n))))
    return pd.DataFrame(rows, columns=["user_id", "ts"]).sort_values("ts").reset_index(drop=True)


def test_signal_sees_customers_who_keep_their_rhythm_and_reads_nothing_after_the_origin():
    import insights as bench

    per_year = {f"u{i}": 1 + i % 6 for i in range(30)}  # 1..6 orders a year, the same every year
    orders = _orders(per_year, AS_OF - pd.Timedelta(days=3 * 365), 3)
    got = bench.customer_signal(orders, AS_OF)
    counts = 2 * pd.Series(per_year, dtype=float)  # two years of the same rhythm
    assert got["customers"] == 30 and got["year_to_year_spearman"] == 1.0
    assert got["orders_per_customer_2y"] == round(counts.mean(), 3)
    assert got["dispersion_index_2y"] == round(counts.var() / counts.mean(), 3)
    # the years after the origin, with the rhythms reversed, change nothing
    later = _orders({u: 7 - n for u, n in per_year.items()}, AS_OF, 2)
    assert bench.customer_signal(pd.concat([orders, later], ignore_index=True), AS_OF) == got


def test_signal_of_customers_buying_at_one_common_random_rate_is_none():
    """Orders dealt to customers at random (Superstore's case): dispersion ~1, no rank correlation."""
    import insights as bench

    rng = np.random.default_rng(0)
    start = AS_OF - pd.Timedelta(days=3 * 365)
    n = 400
    first = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "ts": start})
    days = rng.integers(1, 3 * 365, 6 * n)
    dealt = pd.DataFrame(
        {"user_id": [f"u{i}" for i in rng.integers(0, n, 6 * n)], "ts": start + days * pd.Timedelta(days=1)}
    )
    got = bench.customer_signal(pd.concat([first, dealt], ignore_index=True), AS_OF)
    assert got["customers"] == n
    assert abs(got["dispersion_index_2y"] - 1.0) < 0.2 and abs(got["year_to_year_spearman"]) < 0.15


def _scored(y: np.ndarray, risk: np.ndarray, anchor: np.ndarray) -> list[dict]:
    counts = (1 - y).astype(float)
    return [
        {
            "as_of": "2020-01-01",
            "churned": y,
            "y_orders": counts,
            "y_days": counts,
            "risk": risk,
            "expected": 1 - risk,
            "anchors": {"bgnbd": (anchor, 1 - anchor)},
        }
    ]


def test_differences_are_zero_for_the_same_scores_and_sure_for_a_perfect_model():
    import insights as bench

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    noise = rng.random(300)
    same = bench._differences(_scored(y, noise, noise), "bgnbd")
    assert same["mean"] == {
        "churn_auc_diff": 0.0,
        "churn_auc_ci95": [0.0, 0.0],
        "mae_diff": 0.0,
        "mae_ci95": [0.0, 0.0],
    }
    perfect = bench._differences(_scored(y, y.astype(float), noise), "bgnbd")["per_origin"][0]
    assert perfect["churn_auc_diff"] > 0.4 and perfect["churn_auc_ci95"][0] > 0.3
    assert perfect["mae_diff"] < 0 and perfect["mae_ci95"][1] < 0  # an exact count against noise
    assert bench._differences(_scored(y, noise, noise), "pareto_nbd") == {}  # an anchor that failed
