"""`ask` on a shop that has no search judgments, no queries and no events: a catalog and an FAQ
only (issue 18: ask works with whatever `train` built). `train` builds the FAQ matcher into the
bundle (with the catalog's words for the speller); `shelfwise ask` and POST /v1/ask answer FAQ
questions (typo'd ones too) with no products, attach the search engine's products to a question
about the catalog, and leave off-topic questions unanswered with no products."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from shelfwise.demo import generate_demo
from tests.insights.test_ask import FAQ
from tests.insights.test_ask_products import product_question
from tests.insights.test_customers import ok, run

FAST = ["--tune-trials", "2", "--sasrec-epochs", "2", "--finetune-steps", "0", "--cross-encoder-steps", "0"]
OFF_TOPIC = ("tell me a joke", "what is the weather tomorrow", "what is the capital of mongolia")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("asknj")
    generate_demo(base / "demo", products=60, users=10, events=100, seed=3, defects=False)
    data = base / "data"
    data.mkdir()
    shutil.copy(base / "demo" / "products.csv", data / "products.csv")  # no events, queries, judgments
    (data / "faq.csv").write_text(FAQ)
    ok(run("train", "--data", str(data), "--workdir", str(base / "w"), *FAST))
    with open(data / "products.csv", encoding="utf-8") as fh:
        titles = {r["product_id"]: r["title"] for r in csv.DictReader(fh)}
    return base / "w", titles


@pytest.mark.slow
def test_a_shop_with_only_a_catalog_and_an_faq_answers(trained, tmp_path: Path):
    from shelfwise.serving import current_bundle

    work, titles = trained
    bundle = current_bundle(work)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["faq"]["entries"] == 3 and manifest["faq"]["catalog_words"] > 0
    assert manifest["faq"]["near_twins"]["pairs"] == 0  # three distinct questions
    brand = next(iter(titles.values())).split()[0].lower()  # "Brand Adjective Noun - Colour"
    assert brand in json.loads((bundle / "faq" / "vocabulary.json").read_text())
    question, noun = product_question(titles)
    qs = tmp_path / "q.csv"
    rows = {"product": question, "refund": "how do i get my money back", "typo": "how do i retrun my ordr"}
    rows |= {f"off{i}": q for i, q in enumerate(OFF_TOPIC)}
    qs.write_text("question_id,question\n" + "".join(f"{k},{v}\n" for k, v in rows.items()))
    out = tmp_path / "a.jsonl"
    proc = ok(run("ask", "--workdir", str(work), "--questions", str(qs), "--out", str(out)))
    assert "2 answered from the FAQ, 4 left unanswered" in proc.stdout
    got = {r["question_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert got["product"]["faq_id"] is None and 1 <= len(got["product"]["products"]) <= 5
    assert noun in titles[got["product"]["products"][0]].lower()
    for q in ("refund", "typo"):
        assert got[q]["faq_id"] == "F1" and got[q]["products"] == [], got[q]
    for i in range(len(OFF_TOPIC)):  # neither the FAQ nor the catalog (a semantic-only match is not enough)
        assert got[f"off{i}"]["faq_id"] is None and got[f"off{i}"]["products"] == [], got[f"off{i}"]

    from tests.serving.conftest import Server

    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        r = s.client.post("/v1/ask", json={"question": question})
        assert r.status_code == 200 and r.json()["products"] == got["product"]["products"], r.text
        r = s.client.post("/v1/ask", json={"question": "how do i retrun my ordr"})
        assert r.json()["faq_id"] == "F1" and r.json()["products"] == []
        r = s.client.post("/v1/ask", json={"question": "tell me a joke"})
        assert r.json()["faq_id"] is None and r.json()["answer"] is None and r.json()["products"] == []
    finally:
        s.stop()


@pytest.mark.slow
def test_a_running_server_answers_from_an_faq_delivered_after_its_bundle(trained, tmp_path: Path):
    """An FAQ delivery between trainings (`ingest --append` changing an answer) is what POST
    /v1/ask answers from at the server's next refresh, as the CLI does: a running server kept
    the bundle's old answer (score 1.0) until a restart, and `/v1/admin/reload` said
    `{"changed": false}`."""
    import time

    from shelfwise.serving import Service
    from tests.serving.conftest import Server

    work = tmp_path / "w"
    shutil.copytree(trained[0], work, symlinks=True)
    question = "How do I return an item?"  # F1's own question: answered by F1 at 1.0
    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0.5")
    try:
        r = s.client.post("/v1/ask", json={"question": question}).json()
        assert r["faq_id"] == "F1" and r["answer"].startswith("Open your orders"), r
        delivery = tmp_path / "d1"
        delivery.mkdir()
        (delivery / "faq.csv").write_text(
            'faq_id,question,answer\nF1,How do I return an item?,"Write to returns@example.com."\n'
        )
        ok(run("ingest", "--append", "--data", str(delivery), "--workdir", str(work)))
        deadline, got = time.monotonic() + 30, r
        while time.monotonic() < deadline and got["answer"] != "Write to returns@example.com.":
            time.sleep(0.3)
            got = s.client.post("/v1/ask", json={"question": question}).json()
        assert got["faq_id"] == "F1" and got["answer"] == "Write to returns@example.com.", got
    finally:
        s.stop()
    # the reload reports an FAQ delivery as a change (the service notes the new version)
    svc = Service(work)
    before = svc.faq_version
    assert before is not None and svc.refresh() is False
    (delivery / "faq.csv").write_text('faq_id,question,answer\nF2,How long does delivery take?,"A week."\n')
    ok(run("ingest", "--append", "--data", str(delivery), "--workdir", str(work)))
    assert svc.refresh() is True and svc.faq_version not in (None, before)
