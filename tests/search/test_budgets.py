"""The MiniLM fine-tune and the cross-encoder are budgeted in steps, not seconds: the same data and
seed give the same model on an idle and on a loaded machine; the seconds are a safety cap that
the result names when it stops a training early."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from shelfwise.features._text_encoder import shipped_model_dir
from shelfwise.search import CrossSettings, FinetuneSettings, SearchCatalog
from shelfwise.search._cross import train_cross_encoder
from shelfwise.search._finetune import finetune_biencoder

N = 12


def _shop() -> tuple[SearchCatalog, dict[str, str], dict[str, dict[str, float]]]:
    ids, titles = [], []
    for i in range(N):
        ids += [f"c{i}", f"h{i}"]
        titles += [f"phone charger model {i}", f"garden hose model {i}"]
    queries = {f"z{i}": f"zorp {i}" for i in range(N)} | {f"b{i}": f"blick {i}" for i in range(N)}
    gains = {f"z{i}": {f"c{i}": 2.0, f"h{i}": 0.0} for i in range(N)}
    gains |= {f"b{i}": {f"h{i}": 2.0, f"c{i}": 0.0} for i in range(N)}
    return SearchCatalog(ids, titles), queries, gains


def _finetune(tmp_path, name: str, settings: FinetuneSettings) -> dict:
    catalog, queries, gains = _shop()
    texts = {p: catalog.text(i) for i, p in enumerate(catalog.product_ids)}
    qids = sorted(queries)
    valid = [q for q in qids if q.endswith(("0", "5"))]
    train = [q for q in qids if q not in valid]
    return finetune_biencoder(
        shipped_model_dir(), tmp_path / name, queries, gains, texts, train, valid, settings
    )


def test_the_finetune_runs_its_steps_and_two_runs_agree(tmp_path):
    s = FinetuneSettings(max_steps=3, epochs=50, batch_size=4, min_pairs=5, budget_s=900, seed=1)
    a = _finetune(tmp_path, "a", s)
    b = _finetune(tmp_path, "b", s)
    # 18 training pairs, 4 a batch: 4 steps an epoch for 50 epochs, but the budget is 3 steps
    assert a["planned_steps"] == 3 and a["steps"] == 3 and not a["time_cap_hit"] and "stopped" not in a
    assert (b["steps"], b["validation_ndcg@10_tuned"]) == (a["steps"], a["validation_ndcg@10_tuned"])


def test_the_finetune_validation_curve_measures_without_changing_the_training(tmp_path):
    s = FinetuneSettings(max_steps=5, epochs=50, batch_size=4, min_pairs=5, budget_s=900, seed=1)
    plain = _finetune(tmp_path, "plain", s)
    traced = _finetune(tmp_path, "traced", replace(s, validate_every=2))
    assert "validation_curve" not in plain
    # the untuned encoder at step 0, every 2nd step, and the end (step 5, not repeated at 4)
    assert [p[0] for p in traced["validation_curve"]] == [0, 2, 4, 5]
    assert traced["validation_curve"][0][1] == traced["validation_ndcg@10_untuned"]
    # measuring on the way draws nothing from the training's randomness: the same encoder
    assert traced["validation_curve"][-1][1] == traced["validation_ndcg@10_tuned"]
    assert traced["validation_ndcg@10_tuned"] == plain["validation_ndcg@10_tuned"]
    assert traced["steps"] == plain["steps"] == 5


def test_the_finetune_time_cap_is_named_when_it_stops_the_training(tmp_path):
    s = FinetuneSettings(max_steps=3, batch_size=4, min_pairs=5, budget_s=0.0)
    info = _finetune(tmp_path, "capped", s)
    assert info["time_cap_hit"] and info["steps"] == 0
    assert info["stopped"] == "time cap of 0 s hit after 0 of 3 steps"
    off = _finetune(tmp_path, "off", replace(s, max_steps=0, budget_s=900))
    assert not off["kept"] and off["skipped"] == "a budget of 0 steps"


def test_the_cross_encoder_runs_its_steps_and_names_its_time_cap():
    pairs = [(f"query {i}", f"product {i % 7}", float(i % 2)) for i in range(40)]
    s = CrossSettings(max_steps=2, epochs=3, batch_size=4, min_pairs=5, budget_s=900)
    model, info = train_cross_encoder(shipped_model_dir(), pairs, s)
    assert model is not None and info["planned_steps"] == 2 and info["steps"] == 2
    assert not info["time_cap_hit"]
    _, capped = train_cross_encoder(shipped_model_dir(), pairs, replace(s, budget_s=0.0))
    assert capped["time_cap_hit"] and capped["stopped"] == "time cap of 0 s hit after 0 of 2 steps"
    none, off = train_cross_encoder(shipped_model_dir(), pairs, replace(s, max_steps=0))
    assert none is None and off["skipped"] == "a budget of 0 steps"


def test_train_takes_step_budgets_with_the_seconds_as_caps():
    out = subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    for flag in (
        "--finetune-steps",
        "--finetune-seconds",
        "--cross-encoder-steps",
        "--cross-encoder-seconds",
    ):
        assert flag in out


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
