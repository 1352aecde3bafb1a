"""The demo shop has a customer-service FAQ and labeled shopper questions, so `make demo` shows
`ask` working: the FAQ is curated as written (its contact details unmasked), a shopper's paraphrase
finds its entry, a question no entry answers gets none, and the labeled questions score the
matcher above bm25s at bm25s's best threshold."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from shelfwise.demo import generate_demo
from shelfwise.demo._faq import FAQ_ENTRIES, LABELED_QUESTIONS
from tests.insights.test_customers import ok, run


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("demo-faq")
    generate_demo(base / "data", products=200, users=60, events=2000, days=20, seed=3)
    ok(run("ingest", "--data", str(base / "data"), "--workdir", str(base / "w")))
    return base / "w"


def test_demo_faq_is_labeled_consistently():
    ids = [e[0] for e in FAQ_ENTRIES]
    assert len(ids) == len(set(ids)) >= 20
    labels = [q[2] for q in LABELED_QUESTIONS]
    assert set(labels) - {""} <= set(ids) and labels.count("") >= 3
    # shoppers' wording, not the FAQ's: no labeled question repeats an entry's question
    assert not {q[1].lower() for q in LABELED_QUESTIONS} & {e[1].lower() for e in FAQ_ENTRIES}


@pytest.mark.slow
def test_demo_shop_answers_from_its_faq(shop: Path, tmp_path: Path):
    rows = list(csv.DictReader((shop.parent / "data" / "faq.csv").open(encoding="utf-8")))
    assert len(rows) == len(FAQ_ENTRIES)
    qs, out = tmp_path / "q.csv", tmp_path / "a.jsonl"
    qs.write_text("question_id,question\nparcel,where is my parcel\ngift,do you sell gift cards\n")
    ok(run("ask", "--workdir", str(shop), "--questions", str(qs), "--out", str(out)))
    got = {r["question_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert got["parcel"]["faq_id"] == "track_order" and got["gift"]["faq_id"] is None
    doc = json.loads(
        ok(
            run(
                "report", "ask", "--workdir", str(shop),
                "--questions", str(shop.parent / "data" / "faq_questions.csv"), "--json",
            )
        ).stdout
    )  # fmt: skip
    e = doc["evaluation"]
    assert e["questions"] == len(LABELED_QUESTIONS) and len(doc["errors"]) < len(LABELED_QUESTIONS) / 2
    assert e["margin_points_over_best_bm25s"] > 10, e
    # the shop's own words are curated as written: the phone number an answer gives is kept
    qs.write_text("question_id,question\nphone,how can i reach customer support\n")
    ok(run("ask", "--workdir", str(shop), "--questions", str(qs), "--out", str(out)))
    (phone,) = map(json.loads, out.read_text().splitlines())
    assert phone["faq_id"] == "contact" and "+44 20 7946 0000" in phone["answer"]
