"""The serving view of consent, in-process and in Redis: it follows the register file (appended
lines, a rewrite by erasure), the shop's defaults, and what a PUT on another replica wrote."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

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


LINKED = """user_id,session_id,product_id,event_type,timestamp
,S7,P1,view,2024-03-01T10:00:00Z
u9,S7,P2,purchase,2024-03-01T10:05:00Z
,S8,P1,view,2024-03-01T11:00:00Z
u1,s-1,P3,view,2024-03-01T12:00:00Z
,S9,P3,view,2024-03-01T12:30:00Z
"""


def linked_shop(tmp_path: Path) -> tuple[Path, Callable[[str], str]]:
    """A workdir with LINKED ingested, and its pseudonymizer."""
    from shelfwise.governance import Ingestor, Pseudonymizer, SecretStore

    data, work = tmp_path / "d", tmp_path / "w"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,category\nP1,mug,K\nP2,pot,K\nP3,lamp,H\n")
    (data / "events.csv").write_text(LINKED)
    Ingestor(work).run(data)
    return work, Pseudonymizer(SecretStore(work).pseudonym_key())


def _spool(work, *events: dict) -> None:
    """Events as a server acknowledged them: a line each in an open segment of the spool."""
    from shelfwise.serving._feedback import EVENTS_DIR

    seg = work / EVENTS_DIR / f"{uuid.uuid4().int % 10**18}-host-1.jsonl"  # a closed segment
    seg.parent.mkdir(parents=True, exist_ok=True)
    with open(seg, "a") as fh:
        for ev in events:
            fh.write(json.dumps({"event": ev, "received_at": "2024-03-02T00:00:00+00:00"}) + "\n")


def test_an_anonymous_session_follows_the_consent_of_the_customers_it_is_linked_to(tmp_path, client):
    """S7's anonymous rows share their session with u9 (curated); S8 is linked to u1 only by an
    event still in the spool (u1 logged in there since the last absorb); S9's rows are curated
    and u1's event naming S9 is in the spool; S10 exists only in the spool. A withdrawal by the
    customer is the withdrawal of their anonymous sessions, from the next look on."""
    from shelfwise.governance import anonymous_user_id

    work, pseudo = linked_shop(tmp_path)
    u9, u1, u2 = pseudo("u9"), pseudo("u1"), pseudo("u2")
    s7, s8, s9, s10 = (pseudo(anonymous_user_id(s)) for s in ("S7", "S8", "S9", "S10"))
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    view = ConsentView(work, client, prefix=prefix, follow_interval_s=0)
    assert all(view.personalizes(p) for p in (s7, s8, s9, s10))

    record_consent(work, u9, {"personalization": False}, source="api")
    assert not view.personalizes(s7) and view.personalizes(s8) and view.personalizes(s9)

    # the spool: u1 logged in to S8 and S9 (a space around the id as the warehouse trims it);
    # S10 browsed anonymously, then u2 logged in there
    _spool(
        work,
        {"user_id": "u1", "session_id": " S8", "product_id": "P2", "event_type": "view", "timestamp": "2024-03-02T10:00:00Z"},
        {"user_id": "u1", "session_id": "S9", "product_id": "P2", "event_type": "view", "timestamp": "2024-03-02T10:01:00Z"},
        {"user_id": "", "session_id": "S10", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-02T10:02:00Z"},
        {"session_id": "S10", "product_id": "P3", "event_type": "view", "timestamp": "2024-03-02T10:03:00Z"},
        {"user_id": "u2", "session_id": "S10", "product_id": "P3", "event_type": "click", "timestamp": "2024-03-02T10:04:00Z"},
    )  # fmt: skip
    assert view.personalizes(s8) and view.personalizes(s9) and view.personalizes(s10)  # u1, u2 consent
    record_consent(work, u1, {"personalization": False}, source="api")
    assert not view.personalizes(s8) and not view.personalizes(s9) and view.personalizes(s10)
    view.set(u2, {"personalization": False})  # a PUT answered by this replica
    assert not view.personalizes(s10)
    # consent given back: the sessions are personalized again at once
    for user in (u1, u9, u2):
        record_consent(work, user, {"personalization": True}, source="api")
    assert all(view.personalizes(p) for p in (s7, s8, s9, s10))
    # the spool absorbed (its segments gone): the links are the warehouse's then
    from shelfwise.serving._feedback import absorb

    assert absorb(work)["curated"] == 5 and not list((work / "spool" / "events").iterdir())
    assert all(view.personalizes(p) for p in (s7, s8, s9, s10))
    record_consent(work, u1, {"personalization": False}, source="api")
    record_consent(work, u2, {"personalization": False}, source="api")
    assert not view.personalizes(s8) and not view.personalizes(s9) and not view.personalizes(s10)
    assert view.personalizes(s7)  # S7 is u9's alone, who consents again


def test_with_redis_the_link_is_read_from_the_events_stream(tmp_path, redis_url):
    """`serve --redis-url` spools accepted events to a Redis stream: a login there links too."""
    import redis

    from shelfwise.governance import anonymous_user_id
    from shelfwise.serving._feedback import REDIS_EVENTS

    client = redis.Redis.from_url(redis_url)
    work, pseudo = linked_shop(tmp_path)
    u1, s8 = pseudo("u1"), pseudo(anonymous_user_id("S8"))
    view = ConsentView(work, client, prefix=f"test:{uuid.uuid4().hex[:8]}:", follow_interval_s=0)
    ev = {"user_id": "u1", "session_id": "S8", "product_id": "P2", "event_type": "view"}
    line = json.dumps({"event": {**ev, "timestamp": "2024-03-02T10:00:00Z"}, "received_at": "x"})
    entry = client.xadd(REDIS_EVENTS, {"e": line})
    try:
        assert view.personalizes(s8)
        record_consent(work, u1, {"personalization": False}, source="api")
        assert not view.personalizes(s8)
    finally:
        client.xdel(REDIS_EVENTS, entry)


def test_while_the_warehouse_cannot_be_read_a_new_withdrawal_fails_closed(tmp_path):
    """u9 withdraws while something writes the warehouse (an absorb, an ingest: a read-only
    connection cannot be opened then): u9's session S7 must not be personalized meanwhile, and
    neither may any other anonymous session, whose links to u9 are unknown too. Once the
    warehouse can be read, the answers are the links' again."""
    import duckdb

    from shelfwise.governance import anonymous_user_id

    work, pseudo = linked_shop(tmp_path)
    u9, s7, s8 = pseudo("u9"), pseudo(anonymous_user_id("S7")), pseudo(anonymous_user_id("S8"))
    view = ConsentView(work, follow_interval_s=0)
    assert view.personalizes(s7) and view.personalizes(s8)

    writer = duckdb.connect(str(work / "warehouse.duckdb"))  # the warehouse being written
    try:
        record_consent(work, u9, {"personalization": False}, source="api")
        assert not view.personalizes(s7) and not view.personalizes(s8)  # unknown: closed
        assert view.personalizes(pseudo("u1"))  # a customer's own consent needs no link
        assert not view.personalizes(s7) and not view.personalizes(s8)  # tried again: still closed
    finally:
        writer.close()
    assert not view.personalizes(s7) and view.personalizes(s8)  # read: S7 is u9's, S8 nobody's


