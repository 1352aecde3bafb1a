"""Search analytics from the shop's logs: known answers on a small planted log."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise import Shop
from shelfwise.search._analytics import logged_searches

# Two users share session id "1" (this shop numbers each user's sessions 1, 2, ...): u1 buys
# 10 min after searching "lamp", u2 does nothing. Of three "rug" searches one is followed by a
# purchase within 30 min (u5), one by a click at 5 min and a purchase at 31 min (u3: clicked, not
# converted) and one by a purchase in another session of the same user (u4: neither).
EVENTS = """user_id,product_id,event_type,timestamp,session_id,query
u1,,search,2026-01-01T10:00:00Z,1,lamp
u2,,search,2026-01-01T10:00:00Z,1,lamp
u1,p1,purchase,2026-01-01T10:10:00Z,1,
u3,,search,2026-01-01T10:00:00Z,3,rug
u3,p1,click,2026-01-01T10:05:00Z,3,
u3,p1,purchase,2026-01-01T10:31:00Z,3,
u4,,search,2026-01-01T10:00:00Z,7,rug
u4,p1,purchase,2026-01-01T10:05:00Z,8,
u5,,search,2026-01-01T10:00:00Z,2,rug
u5,p1,purchase,2026-01-01T10:20:00Z,2,
"""


def test_conversion_per_query_credits_a_purchase_to_its_own_user_s_search(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text(EVENTS)
    report = Shop(tmp_path / "w").ingest(data)
    assert report.tables["events"].rows_curated == 10
    logged, _ = logged_searches(tmp_path / "w")
    assert logged["searches"] == 5 and logged["distinct_queries"] == 2
    assert [{k: v for k, v in d.items() if not k.endswith("_ci95")} for d in logged["top_queries"]] == [
        # on session id alone u1's purchase would be credited to u2's search too (1.0 and 1.0)
        {
            "query": "rug",
            "typed_query": "rug",
            "searches": 3,
            "users": 3,
            "session_ctr": 0.6667,
            "session_conversion": 0.3333,
            "searches_with_session": 3,
            "session_click_through": 0.3333,
            "session_add_to_cart_rate": 0.0,
            "session_engaged": 0.6667,
        },
        {
            "query": "lamp",
            "typed_query": "lamp",
            "searches": 2,
            "users": 2,
            "session_ctr": 0.5,
            "session_conversion": 0.5,
            "searches_with_session": 2,
            "session_click_through": 0.0,
            "session_add_to_cart_rate": 0.0,
            "session_engaged": 0.5,
        },
    ]


def test_logged_click_labels_come_from_the_searching_shopper_only(tmp_path: Path) -> None:
    """The ranker's labels from logged searches (learning to rank): u1's purchase labels u1's
    "lamp" search, not u2's in a session of the same number; a purchase after 30 minutes or in
    another session labels nothing (u3's click at 5 min does)."""
    from shelfwise.search._clicks import load_click_groups

    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text(EVENTS)
    Shop(tmp_path / "w").ingest(data)
    groups = sorted((g.query, sorted(g.labels.items())) for g in load_click_groups(tmp_path / "w").values())
    assert groups == [
        ("lamp", [("p1", 3.0)]),  # one group: u2's search got nothing (session id alone: two)
        ("rug", [("p1", 1.0)]),  # u3's click; the purchase at 31 min is past the window
        ("rug", [("p1", 3.0)]),  # u5's purchase within 30 min; u4's other session: no group
    ]


def test_a_page_past_the_end_is_no_zero_result_search() -> None:
    """Paging beyond the last result serves an empty page: the query had results, so it is not
    a zero-result query (the console listed "red", 60 results, as one)."""
    from shelfwise.search._analytics import add_served_search, served_search_summary

    per_query: dict = {}
    for rec in (
        {"query": "red", "items": ["P1"], "offset": 0, "id": "s1"},
        {"query": "red", "items": [], "offset": 990, "id": "s2"},
        {"query": "zzz", "items": [], "offset": 0, "id": "s3"},
        {"query": "old", "items": []},  # a page logged before offsets were: empty at the start
    ):
        add_served_search(per_query, rec)
    summary = served_search_summary(per_query, set())
    assert [d["query"] for d in summary["zero_result_queries"]] == ["old", "zzz"]
    assert summary["zero_result_pages"] == 2


def test_a_fallback_page_for_a_query_that_matched_nothing_is_a_no_result_search() -> None:
    """`zzzxqj nothing` matched nothing and was shown the popular products (`fallback`): the
    console listed no no-result query because the page had items."""
    from shelfwise.search._analytics import add_served_search, served_search_summary

    per_query: dict = {}
    for rec in (
        {
            "query": "zzzxqj nothing",
            "items": ["P1", "P2"],
            "offset": 0,
            "match": "none",
            "fallback": "popular",
        },
        {"query": "lamp", "items": ["P3"], "offset": 0, "match": "keyword", "fallback": None},
        {"query": "lampe", "items": ["P3"], "offset": 0, "match": "semantic_only", "fallback": None},
        # empty pages that say nothing of the words: past the last result, emptied by filters
        {"query": "lamp", "items": [], "offset": 500, "match": "keyword", "fallback": None},
        {"query": "lamp", "items": [], "offset": 0, "filtered": True, "words_found": True, "match": "none",
         "fallback": None},
        # a filtered query whose words find nothing anywhere (a storefront always sending in_stock)
        {"query": "xyzzy", "items": ["P1"], "offset": 0, "filtered": True, "words_found": False, "match": "none",
         "fallback": "popular"},
    ):  # fmt: skip
        add_served_search(per_query, rec)
    summary = served_search_summary(per_query, set())
    assert summary["zero_result_queries"] == [
        {"query": "xyzzy", "typed_query": "xyzzy", "zero_result_pages": 1},
        {"query": "zzzxqj nothing", "typed_query": "zzzxqj nothing", "zero_result_pages": 1},
    ]


def test_a_served_page_is_clicked_only_by_its_shoppers_later_click_cart_or_purchase() -> None:
    """Every page an event named counted as clicked: the shop's own `search` event naming its
    page, another shopper's click, a click dated days before the page was served. The rule is
    the console's traffic one (`not_counted`): a click, cart or purchase of the page's shopper
    (a page served to nobody in particular: anyone's), dated at most a day before it."""
    from shelfwise.search._analytics import add_served_search, served_search_summary

    at = 1_800_000_000.0
    per_query: dict = {}
    for i in range(6):
        rec = {
            "query": "lamp",
            "items": ["P1"],
            "offset": 0,
            "id": f"s{i}",
            "user": "u_a" if i < 5 else "",
            "at": at,
        }
        add_served_search(per_query, rec)
    attributed = [
        ("s0", "u_a", at + 60),  # its shopper's click, after: counted
        ("s2", "u_b", at + 60),  # another shopper's: not
        ("s3", "u_a", at - 3 * 86_400),  # three days before the page: not
        ("s4", "u_a", at - 3_600),  # an hour before (clocks disagree): counted
        ("s5", "u_z", at + 5),  # a page served to nobody in particular: anyone's
    ]
    summary = served_search_summary(per_query, attributed)
    (got,) = summary["top_queries"]
    assert (got["query"], got["pages"], got["attributed_ctr"]) == ("lamp", 6, round(3 / 6, 4))


def test_an_anonymous_event_counts_only_for_its_own_shoppers_list(tmp_path) -> None:
    """Any event from an anonymous session counted for any list (and any event for an anonymous
    session's list): a stranger's click raised a variant's CTR. The warehouse says who else an
    event's shopper is (`linked_shoppers_sql`): a customer's event is also its session's
    anonymous shopper, an anonymous event is also the customers whose events carry its session."""
    from shelfwise.governance import Ingestor, Pseudonymizer
    from shelfwise.governance._privacy import anonymous_user_id
    from shelfwise.search._analytics import attributed_events, not_counted
    from shelfwise.storage import read_only

    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Lamp\n")
    (d / "events.csv").write_text(
        "user_id,session_id,product_id,event_type,timestamp,recommendation_id\n"
        ",S1,P1,view,2024-01-01T10:00:00,\n"  # anonymous browsing in S1 ...
        "C1,S1,P1,purchase,2024-01-01T10:05:00,r_anon\n"  # ... then C1 logs in and buys from S1's list
        "C2,S2,P1,purchase,2024-01-01T10:06:00,r_anon\n"  # another customer, another session
        ",S3,P1,click,2024-01-01T10:07:00,r_c1\n"  # a stranger's session clicks C1's list
        ",S1,P1,click,2024-01-01T10:08:00,r_c1\n"  # C1's own session (logged out) clicks it
    )
    work = tmp_path / "w"
    Ingestor(work).run(d)
    p = Pseudonymizer.of(work)
    c1, s1 = p("C1"), p(anonymous_user_id("S1"))
    with read_only(work) as (con, _):
        rows = attributed_events(con, "recommendation_id", work)
        # (the console's traffic asks for the event type too: click-through counts clicks only)
        typed = {(r[0], r[1], r[5]) for r in attributed_events(con, "recommendation_id", work, kinds=True)}
    assert (("r_anon", c1, "purchase") in typed) and (("r_c1", s1, "click") in typed), typed
    lists = {"r_anon": s1, "r_c1": c1}
    counted = sorted(
        (lid, user) for lid, user, _, ts, also in rows if not_counted(lists[lid], 0.0, user, ts, also) is None
    )
    assert counted == [("r_anon", c1), ("r_c1", s1)], rows


def test_a_query_is_counted_normalized_and_shown_as_shoppers_typed_it() -> None:
    """Served pages were listed by their normalized key ("1/2 hp" as "1 2 hp", "Green Tent" as
    "green tent"): counted under the key, a query is shown in its most frequent form as typed
    (outer spaces aside), the first in code-point order between equally frequent forms."""
    from shelfwise.search._analytics import add_served_search, served_search_summary

    per_query: dict = {}
    typed = ["1/2 hp", "1/2 hp ", "1/2 HP", "1-2 hp", "lamp", "Lamp", "zzz qq"]
    for i, q in enumerate(typed):
        add_served_search(per_query, {"query": q, "items": [] if q == "zzz qq" else ["P1"], "offset": 0,
                                      "id": f"s{i}"})  # fmt: skip
    summary = served_search_summary(per_query, set())
    assert [(d["typed_query"], d["pages"]) for d in summary["top_queries"]] == [
        ("1/2 hp", 4),
        ("Lamp", 2),
        ("zzz qq", 1),
    ]
    # `query` stays the key it is counted under (a report read across runs joins on it)
    assert [d["query"] for d in summary["top_queries"]] == ["1 2 hp", "lamp", "zzz qq"]
    assert summary["zero_result_queries"] == [
        {"query": "zzz qq", "typed_query": "zzz qq", "zero_result_pages": 1}
    ]


def test_a_logged_query_is_shown_as_shoppers_typed_it(tmp_path: Path) -> None:
    """The logged searches are counted by `lower(trim(query))` and were listed so ("green
    tent" for what shoppers typed "Green Tent"): the most frequent typed form is shown, the
    first in code-point order between equally frequent ones ("Rug" before "rug")."""
    events = "\n".join(
        ["user_id,product_id,event_type,timestamp,session_id,query"]
        + [f"g{i},,search,2026-01-01T10:00:00Z,{i},Green Tent" for i in range(2)]
        + ["g2,,search,2026-01-01T10:00:00Z,2,green tent", 'g3,,search,2026-01-01T10:00:00Z,3," GREEN TENT "']
        + ["r1,,search,2026-01-01T10:00:00Z,4,rug", "r2,,search,2026-01-01T10:00:00Z,5,Rug"]
    )
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text(events + "\n")
    Shop(tmp_path / "w").ingest(data)
    logged, _ = logged_searches(tmp_path / "w")
    assert [(d["typed_query"], d["searches"]) for d in logged["top_queries"]] == [
        ("Green Tent", 4),
        ("Rug", 2),
    ]
    assert [d["query"] for d in logged["top_queries"]] == ["green tent", "rug"]


SOFA = """user_id,product_id,event_type,timestamp,session_id,query
v1,,search,2026-01-01T10:00:00Z,1,sofa
v1,p1,add_to_cart,2026-01-01T10:02:00Z,1,
v2,,search,2026-01-01T10:00:00Z,2,sofa
v2,p1,click,2026-01-01T10:01:00Z,2,
v3,,search,2026-01-01T10:00:00Z,3,sofa
v3,p1,add_to_cart,2026-01-01T10:03:00Z,3,
v3,p1,purchase,2026-01-01T10:04:00Z,3,
v4,,search,2026-01-01T10:00:00Z,4,sofa
"""


def test_each_logged_rate_is_named_by_what_it_counts(tmp_path: Path) -> None:
    """`session_ctr` ("session CTR") counted a search followed by a click, a cart or a purchase:
    no click-through. Each rate is its own field now, labelled by what it counts; `session_ctr`
    keeps its value (the engaged share). Known answers: of 4 "sofa" searches one is followed by
    a click, two by an add-to-cart, one by a purchase, three by any of them. The HTML report
    labels them so and calls none of them CTR."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text(SOFA)
    shop = Shop(tmp_path / "w")
    shop.ingest(data)
    logged, _ = logged_searches(tmp_path / "w")
    (sofa,) = logged["top_queries"]
    assert {k: sofa[k] for k in sofa if k not in ("query", "typed_query") and "_ci95" not in k} == {
        "searches": 4, "users": 4, "searches_with_session": 4, "session_click_through": 0.25,
        "session_add_to_cart_rate": 0.5, "session_conversion": 0.25, "session_engaged": 0.75,
        "session_ctr": 0.75,
    }  # fmt: skip
    doc = shop.search_report()
    assert doc["protocol"]["session_click_through"].startswith(
        "share of logged searches followed by a click "
    )
    page = Path(doc["html"]).read_text()
    table = page.split("<h2>Top queries</h2>")[1].split("</table>")[0]
    heads = [h.split("</th>")[0] for h in table.split("<th>")[1:]]
    assert heads == ["query", "searches", "users", "with a session", "click-through", "add-to-cart rate",
                     "conversion", "engaged (click, cart or purchase)"]  # fmt: skip
    # each rate with its 95% interval (4 users, one search each: the delta method over users,
    # never narrower than Wilson: 1 of 4 is [0, 0.74], 3 of 4 [0.26, 1])
    assert (
        "<td>25.0% [0.0%, 74.0%]</td><td>50.0% [0.0%, 100.0%]</td><td>25.0% [0.0%, 74.0%]</td><td>75.0% [26.0%, 100.0%]</td>"
        in table
    )
    assert "CTR" not in page.split("</style>")[1].split('id="protocol"')[0] + table


def test_each_served_rate_is_named_by_what_it_counts() -> None:
    """`attributed_ctr` counted a page named by a click, a cart or a purchase. Known answers: of
    8 pages, one clicked, one carted, one bought without a click, one clicked and bought:
    click-through 2/8, add-to-cart 1/8, conversion 2/8, engaged (the old `attributed_ctr`) 4/8."""
    from shelfwise.search._analytics import add_served_search, served_search_summary

    per_query: dict = {}
    for i in range(8):
        add_served_search(per_query, {"query": "Sofa", "items": ["P1"], "offset": 0, "id": f"s{i}",
                                      "user": "u_a", "at": 1000.0})  # fmt: skip
    kinds = {"s0": ["click"], "s1": ["add_to_cart"], "s2": ["purchase"], "s3": ["click", "purchase"]}
    attributed = [(sid, "u_a", 1100.0, (), k) for sid, ks in kinds.items() for k in ks]
    (got,) = served_search_summary(per_query, attributed)["top_queries"]
    assert {k: v for k, v in got.items() if not k.endswith("_ci95")} == {
        "query": "sofa", "typed_query": "Sofa", "pages": 8, "attributed_ctr": 0.5,
        "attributed_click_through": 0.25, "attributed_add_to_cart_rate": 0.125,
        "attributed_conversion": 0.25, "attributed_engaged": 0.5,
    }  # fmt: skip


TWO_USERS = "user_id,product_id,event_type,timestamp,session_id,query\n" + "".join(
    f"{u},,search,2026-01-0{d}T10:00:00Z,{u}{d},lamp\n"
    + (f"{u},p1,click,2026-01-0{d}T10:01:00Z,{u}{d},\n" if u == "w1" else "")
    for u in ("w1", "w2")
    for d in range(1, 5)
)


def test_each_search_rate_has_its_interval_with_the_user_as_unit(tmp_path: Path) -> None:
    """The per-query rates had no interval. Each has its 95% interval now, the experiment
    report's per-exposure one (`ratio_interval`: the delta method with the user as unit).
    Known answer: two users search "lamp" four times each, one clicks after every search, the
    other never: 50% of 8 searches, but of two users: [0, 1] (Wilson over the 8 searches as if
    independent says [0.215, 0.785]). The same for 8 served pages of two shoppers."""
    from shelfwise.evaluation import wilson_interval
    from shelfwise.search._analytics import add_served_search, served_search_summary

    assert wilson_interval(4, 8) == pytest.approx((0.2152, 0.7848), abs=1e-4)
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text(TWO_USERS)
    Shop(tmp_path / "w").ingest(data)
    logged, _ = logged_searches(tmp_path / "w")
    (lamp,) = logged["top_queries"]
    assert (lamp["searches_with_session"], lamp["session_click_through"]) == (8, 0.5)
    assert lamp["session_click_through_ci95"] == [0.0, 1.0]
    assert lamp["session_conversion_ci95"] == [
        0.0,
        round(wilson_interval(0, 8)[1], 4),
    ]  # none: Wilson's 0 of 8
    per_query: dict = {}
    for i in range(8):
        add_served_search(per_query, {"query": "lamp", "items": ["P1"], "offset": 0, "id": f"s{i}",
                                      "user": "u_a" if i < 4 else "u_b", "at": 1000.0})  # fmt: skip
    clicks = [(f"s{i}", "u_a", 1100.0, (), "click") for i in range(4)]
    (got,) = served_search_summary(per_query, clicks)["top_queries"]
    assert got["attributed_click_through"] == 0.5 and got["attributed_click_through_ci95"] == [0.0, 1.0]
    # the same pages of eight shoppers, one page each: eight units: narrower (the delta method)
    for i, page in enumerate(per_query["lamp"][2]):
        page[1] = f"u_{i}"
    (got,) = served_search_summary(per_query, [(f"s{i}", f"u_{i}", 1100.0, (), "click") for i in range(4)])[
        "top_queries"
    ]
    assert got["attributed_click_through_ci95"] == [0.1296, 0.8704]
