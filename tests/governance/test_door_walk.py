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
