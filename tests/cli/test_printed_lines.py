"""What commands print for a person (not `--json`): each line says what is so, no legend
for a mark that is not shown, no count where a date is the answer, no budget a model does not
run."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from shelfwise.cli import main

# -- privacy export -------------------------------------------------------------------------------


def test_privacy_export_says_when_the_user_was_erased(demo_ingested, tmp_path, capsys) -> None:
    """The erasure part holds a date, not rows: an erased user's line says "erased at <time>"
    (the document's `erased_at`), another user's "not erased" (never "erasure 0 rows")."""
    import json

    workdir = tmp_path / "w"
    shutil.copytree(demo_ingested[0], workdir)
    assert main(["privacy", "erase", "--workdir", str(workdir), "--user", "C100003", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["found"] is True
    # an id nothing holds (a typo) is said, not passed off as an erasure of data (the console's
    # kept figures, dropped on every erasure, are no sign of the user)
    (workdir / "state" / "console").mkdir(parents=True, exist_ok=True)
    (workdir / "state" / "console" / "top.json").write_text("{}")
    assert main(["privacy", "erase", "--workdir", str(workdir), "--user", "C10001X"]) == 0
    said = capsys.readouterr().out
    assert "warning: no row, file or bundle held 'C10001X': check the id" in said, said
    out = tmp_path / "access.json"
    assert main(["privacy", "export", "--workdir", str(workdir), "--user", "C100003", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    erased_at = json.loads(out.read_text())["parts"]["erasure"]["erased_at"]
    erasure = [ln.split() for ln in lines if ln.split()[:1] == ["erasure"]]
    assert erased_at and erasure == [["erasure", "erased", "at", erased_at, "UTC"]], lines
    summary = json.loads(_cli_json(["privacy", "export", "--workdir", str(workdir), "--user", "C100003",
                                    "--out", str(out), "--json"], capsys))  # fmt: skip
    assert summary["erased_at"] == erased_at  # the Python API's and --json's summary say it too
    assert main(["privacy", "export", "--workdir", str(workdir), "--user", "C100004", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split() for ln in lines if ln.split()[:1] == ["erasure"]] == [["erasure", "not", "erased"]]
    assert json.loads(_cli_json(["privacy", "export", "--workdir", str(workdir), "--user", "C100004",
                                 "--out", str(out), "--json"], capsys))["erased_at"] is None  # fmt: skip
    assert any(ln.split()[-1] == "rows" for ln in lines)  # the other parts count their rows


def _cli_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 0
    return capsys.readouterr().out


# -- evaluate -------------------------------------------------------------------------------------


def _report(models: list[str]) -> dict[str, Any]:
    metrics = {"ndcg@10": 0.1, "hr@10": 0.2, "mrr@10": 0.05, "coverage@10": 0.3}
    return {
        "protocol": {"split_description": "leave-last-out", "candidates": "sampled 50"},
        "default_model": "fusion",
        "report_html": "reports/evaluation-sampled50.html",
        "results": [{"model": m, "metrics": metrics, "ci95": {"ndcg@10": [0.08, 0.12]}} for m in models],
    }


@pytest.mark.parametrize(
    ("models", "legend"),
    [(["popularity", "itemknn"], False), (["popularity", "fusion"], True)],
)
def test_evaluate_prints_the_default_models_legend_only_under_a_starred_row(
    tmp_path, capsys, monkeypatch, models, legend
) -> None:
    monkeypatch.setattr(
        "shelfwise._shop.Shop.evaluate", lambda self, chosen, sampled=None, version=None: _report(models)
    )
    assert (
        main(["evaluate", "--workdir", str(tmp_path), "--models", ",".join(models), "--sampled", "50"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    starred = [ln.split()[0] for ln in lines if ln.endswith(" *")]
    assert starred == (["fusion"] if legend else []), lines
    assert lines[-1].startswith("report: reports/evaluation-sampled50.html")
    assert ("(* = the bundle's default model)" in lines[-1]) is legend, lines[-1]


def test_evaluate_sampled_prints_each_models_unscored_targets(tmp_path, capsys, monkeypatch) -> None:
    """Under the sampled protocol, the share of each model's targets it left unscored (tied at
    the floor of their negatives, placed by the random tie-break) is printed beside its numbers,
    and a model whose share is most of them is flagged."""
    report = _report(["popularity", "fusion"])
    report["results"][0]["sampled_unscored_targets"] = 0.167
    report["results"][1].update(
        sampled_unscored_targets=0.875, sampled_unscored_target_users=875, sampled_ranked_target_users=1000
    )
    monkeypatch.setattr(
        "shelfwise._shop.Shop.evaluate", lambda self, chosen, sampled=None, version=None: report
    )
    assert main(["evaluate", "--workdir", str(tmp_path), "--sampled", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[-1] == "unscored"
    rows = {ln.split()[0]: ln.split() for ln in lines[2:4]}
    assert rows["popularity"][-1] == "16.7%" and rows["fusion"][-2:] == ["87.5%", "*"]
    warned = [ln for ln in lines if ln.strip().startswith("warning:")]
    assert len(warned) == 1 and "fusion: 87.5% of its sampled targets (875 of 1,000)" in warned[0]


# -- demo -----------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised by the patched `Shop.train`: the banner is printed, nothing is trained."""


