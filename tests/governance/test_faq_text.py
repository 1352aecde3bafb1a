"""The shop's FAQ is its own words, curated as written: an answer's contact details are not
masked and its lines are kept; shoppers' free text (reviews) is still masked."""

from __future__ import annotations

import json
from pathlib import Path

from shelfwise import Shop


def test_faq_answers_keep_contact_details_and_lines_reviews_stay_masked(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    answer = "Call us at +1 800 555 0199 or write to help@shop.example.\r\n\r\n\r\n1.  Pack the item<br/>2. Print the label"
    (data / "faq.jsonl").write_text(
        json.dumps({"faq_id": "F1", "question": "How do I  return an item?", "answer": answer}) + "\n"
    )
    (data / "products.csv").write_text("product_id,title\nP1,red lamp\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,text\n"
        "C1,P1,review,2026-01-02T10:00:00,great lamp - call me on +1 800 555 0123 or mail jo@example.org\n"
    )
    shop = Shop(tmp_path / "w")
    report = shop.ingest(data)
    assert report.tables["faq"].rows_curated == 1 and report.tables["events"].rows_curated == 1
    faq = shop.table("faq")
    assert faq.loc[0, "question"] == "How do I return an item?"
    assert faq.loc[0, "answer"] == (
        "Call us at +1 800 555 0199 or write to help@shop.example.\n\n1. Pack the item\n2. Print the label"
    )
    review = shop.table("events").loc[0, "text"]
    assert review == "great lamp - call me on [phone] or mail [email]"
