"""`evaluate --sampled N --models a` keeps the other models' sampled lines, as the full-ranking
report keeps the models not asked for (rewritten whole, the other models' numbers were lost)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import built_once


def _train_two_model_shop(base: Path) -> None:
    """`tests.serving.conftest._train_fill_shop`'s tiny shop, with popularity beside item-kNN."""
    from shelfwise import Shop
    from tests.serving.conftest import _train_fill_shop

    _train_fill_shop(base)
    fast = {"tune_budget_s": 0, "search_finetune_budget_s": 0, "search_cross_budget_s": 0, "log": None}
    Shop(base / "w").train(base / "data", models=["itemknn", "popularity"], **fast)


def test_a_sampled_evaluate_of_some_models_keeps_the_others_sampled_results(tmp_path_factory):
    from shelfwise import Shop

    work = built_once(tmp_path_factory, "fill-two-models", _train_two_model_shop) / "w"
    shop = Shop(work)
    everyone = shop.evaluate(sampled=3)
    names = [r["model"] for r in everyone["results"]]
    assert len(names) >= 2 and "itemknn" in names, names
    path = work / "reports" / "evaluation-sampled3.json"
    kept = {r["model"]: r for r in json.loads(path.read_text())["results"]}
    one = shop.evaluate(["itemknn"], sampled=3)
    assert [r["model"] for r in one["results"]] == ["itemknn"]  # what was asked, as before
    written = json.loads(path.read_text())
    assert [r["model"] for r in written["results"]] == names  # the others kept, in their order
    for r in written["results"]:
        assert r["metrics"] == pytest.approx(kept[r["model"]]["metrics"], nan_ok=True)
    html = (work / "reports" / "evaluation-sampled3.html").read_text()
    assert all(f"<td>{m}</td>" in html for m in names)
    # another sample size is another protocol: a report of its own, not merged
    shop.evaluate(["itemknn"], sampled=4)
    other = json.loads((work / "reports" / "evaluation-sampled4.json").read_text())
    assert [r["model"] for r in other["results"]] == ["itemknn"]
    # another seed is another draw of negatives: its numbers are not merged with seed 0's
    from shelfwise.lifecycle._train import evaluate_workdir

    evaluate_workdir(work, models=["itemknn"], sampled=3, seed=7)
    drawn = json.loads(path.read_text())
    assert [r["model"] for r in drawn["results"]] == ["itemknn"] and drawn["seed"] == 7


def test_evaluating_does_not_import_optuna():
    """`shelfwise evaluate` imports training's module (`evaluate_workdir`) and tunes nothing:
    Optuna (and the redis client it imports) is imported by `tune` alone (~0.15 s CPU)."""
    import subprocess
    import sys

    code = (
        "import sys; from shelfwise.lifecycle._train import evaluate_workdir; print('optuna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
