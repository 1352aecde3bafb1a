"""A new shop's first try, as walked on shared data no other test uses as a shop: a folder
with only its FAQ (the Flipkart help-centre export renamed `faq.csv`) is told what its file was
read as and what a shop starts from, never offered to read its FAQ as events."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.errors import SourceError
from shelfwise.governance import Ingestor


def test_a_folder_with_only_the_faq_is_told_what_a_shop_needs(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "faq.csv").write_text('Topic,Question,Answer\nDelivery,"When will it arrive?","In 3 days."\n')
    (data / "notes.txt").write_text("exported by hand\n")
    with pytest.raises(SourceError) as err:
        Ingestor(tmp_path / "w").run(data)
    msg = str(err.value)
    assert "faq.csv is the faq table" in msg and "starts from its catalog (products)" in msg
    assert 'events = "faq.csv"' not in msg


def test_an_unnamed_export_still_gets_its_declaration(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "faq.csv").write_text("Topic,Question,Answer\nDelivery,When?,Soon.\n")
    (data / "Sample - Superstore.csv").write_text("Order ID,Product ID,Order Date\nO1,P1,2024-01-05\n")
    with pytest.raises(SourceError, match='events = "Sample - Superstore.csv"'):
        Ingestor(tmp_path / "w").run(data)


def test_a_plain_events_file_is_not_read_for_an_order_lines_derivation(tmp_path: Path, monkeypatch):
    """A shop's events file without product titles derives nothing: the derivation must not
    scan it first (it read every date of the file for the order of lines it would not write:
    ~5 s of a 10M-row ingest). An order-lines export still reads its dates."""
    from shelfwise.governance import _orderlines

    calls: list[str] = []
    real = _orderlines.slash_date_counts

    def counted(sql, relation, ts):
        calls.append(relation)
        return real(sql, relation, ts)

    monkeypatch.setattr(_orderlines, "slash_date_counts", counted)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,05/01/2024\nU2,P1,purchase,25/01/2024\n"
    )
    report = Ingestor(tmp_path / "w1").run(plain)
    assert report.tables["events"].rows_curated == 2 and "products" not in report.tables
    assert calls == []
    lines = tmp_path / "lines"
    lines.mkdir()
    (lines / "orders.csv").write_text(
        "Customer ID,Product ID,Product Name,Order Date\nU1,P1,Lamp,05/01/2024\nU2,P1,Lamp,25/01/2024\n"
    )
    (lines / "shelfwise.toml").write_text('[files]\nevents = "orders.csv"\n')
    report = Ingestor(tmp_path / "w2").run(lines)
    assert report.tables["products"].rows_curated == 1 and len(calls) == 1
