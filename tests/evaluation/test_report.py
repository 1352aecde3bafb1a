"""The HTML evaluation report shows what it does not have as "—", never as a zero."""

from __future__ import annotations

import re
from pathlib import Path

from shelfwise.evaluation._report import write_evaluation_report

COLUMNS = [
    "model", "ndcg@10", "ci", "hr@10", "recall@20", "mrr@10", "map@10",
    "coverage@10", "novelty@10", "validation", "train s", "peak RSS",
]  # fmt: skip


def _result(model: str, validation: float | None, **metrics: float) -> dict:
    base = {f"{m}@{k}": 0.25 for m in ("ndcg", "hr", "recall", "mrr", "map") for k in (5, 10, 20, 50)}
    return {
        "model": model,
        "metrics": {**base, **metrics},
        "ci95": {"ndcg@10": [0.2, 0.3]},
        "segments": {},
        "validation_ndcg@10": validation,
    }


def _report(results: list[dict], **protocol) -> dict:
    return {
        "bundle_version": "v1",
        "default_model": results[0]["model"],
        "lineage_run_id": "run",
        "protocol": {
            "split": "leave_last_out",
            "split_description": "leave-last-out",
            "candidates": "full ranking (all items)",
            "exclude_seen": True,
            "cutoffs": [5, 10, 20, 50],
            "users": 40,
            "items": 30,
            "bootstrap_rounds": 10,
            **protocol,
        },
        "results": results,
    }


def _cells(html: str, model: str) -> dict[str, str]:
    table = html[html.index('id="comparison"') : html.index('id="segments"')]
    row = re.search(rf"<tr[^>]*><td>{model}</td>(.*?)</tr>", table, re.S)
    assert row, model
    values = [model, *re.findall(r"<td>(.*?)</td>", row.group(1), re.S)]
    return dict(zip(COLUMNS, values, strict=True))


def test_missing_values_read_as_a_dash_not_as_zero(tmp_path: Path):
    results = [
        _result("itemknn", 0.2134, **{"coverage@10": 0.5, "novelty@10": 7.25}),
        _result("fusion", None, **{"coverage@10": 0.5, "novelty@10": 7.25}),  # no validation number
        _result("popularity", 0.0735, **{"hr@10": float("nan")}),  # sampled: no coverage, no novelty
    ]
    html = write_evaluation_report(tmp_path / "e.html", _report(results)).read_text()
    itemknn, fusion, popularity = (_cells(html, m) for m in ("itemknn", "fusion", "popularity"))
    assert itemknn["validation"] == "0.2134" and itemknn["coverage@10"] == "0.500"
    assert itemknn["novelty@10"] == "7.25"
    assert fusion["validation"] == "—"  # was 0.0000
    assert popularity["coverage@10"] == "—" and popularity["novelty@10"] == "—"  # were 0.000 / 0.00
    assert popularity["hr@10"] == "—" and popularity["validation"] == "0.0735"
    assert itemknn["train s"] == "—"  # a report without timings (evaluate without train's report)


def test_the_protocol_states_how_many_targets_no_model_can_hit(tmp_path: Path):
    results = [_result("itemknn", 0.2)]
    html = write_evaluation_report(tmp_path / "e.html", _report(results, repeat_targets=12)).read_text()
    protocol = html[html.index('id="protocol"') : html.index("</div>", html.index('id="protocol"'))]
    assert "12 of the users (30.0%) have a target already in their history" in protocol
    assert "HR@k at most 0.7000" in protocol
    # a report written before the count was kept says nothing about it
    old = write_evaluation_report(tmp_path / "old.html", _report(results)).read_text()
    assert "already in their history" not in old


def test_the_protocol_says_how_many_test_users_are_sessions_without_a_login(tmp_path: Path):
    results = [_result("itemknn", 0.2)]
    html = write_evaluation_report(tmp_path / "e.html", _report(results, anonymous_sessions=25)).read_text()
    protocol = html[html.index('id="protocol"') : html.index("</div>", html.index('id="protocol"'))]
    assert "25 of the users are sessions without a login" in protocol
    old = write_evaluation_report(tmp_path / "old.html", _report(results)).read_text()
    assert "without a login" not in old


