"""train -> evaluate -> recommend through the command line, on a demo shop and a real slice."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from shelfwise.demo import generate_demo
from shelfwise.governance import Pseudonymizer, SecretStore
from shelfwise.serving import Bundle, current_bundle
from tests.cli.test_cli import sw
from tests.conftest import built_once, copy_head, shared

# counted budgets (trials, epochs, steps), small: the same data and seed give the same bundle
# whatever the machine's load, and no stage runs into a time cap
FAST = [
    "--tune-trials",
    "3",
    "--sasrec-epochs",
    "2",
    "--finetune-steps",
    "2",  # enough to exercise fine-tuning, export and the keep decision end to end; the
    "--cross-encoder-steps",  # quality of a fine-tune is tests/search/test_finetune.py's
    "2",
]


def _train_demo_shop(base: Path) -> None:
    data = base / "data"
    generate_demo(data, products=300, users=120, events=6000, seed=5)
    proc = sw("train", "--data", str(data), "--workdir", str(base / "w"), "--json", *FAST)
    (base / "train.json").write_text(proc.stdout)
    (base / "train.stderr").write_text(proc.stderr)  # the console's other half (a clean console)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = built_once(tmp_path_factory, "train-cli", _train_demo_shop)  # once, whichever worker asks
    return base / "data", base / "w", json.loads((base / "train.json").read_text())


@pytest.mark.slow
def test_a_train_with_fusion_prints_no_library_warnings(trained):
    """Issue 15's clean console where every default model and the LightGBM fusion train (the
    20-user shop of test_shop_kinds skips fusion): scikit-learn's "X does not have valid feature
    names", once per scoring batch of the fusion, implicit's and Optuna's notices, MLflow's lines
    are not on the console; the run's lines are, and say where the rest went."""
    from tests.cli.test_shop_kinds import noise

    _, work, out = trained
    assert "fusion" in {r["model"] for r in out["results"]}  # (trained, not skipped)
    stderr = (work.parent / "train.stderr").read_text()
    assert noise(stderr) == [], "\n".join(noise(stderr))
    assert "fusion: held-out validation" in stderr and "run log (library warnings included)" in stderr
    # the fusion against its best part with the paired interval of the difference (JSON and line)
    vs = out["fusion"]["holdout_vs_best_part"]
    assert (
        vs["users"] == out["fusion"]["holdout_users"] and vs["ci95"][0] <= vs["difference"] <= vs["ci95"][1]
    )
    assert f"paired 95% interval [{vs['ci95'][0]:+.4f}, {vs['ci95'][1]:+.4f}]" in stderr