def test_a_session_look_that_failed_is_asked_again_until_it_succeeds(tmp_path):
    """u9 (no consent) logs in to S8, whose anonymous rows are curated, while the warehouse is
    being written: the look at S8's members fails, so S8 is not personalized; asked again with
    nothing new in the spool or the warehouse, the failed look must be retried (not forgotten),
    and once it succeeds S8 is u9's session and stays unpersonalized."""
    import duckdb

    from shelfwise.governance import anonymous_user_id

    work, pseudo = linked_shop(tmp_path)
    u9, s8 = pseudo("u9"), pseudo(anonymous_user_id("S8"))
    view = ConsentView(work, follow_interval_s=0)
    record_consent(work, u9, {"personalization": False}, source="api")
    assert view.personalizes(s8)  # S8's curated rows are nobody's
    writer = duckdb.connect(str(work / "warehouse.duckdb"))
    try:
        _spool(work, {"user_id": "u9", "session_id": "S8", "product_id": "P2", "event_type": "view",
                      "timestamp": "2024-03-02T10:00:00Z"})  # fmt: skip
        assert not view.personalizes(s8)  # the look failed: closed
        assert not view.personalizes(s8)  # nothing new: the failed look is retried, still closed
    finally:
        writer.close()
    assert not view.personalizes(s8) and not view.personalizes(s8)
    assert not ConsentView(work, follow_interval_s=0).personalizes(s8)  # what a fresh view says