def test_a_sampled_report_shows_each_models_unscored_targets(tmp_path: Path):
    results = [
        {**_result("fusion", None), "sampled_unscored_targets": 0.875},
        {**_result("popularity", None), "sampled_unscored_targets": 0.167},
    ]
    html = write_evaluation_report(tmp_path / "s.html", _report(results)).read_text()
    assert "<th>unscored targets</th>" in html
    assert '<td class="unscored">87.5%</td>' in html and '<td class="unscored">16.7%</td>' in html
    note = html[html.index('id="unscored"') : html.index("</p>", html.index('id="unscored"'))]
    assert "fusion: 87.5% of its sampled targets" in note and "popularity:" not in note
    assert _cells(html, "fusion")["ndcg@10"] == "0.2500"  # the other columns stay where they were
    full = write_evaluation_report(tmp_path / "f.html", _report([_result("fusion", None)])).read_text()
    assert "unscored" not in full


def test_the_fusions_validation_number_is_shown_with_the_users_it_was_measured_on(tmp_path: Path):
    """The fusion was made the default on its held-out validation NDCG@10 (train's `fusion`
    record), which the report's validation column showed as "—": shown, said to be measured on
    the validation users held out from the ranker, with its generators' numbers there."""
    results = [_result("fusion", None), _result("transitions", 0.0212), _result("itemknn", 0.0089)]
    report = _report(results) | {
        "fusion": {
            "holdout_users": 627,
            "holdout_ndcg@10": {"fusion": 0.026875, "itemknn": 0.008793, "transitions": 0.021523},
            "beats_parts": True,
        }
    }
    html = write_evaluation_report(tmp_path / "e.html", report).read_text()
    assert _cells(html, "fusion")["validation"] == "0.0269 <small>(held-out 627 users †)</small>"
    assert _cells(html, "transitions")["validation"] == "0.0212"
    note = html[
        html.index('id="fusion-validation"') : html.index("</p>", html.index('id="fusion-validation"'))
    ]
    assert "on the 627 validation users held out from its ranker's training" in note
    assert "fusion 0.0269, transitions 0.0215, itemknn 0.0088" in note
    assert "It beat its best part there: why training made it the default model." in note
    # a fusion that lost on its held-out users: said, and not the default
    report["fusion"]["beats_parts"] = False
    html = write_evaluation_report(tmp_path / "lost.html", report).read_text()
    assert "It did not beat its best part there" in html
    # no fusion record (a report before it, a sampled one): "—", as before
    assert (
        _cells(write_evaluation_report(tmp_path / "n.html", _report(results)).read_text(), "fusion")[
            "validation"
        ]
        == "—"
    )


def test_the_fusions_held_out_difference_has_its_paired_interval_and_no_gain_over_0(tmp_path: Path):
    """The fusion's line gave point estimates only ("It beat its best part there") for a
    difference whose paired interval covers 0: the difference and its interval are shown, and a
    fusion made the default on its point estimate alone is not said to have beaten its part."""
    results = [_result("fusion", None), _result("transitions", 0.0212)]
    vs = {"part": "transitions", "difference": 0.005352, "ci95": [-0.0021, 0.0127], "users": 627,
          "gain_shown": False, "method": "paired percentile bootstrap over the held-out users (1,000 rounds, seed 0)"}  # fmt: skip
    report = _report(results) | {
        "fusion": {
            "holdout_users": 627,
            "holdout_ndcg@10": {"fusion": 0.026875, "transitions": 0.021523},
            "beats_parts": True,
            "holdout_vs_best_part": vs,
        }
    }

    def note() -> str:
        html = write_evaluation_report(tmp_path / "e.html", report).read_text()
        at = html.index('id="fusion-validation"')
        return html[at : html.index("</p>", at)]

    said = note()
    assert "fusion minus transitions +0.0054, paired 95% interval [-0.0021, +0.0127]" in said
    assert "It beat its best part" not in said and "no interval" not in said
    assert "the interval covers 0: no gain is shown" in said
    vs["ci95"] = [0.0011, 0.0127]  # above 0: a gain
    assert "It beat its best part there, the interval above 0 (these users also chose when" in note()
    vs["ci95"], report["fusion"]["beats_parts"] = [-0.02, -0.001], False
    assert "It did worse than its best part there" in note()
