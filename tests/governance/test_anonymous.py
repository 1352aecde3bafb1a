"""Anonymous browsing in a generic events file: a row with no user id but a session id is
attributed to a session-scoped anonymous user (pseudonymized `a_…`, never colliding with a
shop's own ids), counted in the load report; a row with neither is still `missing_required`.
Downstream an anonymous session is no customer: no profile, no audience, no erasure request."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.governance import (
    Ingestor,
    Pseudonymizer,
    Quarantine,
    SecretStore,
    anonymous_user_id,
    is_anonymous,
)
from shelfwise.insights._data import shop_ids
from shelfwise.storage import read_only
from tests.cli.test_cli import sw

PRODUCTS = "product_id,title,category\nP1,red kettle,Kitchen\nP2,blue mug,Kitchen\nP3,desk lamp,Home\n"
# line 2..: two customers' rows, anonymous rows of sessions S1 (three, one user written `NA`) and
# S2, a row with neither user nor session, and one naming the reserved prefix as a user id
EVENTS = """user_id,session_id,product_id,event_type,timestamp
u1,,P1,view,2024-03-01T10:00:00Z
u1,s-9,P2,purchase,2024-03-01T10:05:00Z
,S1,P1,view,2024-03-01T11:00:00Z
,S1,P2,click,2024-03-01T11:01:00Z
NA,S1,P3,view,2024-03-01T11:02:00Z
,S2,P3,view,2024-03-02T09:00:00Z
,,P3,view,2024-03-02T09:30:00Z
~anonymous:S2,S2,P1,view,2024-03-02T09:31:00Z
u2,,P3,view,2024-03-02T12:00:00Z
"""


def _shop(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text(PRODUCTS)
    (data / "events.csv").write_text(EVENTS)
    return data, tmp_path / "w"


def test_anonymous_rows_are_attributed_to_their_session(tmp_path: Path):
    data, work = _shop(tmp_path)
    rep = Ingestor(work).run(data).tables["events"]
    assert (rep.rows_in, rep.rows_curated, rep.rows_quarantined) == (9, 7, 2)
    assert rep.anonymous_rows == 4 and rep.balanced
    by_line = {
        r["source_line"]: (r["reason"], r["detail"]) for r in Quarantine(work).list("events", limit=None)
    }
    assert by_line == {
        8: ("missing_required", "user_id: empty (and no session_id)"),
        9: (
            "invalid_value",
            "user_id: the prefix ~anonymous: is reserved for anonymous sessions: ~anonymous:S2",
        ),
    }
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    with read_only(work) as (con, _):
        users = dict(
            con.sql("SELECT user_id, count(*) FROM curated.events GROUP BY 1").fetchall()  # type: ignore[arg-type]
        )
    # the session's rows are one user; its pseudonym says it is anonymous, a customer's does not
    assert users == {
        pseudo("u1"): 2,
        pseudo("u2"): 1,
        pseudo(anonymous_user_id("S1")): 3,
        pseudo(anonymous_user_id("S2")): 1,
    }
    assert pseudo(anonymous_user_id("S1")).startswith("a_") and pseudo("u1").startswith("u_")
    assert [is_anonymous(u) for u in sorted(users)] == [True, True, False, False]
    assert pseudo.many(["u1", anonymous_user_id("S2")]) == [pseudo("u1"), pseudo(anonymous_user_id("S2"))]
    # the shop's own ids the workdir can name: its customers only
    assert shop_ids(work, list(users)) == {pseudo("u1"): "u1", pseudo("u2"): "u2"}


def test_anonymous_sessions_are_no_customers(tmp_path: Path):
    from shelfwise.insights._data import load_curated

    data, work = _shop(tmp_path)
    Ingestor(work).run(data)
    everyone, _, _ = load_curated(work, None)  # demand and other shop-level aggregates
    customers, _, _ = load_curated(work, None, consent="personalization")  # profiles, audiences
    assert everyone["user_id"].map(is_anonymous).sum() == 4
    assert len(customers) == 3 and not customers["user_id"].map(is_anonymous).any()
    assert isinstance(customers, pd.DataFrame)
    from shelfwise.governance._erase import erase_user

    with pytest.raises(ShelfwiseError, match="an anonymous session, not a customer"):
        erase_user(work, anonymous_user_id("S1"))


def test_cli_ingest_reports_the_anonymous_rows(tmp_path: Path):
    data, work = _shop(tmp_path)
    out = sw("ingest", "--data", str(data), "--workdir", str(work)).stdout
    assert "4 anonymous row(s) (no user_id) attributed to their session" in out
    out = json.loads(sw("ingest", "--data", str(data), "--workdir", str(work), "--json").stdout)
    assert out["tables"]["events"]["anonymous_rows"] == 4


def test_a_file_without_sessions_still_needs_its_users(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text(PRODUCTS)
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n,P1,view,2024-03-01T10:00:00Z\nu1,P1,view,2024-03-01T10:00:00Z\n"
    )
    rep = Ingestor(tmp_path / "w").run(data).tables["events"]
    assert rep.reasons == {"missing_required": 1} and rep.anonymous_rows == 0


def test_a_customer_whose_shop_id_begins_like_an_anonymous_pseudonym_is_a_customer(tmp_path: Path):
    """`a_` begins anonymous sessions' pseudonyms, not raw ids: a shop customer `a_2` is profiled,
    named by shop id and erasable; the raw layer's `NA` (an anonymous row) names nobody."""
    from shelfwise.governance import shop_user_ids
    from shelfwise.governance._erase import erase_user
    from shelfwise.insights._data import load_curated

    data, work = _shop(tmp_path)
    # and `nA`: a customer id that is not one of the spellings curation reads as missing
    (data / "events.csv").write_text(
        EVENTS.replace("u2,,P3", "a_2,,P3") + "nA,,P1,view,2024-03-03T10:00:00Z\n"
    )
    Ingestor(work).run(data)
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    assert not is_anonymous(pseudo("a_2"))
    assert shop_user_ids(work) == ["a_2", "nA", "u1"]  # not NA, blanks or the quarantined reserved id
    customers, _, _ = load_curated(work, None, consent="personalization")
    assert set(customers["user_id"]) == {pseudo("u1"), pseudo("a_2"), pseudo("nA")}
    assert shop_ids(work, [pseudo("a_2")]) == {pseudo("a_2"): "a_2"}
    erase_user(work, "a_2")  # not refused as "an anonymous session"
    with read_only(work) as (con, _):
        left = {r[0] for r in con.sql("SELECT DISTINCT user_id FROM curated.events").fetchall()}
    assert pseudo("a_2") not in left and pseudo("u1") in left


