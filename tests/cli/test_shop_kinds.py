"""Every kind of shop can train (issue 15): a catalog-only shop (products, queries, judgments,
no events) and a shop with a handful of users train, search, recommend, evaluate and serve over
real HTTP; a later train with events adds the recommenders. And the console of a train carries
no library warnings (they go to the run's log file)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from shelfwise.demo import generate_demo
from shelfwise.serving import Bundle, current_bundle
from tests.cli.test_cli import sw, sw_imports
from tests.conftest import built_once
from tests.serving.conftest import Server, catalog_products

FAST = [
    "--tune-trials", "2", "--sasrec-epochs", "2", "--finetune-steps", "0", "--cross-encoder-steps", "0",
]  # fmt: skip

# what a library prints when it warns or draws its own progress bar
NOISE = ("Warning:", "warnings.warn", "it/s]", "INFO mlflow", "Loading weights")


def noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(n in line for n in NOISE)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("kinds") / "demo"
    generate_demo(d, products=150, users=60, events=3000, seed=11, defects=False)
    return d


@pytest.fixture(scope="module")
def catalog_only(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("catalog")
    data = base / "data"
    data.mkdir()
    for f in ("products.csv", "queries.csv", "judgments.csv"):
        shutil.copy(demo / f, data / f)
    work = base / "w"
    proc = sw("train", "--data", str(data), "--workdir", str(work), "--json", *FAST)
    assert noise(proc.stderr) == [], proc.stderr
    return data, work, json.loads(proc.stdout)


def _users(path: Path, ids: list[str]) -> Path:
    path.write_text("user_id\n" + "\n".join(ids) + "\n")
    return path


@pytest.mark.slow
def test_catalog_only_shop_trains_searches_recommends_and_serves(catalog_only, tmp_path):
    data, work, out = catalog_only
    skipped = {s.get("model") or s.get("stage"): s["reason"] for s in out["skipped"]}
    for m in (
        "popularity",
        "itemknn",
        "transitions",
        "als",
        "ease",
        "sasrec",
        "tuning",
        "fusion",
        "evaluation",
    ):
        assert "no behaviour events" in skipped[m], skipped
    assert out["default_model"] == "content" and out["results"] == []
    assert out["registry"]["production"] is True and all(out["registry"]["gates"].values())
    # a shop without registered people: the version names who trained it as its audit entry does
    import getpass

    from shelfwise.governance._model_versions import registered_versions

    (version,) = registered_versions(work)
    assert version["registered_by"] == getpass.getuser()
    bundle = Bundle.load(current_bundle(work))
    assert bundle.manifest["search"]["ranker"] is not None  # learnt from the judgments
    assert sorted(bundle.models) == ["content"] and bundle.manifest["skipped"] == out["skipped"]
    assert (work / "logs").is_dir() and list((work / "logs").glob("train-*.log"))
    # the search stage says where its time went: the index, then each learned part
    parts = bundle.manifest["search"]["part_seconds"]
    assert {"index", "ranker", "saving"} <= set(parts) and sum(parts.values()) <= bundle.manifest["search"][
        "seconds"
    ] + 0.5
    log = next((work / "logs").glob("train-*.log")).read_text()
    assert f"products indexed (tantivy + MiniLM/faiss) in {parts['index']}s; search built in" in log
    html = (work / "reports" / "evaluation.html").read_text()
    assert 'id="skipped"' in html and "no behaviour events yet" in html

    # search works from the CLI
    (tmp_path / "q.csv").write_text("query_id,query\nq1,black boots\n")
    sw(
        "search",
        "--workdir",
        str(work),
        "--queries",
        str(tmp_path / "q.csv"),
        "--out",
        str(tmp_path / "s.jsonl"),
    )
    assert json.loads((tmp_path / "s.jsonl").read_text())["items"]

    # every user gets the cold-start list, never an error; the judged products lead it
    users = _users(tmp_path / "u.csv", ["C100000", "somebody-new"])
    sw(
        "recommend",
        "--workdir",
        str(work),
        "--users",
        str(users),
        "--out",
        str(tmp_path / "r.jsonl"),
        "--k",
        "5",
    )
    answers = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [a["source"] for a in answers] == ["cold_start", "cold_start"]
    assert answers[0]["items"] == answers[1]["items"] and len(answers[0]["items"]) == 5
    judged: dict[str, float] = {}
    for row in csv.DictReader(open(data / "judgments.csv", encoding="utf-8")):
        judged[row["product_id"]] = judged.get(row["product_id"], 0.0) + float(row["relevance"])
    # the business rules in force (the default out-of-stock filter) apply as over HTTP
    in_stock = set(catalog_products(work))
    best = max(v for p, v in judged.items() if p in in_stock)
    assert judged.get(answers[0]["items"][0]) == best

    # evaluate: nothing to evaluate, exit 0, said plainly and in the JSON
    proc = sw("evaluate", "--workdir", str(work))
    assert "nothing to evaluate" in proc.stdout
    report = json.loads(sw("evaluate", "--workdir", str(work), "--json").stdout)
    assert report["results"] == [] and "no behaviour events" in report["nothing_to_evaluate"]
    # ... and what training measured of its search, with how (a search-first shop's one number)
    measured = bundle.manifest["search"]["ranker"].get("holdout_ndcg@10")
    if measured:
        sq = report["search"]
        assert sq["ndcg@10"] == measured and sq["held_out"] == "judgments" and "unjudged" in sq["candidates"]
        assert "search, measured at training on" in proc.stdout and "NDCG@10 hybrid" in proc.stdout
    else:
        assert report["search"] is None

    # serve: the three GET endpoints answer over HTTP
    server = Server(work, "--absorb-seconds", "0")
    try:
        r = server.client.get("/v1/recommendations/C100000", params={"k": 5})
        assert r.status_code == 200 and r.json()["source"] == "cold_start"
        assert len(r.json()["items"]) == 5  # (the business rules in force apply over HTTP)
        pid = answers[0]["items"][0]
        r = server.client.get(f"/v1/items/{pid}/similar", params={"k": 5})
        assert r.status_code == 200 and r.json()["model"] == "content" and len(r.json()["items"]) == 5
        assert pid not in r.json()["items"]
        r = server.client.get("/v1/search", params={"q": "black boots", "k": 5})
        assert r.status_code == 200 and r.json()["items"]
    finally:
        server.stop()


@pytest.mark.slow
def test_events_arriving_later_add_the_recommenders(catalog_only, demo, tmp_path):
    data0, work0, out0 = catalog_only
    first = out0["bundle"].rsplit("/", 1)[-1]
    work = tmp_path / "w"
    shutil.copytree(work0, work)
    data = tmp_path / "data"
    shutil.copytree(data0, data)
    shutil.copy(demo / "events.csv", data / "events.csv")  # the next full snapshot has events
    proc = sw("train", "--data", str(data), "--workdir", str(work), "--json", "--models",
              "popularity,itemknn,content", "--no-fusion", *FAST)  # fmt: skip
    out = json.loads(proc.stdout)
    assert {r["model"] for r in out["results"]} == {"popularity", "itemknn", "content"}
    assert out["skipped"] == []
    bundle = Bundle.load(current_bundle(work))
    assert {"popularity", "itemknn", "content"} == set(bundle.models) and len(bundle.interactions) > 0
    # the measured bundle replaces the unmeasured one (single-user mode: at once)
    assert out["registry"]["production"] and out["registry"]["version"] == "2"
    report = json.loads(sw("evaluate", "--workdir", str(work), "--json").stdout)
    assert report["results"] and "nothing_to_evaluate" not in report
    # the bundle's search as training measured it, with events too (it was said without them only)
    measured = (bundle.manifest.get("search") or {}).get("ranker", {}).get("holdout_ndcg@10")
    assert "search" in report
    assert report["search"]["ndcg@10"] == measured if measured else report["search"] is None
    # an unmeasured bundle (the catalog-only one, registered again) cannot replace a measured one
    from shelfwise.lifecycle._registry import Registry

    reg = Registry(work)
    again = reg.register(work / "bundles" / first, None, None)
    gates = {g.name: g for g in reg.gates(again)}
    assert not gates["not_worse_than_production"].passed
    assert gates["beats_popularity"].passed and gates["coverage_floor"].passed  # n/a


def _train_twenty_users(base: Path) -> None:
    data = base / "data"
    generate_demo(data, products=150, users=20, events=260, seed=4, defects=False)
    proc = sw(
        "train", "--data", str(data), "--workdir", str(base / "w"), "--json", *FAST
    )  # every default model
    (base / "train.json").write_text(proc.stdout)
    (base / "train.stderr").write_text(proc.stderr)


@pytest.fixture(scope="module")
def twenty_users(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, str]:
    base = built_once(tmp_path_factory, "twenty-users", _train_twenty_users)
    out = json.loads((base / "train.json").read_text())
    return base / "data", base / "w", out, (base / "train.stderr").read_text()


@pytest.mark.slow
def test_twenty_user_shop_trains_and_serves(twenty_users, tmp_path):
    data, work, out, _ = twenty_users
    bundle = Bundle.load(current_bundle(work))
    assert bundle.interactions.n_users <= 20 and "content" in bundle.models
    # what could not be trained says why; what could, was
    for s in out["skipped"]:
        assert s["reason"] and ("model" in s or "stage" in s)
    assert len(bundle.models) >= 3
    known = str(next(iter(csv.DictReader(open(data / "events.csv", encoding="utf-8"))))["user_id"])
    users = _users(tmp_path / "u.csv", [known, "somebody-new"])
    sw("recommend", "--workdir", str(work), "--users", str(users), "--out", str(tmp_path / "r.jsonl"))
    sources = [json.loads(x)["source"] for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sources[0] != "cold_start" and sources[1] == "cold_start"
    evaluated = sw("evaluate", "--workdir", str(work))
    # a fold this small is said to be one wherever its numbers are (only train's log said it)
    assert "warning: the test fold has" in evaluated.stdout and "noise more than measure" in evaluated.stdout
    assert 'id="few-users"' in (work / "reports" / "evaluation.html").read_text()
    server = Server(work, "--absorb-seconds", "0")
    try:
        assert server.client.get(f"/v1/recommendations/{known}").status_code == 200
        pid = str(bundle.interactions.item_ids[int(bundle.interactions.item_idx[0])])
        assert server.client.get(f"/v1/items/{pid}/similar").json()["items"]
        assert server.client.get("/v1/search", params={"q": "boots"}).status_code == 200
    finally:
        server.stop()


@pytest.mark.slow
def test_models_list_answers_without_mlflow(twenty_users):
    """`models list` answers from the snapshot the registry's last read or write left while its
    files are unchanged (as the catalog and the console do): the rows a read through MLflow
    gives, without MLflow's import (~1.3 s CPU of every listing)."""
    from shelfwise.governance._model_versions import mlflow_client, registered_versions

    _, work, _, _ = twenty_users
    through_mlflow = registered_versions(work, mlflow_client(work))
    proc, imported = sw_imports("models", "list", "--workdir", str(work), "--json")
    assert "mlflow" not in imported
    assert json.loads(proc.stdout) == json.loads(json.dumps(through_mlflow))
    text, imported = sw_imports("models", "list", "--workdir", str(work))
    assert "mlflow" not in imported and f"v{through_mlflow[-1]['version']}" in text.stdout


@pytest.mark.slow
def test_a_small_train_prints_no_library_warnings(twenty_users):
    """Every default model (LightGBM fusion, implicit's ALS and ItemKNN, SASRec, Optuna, MLflow)
    on a small shop: the console has the run's lines only; warnings, if any, are in the log."""
    _, work, out, stderr = twenty_users
    assert noise(stderr) == [], "\n".join(noise(stderr))
    assert "run log (library warnings included)" in stderr
