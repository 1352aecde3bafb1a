"""A PrestaShop 8 shop's exports (`current_state`, its default order states, `id_order`,
`active`, `quantity`, `company`) load alike on Spark and DuckDB
(`tests/governance/test_prestashop_exports.py` states the answers on DuckDB)."""

from __future__ import annotations

import pytest

from tests.governance.test_prestashop_exports import _orders, _shop
from tests.storage.conftest import skip_without_spark
from tests.storage.test_spark_parity import _assert_same, _ingest_both

pytestmark = pytest.mark.slow

skip_without_spark()


def test_prestashop_exports_same_on_both_engines(spark, tmp_path):
    duck, sprk, reports = _ingest_both(spark, _shop(tmp_path, _orders()), tmp_path)
    _assert_same(duck, sprk, reports)
    events, users = reports["spark"].tables["events"], reports["spark"].tables["users"]
    assert (events.rows_curated, events.rows_set_aside) == (7, 6)
    assert "company" in users.personal_columns_dropped
