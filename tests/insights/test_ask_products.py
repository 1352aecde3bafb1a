"""`ask` on a trained demo shop with an FAQ: `train` encodes the FAQ into the bundle (ask reads
it instead of encoding again), and a question no FAQ entry answers but the catalog does gets the
search engine's products; an FAQ question and an off-topic one get none. The same over real
HTTP (POST /v1/ask on `shelfwise serve`)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from shelfwise.demo import generate_demo
from tests.insights.test_ask import FAQ
from tests.insights.test_customers import ok, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("askp")
    data = base / "data"
    generate_demo(data, products=200, users=80, events=3000, seed=5)
    (data / "faq.csv").write_text(FAQ)
    ok(run("train", "--data", str(data), "--workdir", str(base / "w"), "--models", "popularity",
           "--tune-seconds", "0", "--finetune-seconds", "0", "--cross-encoder-seconds", "0"))  # fmt: skip
    with open(data / "products.csv", encoding="utf-8", errors="replace") as fh:  # the demo's dirty rows
        titles = {r["product_id"]: r["title"] for r in csv.DictReader(fh)}
    return base / "w", titles


def product_question(titles: dict[str, str]) -> tuple[str, str]:
    """A shopper's question naming a product's kind and colour, from an English demo title
    ("Brand Adjective Noun - Colour"), and the noun."""
    for title in titles.values():
        m = re.fullmatch(r"\S+ (\w+) ([\w ]+) - (\w+)", title)
        if m:
            noun, colour = m.group(2).lower(), m.group(3).lower()
            return f"do you have a {colour} {noun}?", noun
    raise AssertionError("no English title in the demo catalog")


@pytest.mark.slow
def test_train_builds_the_faq_and_ask_attaches_products(trained, tmp_path: Path):
    from shelfwise import Shop
    from shelfwise.serving import current_bundle

    work, titles = trained
    bundle = current_bundle(work)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["faq"]["entries"] == 3 and (bundle / "faq" / "minilm.npy").exists()
    question, noun = product_question(titles)
    qs = tmp_path / "q.csv"
    qs.write_text(
        "question_id,question\n"
        f"product,{question}\nrefund,how do i get my money back\noff,what is the capital of mongolia\n"
        "joke,tell me a joke\n"
    )
    rep = Shop(work).ask(qs, tmp_path / "a.jsonl")
    assert rep["faq_from"] == "bundle" and rep["with_products"] == 1
    got = {r["question_id"]: r for r in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())}
    assert got["product"]["faq_id"] is None and 1 <= len(got["product"]["products"]) <= 5
    assert noun in titles[got["product"]["products"][0]].lower()  # the search engine's best match
    # each holds a question word: not the semantic neighbours a keyword page ranks among them
    words = [w for w in question.lower().strip("?").split() if w not in ("do", "you", "have", "a")]
    assert all(any(w[:4] in titles[p].lower() for w in words) for p in got["product"]["products"])
    assert got["refund"]["faq_id"] == "F1" and got["refund"]["products"] == []
    for off in ("off", "joke"):  # off topic: neither the FAQ nor the catalog
        assert got[off]["faq_id"] is None and got[off]["products"] == [], got[off]

    from tests.serving.conftest import Server

    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        r = s.client.post("/v1/ask", json={"question": question})
        assert r.status_code == 200 and r.json()["products"] == got["product"]["products"], r.text
        r = s.client.post("/v1/ask", json={"question": "how do i get my money back"})
        assert r.json()["faq_id"] == "F1" and r.json()["products"] == []
    finally:
        s.stop()


def test_a_questions_products_are_those_holding_its_words_not_their_neighbours():
    """A keyword page ranks semantic neighbours among and after the products holding a query
    word: "samsung galaxy phone price" on a 3-product shop got the phone, the earbuds and a
    cooktop. Only the matches are attached."""
    from types import SimpleNamespace

    import numpy as np

    from shelfwise.insights._faq_stage import attach_products

    engine = SimpleNamespace(
        catalog=SimpleNamespace(product_ids=["phone", "earbuds", "cooktop"]),
        _index={"phone": 0, "earbuds": 1, "cooktop": 2},
        counted_rows=lambda page: np.asarray(page["counted"], np.int64),
        query=lambda words, k: {"match": "keyword", "counted": [0],
                                "items": [{"product_id": "phone"}, {"product_id": "earbuds"}, {"product_id": "cooktop"}]},
    )  # fmt: skip
    assert attach_products(engine, ["samsung galaxy phone price"], [False]) == [["phone"]]
    assert attach_products(engine, ["samsung galaxy phone price"], [True]) == [[]]  # the FAQ answered


@pytest.mark.slow
def test_ask_offers_no_product_a_search_page_would_hide(trained, tmp_path: Path):
    """`answer` offered an out-of-stock tent that search and recommendations hide: the shop's
    business rules hold for the products ask attaches, as on a search page (out of stock, a
    hide rule)."""
    from shelfwise import Shop

    work, _ = trained
    shop = Shop(work)
    products = shop.table("products").set_index("product_id")
    # a product kind with products in stock and out of it
    kinds: dict[str, list[str]] = {}
    for pid, title in products["title"].items():
        m = re.fullmatch(r"\S+ (?:\w+ )?(\w+) - \w+.*", str(title))
        if m:
            kinds.setdefault(m.group(1).lower(), []).append(pid)
    stock = products["in_stock"].fillna(True).astype(bool)
    noun, pids = next(
        (k, v)
        for k, v in sorted(kinds.items())
        if any(not stock[p] for p in v) and sum(stock[p] for p in v) >= 2
    )
    got = shop.answer(f"do you sell {noun}?")["products"]
    assert got and all(stock[p] for p in got), (noun, got)
    assert set(got) <= set(shop.search(noun, 50)), (noun, got)
    # a hide rule for one of them holds too
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"items": [{"action": "hide", "product_id": got[0]}]}))
    shop.set_rules(rules)
    assert got[0] not in shop.answer(f"do you sell {noun}?")["products"]
