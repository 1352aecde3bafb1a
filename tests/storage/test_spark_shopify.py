"""A Shopify shop's exports (variant rows, order lines of cancelled and refunded orders, gift-card
lines) load alike on Spark and DuckDB: the same counts per reason, the same quarantine, the same
curated rows (`tests/governance/test_shopify_exports.py` states the answers on DuckDB)."""

from __future__ import annotations

import pytest

from tests.governance.test_shopify_exports import shopify_shop
from tests.storage.conftest import skip_without_spark
from tests.storage.test_spark_parity import _assert_same, _ingest_both

pytestmark = pytest.mark.slow

skip_without_spark()


def test_shopify_exports_same_on_both_engines(spark, tmp_path):
    duck, sprk, reports = _ingest_both(spark, shopify_shop(tmp_path), tmp_path)
    _assert_same(duck, sprk, reports)
    events, products = reports["spark"].tables["events"], reports["spark"].tables["products"]
    assert (events.rows_curated, events.rows_set_aside) == (4, 5)
    assert (products.rows_curated, products.rows_set_aside) == (3, 1)


def test_an_erased_users_set_aside_lines_are_withheld_on_spark(spark, tmp_path):
    """As on DuckDB: c@'s cancelled order lines, sent again after c@ was erased, are withheld
    (counted), never written to the quarantine with the e-mail in clear."""
    from shelfwise import Shop
    from shelfwise.governance import Ingestor
    from shelfwise.storage import SparkEngine
    from tests.conftest import curated_rows

    w, data = tmp_path / "w", shopify_shop(tmp_path)
    Ingestor(w, engine=SparkEngine(w, master="local[2]")).run(data)
    Shop(w).erase("c@example.com")
    ev = Ingestor(w, mode="append", engine=SparkEngine(w, master="local[2]")).run(data).tables["events"]
    assert (ev.rows_withheld, ev.withheld) == (2, {"erased_user": 2})
    assert "cancelled_order" not in ev.reasons and ev.balanced
    named = "SELECT count(*) FROM quarantine.rows WHERE raw::VARCHAR LIKE '%c@example.com%'"
    assert curated_rows(w, named) == [(0,)]