@pytest.mark.slow
def test_train_writes_a_bundle_with_protocol_lineage_and_tracking(trained):
    data, work, out = trained
    # the demo's quarantined catalog rows: items known from events that are never ranked
    listed = out["protocol"]["items"] - out["protocol"]["unlisted_items"]
    assert out["protocol"]["candidates"] == f"full ranking (the {listed:,} listed items)"
    assert out["protocol"]["split"] == "leave_last_out"
    names = {r["model"] for r in out["results"]}
    assert {"popularity", "itemknn", "transitions", "als", "ease", "sasrec", "content", "fusion"} <= names
    for r in out["results"]:
        lo, hi = r["ci95"]["ndcg@10"]
        assert lo <= r["metrics"]["ndcg@10"] <= hi
        assert r["train_seconds"] >= 0 and r["peak_rss_mb"] > 0
    trials = {n: t["trials"] for n, t in out["tuned"].items() if "trials" in t}
    assert trials and all(1 <= n <= 3 for n in trials.values()), trials  # --tune-trials 3
    bundle = Bundle.load(current_bundle(work))
    assert bundle.manifest["default_model"] == out["default_model"]
    assert bundle.manifest["data_versions"]["events"]["version"] >= 1
    lineage = [json.loads(x) for x in (work / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    train_events = [e for e in lineage if e["job"]["name"] == "shelfwise.train"]
    assert [e["eventType"] for e in train_events] == ["START", "COMPLETE"]
    assert bundle.manifest["lineage"]["train_run_id"] == train_events[0]["run"]["runId"]
    assert (work / "mlflow.db").exists() and set(out["mlflow_runs"]) == names
    with sqlite3.connect(work / "mlflow.db") as db:  # artifacts go to the workdir, not the current directory
        (where,) = db.execute(
            "SELECT artifact_location FROM experiments WHERE name = 'shelfwise-recommendations'"
        ).fetchone()
    assert where.startswith("file://") and where.endswith("/w/mlruns")
    html = (work / "reports" / "evaluation.html").read_text()
    assert "full ranking" in html and "<svg" in html
    # whether the bundle went live (a candidate's report replaces the live one's)
    assert f'registry version {out["registry"]["version"]}: <b id="registry-status">production</b>' in html
    # the popularity baseline is beaten by the default model on the demo's planted tastes
    metric = {r["model"]: r["metrics"]["ndcg@10"] for r in out["results"]}
    assert metric[out["default_model"]] > metric["popularity"]


@pytest.mark.slow
def test_served_models_are_refit_on_all_interactions(trained):
    """Evaluated as fitted on the training part; served as refit on everything (the latest steps
    of every user, held out by leave-last-out, included), with the same settings."""
    from shelfwise.features import leave_last_out
    from shelfwise.models import EASE, ItemKNN
    from shelfwise.serving._bundle import load_evaluated_models

    _, work, _ = trained
    bundle = Bundle.load(current_bundle(work))
    refit = bundle.manifest["refit"]
    assert {"itemknn", "ease", "als", "transitions", "popularity", "sasrec", "fusion"} <= set(refit["models"])
    assert refit["steps"] == len(bundle.interactions)
    inter = bundle.interactions
    # SASRec goes on from its training fit for 1 epoch over every step (not a new training)
    served, evaluated = bundle.models["sasrec"], load_evaluated_models(bundle)[0]["sasrec"]
    assert served.refreshed_epochs_ == 1 and not hasattr(evaluated, "refreshed_epochs_")
    users = np.arange(min(50, inter.n_users))
    assert not np.allclose(served._score(users, inter), evaluated._score(users, inter))
    for cls, attr in ((ItemKNN, "similarity_"), (EASE, "weights_")):
        served = bundle.models[cls.name]
        params = served.get_params()
        full = getattr(cls(**params).fit(inter), attr)
        train_only = getattr(cls(**params).fit(leave_last_out(inter).train), attr)
        as_dense = (lambda m: m.toarray()) if attr == "similarity_" else (lambda m: m)
        assert abs(as_dense(getattr(served, attr)) - as_dense(full)).max() < 1e-5
        assert abs(as_dense(getattr(served, attr)) - as_dense(train_only)).max() > 1e-3


@pytest.mark.slow
def test_evaluate_scores_the_fits_train_evaluated_not_the_refits(trained):
    """`evaluate` re-scores the train-fold fits (saved in the bundle before the refit on every
    interaction), so its numbers are train's test numbers, not scores on training data."""
    _, work, out = trained
    again = json.loads(sw("evaluate", "--workdir", str(work), "--json").stdout)
    trained_ndcg = {r["model"]: r["metrics"]["ndcg@10"] for r in out["results"]}
    evaluated = {r["model"]: r["metrics"]["ndcg@10"] for r in again["results"]}
    assert set(evaluated) == set(trained_ndcg) and again["not_evaluable"] == {}
    for name, value in trained_ndcg.items():
        assert evaluated[name] == pytest.approx(value, abs=1e-9), name
    bundle = Bundle.load(current_bundle(work))
    for name in bundle.manifest["refit"]["models"]:
        assert bundle.manifest["evaluated_models"][name] == f"evaluated/{name}"
    # the served refit of a neighbour model has seen the test targets: scored on them it would
    # look far better than it is, which is exactly what `evaluate` must not report
    from shelfwise.evaluation import evaluate_all
    from shelfwise.lifecycle._train import make_split

    split = make_split(bundle.interactions, "leave_last_out")
    _, leaked = evaluate_all({"itemknn": bundle.models["itemknn"]}, split, bootstrap_rounds=10)
    assert leaked[0].metrics["ndcg@10"] > evaluated["itemknn"] + 0.05


@pytest.mark.slow
def test_evaluate_keeps_trains_report(trained, tmp_path):
    """`evaluate` re-scores the test fold into `reports/evaluation.json`, which is train's report:
    what it cannot measure (train's validation numbers, fusion, tuning, search, skips, caps,
    timings) stays, so do the models it was not asked for; another bundle's report is left alone."""
    import re
    import shutil

    _, work, out = trained
    before = json.loads((work / "reports" / "evaluation.json").read_text())
    validation = {r["model"]: r["validation_ndcg@10"] for r in out["results"]}
    assert sum(v is not None for v in validation.values()) >= 5  # every model but the fusion
    again = json.loads(sw("evaluate", "--workdir", str(work), "--json", "--models", "itemknn,fusion").stdout)
    assert {r["model"]: r["validation_ndcg@10"] for r in again["results"]} == {
        "itemknn": validation["itemknn"],
        "fusion": validation["fusion"],
    }
    after = json.loads((work / "reports" / "evaluation.json").read_text())
    for key in ("validation_ndcg@10", "fusion", "tuned", "search", "skipped", "budget_caps"):
        assert after[key] == before[key], key
    assert [r["model"] for r in after["results"]] == [r["model"] for r in before["results"]]
    for old, new in zip(before["results"], after["results"], strict=True):
        assert new["validation_ndcg@10"] == old["validation_ndcg@10"]
        assert new["train_seconds"] == old["train_seconds"]
        assert new["metrics"]["ndcg@10"] == pytest.approx(old["metrics"]["ndcg@10"], abs=1e-9)
    html = (work / "reports" / "evaluation.html").read_text()
    row = re.search(r"<tr[^>]*><td>itemknn</td>(.*?)</tr>", html, re.S)
    assert row and f"{validation['itemknn']:.4f}" in row.group(1)  # not 0.0000
    # the current bundle is not the one the report is of (a candidate awaiting approval, a
    # rollback): that report stays as it is, evaluate writes its own beside it
    other = tmp_path / "w"
    shutil.copytree(work, other)
    theirs = {**before, "bundle_version": "20990101T000000000000Z"}
    (other / "reports" / "evaluation.json").write_text(json.dumps(theirs))
    text = sw("evaluate", "--workdir", str(other)).stdout
    assert json.loads((other / "reports" / "evaluation.json").read_text()) == theirs
    own = other / "reports" / f"evaluation-{before['bundle_version']}.html"
    assert f"report: {own}" in text and own.exists()


@pytest.mark.slow
def test_train_log_prints_rounded_numbers(trained):
    """The log's numbers are rounded (4 decimals; tuned settings 4 significant digits): the
    reports keep them whole."""
    import re

    _, work, _ = trained
    (log,) = (work / "logs").glob("train-*.log")
    lines = [x for x in log.read_text().splitlines() if "NDCG@10" in x or "Optuna trials" in x]
    search = [x for x in lines if "search: " in x]
    assert len(search) >= 2, lines  # the ranker and the fine-tune (the cross-encoder too)
    for line in search + lines:
        assert not re.search(r"\d\.\d{5,}", line.split(" shelfwise.run: ")[-1]), line


@pytest.mark.slow
def test_bundle_tampering_is_detected(trained, tmp_path):
    import shutil

    _, work, _ = trained
    copy = tmp_path / "b"
    shutil.copytree(current_bundle(work), copy)
    with open(copy / "interactions.npz", "ab") as fh:
        fh.write(b"x")
    from shelfwise.errors import ShelfwiseError

    with pytest.raises(ShelfwiseError, match="sha256"):
        Bundle.load(copy)


@pytest.mark.slow
def test_evaluate_full_and_sampled(trained):
    _, work, _ = trained
    full = json.loads(
        sw("evaluate", "--workdir", str(work), "--json", "--models", "popularity,transitions").stdout
    )
    assert full["protocol"]["candidates"].startswith("full ranking (")
    assert [r["model"] for r in full["results"]] == ["popularity", "transitions"]
    sampled = json.loads(
        sw("evaluate", "--workdir", str(work), "--json", "--sampled", "50", "--models", "transitions").stdout
    )
    assert sampled["protocol"]["candidates"].startswith("sampled (50")
    # instead of full ranking, in a report of its own: the full-ranking one is named, as it was
    assert sampled["full_ranking_report"] == str(work / "reports" / "evaluation.json")
    assert json.loads((work / "reports" / "evaluation.json").read_text())["protocol"][
        "candidates"
    ].startswith("full ranking (")
    # a sampled metric is far easier than full ranking: it must never be reported as one
    assert sampled["results"][0]["metrics"]["ndcg@10"] > full["results"][1]["metrics"]["ndcg@10"]
    text = sw("evaluate", "--workdir", str(work)).stdout
    assert "full ranking" in text and "transitions" in text


@pytest.mark.slow
def test_recommend_known_unknown_and_seen_excluded(trained, tmp_path):
    data, work, _ = trained
    with open(data / "events.csv", newline="", encoding="utf-8", errors="replace") as fh:
        rows = [r for r in csv.DictReader(fh)]
    known = sorted({r["user_id"] for r in rows if r["user_id"].startswith("C")})[:5]
    users = tmp_path / "users.csv"
    users.write_text("user_id\n" + "\n".join([*known, "never-seen-user"]) + "\n")
    out = tmp_path / "recs.jsonl"
    proc = sw(
        "recommend", "--workdir", str(work), "--users", str(users), "--k", "7", "--out", str(out), "--explain"
    )
    assert "1 unknown" in proc.stdout
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["user_id"] for x in lines] == [*known, "never-seen-user"]
    assert all(len(x["items"]) == 7 for x in lines)
    assert lines[-1]["source"] == "cold_start"
    products = {
        r["product_id"]
        for r in csv.DictReader(open(data / "products.csv", encoding="utf-8", errors="replace"))
    }
    bundle = Bundle.load(current_bundle(work))
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    index = {u: i for i, u in enumerate(bundle.interactions.user_ids)}
    for line in lines[:-1]:
        assert set(line["items"]) <= products  # the shop's own ids
        seen = {
            bundle.interactions.item_ids[i]
            for i in bundle.interactions.sequence(index[pseudo(line["user_id"])])
        }
        assert not seen & set(line["items"])
        assert isinstance(line["because"], list)


def test_recommend_errors_are_clear(tmp_path):
    proc = sw(
        "recommend", "--workdir", str(tmp_path / "nope"), "--users", "x.csv", "--out", "o.jsonl", check=False
    )
    assert proc.returncode == 2 and "not a shelfwise workdir" in proc.stderr + proc.stdout


def test_recommend_reads_a_users_file_as_ingestion_reads_ids(trained, tmp_path):
    """A `;`-separated export with `User ID` second and padded ids: the ids are the column's,
    trimmed (a known user gets the model's list, not the cold-start one)."""
    data, work, _ = trained
    with open(data / "events.csv", newline="", encoding="utf-8", errors="replace") as fh:
        known = sorted({r["user_id"] for r in csv.DictReader(fh) if r["user_id"].startswith("C")})[0]
    users = tmp_path / "users.csv"
    users.write_text(f"segment;User ID\nx; {known} \ny;never-seen-user\n")
    out = tmp_path / "recs.jsonl"
    sw("recommend", "--workdir", str(work), "--users", str(users), "--k", "3", "--out", str(out))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["user_id"], x["source"] == "cold_start") for x in lines] == [
        (known, False),
        ("never-seen-user", True),
    ]
    users.write_text("customer;segment\nLW-17215;x\n")  # several columns, none of them an id
    proc = sw("recommend", "--workdir", str(work), "--users", str(users), "--out", str(out), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {users}:1: no user_id column"), (
        proc.stderr
    )
    assert "'customer', 'segment'" in proc.stderr


