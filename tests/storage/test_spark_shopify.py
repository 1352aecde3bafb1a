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
