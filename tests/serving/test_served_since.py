"""`served_since`: the served events a bundle did not learn from, each once, in arrival order:
archives stamped after the bundle's mark, then the spool; a segment met in both (absorbed while
it was read) or archived twice (absorbed again after a crash) counts once; archives before the
mark do not count; an event with the client's id is known by it."""

from __future__ import annotations

import json
from pathlib import Path

from shelfwise.serving._feedback import EVENTS_DIR, FEEDBACK_DIR, absorb_mark, served_since


def _event(user: str, product: str, **kw: object) -> dict[str, object]:
    return {
        "user_id": user,
        "product_id": product,
        "event_type": "view",
        "timestamp": "2026-12-01T10:00:00Z",
        **kw,
    }


def test_each_event_the_bundle_did_not_learn_counts_once(tmp_path: Path):
    spool, archive = tmp_path / EVENTS_DIR, tmp_path / FEEDBACK_DIR
    spool.mkdir(parents=True)
    archive.mkdir(parents=True)
    stem = "20261201T100000000000Z-host-123"
    spooled = [_event("u1", "p1"), _event("u2", "p2", event_id="client-7")]
    (spool / f"{stem}.jsonl").write_text(
        "".join(json.dumps({"event": e, "received_at": 1}) + "\n" for e in spooled)
    )
    # the same segment as its absorb archived it (ids given where the client sent none), twice
    canonical = [{**spooled[0], "event_id": f"spool:{stem}:1"}, spooled[1]]
    for stamp in ("20261201T110000000000Z", "20261201T120000000000Z"):
        (archive / f"events-{stamp}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in canonical))
    # absorbed before the bundle's mark: learned
    (archive / "events-20261201T090000000000Z.jsonl").write_text(
        json.dumps(_event("old", "p9", event_id="x")) + "\n"
    )
    # a line cut short by a crash is no event
    (spool / "20261201T130000000000Z-host-456.jsonl.open").write_text(
        json.dumps({"event": _event("u3", "p3"), "received_at": 2}) + "\n" + '{"event": {"user_id": "u4"'
    )

    got = served_since(tmp_path, "20261201T100000000000Z")
    assert [(e["user_id"], e["event_id"]) for e in got] == [
        ("u1", f"spool:{stem}:1"),
        ("u2", "client-7"),
        ("u3", "spool:20261201T130000000000Z-host-456:1"),
    ]
    # after a later mark the archives were learned; the spool is never in a bundle
    assert served_since(tmp_path, "20261201T130000000000Z") == got
    assert absorb_mark(tmp_path) > "20261201T130000000000Z"  # now, while no absorb runs
