"""The right of access with a shared Redis (`privacy export --redis-url`): served events not yet
absorbed (accepted and rejected streams) and the online state hold exactly the user's entries."""

from __future__ import annotations

import json

import redis

from shelfwise.governance._online_keys import REDIS_EVENTS, REDIS_REJECTED, online_keys
from tests.cli.test_cli import sw
from tests.governance.test_consent import plant_shop, pseudo


def test_the_access_export_reads_what_redis_holds_about_the_user(tmp_path, redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own: no other test absorbs these
    client = redis.Redis.from_url(url)
    client.flushdb()
    work = tmp_path / "w"
    sw("ingest", "--data", str(plant_shop(tmp_path / "d")), "--workdir", str(work), "--json")
    s1, s10 = pseudo(work, "shopper-1"), pseudo(work, "shopper-10")
    for user in ("shopper-1", "shopper-10", "shopper-1"):
        event = {
            "user_id": user,
            "product_id": "p2",
            "event_type": "click",
            "timestamp": "2024-03-03T10:00:00Z",
        }
        client.xadd(REDIS_EVENTS, {"e": json.dumps(event)})
    client.xadd(REDIS_REJECTED, {"e": json.dumps({"event": {"user_id": "shopper-10"}, "error": "bad"})})
    recent, bought, _ = online_keys(s1)
    client.rpush(recent, "p1", "p2")
    client.hset(bought, "p2", 1)
    client.rpush(online_keys(s10)[0], "p9")

    out = tmp_path / "a.json"
    rep = json.loads(
        sw("privacy", "export", "--workdir", str(work), "--user", "shopper-1", "--out", str(out),
           "--redis-url", url, "--json").stdout
    )  # fmt: skip
    doc = json.loads(out.read_text())
    parts = doc["parts"]
    assert rep["parts"]["redis/events"] == 2 and "redis/rejected" not in parts
    assert all(r["record"]["user_id"] == "shopper-1" for r in parts["redis/events"]["rows"])
    assert parts["redis/online"]["rows"] == [{"recent_items": ["p1", "p2"], "purchases": {"p2": "1"}}]
    assert not any("Redis" in n for n in doc["not_covered"])
    # without the Redis, the document says what it could not see
    sw("privacy", "export", "--workdir", str(work), "--user", "shopper-1", "--out", str(out))
    doc = json.loads(out.read_text())
    assert "redis/events" not in doc["parts"] and any("--redis-url" in n for n in doc["not_covered"])
    client.flushdb()


def test_every_rejected_event_in_redis_reaches_the_quarantine_absorb_after_absorb(tmp_path, redis_url):
    """The rejected stream's events were numbered 1, 2, ... per absorb: the second absorb took
    its events for lines the first had quarantined and dropped them (deleted from the stream,
    stored nowhere). Each is now known by its stream entry id."""
    from shelfwise.governance import Quarantine
    from shelfwise.serving._feedback import absorb

    url = redis_url.rsplit("/", 1)[0] + "/8"
    client = redis.Redis.from_url(url)
    client.flushdb()
    work = tmp_path / "w"
    sw("ingest", "--data", str(plant_shop(tmp_path / "d")), "--workdir", str(work), "--json")

    def reject(n: int) -> None:
        for i in range(n):
            bad = {"event_id": f"bad-{n}-{i}", "user_id": "shopper-2", "event_type": "teleport"}
            failures = [{"reason": "invalid_value", "detail": "event_type 'teleport'"}]
            client.xadd(REDIS_REJECTED, {"e": json.dumps({"event": bad, "failures": failures})})

    reject(2)
    assert absorb(work, client)["quarantined"] == 2
    reject(3)
    assert absorb(work, client)["quarantined"] == 3
    rows = Quarantine(work).list("events", limit=None)
    ids = sorted(r["raw"]["event_id"] for r in rows if r["source_file"].startswith("http:redis:"))
    assert ids == ["bad-2-0", "bad-2-1", "bad-3-0", "bad-3-1", "bad-3-2"]
    assert client.xlen(REDIS_REJECTED) == 0
    client.flushdb()
