"""`train --data DIR --append` logs what its ingestion did as `shelfwise ingest` prints it: a
price feed's rows updated (it logged "9 added" for a feed that added none) and the load's check."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.governance import Ingestor
from shelfwise.lifecycle import TrainSettings
from shelfwise.lifecycle._train import train
from tests._price_feed import price_feed_shop


class _Stop(Exception):
    """Raised by the log once the ingestion's line is logged: the test needs no model."""


def test_trains_ingest_line_says_inserted_updated_unchanged_and_the_check(tmp_path: Path) -> None:
    day0, day4 = price_feed_shop(tmp_path)
    work = tmp_path / "w"
    Ingestor(work).run(day0)
    said: list[str] = []

    def log(line: str) -> None:
        said.append(line)
        if line.startswith("ingested"):
            raise _Stop

    with pytest.raises(_Stop):
        train(work, day4, TrainSettings(models=("popularity",)), log=log, append=True)
    line = said[-1]
    assert "added" not in line, line
    assert "products 0 inserted / 9 updated / 1 quarantined / 0 of them re-sent" in line, line
    assert "(check FAILING: 1 of 10 new rows quarantined (10.0%" in line, line
