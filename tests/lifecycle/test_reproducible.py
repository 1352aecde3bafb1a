"""Same data + seed => same models and numbers: training budgets are counted (Optuna trials,
SASRec epochs), not timed; a time cap that cuts a run short is named in its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shelfwise.demo import generate_demo
from shelfwise.features import leave_last_out
from shelfwise.lifecycle import TrainSettings, train
from shelfwise.lifecycle._train import _Caps, _fit_one
from shelfwise.models import read_manifest
from shelfwise.serving import Bundle
from shelfwise.serving._bundle import load_evaluated_models
from tests.models.planted_data import planted_cycles

# counted budgets only (the CLI's --tune-trials / --sasrec-epochs); the seconds are the default
# caps, far above what this data needs
SETTINGS = TrainSettings(
    models=("popularity", "itemknn", "als", "sasrec"),
    tune_trials=3,
    sasrec_epochs=3,
    search_finetune_budget_s=0.0,
    search_cross_budget_s=0.0,
    bootstrap_rounds=200,
    seed=3,
)


@pytest.mark.slow
def test_training_twice_gives_the_same_models_and_numbers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_demo(data, products=200, users=200, events=6000, seed=9, faq=False)
    # no search judgments nor FAQ: the search ranker and the FAQ's encoding are not what this
    # test compares (the models and their numbers are); each run spent ~1.5 s of CPU on them
    for name in ("queries.csv", "judgments.csv"):
        (data / name).unlink()
    runs = []
    # one workdir: users are pseudonymized with the workdir's own key, so another workdir holds
    # other user ids (another order of users) from the same files. The second run retrains on
    # the unchanged warehouse.
    for source in (data, None):
        result = train(tmp_path / "w", source, SETTINGS, log=lambda _: None)
        runs.append((json.loads(result.report_json.read_text()), Bundle.load(result.bundle)))
    (a, bundle_a), (b, bundle_b) = runs
    assert a["budget_caps"] == b["budget_caps"] == []
    assert {r["model"] for r in a["results"]} >= {"itemknn", "als", "sasrec", "fusion"}
    assert bundle_a.path != bundle_b.path and a["data_versions"] == b["data_versions"]
    for ra, rb in zip(_without_timings(a["results"]), _without_timings(b["results"]), strict=True):
        for key in ra:
            assert ra[key] == rb[key], (ra["model"], key)
    for key in ("validation_ndcg@10", "tuned", "fusion", "default_model"):
        assert a[key] == b[key], key
    assert a["tuned"]["itemknn"]["trials"] == 3 and a["tuned"]["sasrec"]["epochs"] == 3
    # the saved models answer the same, to the bit: served fits and the evaluated ones alike
    users = np.arange(bundle_a.interactions.n_users)
    for fits_a, fits_b in (
        (bundle_a.models, bundle_b.models),
        (load_evaluated_models(bundle_a)[0], load_evaluated_models(bundle_b)[0]),
    ):
        assert sorted(fits_a) == sorted(fits_b)
        for name in fits_a:
            np.testing.assert_array_equal(
                fits_a[name].score(users, history=bundle_a.interactions),
                fits_b[name].score(users, history=bundle_b.interactions),
                err_msg=name,
            )
    assert bundle_a.manifest.refit["models"] == bundle_b.manifest.refit["models"]
    manifest = read_manifest(bundle_a.path)
    assert manifest.budget_caps == [] and manifest.schema_version >= 2


def _without_timings(results: list[dict]) -> list[dict]:
    # seconds and memory are measurements of the run, not results of the data
    drop = {"seconds", "train_seconds", "peak_rss_mb"}
    return [{k: v for k, v in r.items() if k not in drop} for r in results]


def test_a_hit_time_cap_is_named_with_how_far_it_got() -> None:
    """Caps are safety nets: when one cuts a budget short the run says which, what budget and
    how far it got (its models then depend on the machine's speed)."""
    split = leave_last_out(planted_cycles(n_users=80))
    lines: list[str] = []
    caps = _Caps(lines.append)
    tuned: dict = {}
    tiny = TrainSettings(
        tune_budget_s=1e-9,
        tune_trials=5,
        sasrec_epochs=4,
        sasrec_budget_s=0.0,
        sasrec={"dim": 8, "heads": 1, "layers": 1, "max_len": 8, "item_text": False},
    )
    _fit_one("transitions", split, None, tiny, tuned, lines.append, caps=caps)  # type: ignore[arg-type]
    _fit_one("sasrec", split, None, tiny, tuned, lines.append, caps=caps)  # type: ignore[arg-type]
    # (Optuna checks the cap before each trial: the clock's resolution decides whether one runs)
    assert caps[0]["stage"] == "tuning transitions" and caps[0]["budget"] == "5 trials, capped at 1e-09 s"
    assert caps[0]["reached"] in ("0 of 5 trials", "1 of 5 trials")
    assert caps[1:] == [
        {"stage": "sasrec training", "budget": "4 epochs, capped at 0 s", "reached": "epoch 1 of 4"}
    ]
    assert tuned["sasrec"]["stopped_by"] == "time cap"
    assert any("time cap hit" in line and "tuning transitions" in line for line in lines)


def test_counted_budgets_hit_no_cap() -> None:
    split = leave_last_out(planted_cycles(n_users=80))
    caps = _Caps(lambda _: None)
    tuned: dict = {}
    settings = TrainSettings(
        tune_trials=2, sasrec_epochs=2, sasrec={"dim": 8, "heads": 1, "layers": 1, "item_text": False}
    )
    _fit_one("transitions", split, None, settings, tuned, print, caps=caps)  # type: ignore[arg-type]
    _fit_one("sasrec", split, None, settings, tuned, print, caps=caps)  # type: ignore[arg-type]
    assert caps == [] and tuned["transitions"]["trials"] == 2
    assert tuned["sasrec"]["epochs"] == 2 and tuned["sasrec"]["stopped_by"] in ("epochs", "early stopping")
