"""The Python API's (and the CLI's) batch answers know the served events the bundle did not
learn from, as a server does: a product a shopper just bought through the served site is not
offered to them again by `recommend`."""

from __future__ import annotations

import json
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path

from shelfwise import Shop
from shelfwise.serving._feedback import EVENTS_DIR
from tests.serving.conftest import known_users


def test_a_batch_recommendation_knows_what_was_bought_since_the_bundle(
    served_workdir, tmp_path: Path
) -> None:
    data, src = served_workdir
    work = tmp_path / "w"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("serve-*.log"))
    user = known_users(data, work, 1)[0]
    first = Shop(work).recommend(user, 5)["items"][0]
    first = first["product_id"] if isinstance(first, dict) else first
    # a purchase the server accepted and spooled (not yet absorbed), from a writer that is gone
    spool = work / EVENTS_DIR
    spool.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {"user_id": user, "product_id": first, "event_type": "purchase", "timestamp": now}
    (spool / f"1-{socket.gethostname()}-999999.jsonl.open").write_text(
        json.dumps({"event": event, "received_at": 1}) + "\n"
    )
    again = Shop(work).recommend(user, 5)["items"]
    again = [it["product_id"] if isinstance(it, dict) else it for it in again]
    assert first not in again, (first, again)  # the default repurchase rule: never again
