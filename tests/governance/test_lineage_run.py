"""OpenLineage runs: ids as the client makes them (UUIDv7), and a START written from a thread
(`shelfwise ingest`) in order with the run's other events, its failure not lost."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from shelfwise.governance._lineage import LINEAGE_FILE, DatasetRef, LineageRun, new_run_id


def test_run_ids_are_uuid7_in_time_order():
    before = time.time_ns() // 1_000_000
    first = uuid.UUID(new_run_id())
    time.sleep(0.003)
    second = uuid.UUID(new_run_id())
    after = time.time_ns() // 1_000_000
    for u in (first, second):
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= u.int >> 80 <= after  # the first 48 bits: Unix time in milliseconds
    assert str(first) < str(second)
    assert len({new_run_id() for _ in range(1000)}) == 1000


@pytest.fixture
def preload_running():
    """A command's preload, as `shelfwise ingest` starts one (here importing what is imported)."""
    from shelfwise._lazy import preload, preloaded

    preload(("json",))
    yield
    preloaded()


def test_a_start_written_in_the_background_comes_first_with_what_it_saw(tmp_path, preload_running):
    run = LineageRun(tmp_path, "shelfwise.ingest", [DatasetRef("file", "/data/events.csv")], background=True)
    run.start()
    run.inputs = [DatasetRef("file", "/data/events.csv", rows=10)]  # (as the ingest sets them later)
    run.complete([DatasetRef("duckdb:///w", "curated.events", rows=9)])
    events = [json.loads(line) for line in (tmp_path / LINEAGE_FILE).read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in events} == {run.run_id}
    assert events[0]["eventTime"] <= events[1]["eventTime"]
    stats = [e["inputs"][0]["inputFacets"]["inputStatistics"] for e in events]
    assert "rowCount" not in stats[0] and stats[1]["rowCount"] == 10
    assert events[1]["outputs"][0]["name"] == "curated.events"


def test_a_start_that_could_not_be_written_fails_the_run_at_its_end(tmp_path, preload_running):
    (tmp_path / LINEAGE_FILE).mkdir(parents=True)  # the lineage file cannot be written
    run = LineageRun(tmp_path, "shelfwise.ingest", [], background=True).start()
    with pytest.raises(RuntimeError, match="Failed to write"):
        run.complete([])


def test_with_no_preload_running_the_start_is_written_at_once(tmp_path):
    (tmp_path / LINEAGE_FILE).mkdir(parents=True)
    with pytest.raises(RuntimeError, match="Failed to write"):
        LineageRun(tmp_path, "shelfwise.retention", [], background=True).start()
