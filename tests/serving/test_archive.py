"""The served-events archive (`feedback/`): what an absorb keeps of the events it takes."""

from __future__ import annotations

import json

from tests.cli.test_cli import sw
from tests.governance.test_consent import plant_shop


def _shop_with_a_spooled_event(tmp_path, event: dict):
    """The planted shop ingested, and `event` posted (a closed spool segment): its workdir."""
    work = tmp_path / "w"
    sw("ingest", "--data", str(plant_shop(tmp_path / "d")), "--workdir", str(work), "--json")
    spool = work / "spool" / "events"
    spool.mkdir(parents=True, exist_ok=True)
    (spool / "20240303T100000000000Z-host-1.jsonl").write_text(json.dumps({"event": event}) + "\n")
    return work


def test_the_served_events_archive_keeps_free_text_masked(tmp_path):
    """The archive (`feedback/`) is kept and replayed into every full load: an e-mail and a
    phone number a shopper typed into a search were kept there as typed (curated masks them)."""
    from shelfwise.serving._feedback import absorb

    event = {
        "user_id": "shopper-2",
        "event_type": "search",
        "query": "jane.roe@example.com red mug +14155550199",
        "timestamp": "2024-03-03T10:00:00Z",
    }
    work = _shop_with_a_spooled_event(tmp_path, event)
    assert absorb(work)["accepted"] == 1
    archived = "".join(p.read_text() for p in (work / "feedback").glob("events-*.jsonl"))
    assert (
        "[email] red mug [phone]" in archived and "jane.roe" not in archived and "4155550199" not in archived
    )


def test_archives_of_before_are_masked_once(tmp_path):
    """Archives written before absorbs masked free text keep it as typed: the first absorb of
    this version masks them once (a file renamed over each) and marks the folder."""
    from shelfwise.serving._feedback import MASKED_MARK, absorb

    event = {
        "user_id": "shopper-2",
        "product_id": "p1",
        "event_type": "view",
        "timestamp": "2024-03-03T10:00:00Z",
    }
    work = _shop_with_a_spooled_event(tmp_path, event)
    feedback = work / "feedback"
    feedback.mkdir()
    old = {
        "user_id": "shopper-2",
        "event_type": "search",
        "query": "call me +14155550199 about mugs",
        "timestamp": "2024-03-02T10:00:00Z",
        "event_id": "spool:x:1",
    }
    (feedback / "events-20240302T100000000000Z.jsonl").write_text(json.dumps(old) + "\n")
    absorb(work)
    text = (feedback / "events-20240302T100000000000Z.jsonl").read_text()
    assert "call me [phone] about mugs" in text and "4155550199" not in text
    assert (feedback / MASKED_MARK).exists()
