"""The batch CLI and the HTTP API answer alike: `shelfwise recommend` / `shelfwise search` /
`shelfwise similar` give the ranking that /v1/recommendations, /v1/search and
/v1/items/{id}/similar give for the same input, business rules included
(so an offline evaluation measures what shoppers get); `--no-rules` gives the models' ranking alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.test_cli import sw
from tests.serving.conftest import Server, catalog_products, known_users

QUERIES = ["wireless speaker", "kitchen knife", "running shoes", "tea", "blue lamp", "usb cable"]


def _cli_recommend(work: Path, tmp: Path, users: list[str], *flags: str) -> dict[str, list[str]]:
    (tmp / "users.txt").write_text("\n".join(users) + "\n")
    out = tmp / "recs.jsonl"
    sw(
        "recommend",
        "--workdir",
        str(work),
        "--users",
        str(tmp / "users.txt"),
        "--k",
        "8",
        "--out",
        str(out),
        *flags,
    )
    return {d["user_id"]: d["items"] for d in map(json.loads, out.read_text().splitlines())}


def _cli_search(work: Path, tmp: Path, *flags: str) -> dict[str, list[str]]:
    (tmp / "q.csv").write_text("query_id,query\n" + "".join(f"q{i},{q}\n" for i, q in enumerate(QUERIES)))
    out = tmp / "search.jsonl"
    sw(
        "search",
        "--workdir",
        str(work),
        "--queries",
        str(tmp / "q.csv"),
        "--k",
        "8",
        "--out",
        str(out),
        *flags,
    )
    return {d["query_id"]: d["items"] for d in map(json.loads, out.read_text().splitlines())}


def _cli_similar(work: Path, tmp: Path, products: list[str], *flags: str) -> dict[str, dict]:
    (tmp / "products.csv").write_text("Product ID\n" + "\n".join(products) + "\n")
    out = tmp / "similar.jsonl"
    proc = sw(
        "similar",
        "--workdir",
        str(work),
        "--products",
        str(tmp / "products.csv"),
        "--k",
        "6",
        "--out",
        str(out),
        *flags,
    )
    assert f"wrote {len(products)} products" in proc.stdout, proc.stdout
    return {d["product_id"]: d for d in map(json.loads, out.read_text().splitlines())}


@pytest.mark.slow
def test_cli_and_http_give_the_same_rankings_with_rules(served_workdir, tmp_path):
    data, trained = served_workdir
    work = tmp_path / "w"
    shutil.copytree(trained, work)  # its own rules file: the shared workdir stays as it is
    users = [*known_users(data, work, 6), "someone-never-seen"]
    plain = _cli_recommend(work, tmp_path, users, "--no-rules")
    plain_search = _cli_search(work, tmp_path, "--no-rules")
    # hide what the models rank first for two users, and pin a product on every list
    hidden = plain[users[0]][0]
    pinned = next(p for p in catalog_products(work) if p not in plain[users[1]][:8])
    # and in search: pin a product the engine does not rank for the first query, and hide the
    # one it ranks first for the second (rules that change those answers whatever else ranks)
    searched = [p for items in plain_search.values() for p in items]
    pinned_s = next(p for p in catalog_products(work) if p not in searched and p not in (hidden, pinned))
    shelved = plain_search["q1"][0]
    assert shelved != hidden  # (hidden everywhere by the first rule)
    # similar items: the neighbours of four products, and one the bundle does not know
    anchors = [p for p in catalog_products(work) if p not in (hidden, pinned, pinned_s, shelved)][:4]
    plain_similar = _cli_similar(work, tmp_path, [*anchors, "NO-SUCH-PRODUCT"], "--no-rules")
    assert (
        plain_similar["NO-SUCH-PRODUCT"]["items"] == []
        and "not in the current bundle" in (plain_similar["NO-SUCH-PRODUCT"]["error"])
    )
    buried = plain_similar[anchors[0]]["items"][0]  # hidden from similar items only
    rules = {
        "items": [
            {"action": "hide", "product_id": hidden},
            {"action": "pin", "product_id": pinned, "position": 1, "surfaces": ["recommendations"]},
            {
                "action": "pin",
                "product_id": pinned_s,
                "position": 1,
                "query": QUERIES[0],
                "surfaces": ["search"],
            },
            {"action": "hide", "product_id": shelved, "surfaces": ["search"]},
            {"action": "hide", "product_id": buried, "surfaces": ["similar"]},
        ]
    }
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    sw("rules", "set", "--workdir", str(work), "--file", str(tmp_path / "rules.json"))

    cli_recs = _cli_recommend(work, tmp_path, users)
    cli_search = _cli_search(work, tmp_path)
    cli_similar = _cli_similar(work, tmp_path, [*anchors, "NO-SUCH-PRODUCT"])
    # a budget no query exceeds: the server runs the whole pipeline, as the batch CLI does (under
    # load it may skip stages, and says so in `degraded`)
    server = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0", "--search-budget-ms", "60000")
    try:
        for u in users:
            r = server.client.get(f"/v1/recommendations/{u}", params={"k": 8})
            assert r.status_code == 200, r.text
            assert r.json()["items"] == cli_recs[u], u
        for i, q in enumerate(QUERIES):
            r = server.client.get("/v1/search", params={"q": q, "k": 8})
            assert r.status_code == 200 and not r.json()["degraded"], r.text
            assert [it["product_id"] for it in r.json()["items"]] == cli_search[f"q{i}"], q
        for p in anchors:
            r = server.client.get(f"/v1/items/{p}/similar", params={"k": 6})
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["items"] == cli_similar[p]["items"], p
            assert (got["model"], got["fallback"]) == (cli_similar[p]["model"], cli_similar[p]["fallback"])
        assert server.client.get("/v1/items/NO-SUCH-PRODUCT/similar").status_code == 404
    finally:
        server.stop()
    # the rules are in force in the CLI's answers, and --no-rules turns them off
    assert all(hidden not in items for items in cli_recs.values())
    assert all(items[0] == pinned for items in cli_recs.values())
    assert plain[users[0]][0] == hidden and _cli_recommend(work, tmp_path, users, "--no-rules") == plain
    assert all(hidden not in items for items in cli_search.values())
    assert cli_search["q0"][0] == pinned_s and all(shelved not in items for items in cli_search.values())
    assert cli_search["q1"] != plain_search["q1"]  # the rules changed what search answers ...
    assert _cli_search(work, tmp_path, "--no-rules") == plain_search  # ... and --no-rules undoes it
    assert all(buried not in d["items"] and hidden not in d["items"] for d in cli_similar.values())
    assert cli_similar[anchors[0]]["items"] != plain_similar[anchors[0]]["items"]
    assert _cli_similar(work, tmp_path, [*anchors, "NO-SUCH-PRODUCT"], "--no-rules") == plain_similar


@pytest.mark.slow
def test_a_product_unpublished_by_a_catalog_load_leaves_every_list_at_once(served_workdir, tmp_path):
    """A catalog load said a product is not published (`published=0`): it stayed on every served
    list until the next training, and a pin of it put it first on every list (recommendations,
    similar items, search), where a sold-out or dropped product left them at once. It leaves
    them with the load, pinned or not, alike in the CLI and over HTTP; its similar items say it
    is not published, and a product never curated says it is not in the catalog."""
    from shelfwise import Shop

    data, trained = served_workdir
    work = tmp_path / "w"
    shutil.copytree(trained, work)
    users = [*known_users(data, work, 4), "someone-never-seen"]
    before = _cli_recommend(work, tmp_path, users)
    draft = before[users[0]][0]
    anchors = [p for p in catalog_products(work) if p != draft][:3]
    rules = {
        "items": [
            {"action": "pin", "product_id": draft, "position": 1},
            {"action": "pin", "product_id": draft, "position": 1, "query": QUERIES[0]},
        ]
    }
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    sw("rules", "set", "--workdir", str(work), "--file", str(tmp_path / "rules.json"))
    assert all(items[0] == draft for items in _cli_recommend(work, tmp_path, users).values())
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "products.csv").write_text(f"product_id,published\n{draft},0\n")
    Shop(work).ingest(feed, append=True)  # no training after it

    cli_recs = _cli_recommend(work, tmp_path, users)
    cli_search = _cli_search(work, tmp_path)
    cli_similar = _cli_similar(work, tmp_path, [*anchors, draft])
    assert all(draft not in items for items in cli_recs.values()), cli_recs
    assert all(draft not in items for items in cli_search.values()), cli_search
    assert all(draft not in cli_similar[p]["items"] for p in anchors)
    assert cli_similar[draft]["items"] == [] and "is not published" in cli_similar[draft]["error"]
    server = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0", "--search-budget-ms", "60000")
    try:
        for u in users:
            r = server.client.get(f"/v1/recommendations/{u}", params={"k": 8})
            assert r.status_code == 200 and r.json()["items"] == cli_recs[u], (u, r.text)
        for i, q in enumerate(QUERIES):
            r = server.client.get("/v1/search", params={"q": q, "k": 8})
            assert [it["product_id"] for it in r.json()["items"]] == cli_search[f"q{i}"], q
        for p in anchors:
            r = server.client.get(f"/v1/items/{p}/similar", params={"k": 6})
            assert r.json()["items"] == cli_similar[p]["items"], p
        r = server.client.get(f"/v1/items/{draft}/similar")
        assert r.status_code == 404 and r.json()["error"] == f"product_id: {cli_similar[draft]['error']}"
        assert "is not published" in r.json()["error"]
    finally:
        server.stop()


@pytest.mark.slow
def test_cli_and_http_give_the_same_pages_with_attribute_filters(served_workdir, tmp_path):
    """`shelfwise search --attr color=blue --attr size=M --attr size=L` answers as
    /v1/search?attr.color=blue&attr.size=M&attr.size=L: the same products, every one of them
    blue in M or L, and a filter that changes the pages."""
    from shelfwise.storage import read_only

    _, trained = served_workdir
    work = tmp_path / "w"
    shutil.copytree(trained, work)  # (the server writes its log there)
    plain = _cli_search(work, tmp_path)
    flags = ("--attr", "color=blue", "--attr", "size=M", "--attr", "size=L")
    cli = _cli_search(work, tmp_path, *flags)
    assert cli != plain and any(cli.values()), cli
    with read_only(work) as (con, _):
        attrs = dict(con.sql("SELECT product_id, attributes FROM curated.products").fetchall())
    server = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0", "--search-budget-ms", "60000")
    try:
        for i, q in enumerate(QUERIES):
            r = server.client.get(
                "/v1/search",
                params=[("q", q), ("k", 8), ("attr.color", "blue"), ("attr.size", "M"), ("attr.size", "L")],
            )
            assert r.status_code == 200 and not r.json()["degraded"], r.text
            assert [it["product_id"] for it in r.json()["items"]] == cli[f"q{i}"], q
            facets = r.json()["facets"]["attributes"]
            assert {f["value"] for f in facets["size"]} >= {"M", "L"}, facets  # (without the size filter)
    finally:
        server.stop()
    for items in cli.values():
        for p in items:
            a = json.loads(attrs[p])
            assert a["color"] == "blue" and a["size"] in ("M", "L"), (p, a)
