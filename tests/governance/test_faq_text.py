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


def test_faq_answers_given_as_html_are_converted_to_plain_text_and_said(tmp_path: Path):
    """An answer in HTML is read as a browser shows it: tags gone, a script's code dropped, a
    link kept as "text (url)", entities decoded once (`&lt;script&gt;` is the text "<script>",
    never re-read as a tag), a bare "<" kept; the load says it converted answers, and which
    answers read as markup once decoded. The regexes stored "type 5 3", "alert('x')", "click
    Return ." and a real `<script>` tag, and said nothing."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,red lamp\n")
    (data / "faq.csv").write_text(
        "faq_id,question,answer\n"
        'f1,How do I return an item?,"<p>Go to <b>My Orders</b> and click '
        '<a href=""https://shop.example/returns"">Return</a>.</p><script>alert(\'x\')</script>"\n'
        'f2,Which form?,"Use the form &lt;script&gt;alert(document.cookie)&lt;/script&gt; at returns."\n'
        'f3,Any tips?,"type 5 < 6 and 7 > 3 <3"\n'
        'f4,What sizes?,"<ul><li>Small</li><li>Large</li></ul>"\n'
        "f5,How long is delivery?,Three to five days.\n"
    )
    shop = Shop(tmp_path / "w")
    report = shop.ingest(data)
    answers = dict(zip(*(shop.table("faq")[c] for c in ("faq_id", "answer")), strict=True))
    assert answers == {
        "f1": "Go to My Orders and click Return (https://shop.example/returns).",
        "f2": "Use the form <script>alert(document.cookie)</script> at returns.",
        "f3": "type 5 < 6 and 7 > 3 <3",
        "f4": "Small\nLarge",
        "f5": "Three to five days.",
    }
    notes = "\n".join(report.notes)
    assert "faq.csv: 3 answer(s) given as HTML were converted to plain text" in notes, notes
    assert "faq: 1 answer(s) read as markup once decoded (f2;" in notes, notes


def test_a_list_of_text_is_joined_and_an_object_or_a_listed_id_is_quarantined(tmp_path: Path):
    """JSON lines: `"answer": ["No"]` was curated as the text `["No"]`, said nowhere. A list of
    text is its items joined (an answer's paragraphs on lines, Amazon metadata's category lists
    as a path: quarantining them lost whole catalogs, the review's); an object where a column
    holds one value, or a list for an id, is `invalid_type`, its file, line and field named; the
    valid rows are curated."""
    from shelfwise.storage import read_only

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.jsonl").write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in (
                {"product_id": "P1", "title": "red lamp"},
                {"product_id": "P2", "title": {"en": "blue kettle"}},
                {"product_id": "P3", "title": "novel", "categories": [["Books", "Fiction"]]},
                {"product_id": ["P4"], "title": "mug"},
                {"product_id": "P5", "title": ["A", {"x": 1}]},  # (an object in the list: the review's)
            )
        )
    )
    (data / "faq.jsonl").write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in (
                {
                    "faq_id": "F1",
                    "question": "Can I return a sale item?",
                    "answer": ["No.", "Sale items are final."],
                },
                {"faq_id": "F2", "question": "Do you ship abroad?", "answer": "Yes, to the EU."},
            )
        )
    )
    shop = Shop(tmp_path / "w")
    report = shop.ingest(data)
    assert report.tables["faq"].reasons == {}
    assert report.tables["products"].reasons == {"invalid_type": 3}
    answers = shop.table("faq").set_index("faq_id")["answer"].to_dict()
    assert answers == {"F1": "No.\nSale items are final.", "F2": "Yes, to the EU."}
    products = shop.table("products").set_index("product_id")
    assert sorted(products.index) == ["P1", "P3"] and products.loc["P3", "category"] == "Books > Fiction"
    with read_only(tmp_path / "w") as (con, _):
        rows = con.sql(
            "SELECT source_file, source_line, reason, detail FROM quarantine.rows ORDER BY source_line"
        ).fetchall()
    assert rows == [
        (str(data / "products.jsonl"), 2, "invalid_type", "title: an object given where text is expected"),
        (str(data / "products.jsonl"), 4, "invalid_type", "product_id: a list given where an id is expected"),
        (
            str(data / "products.jsonl"),
            5,
            "invalid_type",
            "title: a list holding more than text where text is expected",
        ),
    ]


def test_a_category_given_as_several_paths_keeps_the_first_and_the_report_says_how_many(tmp_path: Path):
    """Amazon's 2014 metadata lists a product's category paths (`[["Books", "Fiction"],
    ["Books", "Sale"]]`): the load keeps the first path, and did so without a word. The report's
    warnings name the file, the table, the column (and the file's key) and how many rows."""
    from shelfwise.reporting import summary_lines

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.jsonl").write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in (
                {
                    "product_id": "P1",
                    "title": "novel",
                    "categories": [["Books", "Fiction"], ["Books", "Sale"]],
                },
                {"product_id": "P2", "title": "poems", "categories": [["Books", "Poetry"]]},
                {"product_id": "P3", "title": "record", "categories": ["Music", "Jazz"]},
                {"product_id": "P4", "title": "puzzle", "categories": [["Toys"], ["Games"], ["Gifts"]]},
                {"product_id": "P5", "title": "lamp"},
            )
        )
    )
    shop = Shop(tmp_path / "w")
    report = shop.ingest(data)
    categories = shop.table("products").set_index("product_id")["category"].to_dict()
    assert (categories["P1"], categories["P2"], categories["P3"], categories["P4"]) == (
        "Books > Fiction",
        "Books > Poetry",
        "Music > Jazz",
        "Toys",
    )
    said = [w for w in report.warnings if "category paths" in w]
    assert said == [
        "products.jsonl: products.category (the file's 'categories'): 2 row(s) give several category "
        "paths (a list of lists): only the first path of each was kept"
    ], report.warnings
    assert any(said[0] in line for line in summary_lines(report))
