"""The console says a running experiment where a manager looks first (Overview, Models: half of
the lists may come from another model than production's), and an empty "Top queries" block says
that no search was logged instead of a blank chart (walk 52)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from shelfwise.serving._experiments import EXPERIMENTS_FILE
from shelfwise.serving._exposures import exposure_record, log_exposures
from shelfwise.serving._service import Answer
from shelfwise.web import _data


def _page(template: str, **ctx: Any) -> str:
    from jinja2 import ChainableUndefined

    from shelfwise.web._routes import _templates

    # (what a page's other sections need left undefined: this reads the sections under test)
    env = _templates().env.overlay(undefined=ChainableUndefined)
    tpl = env.get_template(template)
    return "".join(tpl.blocks["main"](tpl.new_context(ctx)))


def test_overview_and_models_say_the_running_experiment(tmp_path: Path) -> None:
    doc = {"experiments": [
        {"name": "knn-vs-default", "variants": [{"name": "control"}, {"name": "itemknn", "model": "itemknn"}]},
        {"name": "rules-ab", "surface": "search", "variants": [{"name": "control", "weight": 3},
                                                               {"name": "off", "shop_rules": False}]},
        {"name": "old", "end": "2020-01-01", "variants": [{"name": "a"}, {"name": "b"}]},
    ]}  # fmt: skip
    (tmp_path / EXPERIMENTS_FILE).parent.mkdir(parents=True)
    (tmp_path / EXPERIMENTS_FILE).write_text(json.dumps(doc))
    ans = Answer(["p1"], "itemknn", "itemknn", "b1", SimpleNamespace(name="itemknn"), "knn-vs-default", {})
    log_exposures(tmp_path, [{**exposure_record("recommendations", "r1", ans, "u1", {}), "at": 1796601600.0}])
    running = _data.running_experiments(tmp_path)
    assert [e["name"] for e in running] == ["knn-vs-default", "rules-ab"]  # (not the one that ended)
    assert running[0]["since"] == "2026-12-07 00:00 UTC" and running[1]["since"] is None
    assert [v["share"] for v in running[1]["variants"]] == [0.75, 0.25]
    o = {"alerts": [], "production": [], "candidates": [], "experiments": running}
    overview = _page("overview.html", o=o, may=lambda _: False)
    models = _page("models.html", versions=[], prod=None, running=running, may=lambda _: False)
    for html in (overview, models):
        assert (
            "Experiment <b>knn-vs-default</b> running on recommendations since 2026-12-07 00:00 UTC" in html
        )
        assert "control 50% (the default model), itemknn 50% (model itemknn)" in html
        assert "off 25% (the default model, without the shop's pins, boosts and buries)" in html
    assert "running on" not in _page("models.html", versions=[], prod=None, running=[], may=lambda _: False)


def test_top_queries_without_logged_searches_say_so_instead_of_a_blank_chart() -> None:
    sr = {
        "logged": {"searches": 0, "distinct_queries": 0, "top_queries": [], "zero_result_queries": []},
        "served": {"pages": 0, "zero_result_pages": 0, "queries": [], "zero_result_queries": []},
        "protocol": {},
    }
    html = _page("analytics.html", sr=sr, exps=None)
    assert 'id="no-top-queries"' in html and "No searches logged yet" in html
    assert '<div class="chart"' not in html.split("Served queries")[0]
    sr["logged"]["top_queries"] = [{"query": "dress", "searches": 3, "users": 2, "session_ctr": 0.5}]
    html = _page("analytics.html", sr=sr, exps=None)
    assert 'id="no-top-queries"' not in html and '<div class="chart"' in html


def test_the_analytics_page_says_how_many_of_an_arms_lists_were_the_fallback() -> None:
    m = {"users": 3, "exposures": 3, "ctr": 0.0, "add_to_cart_rate": 0.0, "conversion": 0.0, "revenue_per_user": 0.0,
         "served_by": {"fallback": 1, "itemknn": 2}, "fallback_lists": 1, "fallback_share": 1 / 3}  # fmt: skip
    exps = {
        "configured": [],
        "report": {"experiments": {"e": {"variants": {"itemknn": m}, "comparisons": {}}}},
    }
    html = _page("analytics.html", sr=None, exps=exps)
    assert "itemknn: 1 of its lists (33.3%) were the popular fallback" in html
    assert "served by fallback 1, itemknn 2" in html


def test_the_analytics_page_says_the_slots_of_an_arms_lists_the_popular_fill_supplied() -> None:
    """A list the model made 1 of 5 products of is its model's in `served_by`: the page said no
    word of an arm whose lists were mostly the popular fill (`filled_slot_share`)."""
    m = {"users": 2, "exposures": 2, "ctr": 0.0, "add_to_cart_rate": 0.0, "conversion": 0.0, "revenue_per_user": 0.0,
         "served_by": {"itemknn": 2}, "fallback_lists": 0, "fallback_share": 0.0, "served_slots": 10,
         "filled_slots": 8, "filled_slot_share": 0.8, "filled_unrecorded_lists": 1}  # fmt: skip
    exps = {
        "configured": [],
        "report": {"experiments": {"e": {"variants": {"itemknn": m}, "comparisons": {}}}},
    }
    html = _page("analytics.html", sr=None, exps=exps)
    assert "8 of the 10 slots of its lists (80.0%) the popular fill" in html
    assert "(1 list(s) logged before the fill was recorded left out of it)" in html
    assert "served by itemknn 2" in html
