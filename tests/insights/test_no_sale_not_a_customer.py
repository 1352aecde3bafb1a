"""A no_sale row (a purchase line of 0 units, events contract 1.4.0) is the shop's record that a
product sold nothing that day, not a customer's action: customer analyses (profiles, audiences,
churn, the customer count) never see it, so a till that writes its no-sale days under its own id
is no customer and a customer's no-sale line is no activity."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.insights._data import count_customers, load_curated


def test_no_sale_rows_are_left_out_of_customer_data(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,Pasta\nP2,Rice\n")
    (data / "purchases.csv").write_text(
        "timestamp,user_id,product_id,quantity\n"
        "2024-03-04T10:00:00,u1,P1,2\n"
        "2024-03-05T10:00:00,u2,P2,1\n"
        "2024-03-05T11:00:00,till-7,P1,0\n"  # the till's no-sale day for P1
        "2024-03-06T11:00:00,u1,P2,0\n"  # a no-sale line under a customer: no activity of theirs
    )
    work = tmp_path / "w"
    ev = Ingestor(work).run(data).tables["events"]
    assert (ev.rows_curated, ev.no_sale_rows) == (4, 2)
    events, _, at = load_curated(work, None)
    assert sorted(events["event_type"]) == ["purchase", "purchase"]
    assert str(at).startswith("2024-03-06")  # the latest event still sets the default as-of
    assert count_customers(work, at) == 2


def test_a_return_is_no_activity_in_churn_features():
    """`events_30` and `days_since_event` count a shopper's actions: a return undoes a purchase,
    it is no sign the shopper is active (it counted as browsing activity, against churn)."""
    import pandas as pd

    from shelfwise.insights._customers import features_at, orders_from_events

    ts = pd.to_datetime(["2024-03-01T10:00", "2024-03-02T10:00", "2024-03-20T10:00", "2024-03-20T11:00"])
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "product_id": ["P1", "P1", "P1", "P2"],
            "event_type": ["view", "purchase", "return", "view"],
            "timestamp": ts.astype("datetime64[us]"),
            "session_id": [None] * 4,
            "quantity": [1, 1, -1, 1],
            "value": [None, 5.0, None, None],
        }
    )
    products = pd.DataFrame({"product_id": ["P1", "P2"], "price": [5.0, 3.0], "category": ["a", "b"]})
    orders = orders_from_events(events, products)
    f = features_at(events, orders, products, ts.max(), 90)
    assert f.loc["u1", "events_30"] == 1.0  # the view, not the return
    assert round(f.loc["u1", "days_since_event"]) == 18  # since the purchase, not the return