def test_search_reads_a_tab_separated_queries_file(trained, tmp_path):
    """WANDS' query.csv: tab-separated query_id, query, query_class."""
    _, work, _ = trained
    queries = tmp_path / "query.csv"
    queries.write_text("query_id\tquery\tquery_class\n0\tsalon chair\tMassage Chairs\n1\tsofa\tSofas\n")
    out = tmp_path / "found.jsonl"
    sw("search", "--workdir", str(work), "--queries", str(queries), "--k", "3", "--out", str(out))
    assert [json.loads(x)["query_id"] for x in out.read_text().splitlines()] == ["0", "1"]


def test_evaluate_models_not_in_the_bundle_is_one_line(trained):
    _, work, out = trained
    proc = sw("evaluate", "--workdir", str(work), "--models", "nosuch,als", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: --models: nosuch not in bundle ") and proc.stderr.count("\n") == 1
    assert (
        f"its models: {', '.join(sorted({r['model'] for r in out['results']} | {'fusion'}))}" in proc.stderr
    )


@pytest.mark.slow
@pytest.mark.shared_data
def test_train_on_a_real_slice(tmp_path):
    src = shared("amazon_s3rec_seq", "Beauty.txt")
    data = tmp_path / "seq"
    data.mkdir()
    copy_head(src, data / "Beauty.txt", 4000)
    work = tmp_path / "w"
    out = json.loads(
        sw(
            "train",
            "--data",
            str(data),
            "--workdir",
            str(work),
            "--json",
            "--models",
            "popularity,itemknn,transitions",
            *FAST,
        ).stdout
    )
    metric = {r["model"]: r["metrics"]["ndcg@10"] for r in out["results"]}
    assert out["protocol"]["users"] == 4000
    assert metric["transitions"] > metric["popularity"]


@pytest.mark.slow
def test_search_cli_with_ranker_and_candidates(trained, tmp_path):
    data, work, out = trained
    manifest_search = Bundle.load(current_bundle(work)).manifest["search"]
    assert out["default_model"] and manifest_search["products"] > 0
    # MiniLM fine-tuning ran on the demo's judgments and said whether it was kept, and why
    ft = manifest_search["finetune"]
    assert "skipped" in ft or ft["validation_ndcg@10_tuned"] >= 0
    tuned = (current_bundle(work) / "search" / "encoder-tuned.onnx").exists()
    assert tuned == ft["kept"] == (manifest_search["encoders"]["main"] == "encoder-tuned.onnx")
    ce = manifest_search["cross_encoder"]
    assert "skipped" in ce or "holdout_ndcg@10" in ce
    assert (current_bundle(work) / "search" / "cross-encoder.onnx").exists() == ce["kept"]
    q = tmp_path / "q.csv"
    q.write_text(
        'query_id,query\nq1,running shoes\nq2,\nq3,"' + "z" * 5000 + '"\nq4,耳机\n', encoding="utf-8"
    )
    res = tmp_path / "r.jsonl"
    sw("search", "--workdir", str(work), "--queries", str(q), "--k", "5", "--out", str(res))
    lines = [json.loads(x) for x in res.read_text().splitlines()]
    assert [x["query_id"] for x in lines] == ["q1", "q2", "q3", "q4"]
    assert len(lines[0]["items"]) == 5 and lines[1]["items"] == []
    products = {
        r["product_id"]
        for r in csv.DictReader(open(data / "products.csv", encoding="utf-8", errors="replace"))
    }
    assert set(lines[0]["items"]) <= products
    cands = tmp_path / "c.jsonl"
    pick = sorted(products)[:4]
    cands.write_text(json.dumps({"query_id": "q1", "items": pick}) + "\n")
    sw(
        "search",
        "--workdir",
        str(work),
        "--queries",
        str(q),
        "--k",
        "10",
        "--out",
        str(res),
        "--candidates",
        str(cands),
    )
    lines = [json.loads(x) for x in res.read_text().splitlines()]
    assert sorted(lines[0]["items"]) == pick
    # a list for a query id the queries file does not have is refused, not silently ranked for nobody
    stray = tmp_path / "stray.jsonl"
    stray.write_text(cands.read_text() + json.dumps({"query_id": "no-such-id", "items": pick}) + "\n")
    args = (
        "search",
        "--workdir",
        str(work),
        "--queries",
        str(q),
        "--out",
        str(res),
        "--candidates",
        str(stray),
    )
    proc = sw(*args, check=False)
    assert (
        proc.returncode == 2 and "query ids the queries file" in proc.stderr and "'no-such-id'" in proc.stderr
    )
    bad = tmp_path / "bad.csv"
    # (`id,text` is a queries file to ingestion, whose contract takes those names as aliases)
    bad.write_text("who,what\n1,x\n")
    proc = sw("search", "--workdir", str(work), "--queries", str(bad), "--out", str(res), check=False)
    assert proc.returncode == 2 and "query_id" in proc.stderr and "'who', 'what'" in proc.stderr


@pytest.mark.slow
def test_cold_start_in_context(trained, tmp_path):
    data, work, _ = trained
    rows = list(csv.DictReader(open(data / "products.csv", encoding="utf-8", errors="replace")))
    top_cat = sorted({r["category"].split(">")[0].strip() for r in rows if r["category"]})[0]
    users = tmp_path / "u.txt"
    users.write_text("brand-new-shopper\n")
    out = tmp_path / "r.jsonl"
    sw(
        "recommend",
        "--workdir",
        str(work),
        "--users",
        str(users),
        "--k",
        "5",
        "--out",
        str(out),
        "--context",
        top_cat,
    )
    items = json.loads(out.read_text())["items"]
    cat_of = {r["product_id"]: r["category"] for r in rows}
    assert len(items) == 5 and all(cat_of[i].startswith(top_cat) for i in items)


def test_reports_render_in_a_browser(trained, browser, tmp_path):
    """The evaluation and data-quality pages as people see them: protocol stated, one row per
    model, charts drawn."""
    _, work, out = trained
    pg = browser.new_page()
    pg.goto((work / "reports" / "evaluation.html").as_uri())
    assert "full ranking" in pg.locator("#protocol").inner_text()
    rows = pg.locator("#comparison tbody tr")
    assert rows.count() == len(out["results"])
    assert pg.locator("svg").count() >= 3
    for i in range(pg.locator("svg").count()):
        box = pg.locator("svg").nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
    pg.goto((work / "reports" / "quality.html").as_uri())
    assert "data quality" in pg.title()
    assert pg.locator("svg").count() >= 1 and pg.locator("table").count() >= 1
    pg.screenshot(path=str(tmp_path / "quality.png"), full_page=True)
    pg.close()


@pytest.fixture()
def small_fold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shop whose test fold has 12 users (`tests.serving.conftest._train_fill_shop`)."""
    from tests.serving.conftest import _train_fill_shop

    return built_once(tmp_path_factory, "fill", _train_fill_shop) / "w"


def test_evaluate_json_carries_the_few_users_warning(small_fold):
    """The text output and the HTML report said that a 12-user fold's numbers are noise more
    than measure; `evaluate --json` (and `Shop.evaluate`) did not: `few_users` says it."""
    text = sw("evaluate", "--workdir", str(small_fold)).stdout
    report = json.loads(sw("evaluate", "--workdir", str(small_fold), "--json").stdout)
    assert report["protocol"]["users"] < 50
    assert report["few_users"] and "the test fold has" in report["few_users"], report.get("few_users")
    assert report["few_users"] in text  # one wording
    assert (
        json.loads((small_fold / "reports" / "evaluation.json").read_text())["few_users"]
        == report["few_users"]
    )
