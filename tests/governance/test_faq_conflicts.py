"""FAQ entries that answer one question differently are said after the load (the notes, the
report's `faq_conflicts`), over the whole curated table: a delivery's entry that contradicts
one curated before is found too; the same answer written differently is no conflict."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor


def _faq(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["faq_id,question,answer"] + [f'{i},"{qq}","{a}"' for i, qq, a in rows]
    (folder / "faq.csv").write_text("\n".join(lines) + "\n")
    (folder / "products.csv").write_text("product_id,title\nP1,kettle\n")
    return folder


def test_contradictory_faq_entries_are_said(tmp_path: Path):
    work = tmp_path / "w"
    day1 = _faq(
        tmp_path / "d1",
        [
            ("F1", "Can I return a gift?", "Yes, within 30 days."),
            ("F2", "Do you ship abroad?", "Yes."),
            ("F3", "can i return a gift", "No, gifts are final."),
            ("F4", "Do you ship abroad", "yes"),  # the same answer, written differently
            ("F5", "How do I pay?", "By card."),
            # other scripts are words too: two Russian questions are not one ("eu" alone), and a
            # Japanese question asked twice with two answers is found
            ("R1", "Доставка в EU?", "Да."),
            ("R2", "Возврат в EU?", "Нет."),
            ("J1", "返品できますか？", "はい。"),
            ("J2", "返品できますか", "いいえ。"),
        ],
    )
    report = Ingestor(work).run(day1)
    t = report.tables["faq"]
    assert t.rows_curated == 9
    assert t.faq_conflicts == 2
    assert t.faq_conflict_examples == [
        {"question": "Can I return a gift?", "faq_ids": ["F1", "F3"]},
        {"question": "返品できますか?", "faq_ids": ["J1", "J2"]},  # (NFKC: a full-width "？")
    ]
    note = next(n for n in report.notes if n.startswith("faq: "))
    assert "2 question(s)" in note and "F1, F3" in note
    assert report.to_dict()["tables"]["faq"]["faq_conflicts"] == 2

    # a delivery whose entry contradicts one curated by the first load
    day2 = _faq(tmp_path / "d2", [("F9", "How do I pay?", "Cash on delivery only.")])
    report2 = Ingestor(work, mode="append").run(day2)
    t2 = report2.tables["faq"]
    assert t2.faq_conflicts == 3
    assert [e["faq_ids"] for e in t2.faq_conflict_examples] == [["F1", "F3"], ["F5", "F9"], ["J1", "J2"]]

    # the shop keeps one answer each: nothing left to say
    fixed = _faq(
        tmp_path / "d3",
        [("F1", "Can I return a gift?", "Yes, within 30 days."), ("F2", "Do you ship abroad?", "Yes."),
         ("F5", "How do I pay?", "By card.")],
    )  # fmt: skip
    report3 = Ingestor(work).run(fixed)
    assert report3.tables["faq"].faq_conflicts == 0
    assert not [n for n in report3.notes if n.startswith("faq: ")]