def test_demo_banner_names_the_trials_the_models_run(tmp_path, capsys, monkeypatch) -> None:
    """The demo asks 6 Optuna trials, but popularity and EASE stop at their own caps (4 and 3):
    the banner says "up to 6" and names them, as the training log's counts will show."""
    from shelfwise.lifecycle._tuning import MAX_TRIALS

    def train(self: Any, *args: Any, **kwargs: Any) -> None:
        assert kwargs["settings"].tune_trials == 6
        raise _Stop

    monkeypatch.setattr("shelfwise._shop.Shop.train", train)
    with pytest.raises(_Stop):
        main(
            [
                "demo",
                "--workdir",
                str(tmp_path / "w"),
                "--products",
                "200",
                "--users",
                "50",
                "--events",
                "3000",
            ]
        )
    banner = next(
        ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("training (demo budgets")
    )
    assert "up to 6 Optuna trials per tuned model" in banner, banner
    assert f"popularity {MAX_TRIALS['popularity']}" in banner and f"ease {MAX_TRIALS['ease']}" in banner, (
        banner
    )


def test_demo_trials_are_named_as_planned(monkeypatch) -> None:
    from shelfwise.cli._data import _demo_trials

    assert _demo_trials(2) == "2 Optuna trials per tuned model"  # no model's cap is lower
    monkeypatch.setattr("shelfwise.lifecycle._tuning.MAX_TRIALS", {"popularity": 4, "ease": 3, "als": 5})
    assert (
        _demo_trials(6)
        == "up to 6 Optuna trials per tuned model (popularity 4, als 5, ease 3: each model's own cap)"
    )


def test_a_demo_ending_too_late_is_refused_before_anything_is_made(tmp_path, capsys):
    """Its last ratings and reviews (up to 5 days after the end) would lie in the future."""
    assert main(["demo", "--workdir", str(tmp_path / "w"), "--end", "2999-01-01", "--no-train"]) == 2
    assert "--end 2999-01-01: too late" in capsys.readouterr().err
    assert not (tmp_path / "w" / "demo-data").exists()


def test_evaluate_prints_the_share_of_test_users_no_model_can_hit(tmp_path, capsys, monkeypatch) -> None:
    """22.6% of Diginetica's test sessions end on an item already seen: a ceiling the HTML report
    said and the printed summary did not."""
    report = _report(["popularity"])
    report["protocol"] |= {"users": 1418, "repeat_targets": 320, "split": "leave_last_out"}
    monkeypatch.setattr(
        "shelfwise._shop.Shop.evaluate", lambda self, chosen, sampled=None, version=None: report
    )
    assert main(["evaluate", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "320 of 1,418 test users (22.6%) have a target already in their history" in out
    assert "hr@10 at most 0.7743" in out
    # a global-time split gives a user several targets: no such ceiling follows from the count
    report["protocol"]["split"] = "global_time"
    assert main(["evaluate", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "have a target already in their history" in out and "at most" not in out


def test_models_list_says_what_each_number_measures_and_a_gate_left_to_the_approver(
    tmp_path, capsys, monkeypatch
) -> None:
    """A candidate trained under another split than production's: its gate "not worse than
    production" could not compare the two numbers, so the line says the approver decides (it
    said "all gates pass"), and each version's number says its protocol."""
    gates = [
        {"name": "data_contracts", "passed": True, "detail": "ok"},
        {"name": "not_worse_than_production", "passed": True, "detail": "not comparable", "review": True},
    ]
    rows = [
        {"version": "2", "bundle": "b2", "aliases": ["production"], "status": "production", "default_model": "ease",
         "ndcg@10": 0.102, "measured_as": "leave_last_out (each user's held-out step; full ranking (the catalog))",
         "gates": gates[:1], "approved_by": "eve"},
        {"version": "4", "bundle": "b4", "aliases": ["candidate"], "status": "candidate", "default_model": "ease",
         "ndcg@10": 0.1244, "measured_as": "global_time (the first item new; full ranking (the catalog))",
         "gates": gates, "approved_by": None},
    ]  # fmt: skip
    monkeypatch.setattr("shelfwise._shop.Shop.versions", lambda self: rows)
    assert main(["models", "list", "--workdir", str(tmp_path)]) == 0
    prod, cand = capsys.readouterr().out.splitlines()
    assert "ndcg@10 0.1020 [leave_last_out (" in prod and "all gates pass" in prod
    assert "ndcg@10 0.1244 [global_time (" in cand
    assert "gates pass; for the approver (not comparable): not_worse_than_production" in cand
