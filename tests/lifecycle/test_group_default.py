"""Where the catalog has product groups, served lists show one product per group: training
chooses the default model by the validation group NDCG@10 and says so (report, log); the
held-out steps in a group already in the shopper's history are counted. A catalog without
groups chooses by the item NDCG@10, as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    # the single models: the one of the highest validation group NDCG@10 (said before the fusion)
    best = max(by_group, key=lambda n: by_group[n])
    assert any(
        line.startswith(f"default model: {best} (highest validation group_ndcg@10 {by_group[best]:.4f}")
        for line in lines
    ), lines
    # the fusion replaces it only where it beats its parts by the group NDCG@10 on the
    # validation users its ranker held out (its ranker learnt item labels)
    held = (report.get("fusion") or {}).get("holdout_group_ndcg@10")
    said = [line for line in lines if line.startswith("fusion: held-out validation group_ndcg@10")]
    if report["default_model"] == "fusion":
        assert held and held["fusion"] > max(v for n, v in held.items() if n != "fusion"), held
        assert chosen["metric"] == "group_ndcg@10", chosen
        assert chosen["fold"] == "fusion's held-out validation users", chosen
        assert len(said) == 1 and said[0].endswith(": made the default"), said
    else:
        assert report["default_model"] == best, report["default_model"]
        assert chosen["fold"] == "validation", chosen
        if held:
            assert held["fusion"] <= max(v for n, v in held.items() if n != "fusion"), held
            assert len(said) == 1 and "not made the default" in said[0], said
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


def test_the_gates_read_the_metric_that_chose_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle chosen by the group NDCG@10 is gated by it (its own 95% interval), said in each
    gate, `Shop.gates`, `models gates` and `models list`; against a production version of the
    catalog before it had groups (chosen by ndcg@10), both are compared user by user on the
    group NDCG@10. The bundle of the catalog without groups keeps the item NDCG@10."""
    from shelfwise.cli import main
    from shelfwise.lifecycle._head_to_head import head_to_head
    from shelfwise.lifecycle._registry import Registry
    from shelfwise.models import read_manifest

    work = tmp_path / "w"
    models = ["popularity", "itemknn", "transitions"]
    for groups in (False, True):  # the same shop, then its catalog with styles
        _write_shop(tmp_path / f"data-{groups}", groups=groups)
        Shop(work).train(tmp_path / f"data-{groups}", models=models, **FAST)
    shop = Shop(work)
    plain, grouped = (r["version"] for r in shop.versions())
    reg = Registry(work)
    # the grouped bundle's quality gates read the group NDCG@10 (they read the item NDCG@10)
    first = {g["name"]: g["detail"] for g in shop.gates(grouped)["gates"]}
    assert all("group_ndcg@10" in first[n] for n in ("beats_popularity", "not_worse_than_production")), first
    m = read_manifest(reg.bundle_dir(grouped))
    assert m["default_chosen_by"]["metric"] == "group_ndcg@10", m["default_chosen_by"]
    default = m["default_model"]
    lo, hi = m["ci95"][default]["group_ndcg@10"]
    assert lo <= m["metrics"][default]["group_ndcg@10"] <= hi and lo < hi, m["ci95"][default]

    got = shop.gates(grouped)
    assert got["metric"] == "group_ndcg@10", got
    gates = {g["name"]: g for g in got["gates"]}
    pop = m["metrics"]["popularity"]["group_ndcg@10"]
    if default != "popularity":
        assert gates["beats_popularity"]["detail"] == (
            f"{default} group_ndcg@10 95% CI lower bound {lo:.4f} vs popularity {pop:.4f}"
        ), gates
        assert gates["beats_popularity"]["passed"] == (lo > pop)
    # production (the catalog without groups, chosen by ndcg@10) and the candidate, user by user
    # on the candidate's metric: production's lists collapsed by the candidate's styles
    worse = gates["not_worse_than_production"]
    assert f"production v{plain}" in worse["detail"] and "group_ndcg@10" in worse["detail"], worse
    assert "paired 95% CI" in worse["detail"] and not worse.get("review"), worse
    h2h = head_to_head(work, reg.bundle_dir(grouped), reg.bundle_dir(plain), metric="group_ndcg@10")
    assert h2h is not None and h2h.get("metric") == "group_ndcg@10" and h2h["users"] > 0, h2h
    item = head_to_head(work, reg.bundle_dir(grouped), reg.bundle_dir(plain))
    assert item is not None and "metric" not in item, item

    capsys.readouterr()
    assert main(["models", "gates", "--workdir", str(work), "--version", grouped]) in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("gated on group_ndcg@10: the test metric that chose the default model"), out
    assert main(["models", "list", "--workdir", str(work)]) in (0, None)
    lines = capsys.readouterr().out.splitlines()
    assert "group_ndcg@10" in next(line for line in lines if line.startswith(f"v{grouped} ")), lines
    row = next(r for r in shop.versions() if r["version"] == grouped)
    assert row["gate_metric"] == "group_ndcg@10", row
    assert row["gate_score"] == pytest.approx(m["metrics"][default]["group_ndcg@10"]), row

    # the catalog without groups: the item NDCG@10, as before
    plain_gates = shop.gates(plain)
    assert plain_gates["metric"] == "ndcg@10", plain_gates
    pm = read_manifest(reg.bundle_dir(plain))
    assert "group_ndcg@10" not in pm["ci95"][pm["default_model"]]
    assert all("group_ndcg@10" not in g["detail"] for g in plain_gates["gates"]), plain_gates
    if pm["default_model"] != "popularity":
        plo = pm["ci95"][pm["default_model"]]["ndcg@10"][0]
        beats = next(g for g in plain_gates["gates"] if g["name"] == "beats_popularity")
        assert beats["detail"] == (
            f"{pm['default_model']} ndcg@10 95% CI lower bound {plo:.4f} vs popularity "
            f"{pm['metrics']['popularity']['ndcg@10']:.4f}"
        ), beats
    assert main(["models", "gates", "--workdir", str(work), "--version", plain]) in (0, None)
    assert "gated on" not in capsys.readouterr().out
    assert next(r for r in shop.versions() if r["version"] == plain)["gate_metric"] == "ndcg@10"
