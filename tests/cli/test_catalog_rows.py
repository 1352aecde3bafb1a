"""What a shop's catalog says is what shoppers are shown: a product whose catalog row was
quarantined (or never delivered) is learned from but never served, not on a recommendation list,
a cold-start list or a similar-items list, even when it is the most popular product; a small
catalog whose titles combine a few words ("Slim Fit Tee - Red") is searchable; the batch `search`
labels a fallback list as /v1/search does; and a bundle without a search index says so over HTTP
as the CLI does, instead of answering an empty page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shelfwise.serving import Bundle, current_bundle
from tests.cli.test_cli import sw
from tests.serving.conftest import Server

STYLES = ["Classic Cotton Tee", "Slim Fit Tee", "V-Neck Tee", "Long Sleeve Tee", "Organic Hoodie"]
COLOURS = ["Red", "Blue", "Green", "Black", "White", "Grey", "Navy", "Pink", "Olive", "Sand", "Teal", "Rust"]
FAST = ["--tune-trials", "2", "--finetune-steps", "0", "--cross-encoder-steps", "0", "--no-fusion"]
BAD = "P999"  # its catalog row has an impossible price: quarantined
GHOST = "P998"  # in events, never in the catalog: those events are quarantined


def _shop(data: Path, titles: list[str]) -> None:
    data.mkdir(parents=True)
    rows = ["product_id,title,category,brand,price"]
    for i, t in enumerate(titles):
        rows.append(f"P{i:03d},{t},Apparel > {t.split(' - ')[0]},Acme,19.99")
    rows.append(f"{BAD},Mystery Tee - Gold,Apparel > Mystery,Acme,9990000000")
    (data / "products.csv").write_text("\n".join(rows) + "\n")
    ev = ["user_id,product_id,event_type,timestamp"]
    t = 1_767_225_600
    for u in range(40):
        # everyone views the two uncatalogued products first: the most popular by far
        seq = [
            BAD,
            GHOST,
            f"P{u % len(titles):03d}",
            f"P{(u * 7 + 3) % len(titles):03d}",
            f"P{(u + 1) % len(titles):03d}",
        ]
        for j, p in enumerate(seq):
            ev.append(f"U{u:03d},{p},view,{t + u * 1000 + j * 10}")
    (data / "events.csv").write_text("\n".join(ev) + "\n")


@pytest.fixture(scope="module")
def tees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("tees")
    _shop(base / "data", [f"{s} - {c}" for s in STYLES for c in COLOURS])
    work = base / "w"
    proc = sw("train", "--data", str(base / "data"), "--workdir", str(work), "--json",
              "--models", "popularity,itemknn,content", *FAST)  # fmt: skip
    return work, json.loads(proc.stdout)


@pytest.mark.slow
def test_quarantined_and_unknown_products_are_never_served(tees, tmp_path):
    work, out = tees
    assert "search" not in {s.get("stage") for s in out["skipped"]}  # the titles are text
    bundle = Bundle.load(current_bundle(work))
    ids = [str(p) for p in bundle.interactions.item_ids]
    assert BAD in ids and GHOST not in ids  # learned from (its events are valid), ...
    assert bundle.listed is not None and not bundle.listed[ids.index(BAD)] and bundle.listed.sum() == 60
    cold = [ids[i] for i in bundle.arrays["cold_start"]]
    assert BAD not in cold and len(cold) == 60  # ... never served
    log = next((work / "logs").glob("train-*.log")).read_text()
    assert "1 product(s) seen in events have no curated catalog row" in log
    # the offline numbers measure what is served: the unlisted product is never ranked there
    protocol = json.loads((work / "reports" / "evaluation.json").read_text())["protocol"]
    assert protocol["unlisted_items"] == 1 and protocol["candidates"] == "full ranking (the 60 listed items)"
    again = json.loads(sw("evaluate", "--workdir", str(work), "--json").stdout)
    assert again["protocol"]["unlisted_items"] == 1, again["protocol"]

    users = tmp_path / "u.csv"
    users.write_text("user_id\nU001\nU002\nsomebody-new\n")
    for model in ("popularity", "itemknn"):
        sw("recommend", "--workdir", str(work), "--users", str(users), "--k", "10",
           "--model", model, "--out", str(tmp_path / "r.jsonl"))  # fmt: skip
        lists = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
        assert all(len(a["items"]) == 10 for a in lists), lists
        served = {p for a in lists for p in a["items"]}
        assert BAD not in served and GHOST not in served, (model, lists)

    # (a budget no page misses on a loaded machine: a degraded page would differ from the CLI's)
    server = Server(work, "--absorb-seconds", "0", "--search-budget-ms", "60000")
    try:
        for path in (
            "/v1/recommendations/U001",
            "/v1/recommendations/somebody-new",
            "/v1/items/P000/similar",
        ):
            r = server.client.get(path, params={"k": 10})
            assert r.status_code == 200 and r.json()["items"], (path, r.text)
            assert not {BAD, GHOST} & set(r.json()["items"]), (path, r.json())
        # search: the CLI writes how each list was found, as the server says it
        page = server.client.get("/v1/search", params={"q": "slim fit tee navy", "k": 5}).json()
        assert page["match"] == "keyword" and page["items"][0]["product_id"] == "P018"  # Slim Fit Tee - Navy
        nonsense = server.client.get("/v1/search", params={"q": "asdkjhqwe", "k": 5}).json()
        assert nonsense["match"] == "none" and nonsense["fallback"] == "popular" and nonsense["items"]
    finally:
        server.stop()
    (tmp_path / "q.csv").write_text("query_id,query\nq1,slim fit tee navy\nq2,asdkjhqwe\nq3,\n")
    sw("search", "--workdir", str(work), "--queries", str(tmp_path / "q.csv"), "--k", "5",
       "--out", str(tmp_path / "s.jsonl"))  # fmt: skip
    got = {d["query_id"]: d for d in map(json.loads, (tmp_path / "s.jsonl").read_text().splitlines())}
    assert got["q1"]["match"] == "keyword" and got["q1"]["fallback"] is None
    assert got["q1"]["items"] == [it["product_id"] for it in page["items"]]
    assert got["q2"]["fallback"] == "popular" and got["q2"]["items"] == [
        it["product_id"] for it in nonsense["items"]
    ]
    assert got["q3"] == {"query_id": "q3", "items": [], "match": None, "fallback": None}


@pytest.mark.slow
def test_a_bundle_without_a_search_index_says_so_over_http(tmp_path):
    data = tmp_path / "data"
    _shop(data, [f"item {i}" for i in range(30)])  # placeholders: no text to index
    work = tmp_path / "w"
    out = json.loads(sw("train", "--data", str(data), "--workdir", str(work), "--json",
                        "--models", "popularity", *FAST).stdout)  # fmt: skip
    assert {"stage": "search", "reason": "no catalog with text to index"} in out["skipped"]
    (tmp_path / "q.csv").write_text("query_id,query\nq1,item\n")
    proc = sw("search", "--workdir", str(work), "--queries", str(tmp_path / "q.csv"),
              "--out", str(tmp_path / "s.jsonl"), check=False)  # fmt: skip
    assert proc.returncode == 2 and "no search index" in proc.stderr
    server = Server(work, "--absorb-seconds", "0")
    try:
        r = server.client.get("/v1/search", params={"q": "item"})
        assert r.status_code == 404 and "no search index" in r.text, r.text
    finally:
        server.stop()