def test_the_event_loop_is_never_made_to_wait_for_a_look(tmp_path, monkeypatch):
    """The server answers cached lists on its event loop with `wait=False`: no file is read and no
    lock waited for there. When the answer needs a look (a withdrawal just recorded on this
    replica, the register changed, another thread looking) it says so (`LookDue`) and the
    request's worker thread asks again with `wait=True`; between looks the loop answers from what
    is known, the same answers."""
    import shelfwise.governance._consent as gc
    from shelfwise.governance import anonymous_user_id
    from shelfwise.serving._consent import LookDue

    work, pseudo = linked_shop(tmp_path)
    u9, s7, s8 = pseudo("u9"), pseudo(anonymous_user_id("S7")), pseudo(anonymous_user_id("S8"))
    looks = []
    real = gc.session_members
    monkeypatch.setattr(gc, "session_members", lambda *a, **kw: looks.append(1) or real(*a, **kw))
    view = ConsentView(work, follow_interval_s=3600)  # only a new need triggers a look
    assert view.personalizes(s7, wait=False) and view.personalizes(s8, wait=False)  # no link matters

    view.set(u9, {"personalization": False})  # a PUT answered by this replica: S7's link matters now
    with pytest.raises(LookDue):
        view.personalizes(s7, wait=False)
    assert looks == []  # the loop did not look
    assert not view.personalizes(s7) and looks == [1]  # the worker thread did
    assert not view.personalizes(s7, wait=False) and view.personalizes(s8, wait=False)  # from memory
    assert looks == [1]

    with view.links._lock, pytest.raises(LookDue):  # another thread looking: the loop does not wait
        view.personalizes(s8, wait=False)
    assert view.personalizes(s8, wait=False) and view.personalizes(u9, wait=False) is False

    fresh = ConsentView(work, follow_interval_s=0)  # the register changed since it last read
    record_consent(work, u9, {"personalization": True}, source="api")
    with pytest.raises(LookDue):
        fresh.personalizes(pseudo("u1"), wait=False)
    assert fresh.personalizes(pseudo("u1")) and fresh.personalizes(s7)


def test_the_links_follow_a_spool_segment_rewritten_in_place(tmp_path):
    """An erasure rewrites a running server's open segment in place (a line removed, the file
    shorter), then the server appends to it again: the links read it again whole (the erased
    user's link gone) and read the lines appended after the rewrite, none missed or cut."""
    from shelfwise.serving._feedback import EVENTS_DIR
    from shelfwise.serving._session_links import SessionLinks
    from shelfwise.serving._spool import FileSpool
    from shelfwise.storage._segments import rewrite_segments

    work = tmp_path / "w"

    def line(user: str, session: str) -> bytes:
        ev = {"user_id": user, "session_id": session, "product_id": "P1", "event_type": "view",
              "timestamp": "2024-03-02T10:00:00Z"}  # fmt: skip
        return json.dumps({"event": ev, "received_at": "2024-03-02T10:00:00+00:00"}).encode()

    def spooled(links: SessionLinks) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for source in links._sources():
            for s, members in source.items():
                out.setdefault(s, set()).update(members)
        return out

    spool = FileSpool(work / EVENTS_DIR, rotate_seconds=3600, fsync=False)
    try:
        links = SessionLinks(work)
        links._pseudonymize = lambda raw: "p_" + raw
        spool.append([line("u_erased", "S1"), line("u_a", "S2"), line("u_a", "S3")]).result(10)
        assert links._read_spool()
        assert spooled(links) == {"S1": {"p_u_erased"}, "S2": {"p_u_a"}, "S3": {"p_u_a"}}
        assert rewrite_segments(work / EVENTS_DIR, lambda r: r["event"]["user_id"] == "u_erased") == 1
        spool.append([line("u_b", "S4")]).result(10)  # where the file ended before the rewrite
        assert links._read_spool()
        assert spooled(links) == {"S2": {"p_u_a"}, "S3": {"p_u_a"}, "S4": {"p_u_b"}}
        spool.append([line("u_b", "S5")]).result(10)  # appended only: read from where it was
        assert links._read_spool()
        assert spooled(links) == {"S2": {"p_u_a"}, "S3": {"p_u_a"}, "S4": {"p_u_b"}, "S5": {"p_u_b"}}
        assert not links._read_spool()
    finally:
        spool.close()
