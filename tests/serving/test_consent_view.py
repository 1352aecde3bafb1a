"""The serving view of consent, in-process and in Redis: it follows the register file (appended
lines, a rewrite by erasure), the shop's defaults, and what a PUT on another replica wrote."""

from __future__ import annotations

import json
import uuid

import pytest

from shelfwise.governance._consent import erase_consent, record_consent
from shelfwise.serving._consent import ConsentView


@pytest.fixture(params=["memory", "redis"])
def client(request):
    if request.param == "memory":
        return None
    import redis

    return redis.Redis.from_url(request.getfixturevalue("redis_url"))


def test_the_view_follows_the_register_the_defaults_and_other_replicas(tmp_path, client):
    work = tmp_path / "w"
    prefix = f"test:{uuid.uuid4().hex[:8]}:"  # a Redis of its own for this test's hashes
    view = ConsentView(work, client, prefix=prefix, follow_interval_s=0)
    other = ConsentView(work, client, prefix=prefix, follow_interval_s=0)
    assert view.personalizes("u_a") and view.current("u_a") == {"personalization": True, "marketing": True}

    record_consent(work, "u_a", {"personalization": False}, source="cli")  # the file only
    assert not view.personalizes("u_a") and not other.personalizes("u_a")
    record_consent(work, "u_b", {"marketing": False}, source="cli")
    record_consent(work, "u_a", {"personalization": True}, source="cli")
    assert view.personalizes("u_a") and view.current("u_b") == {"personalization": True, "marketing": False}

    # a PUT answered by another replica: recorded, then written to its view (and Redis)
    record_consent(work, "u_c", {"personalization": False}, source="api")
    other.set("u_c", {"personalization": False})
    assert not view.personalizes("u_c")

    # erasure rewrites the register with a tombstone: the user is unknown again everywhere
    assert erase_consent(work, "u_c") == 1
    assert view.personalizes("u_c") and other.personalizes("u_c")
    if client is not None:
        assert client.hget(prefix + "personalization", "u_c") is None
        assert client.hget(prefix + "marketing", "u_b") == b"0"

    # the shop's settings: opt-in consent, and no personalized serving at all
    (work / "config").mkdir()
    (work / "config" / "privacy.json").write_text(json.dumps({"default_consent": {"personalization": False}}))
    assert not view.personalizes("u_new") and view.personalizes("u_a")  # u_a said yes
    (work / "config" / "privacy.json").write_text(json.dumps({"personalized_serving": False}))
    assert not view.personalizes("u_a") and view.allows("u_a")
