"""A drain's absorb that met this process's own connection to the warehouse, not yet closed
("Can't open a connection to same database file with a different configuration than existing
connections") gave up at once and left the acknowledged events in the spool (a CI run of
tests/serving/test_event_delivery.py): it is a wait, tried again within the drain's seconds."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

import shelfwise.serving._feedback as feedback
from shelfwise.serving._spool import FileSpool


def test_a_connection_of_this_process_still_open_is_waited_for(tmp_path: Path, monkeypatch) -> None:
    spool = FileSpool(tmp_path / feedback.EVENTS_DIR, fsync=False)
    event = {"user_id": "u1", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00"}
    spool.append(
        [json.dumps({"event": event, "received_at": "2024-03-01T10:00:01Z"}).encode() + b"\n"]
    ).result(10)
    spool.close()
    tries: list[int] = []

    class Report:
        run_id = "r1"
        tables: dict = {}

    def ingest_events(workdir, staged, archive):
        tries.append(1)
        if len(tries) < 3:
            raise duckdb.ConnectionException(
                "Connection Error: Can't open a connection to same database file with a different "
                "configuration than existing connections"
            )
        return Report()

    monkeypatch.setattr(feedback, "ingest_events", ingest_events)
    got = feedback.absorb(tmp_path, None, wait_s=10.0)
    assert got["status"] == "ok" and got["accepted"] == 1 and len(tries) == 3, got
    assert not feedback.ready_segments(tmp_path / feedback.EVENTS_DIR)  # absorbed, not left