# a shopper browses anonymously in S7, then logs in as u9 in the same session; S8 is someone else
LINKED = """user_id,session_id,product_id,event_type,timestamp
,S7,P1,view,2024-03-01T10:00:00Z
,S7,P3,view,2024-03-01T10:01:00Z
,S7,P1,teleport,2024-03-01T10:02:00Z
u9,S7,P2,purchase,2024-03-01T10:05:00Z
,S8,P1,view,2024-03-01T11:00:00Z
u1,s-1,P3,view,2024-03-01T12:00:00Z
"""


def test_erasing_a_customer_erases_the_anonymous_rows_of_their_sessions(tmp_path: Path):
    """The anonymous rows of a session the customer logged in to are theirs (tied by the session
    id): erased with them from curated, raw and quarantine, and withheld from a re-delivery."""
    from shelfwise.governance._erase import erase_user

    data, work = _shop(tmp_path)
    (data / "events.csv").write_text(LINKED)
    Ingestor(work).run(data)
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    s7, s8 = pseudo(anonymous_user_id("S7")), pseudo(anonymous_user_id("S8"))
    assert len(Quarantine(work).list("events", limit=None)) == 1  # S7's `teleport`
    # the right of access shows what an erasure deletes as theirs: S7's anonymous rows too
    from shelfwise.governance._subject_access import subject_access

    doc = subject_access(work, "u9")
    assert doc["linked_anonymous_sessions"] == ["S7"]
    curated = next(v["rows"] for k, v in doc["parts"].items() if k.startswith("curated.events"))
    assert sorted(r["product_id"] for r in curated) == ["P1", "P2", "P3"]  # u9's P2, S7's P1 and P3
    assert len(doc["parts"]["raw.events"]["rows"]) == 4 and s8 not in json.dumps(doc, default=str)
    # S7's quarantined `teleport` too, which the erasure below deletes as theirs
    assert [json.loads(r["raw"])["event_type"] for r in doc["parts"]["quarantine"]["rows"]] == ["teleport"]
    # and the served events and lists of S7 (anonymous, before the login) the erasure deletes
    # as theirs, beside S8's, which are not
    served = [{"event": {"session_id": s, "product_id": "P1", "event_type": "view"}} for s in ("S7", "S8")]
    (work / "spool" / "events").mkdir(parents=True, exist_ok=True)
    (work / "spool" / "events" / "seg-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in served))
    (work / "spool" / "exposures").mkdir(parents=True, exist_ok=True)
    lists = [{"id": f"r{n}", "user": p, "items": ["P1"]} for n, p in enumerate((s7, s8))]
    (work / "spool" / "exposures" / "seg-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lists))
    doc = subject_access(work, "u9")
    assert [r["record"]["event"]["session_id"] for r in doc["parts"]["spool/events"]["rows"]] == ["S7"]
    assert [r["record"]["id"] for r in doc["parts"]["exposures"]["rows"]] == ["r0"]
    rep = erase_user(work, "u9")
    assert rep["files"]["spool/events"] == 1 and rep["files"]["spool/exposures"] == 1
    assert rep["anonymous_sessions"] == 1
    assert rep["warehouse"]["curated.events__v1"] == 3  # u9's row and S7's two
    assert rep["warehouse"]["raw.events"] == 4 and rep["warehouse"]["quarantine.rows"] == 1
    assert Quarantine(work).list("events", limit=None) == []

    def held() -> tuple[dict[str, int], list[tuple[str | None, str | None]]]:
        with read_only(work) as (con, _):
            cur = dict(con.sql("SELECT user_id, count(*) FROM curated.events GROUP BY 1").fetchall())  # type: ignore[arg-type]
            raw = sorted(
                con.sql("SELECT DISTINCT user_id, session_id FROM raw.events").fetchall(),
                key=lambda r: (str(r[0]), str(r[1])),
            )
        return cur, raw

    cur, raw = held()
    assert cur == {s8: 1, pseudo("u1"): 1}  # S7's anonymous rows went with u9, S8's stayed
    assert raw == [(None, "S8"), ("u1", "s-1")]
    # the same file again (a full reload): neither u9 nor S7's anonymous rows come back
    ev = Ingestor(work).run(data).tables["events"]
    assert ev.rows_withheld == 4 and ev.balanced and ev.anonymous_rows == 1
    assert Quarantine(work).list("events", limit=None) == []
    cur, raw = held()
    assert cur == {s8: 1, pseudo("u1"): 1}
    assert s7 not in cur and all(r[1] != "S7" for r in raw)


def test_a_redelivery_counts_only_the_anonymous_rows_it_curates(tmp_path: Path):
    """`anonymous_rows` counts the anonymous rows curated, not those an append recognises as
    re-delivered (quarantined `duplicate_row`)."""
    data, work = _shop(tmp_path)
    rows = ",S1,P1,view,2024-03-01T11:00:00Z\n,S1,P2,click,2024-03-01T11:01:00Z\nu1,,P3,view,2024-03-01T12:00:00Z\n"
    (data / "events.csv").write_text("user_id,session_id,product_id,event_type,timestamp\n" + rows)
    first = Ingestor(work, mode="append").run(data).tables["events"]
    assert (first.rows_in, first.rows_curated, first.anonymous_rows) == (3, 3, 2)
    again = Ingestor(work, mode="append").run(data).tables["events"]
    assert (again.rows_in, again.rows_curated, again.rows_quarantined) == (3, 0, 3)
    assert again.reasons == {"duplicate_row": 3} and again.anonymous_rows == 0 and again.balanced
    # the same rows and one new anonymous row: only the new one is counted
    (data / "events.csv").write_text(
        "user_id,session_id,product_id,event_type,timestamp\n" + rows + ",S2,P3,view,2024-03-02T09:00:00Z\n"
    )
    more = Ingestor(work, mode="append").run(data).tables["events"]
    assert (more.rows_curated, more.rows_quarantined, more.anonymous_rows) == (1, 3, 1)


def test_a_withdrawal_covers_the_customers_anonymous_sessions(tmp_path: Path):
    """u9 browsed anonymously in S7, then logged in there: withdrawing u9's personalization
    consent leaves S7's anonymous rows out of training with u9's; S8 (no link) stays."""
    from shelfwise.features import load_interactions
    from shelfwise.governance import consent_withdrawn
    from shelfwise.governance._consent import record_consent

    data, work = _shop(tmp_path)
    (data / "events.csv").write_text(LINKED)
    Ingestor(work).run(data)
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    u9, u1 = pseudo("u9"), pseudo("u1")
    s7, s8 = pseudo(anonymous_user_id("S7")), pseudo(anonymous_user_id("S8"))
    everyone = [u1, u9, s7, s8]
    assert consent_withdrawn(work, "personalization", among=everyone) == set()
    record_consent(work, u9, {"personalization": False}, source="test")
    assert consent_withdrawn(work, "personalization", among=everyone) == {u9, s7}
    assert consent_withdrawn(work, "marketing", among=everyone) == set()
    # a job whose users hold the session but not the customer (u9 only searched, say)
    assert consent_withdrawn(work, "personalization", among=[u1, s7, s8]) == {s7}
    # what training reads
    inter, _ = load_interactions(
        work, leave_out=lambda users: consent_withdrawn(work, "personalization", among=users)
    )
    assert sorted(map(str, inter.user_ids)) == sorted([u1, s8])
    # consent given back: the session is the customer's again
    record_consent(work, u9, {"personalization": True}, source="test")
    assert consent_withdrawn(work, "personalization", among=everyone) == set()


TILLS = """user_id,product_id,event_type,timestamp,session_id,quantity
,P1,purchase,2024-03-01T09:00:00,till-1,3
,P2,purchase,2024-03-01T10:00:00,till-1,2
,P1,purchase,2024-03-02T09:00:00,till-1,5
,P3,purchase,2024-03-02T11:00:00,till-2,1
u1,P2,purchase,2024-03-01T12:00:00,till-1,1
u2,P3,purchase,2024-03-02T12:00:00,till-2,4
u3,P3,purchase,2024-03-02T12:10:00,till-2,1
,P1,purchase,2024-03-03T09:00:00,till-1,7
,P3,view,2024-03-04T09:00:00,web-9,
,P2,view,2024-03-04T09:10:00,web-9,
u4,P2,purchase,2024-03-04T09:20:00,web-9,1
"""


def test_erasing_a_customer_keeps_the_anonymous_sales_of_a_till_they_bought_at(tmp_path: Path):
    """A session id that is a till or a day (sales without customers) is no visit of one
    shopper: erasing a customer who bought there once takes their own row, not the till's
    anonymous sales (a session spanning days, or one another customer's rows name); a visit
    (anonymous browsing minutes before the login) is still theirs. A reload keeps the till's."""
    from shelfwise.governance._erase import erase_user
    from shelfwise.governance._subject_access import subject_access

    data, work = _shop(tmp_path)
    (data / "events.csv").write_text(TILLS)
    Ingestor(work).run(data)
    assert subject_access(work, "u1")["linked_anonymous_sessions"] == []  # till-1 spans three days
    assert subject_access(work, "u2")["linked_anonymous_sessions"] == []  # till-2: u3's too
    assert subject_access(work, "u4")["linked_anonymous_sessions"] == ["web-9"]
    assert erase_user(work, "u1")["warehouse"]["curated.events__v1"] == 1
    assert erase_user(work, "u2")["warehouse"]["curated.events__v1"] == 1
    assert erase_user(work, "u4")["warehouse"]["curated.events__v1"] == 3
    ev = Ingestor(work).run(data).tables["events"]
    assert ev.rows_withheld == 5 and ev.balanced
    with read_only(work) as (con, _):
        left = con.sql(
            "SELECT session_id, sum(quantity) FROM curated.events GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert left == [("till-1", 17), ("till-2", 2)]  # every anonymous sale, and u3's
    # a visit whose anonymous rows come later (a later delivery, or still spooled): registered
    # at the erasure all the same, so that they are withheld when they come
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,session_id\nu5,P2,purchase,2024-03-05T10:00:00,web-5\n"
    )
    Ingestor(work).run(data)
    assert subject_access(work, "u5")["linked_anonymous_sessions"] == []  # none yet to list
    erase_user(work, "u5")
    late = data.parent / "late"
    late.mkdir()
    (late / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,session_id\n,P1,view,2024-03-05T09:50:00,web-5\n"
    )
    from shelfwise.governance import ingest

    ev = ingest(late, work, append=True).tables["events"]
    assert ev.rows_withheld == 1 and ev.rows_curated == 0


def test_a_converted_copy_is_kept_for_the_load_only_and_an_erasure_removes_a_left_one(tmp_path: Path):
    """A shop's data in another format (MovieLens `u.data` here) is converted into the workdir
    for the load: that copy holds the shop's raw user ids, so it is removed after the load (an
    erasure or retention run would have to find it); one a dead load left is removed by an
    erasure, which counts it."""
    from shelfwise.governance._erase import erase_user
    from shelfwise.lifecycle._ingest_job import ingest_dataset

    data = tmp_path / "ml"
    data.mkdir()
    lines = [
        f"{u}\t{i}\t{(u + i) % 5 + 1}\t{881250949 + 60 * (u * 10 + i)}"
        for u in range(1, 6)
        for i in range(1, 8)
    ]
    (data / "u.data").write_text("\n".join(lines) + "\n")
    work = tmp_path / "w"
    report = ingest_dataset(data, work)
    assert report.tables["events"].rows_curated == 35
    assert any("converted to" in n and "removed after it" in n for n in report.notes)
    assert list((work / "converted").iterdir()) == []  # no copy left
    left = work / "converted" / "movielens"
    left.mkdir(parents=True)
    (left / "events.jsonl").write_text('{"user_id": "3", "product_id": "1"}\n')
    assert erase_user(work, "3")["files"]["converted"] == 1
    assert not left.exists()
    # a running load's copy (its lock held) is its own: an erasure meanwhile leaves it
    from shelfwise.governance._erase import converted_copy

    with converted_copy(work) as mine:
        (mine / "events.jsonl").write_text('{"user_id": "4"}\n')
        assert erase_user(work, "4")["files"]["converted"] == 0 and (mine / "events.jsonl").exists()
    assert not mine.exists()


def test_repeated_till_lines_of_a_date_only_export_are_said_with_what_tells_them_apart(tmp_path: Path):
    """The README's layout for sales without customers (purchase rows, a quantity, a session for
    the till or the day): two identical lines of a date-only export may be two shoppers buying
    one each. They stay one event (nothing in the rows tells a re-send apart), and the report says
    how to keep them apart; a repeat with a time of day (a re-send) is not said so."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(PRODUCTS)
    (d / "events.csv").write_text(
        "user_id,session_id,product_id,event_type,timestamp,quantity\n"
        ",day-2024-03-01,P1,purchase,2024-03-01,1\n"
        ",day-2024-03-01,P1,purchase,2024-03-01,1\n"  # a second shopper, or a re-send
        ",day-2024-03-01,P2,purchase,2024-03-01,2\n"
        ",day-2024-03-01,P2,view,2024-03-01,\n"
        ",day-2024-03-01,P2,view,2024-03-01,\n"  # a view repeated: not a sale
        "c1,,P3,purchase,2024-03-01T10:15:00Z,1\n"
        "c1,,P3,purchase,2024-03-01T10:15:00Z,1\n"  # to the second: a re-send
    )
    report = Ingestor(tmp_path / "w").run(d)
    said = [w for w in report.warnings if "repeat another row exactly" in w]
    assert len(said) == 1 and said[0].startswith("events.csv: 1 purchase row(s)"), report.warnings
    assert "event_id" in said[0] and "quarantine reprocess" in said[0]
    assert report.tables["events"].reasons == {"duplicate_row": 3}  # (kept once: counted, not lost)
    # a till export of one row a unit (no quantity column): its repeats are units too
    (d / "events.csv").write_text(
        "user_id,session_id,product_id,event_type,timestamp\n"
        ",day-2024-03-02,P1,purchase,2024-03-02\n,day-2024-03-02,P1,purchase,2024-03-02\n"
    )
    units = Ingestor(tmp_path / "w2").run(d)
    said = [w for w in units.warnings if "repeat another row exactly" in w]
    assert said[0].startswith("events.csv: 1 purchase row(s)"), units.warnings
    # (no quantity column was read: the rows are not said to share one)
    assert "(same shopper or session/order, product and time; no quantity or value column was read" in said[0]


def test_one_product_on_two_identical_lines_of_an_order_is_said(tmp_path: Path):
    """An order-lines export stamps each line with its order's time: an order listing one
    product on two identical lines repeats to the second like a re-send. It stays one event
    (counted duplicate_row, in the quarantine), and the load says so with how to keep both; a
    repeat without an order (to the second, a re-send) is not said."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(PRODUCTS)
    (d / "orders.csv").write_text(
        "user_id,order_id,product_id,timestamp,quantity\n"
        "c1,#1001,P1,2024-03-01T10:15:00Z,1\n"
        "c1,#1001,P1,2024-03-01T10:15:00Z,1\n"  # the same product on a second line
        "c1,#1001,P2,2024-03-01T10:15:00Z,2\n"
        "c2,#1002,P1,2024-03-02T09:00:00Z,1\n"
    )
    report = Ingestor(tmp_path / "w").run(d)
    said = [w for w in report.warnings if "repeat another row exactly" in w]
    assert len(said) == 1 and said[0].startswith("orders.csv: 1 purchase row(s)"), report.warnings
    assert "order listing one product on two lines" in said[0]
    assert report.tables["events"].reasons == {"duplicate_row": 1}
    (d / "orders.csv").write_text(
        "user_id,product_id,timestamp,quantity\nc1,P1,2024-03-01T10:15:00Z,1\nc1,P1,2024-03-01T10:15:00Z,1\n"
    )
    again = Ingestor(tmp_path / "w2").run(d)
    assert not [w for w in again.warnings if "repeat another row exactly" in w], again.warnings
