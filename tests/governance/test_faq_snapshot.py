"""Removing FAQ entries: an existing shop's full snapshot of faq.csv alone replaces the faq
table (entries the file lacks are gone) and leaves the catalog and the events as they are, as a
catalog snapshot without an events file leaves the events. It was refused with the message
written for a new shop ("a shop starts from its catalog"), which a new shop still gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise import Shop
from shelfwise.errors import SourceError
from shelfwise.governance import Ingestor


def test_a_snapshot_of_the_faq_alone_replaces_the_faq_of_an_existing_shop(tmp_path: Path):
    first = tmp_path / "first"
    first.mkdir()
    (first / "products.csv").write_text("product_id,title\nP1,red lamp\nP2,blue kettle\n")
    (first / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2026-01-02T10:00:00\nU2,P2,purchase,2026-01-03T10:00:00\n"
    )
    (first / "faq.csv").write_text(
        "faq_id,question,answer\nF1,How do I return an item?,Within 30 days.\n"
        "F2,Do you ship abroad?,No.\nF3,How long is delivery?,Three days.\n"
    )
    shop = Shop(tmp_path / "w")
    shop.ingest(first)
    versions = {t: shop.table(t).shape for t in ("products", "events")}
    faq_only = tmp_path / "faq_only"
    faq_only.mkdir()
    (faq_only / "faq.csv").write_text(
        "faq_id,question,answer\nF1,How do I return an item?,Within 60 days.\nF4,Can I pay by card?,Yes.\n"
    )
    report = shop.ingest(faq_only)
    assert set(report.tables) == {"faq"}
    faq = shop.table("faq").set_index("faq_id")["answer"].to_dict()
    assert faq == {"F1": "Within 60 days.", "F4": "Yes."}  # F2 and F3 are gone
    assert {t: shop.table(t).shape for t in ("products", "events")} == versions
    assert not any("no products file" in n for n in report.notes), report.notes
    # a new shop given the FAQ alone is still told what a shop starts from
    with pytest.raises(SourceError, match="starts from its catalog"):
        Ingestor(tmp_path / "new").run(faq_only)
    # a folder of no table at all is refused, existing shop or not (the review's: it loaded
    # nothing, COMPLETE, and `train --data wrongdir` went on with the old data)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"no events.* file \(found: notes.csv\)"):
        shop.ingest(empty)
