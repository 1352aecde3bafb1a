"""Users who never bought (segment "prospect") on a shop with too little history for the trees:
planted first-purchase hazard, so the share of prospects who order in the horizon is known; and
P(at least one order) never above the expected number of orders."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from shelfwise.insights._customers import consistent, profile_customers

START = datetime(2026, 1, 1)
DAYS, HORIZON = 80, 60
MEAN_FIRST = 60.0  # days to a first order, exponential: P(order within 60 d) = 1 - e^-1 = 0.63


def planted_events(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []

    def ev(user: str, day: float, kind: str) -> None:
        rows.append((user, "P1", kind, START + timedelta(days=float(day)), None, 10.0, 1))

    for u in range(60):  # regular buyers: BG/NBD has repeat orders to fit
        day = rng.uniform(0, 10)
        while day < DAYS:
            ev(f"B{u}", day, "view")
            ev(f"B{u}", day, "purchase")
            day += rng.exponential(10)
    for u in range(600):  # browsers: a first order after an exponential wait, then none
        first = rng.uniform(0, DAYS)
        ev(f"V{u}", first, "view")
        buy = first + rng.exponential(MEAN_FIRST)
        if buy < DAYS:
            ev(f"V{u}", buy, "purchase")
    cols = ["user_id", "product_id", "event_type", "timestamp", "session_id", "value", "quantity"]
    return pd.DataFrame(rows, columns=cols).sort_values("timestamp", ignore_index=True)


def test_prospects_get_the_shops_first_order_rate_not_certain_churn():
    events = planted_events()
    products = pd.DataFrame({"product_id": ["P1"], "category": ["C"], "brand": ["b"], "price": [10.0]})
    prof, info = profile_customers(events, products, START + timedelta(days=DAYS), HORIZON)
    assert info.model in ("bgnbd", "rate")  # too little history for the trees
    pros = prof[prof["segment"] == "prospect"]
    assert len(pros) > 200
    p_order = 1 - pros["churn_risk"]
    truth = 1 - np.exp(-HORIZON / MEAN_FIRST)  # 0.63, memoryless
    assert abs(float(p_order.mean()) - truth) < 0.1, (p_order.mean(), getattr(info, "prospects", None))
    assert pros["expected_purchases"].min() > 0.25
    assert info.prospects["p_order"] is not None and info.prospects["non_buyers"] > 200
    # P(at least one order) <= expected orders, for every profile
    assert (prof["expected_purchases"] >= 1 - prof["churn_risk"] - 1e-9).all()


def test_probability_of_an_order_never_exceeds_the_expected_count():
    now = pd.DataFrame({"churn_risk": [0.2, 0.9, 0.5], "expected_purchases": [0.5, 3.0, 0.5]})
    assert consistent(now) == 1
    assert now["expected_purchases"].tolist() == [0.8, 3.0, 0.5]


def test_a_shop_of_till_sales_only_is_told_its_events_are_anonymous(tmp_path):
    """A grocery's daily till sales (no customer id) profiled: "no events up to 2018-12-31" of
    a shop with thousands of them read as a broken load; it says they are all anonymous."""
    from shelfwise import Shop
    from shelfwise.errors import ShelfwiseError

    data = tmp_path / "d"
    data.mkdir()
    rows = "".join(
        f",P{i % 3},purchase,2018-12-{1 + i % 28:02d}T10:00:00Z,till-{i % 28}\n" for i in range(60)
    )
    (data / "events.csv").write_text("user_id,product_id,event_type,timestamp,session_id\n" + rows)
    shop = Shop(tmp_path / "w")
    shop.ingest(data)
    with pytest.raises(ShelfwiseError, match="all 60 events up to .* are anonymous"):
        shop.customers(tmp_path / "c.jsonl")


def test_trees_never_seen_a_customer_do_not_score_the_days_buyers():
    """A shop with a year of browsing whose only orders came in its last days (a ratings
    catalog, then the first served purchases): the trees were trained on prospects alone and
    every buyer of the day read 99.9% churn. Without customers in the training cuts the trees
    are not fitted, the report says why, and a constant rate stands in."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(400):
        for _ in range(3):
            day = float(rng.uniform(0, 360))
            rows.append((f"U{u}", "P1", "view", START + timedelta(days=day), None, None, 1))
    for u in range(15):
        rows.append((f"U{u}", "P1", "purchase", START + timedelta(days=364.5), None, 10.0, 1))
    cols = ["user_id", "product_id", "event_type", "timestamp", "session_id", "value", "quantity"]
    events = pd.DataFrame(rows, columns=cols).sort_values("timestamp", ignore_index=True)
    products = pd.DataFrame({"product_id": ["P1"], "category": ["C"], "brand": ["b"], "price": [10.0]})
    prof, info = profile_customers(events, products, START + timedelta(days=365), 90)
    assert info.model != "gbm" and "0 row(s) of customers" in info.note, info
    buyers = prof[prof["frequency"] > 0]
    assert len(buyers) == 15 and buyers["churn_risk"].max() < 0.9, buyers["churn_risk"].describe()
