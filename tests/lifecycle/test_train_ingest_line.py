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


def test_train_says_a_tiny_test_fold_and_a_live_bundle_whose_gates_failed(tmp_path: Path) -> None:
    """A session shop split by global time left 6 test users, every number noise, and the
    bundle went live in single-user mode with failed gates, neither said in train's output."""
    data = tmp_path / "d"
    data.mkdir()
    rows = "".join(
        f"u{u},p{(u + i) % 7},view,2026-01-{1 + (u % 20):02d}T1{i}:00:00\n"
        for u in range(12)
        for i in range(5)
    )
    (data / "events.csv").write_text("user_id,product_id,event_type,timestamp\n" + rows)
    said: list[str] = []
    train(
        tmp_path / "w",
        data,
        TrainSettings(models=("popularity", "itemknn"), tune_budget_s=0),
        log=said.append,
    )
    text = "\n".join(said)
    assert "warning: the test fold has 12 users" in text, text
    registry = next(line for line in said if line.startswith("registry:"))
    assert "'beats_popularity': False" in registry  # (the default on 12 users: popularity's tie)
    assert "warning: it went live although beats_popularity failed" in registry, registry


def test_trains_ingest_lines_name_the_columns_the_contract_does_not_know(tmp_path: Path) -> None:
    """As `shelfwise ingest` prints them: a column the contract does not know was left out of
    the load without a word in `train --data`'s output."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,Supplier Code\nP1,Red mug,S-1\nP2,Blue mug,S-2\n")
    said: list[str] = []

    def log(line: str) -> None:
        said.append(line)
        if line.startswith("ingest:"):
            raise _Stop

    with pytest.raises(_Stop):
        train(tmp_path / "w", data, TrainSettings(models=("popularity",)), log=log)
    assert "'Supplier Code'" in said[-1] and "products contract" in said[-1], said
