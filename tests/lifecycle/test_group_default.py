"""Where the catalog has product groups, served lists show one product per group: training
chooses the default model by the validation group NDCG@10 and says so (report, log); the
held-out steps in a group already in the shopper's history are counted. A catalog without
groups chooses by the item NDCG@10, as before."""

from __future__ import annotations

import json
from pathlib import Path

from shelfwise import Shop
from tests.serving.test_product_groups import FAST, _write_shop


def _train(base: Path, groups: bool) -> tuple[dict, list[str]]:
    _write_shop(base / "data", groups=groups)
    lines: list[str] = []
    result = Shop(base / "w").train(
        base / "data", models=["popularity", "itemknn", "transitions"], **{**FAST, "log": lines.append}
    )
    return json.loads(Path(result.report_json).read_text()), lines


def test_the_default_is_chosen_by_group_ndcg_where_there_are_groups(tmp_path: Path) -> None:
    report, lines = _train(tmp_path / "g", True)
    chosen = report["default_chosen_by"]
    assert chosen["metric"] == "group_ndcg@10" and "one product per group" in chosen["why"], chosen
    by_group = report["validation_group_ndcg@10"]
    assert set(by_group) == {"popularity", "itemknn", "transitions"}
    assert report["default_model"] == max(by_group, key=lambda n: by_group[n])
    assert any(
        line.startswith(f"default model: {report['default_model']} (highest validation group_ndcg@10")
        for line in lines
    ), lines
    for r in report["results"]:
        assert "validation_group_ndcg@10" in r and "validation_ndcg@10" in r
    p = report["protocol"]
    assert 0 < p["repeat_group_targets"] <= p["users"]  # the shoppers view several sizes of a style
    assert any("in a product group already in their history" in line for line in lines), lines


def test_a_catalog_without_groups_chooses_by_item_ndcg(tmp_path: Path) -> None:
    report, lines = _train(tmp_path / "p", False)
    assert report["default_chosen_by"] == {"metric": "ndcg@10", "fold": "validation"}
    assert "validation_group_ndcg@10" not in report
    item = report["validation_ndcg@10"]
    assert report["default_model"] == max(item, key=lambda n: item[n])
    assert report["protocol"]["repeat_group_targets"] == 0
    assert not any("product group" in line for line in lines)
