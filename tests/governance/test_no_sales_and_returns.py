"""A product-per-day sales export carries days without a sale (quantity 0) and returns (a
negative quantity). Neither is a fault (both were `out_of_range`, and a quarter of zero rows
failed every delivery's check): a 0 is curated as a `no_sale` row, a negative as a `return` of
that many units, both counted apart in the load's report and never counted as a sale (events
contract 1.4.0). Run on Spark too (tests/storage/test_spark_parity.py)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.governance._contracts import EVENTS
from tests.conftest import curated_rows

# 3 products x 14 days (a till's daily export: the day is the session); known answers below
QTY = {
    "P1": [4, 0, 3, 5, 0, 2, 6, 4, -1, 3, 5, 0, 2, 4],
    "P2": [0, 0, 1, 0, 2, 0, 0, 1, 0, 0, 3, 0, 0, 1],
    "P3": [7, 8, 6, -2, 9, 7, 8, 6, 7, 9, 8, 7, 6, 8],
}
ZEROS = sum(q == 0 for qs in QTY.values() for q in qs)
RETURNS = sum(q < 0 for qs in QTY.values() for q in qs)
SOLD = sum(q for qs in QTY.values() for q in qs if q > 0)
RETURNED = -sum(q for qs in QTY.values() for q in qs if q < 0)


def daily_export(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "products.csv").write_text("product_id,title\n" + "".join(f"{p},Pasta {p}\n" for p in QTY))
    start = date(2024, 3, 4)  # a Monday: two whole weeks
    lines = ["date,sku,qty,session_id"]
    for k in range(14):
        day = start + timedelta(days=k)
        lines += [f"{day.isoformat()},{p},{qs[k]},day-{day.isoformat()}" for p, qs in QTY.items()]
    (d / "purchases.csv").write_text("\n".join(lines) + "\n")
    return d


def test_zero_and_negative_quantities_are_no_sales_and_returns_not_faults(tmp_path: Path, engine=None):
    assert (ZEROS, RETURNS, SOLD, RETURNED) == (12, 2, 142, 3)
    data = daily_export(tmp_path / "data")
    work = tmp_path / "w"
    eng = engine(work) if engine else None
    ev = Ingestor(work, engine=eng).run(data).tables["events"]
    # every row accounted for: curated (sales, no-sale rows, returns), nothing quarantined
    assert (ev.rows_in, ev.rows_curated, ev.rows_quarantined, ev.balanced) == (42, 42, 0, True)
    assert (ev.no_sale_rows, ev.return_rows) == (ZEROS, RETURNS)
    assert ev.check().passed and ev.contract_check == "passed" and ev.contract_version == EVENTS.version
    got = dict(curated_rows(work, "SELECT event_type, sum(quantity) FROM curated.events GROUP BY 1"))
    assert got == {"purchase": SOLD, "no_sale": 0, "return": RETURNED}
    # a delivery that re-sends the file adds nothing and counts no no-sale row or return again
    again = Ingestor(work, engine=eng, mode="append").run(data).tables["events"]
    assert (again.rows_curated, again.no_sale_rows, again.return_rows) == (0, 0, 0)
    assert again.rows_redelivered == 42 and again.check().passed


def test_demand_reads_no_sale_days_as_observed_zeros_and_leaves_returns_out(tmp_path: Path):
    """The units bought are the demand (a return does not undo it; said in the model), and the
    no-sale rows are counted as observed product-days."""
    from shelfwise.insights._demand import forecast_demand, load_weekly

    data = daily_export(tmp_path / "data")
    work = tmp_path / "w"
    Ingestor(work).run(data)
    weekly, products, at, catalog = load_weekly(work, None)
    assert weekly["units"].sum() == SOLD and weekly["returned"].sum() == RETURNED
    assert weekly["no_sale_days"].sum() == ZEROS
    # the shop trades every day: a no-sale day is a trading day (P2 sold on 5 of 14 days)
    assert weekly.attrs["closed_weekdays"] == []
    _, info, history = forecast_demand(weekly, products, at, horizon_weeks=2, catalog=catalog)
    assert (info.no_sale_days, info.returned_units) == (ZEROS, RETURNED)
    assert history["y"].sum() == SOLD


def test_a_zero_week_the_shop_recorded_as_no_sale_is_no_stock_out():
    """A week without a sale that shoppers looked at is read as a stock-out (demand not seen);
    one the shop recorded day by day as no sale is an observed zero."""
    import numpy as np
    import pandas as pd

    from shelfwise.insights._demand import uncensor

    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    y = np.full(30, 10.0)
    y[[12, 13]] = 0.0
    g = pd.DataFrame({"unique_id": "A", "ds": ds, "y": y, "interest": 20.0, "no_sale_days": 0.0})
    assert uncensor(g, set())[1] == 2  # no rows those weeks: inferred stock-outs
    g.loc[[12, 13], "no_sale_days"] = 7.0
    fixed, n = uncensor(g, set())
    assert n == 0 and fixed["y"].tolist() == y.tolist()
