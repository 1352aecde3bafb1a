"""The console's pieces that need no server: alerts, the online click-through drop, the session
cookie, the lineage drawing (known answers on small hand-made inputs)."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from starlette.requests import Request
from starlette.responses import Response

from shelfwise.web import _auth, _data, _playground


def _dataset(name: str, share: float) -> dict:
    return {
        "name": name,
        "owner": "o",
        "steward": "s",
        "quality": {"passed": share <= 0.05, "quarantined_share": share},
    }


def test_alerts_name_failing_checks_spikes_and_waiting_candidates() -> None:
    loads = [
        {"table": "events", "rows_in": 1000, "rows_quarantined": 10},
        {"table": "events", "rows_in": 1000, "rows_quarantined": 40},  # 1% -> 4%: a spike
        {"table": "products", "rows_in": 100, "rows_quarantined": 1},
    ]
    cat = {"datasets": [_dataset("curated.events", 0.04), _dataset("curated.users", 0.2)], "loads": loads}
    versions = [
        {
            "version": "2",
            "aliases": ["candidate"],
            "gates": [{"name": "g", "passed": True}],
            "approved_by": None,
        },
        {"version": "1", "aliases": ["production"], "gates": [], "approved_by": "x"},
    ]
    got = [a["what"] for a in _data.alerts(cat, versions, audit_ok=False)]
    assert any("curated.users" in w and "20.0%" in w for w in got)
    assert any("quarantine spike in events" in w for w in got)
    assert not any("curated.events: the latest load" in w for w in got)  # 4% passes the check
    assert any("candidate v2" in w and "waits for approval" in w for w in got)
    assert any("hash chain" in w for w in got)


def test_a_re_process_is_no_load_on_the_quality_trend_nor_a_spike() -> None:
    """Re-processing 5 quarantined rows of which 4 stay quarantined was drawn as an 80% load on
    the quality trend and raised "quarantine spike in events: 80.0%"."""
    from shelfwise.governance._load_state import REPROCESS_JOB

    loads = [
        {"job": "shelfwise.ingest", "table": "events", "rows_in": 1000, "rows_quarantined": 10, "at": "2026-12-01 10:00"},
        {"job": "shelfwise.ingest", "table": "events", "rows_in": 1000, "rows_quarantined": 12, "at": "2026-12-02 10:00"},
        {"job": REPROCESS_JOB, "table": "events", "rows_in": 5, "rows_quarantined": 4, "at": "2026-12-02 11:00"},
    ]  # fmt: skip
    cat = {"datasets": [], "loads": loads}
    assert not [a for a in _data.alerts(cat, [], audit_ok=True) if "spike" in a["what"]]
    assert [x["at"] for x in _data.deliveries(cat)] == ["2026-12-01 10:00", "2026-12-02 10:00"]
    loads[2]["job"] = "shelfwise.ingest"  # the same numbers from a delivery: a spike
    assert [a for a in _data.alerts(cat, [], audit_ok=True) if "spike" in a["what"]]


def test_online_click_through_drop_needs_evidence() -> None:
    def rows(prev_clicks: int, last_clicks: int, n: int = 400) -> list[dict]:
        return [
            {"surface": "recommendations", "bundle": "A", "served": n, "clicked": prev_clicks},
            {"surface": "recommendations", "bundle": "B", "served": n, "clicked": last_clicks},
        ]

    drops = _data.online_drops(rows(80, 40))  # 20% -> 10%: upper bound ~13.4% < 20%
    assert [(d["bundle"], d["previous"]) for d in drops] == [("B", "A")]
    assert _data.online_drops(rows(80, 70)) == []  # 17.5%: within chance
    assert _data.online_drops(rows(80, 0, n=100)) == []  # too few lists to say
    cat = {"datasets": [], "loads": []}
    alerts = _data.alerts(cat, [], True, {"by_bundle": rows(80, 40)})
    assert any("dropped with bundle B" in a["what"] for a in alerts)


def _request(
    cookie: str | None = None, host: str = "127.0.0.1", to: str = "127.0.0.1:8000", origin: str | None = None
) -> Request:
    headers = [(b"cookie", f"{_auth.COOKIE}={cookie}".encode())] if cookie else []
    headers.append((b"host", to.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return Request(
        {"type": "http", "headers": headers, "client": (host, 1234), "method": "GET", "path": "/console/"}
    )


def test_session_cookie_round_trip_and_tampering(tmp_path: Path) -> None:
    s = _auth.new_session("ana", "abcd" * 4)
    resp = Response()
    _auth.write_session(resp, tmp_path, s)
    value = resp.headers["set-cookie"].split(";")[0].split("=", 1)[1].strip('"')
    back = _auth.read_session(_request(value), tmp_path)
    assert back is not None and (back.name, back.key_hash, back.csrf) == ("ana", "abcd" * 4, s.csrf)
    body, sig = value.rsplit(".", 1)
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + sig
    assert _auth.read_session(_request(forged), tmp_path) is None
    assert (tmp_path / "secrets" / "console.key").stat().st_mode & 0o077 == 0


def test_single_user_mode_only_on_loopback(tmp_path: Path) -> None:
    assert _auth.current_user(_request(host="127.0.0.1"), tmp_path, None) is not None
    assert _auth.current_user(_request(host="::1"), tmp_path, None) is not None
    assert _auth.current_user(_request(host="::1", to="[::1]:8000"), tmp_path, None) is not None
    assert _auth.current_user(_request(host="127.0.0.1", to="localhost:8000"), tmp_path, None) is not None
    assert _auth.current_user(_request(host="192.0.2.7"), tmp_path, None) is None
    # DNS rebinding: a page on attacker.example re-pointed at 127.0.0.1 comes from loopback but
    # names its own host: no single-user admin for it
    assert _auth.current_user(_request(host="127.0.0.1", to="attacker.example:8000"), tmp_path, None) is None


def test_a_form_from_another_site_is_refused_even_with_the_token() -> None:
    s = _auth.new_session()
    _auth.check_csrf(s, {"csrf": s.csrf}, _request(origin="http://127.0.0.1:8000"))  # same site
    _auth.check_csrf(s, {"csrf": s.csrf}, _request())  # no Origin (an old browser, a script)
    with pytest.raises(_auth.Denied):
        _auth.check_csrf(s, {"csrf": s.csrf}, _request(origin="http://attacker.example:8000"))
    with pytest.raises(_auth.Denied):
        _auth.check_csrf(s, {"csrf": "forged"}, _request(origin="http://127.0.0.1:8000"))


def test_lineage_svg_draws_every_node_and_edge() -> None:
    g = {
        "nodes": [
            {"id": "file:a", "label": "a.csv", "kind": "file", "col": 0, "detail": "/x/a.csv"},
            {"id": "run:1", "label": "ingest 1", "kind": "run", "col": 1, "detail": "1"},
            {"id": "bundle:b", "label": "bundle b", "kind": "bundle", "col": 4, "detail": "<b>"},
        ],
        "edges": [("file:a", "run:1"), ("run:1", "bundle:b")],
    }
    svg = _data.lineage_svg(g)
    assert svg.count('<g class="node') == 3 and svg.count("<path") == 2
    assert "&lt;b&gt;" in svg  # details are escaped


def _exposure(i: int, kind: str = "search", bundle: str = "b1", at: float | None = None) -> bytes:
    import json

    rec = {"id": f"L{i}", "kind": kind, "bundle": bundle, "at": float(at if at is not None else 1000 + i)}
    return (json.dumps(rec) + "\n").encode()


def _scratch(folder: Path) -> dict:
    t = _data.ExposureTally(folder).update()  # a fresh tally: every line read
    return {"served": dict(t.served), "by_bundle": dict(t.by_bundle), "first": t.first, "ids": t.ids}


def test_the_traffic_tally_reads_only_what_was_appended(tmp_path: Path) -> None:
    folder = tmp_path / "exposures"
    folder.mkdir()
    a = folder / "t1-host-1.jsonl.open"
    b = folder / "t2-host-2.jsonl.open"
    a.write_bytes(b"".join(_exposure(i) for i in range(50)) + b"not json\n")
    b.write_bytes(b"".join(_exposure(i, "recommendations", "b2") for i in range(100, 130)))
    tally = _data.ExposureTally(folder)

    def state() -> dict:
        t = tally.update()
        return {"served": dict(t.served), "by_bundle": dict(t.by_bundle), "first": t.first, "ids": t.ids}

    assert state() == _scratch(folder)
    assert tally.update().served == {"search": 50, "recommendations": 30}
    parsed = sum(t.lines for t in tally.files.values())
    assert parsed == 81
    # appends (one line cut mid-write, finished later), a rename on close, a new segment
    with open(a, "ab") as fh:
        fh.write(_exposure(50, bundle="b3", at=5000) + _exposure(51, bundle="b3")[:20])
    assert state() == _scratch(folder)
    assert sum(t.lines for t in tally.files.values()) == parsed + 1  # the new whole line only
    with open(a, "ab") as fh:
        fh.write(_exposure(51, bundle="b3")[20:])
    a = a.rename(folder / "t1-host-1.jsonl")
    (folder / "t3-host-1.jsonl.open").write_bytes(_exposure(200, "similar", "b3", at=10))
    assert state() == _scratch(folder)
    assert sum(t.lines for t in tally.files.values()) == parsed + 3  # nothing read twice
    got = tally.update()
    assert got.served == {"search": 52, "recommendations": 30, "similar": 1}
    assert got.first["b3"] == 10.0 and got.ids["L51"] == ("search", "b3", "", 1051.0)
    # a segment rewritten (an erasure drops lines) or removed: the sums follow
    b.write_bytes(b"".join(_exposure(i, "recommendations", "b2") for i in range(100, 110)))
    assert state() == _scratch(folder) and tally.update().served["recommendations"] == 10
    b.unlink()
    assert state() == _scratch(folder) and "recommendations" not in tally.update().served
    assert "L105" not in tally.update().ids
    # rewritten in place to a longer file: the bytes before the offset differ, read again
    a.write_bytes(b"".join(_exposure(i, "search", "b9") for i in range(300, 400)))
    assert state() == _scratch(folder) and tally.update().served == {"search": 100, "similar": 1}


def test_the_overview_counts_a_click_as_the_experiment_report_does(tmp_path: Path, monkeypatch) -> None:
    """The overview's click-through counted a click dated three days before its list was served
    (and another customer's purchase naming it); the experiment report did not. One rule now
    (`serving._experiments.not_counted`)."""
    import json

    folder = tmp_path / "spool" / "exposures"
    folder.mkdir(parents=True)
    day = 86_400.0
    recs = [
        {"id": f"L{i}", "kind": "recommendations", "bundle": "b1", "user": f"u_{i}", "at": 10 * day}
        for i in range(4)
    ]
    recs.append({"id": "S0", "kind": "similar", "bundle": "b1", "user": None, "at": 10 * day})  # nobody's
    (folder / "t-h-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    attributed = [
        ("L0", "u_0", False, 10 * day + 60, (), "click"),  # its shopper's click after it: counts
        ("L1", "u_1", False, 7 * day, (), "click"),  # three days before it was served: not caused by it
        ("L2", "u_other", True, 10 * day + 60, (), "purchase"),  # another customer's purchase naming it
        ("L3", "a_session", False, 10 * day + 60, ("u_3",), "click"),  # u_3's own session (logged out)
        ("L3", "a_session", True, 10 * day + 60, ("u_3",), "purchase"),
        ("S0", "u_9", False, 10 * day + 60, (), "click"),  # a click on a similar-items list: anyone's
    ]
    monkeypatch.setattr(_data, "_TALLIES", {})
    got = {s["surface"]: s for s in _data._traffic(tmp_path, attributed)["surfaces"]}
    assert got["recommendations"]["ctr"] == 0.5 and got["recommendations"]["conversion"] == 0.25
    assert got["similar"]["ctr"] == 1.0  # (it counted none: every click read as another user's)


def test_the_overview_click_through_counts_clicks_as_the_experiment_report_does(
    tmp_path: Path, monkeypatch
) -> None:
    """The overview said 24.8% click-through where the experiments said 19.2% for the same
    lists: it counted a list bought (or carted) without a click as clicked. Click-through is
    clicks / lists served on both pages now; the overview's lists with a click, cart or purchase
    are `engaged`, labelled so. Known answer: 8 lists, 2 clicked, 1 bought without a click, 1
    carted without a click, 1 clicked and bought: CTR 3/8, engaged 5/8, conversion 2/8."""
    import json

    from shelfwise.serving._experiments import experiment_exposure, experiment_summary

    folder = tmp_path / "spool" / "exposures"
    folder.mkdir(parents=True)
    recs = [
        {"id": f"L{i}", "kind": "recommendations", "bundle": "b1", "user": f"u_{i}", "at": 1000.0,
         "experiment": "e", "variant": "control" if i % 2 else "treatment"}
        for i in range(8)
    ]  # fmt: skip
    (folder / "t-h-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    events = {"L0": ["click"], "L1": ["click"], "L2": ["purchase"], "L3": ["add_to_cart"],
              "L4": ["click", "purchase"]}  # fmt: skip
    attributed = [
        (sid, f"u_{sid[1:]}", kind == "purchase", 1100.0, (), kind)
        for sid, kinds in events.items()
        for kind in kinds
    ]
    monkeypatch.setattr(_data, "_TALLIES", {})
    traffic = _data._traffic(tmp_path, attributed)
    got = traffic["surfaces"][0]
    assert (got["served"], got["ctr"], got["engaged"], got["conversion"]) == (8, 0.375, 0.625, 0.25)
    assert traffic["by_bundle"][0]["clicked"] == 3 and traffic["by_bundle"][0]["engaged"] == 5
    # the experiment report's CTR over the same lists and events, pooled over its variants
    by_list = {sid: [[f"u_{sid[1:]}", 1100.0, k, 10.0 if k == "purchase" else 0.0] for k in kinds]
               for sid, kinds in events.items()}  # fmt: skip
    exposures = [e for r in recs if (e := experiment_exposure(r)) is not None]
    variants = experiment_summary(exposures, by_list)["experiments"]["e"]["variants"].values()
    pooled = sum(m["ctr"] * m["exposures"] for m in variants) / sum(m["exposures"] for m in variants)
    assert pooled == got["ctr"]
    # the overview's table says which is which
    o = {"datasets": [], "trend": {}, "production": [], "candidates": [], "traffic": traffic,
         "audit": {"entries": 0, "ok": True}, "alerts": []}  # fmt: skip
    monkeypatch.setattr(_data, "overview", lambda workdir: o)
    page = _as_person(tmp_path, "analyst").get("/console/").text
    table = page.split('id="traffic"')[1].split("</table>")[0]
    assert "click-through (per list)" in table and "engaged (per list)" in table
    assert '<td class="n ctr">37.5%</td>' in table and '<td class="n engaged">62.5%</td>' in table, table
    assert "lists with a click / lists served" in page


def test_the_analytics_page_compares_each_variant_with_the_control(tmp_path: Path, monkeypatch) -> None:
    """The console's experiments table gave per-variant rates only (8 users read as "the
    treatment converts better"): a comparison table now gives each variant against the control
    with the difference, its interval, the lift and the report's verdict."""
    from shelfwise.serving._experiments import experiment_summary

    ex = [("e", "control", f"c{i}", f"cu{i}", "b1", 0.0) for i in range(5)]
    ex += [("e", "treatment", f"t{i}", f"tu{i}", "b1", 0.0) for i in range(3)]
    by_list = {"c0": [["cu0", 1.0, "purchase", 20.0]], "t0": [["tu0", 1.0, "purchase", 20.0]]}
    report = experiment_summary(ex, by_list)
    monkeypatch.setattr(_data, "experiments", lambda w: {"configured": [], "report": report})
    sr = {"logged": {"searches": 0, "distinct_queries": 0, "top_queries": []},
          "served": {"pages": 0, "zero_result_pages": 0, "top_queries": [], "zero_result_queries": []},
          "no_keyword_match": [], "protocol": {}}  # fmt: skip
    monkeypatch.setattr(_data, "search_report", lambda *a: sr)
    page = _as_person(tmp_path, "analyst").get("/console/analytics")
    assert page.status_code == 200, page.text[-800:]
    table = page.text.split('class="comparison"')[1].split("</table>")[0]
    assert "variant vs control" in table
    row = table.split('data-metric="conversion"')[1].split("</tr>")[0]
    assert 'data-verdict="too_little_data"' in table and "+0.1333" in row and "+66.7%" in row, row
    assert "too little data to conclude" in row and "higher" not in table


def test_no_customer_profile_is_a_reason_not_a_failed_page(tmp_path: Path, monkeypatch) -> None:
    assert _data.customer_profile(tmp_path, "u_x") == {
        "status": "unavailable",
        "reason": "no warehouse in this workdir",
    }
    (tmp_path / "warehouse.duckdb").write_bytes(b"")

    def broken(workdir: Path) -> dict:
        raise ValueError("no curated events")

    monkeypatch.setattr(_data, "_compute_profiles", broken)
    got = _data.customer_profile(tmp_path, "u_x", wait_s=10)
    assert got["status"] == "unavailable" and "no curated events" in got["reason"]

    def fine(workdir: Path) -> dict:
        prof = {"segment": "loyal", "frequency": 3, "recency_days": 2.5, "churn_risk": 0.1}
        return {"by_user": {"u_a": prof}, "as_of": "2026-01-01", "model": "gbm", "horizon_days": 90}

    monkeypatch.setattr(_data, "_compute_profiles", fine)
    (tmp_path / "warehouse.duckdb").write_bytes(b"changed")  # a new warehouse version: computed again
    assert _data.customer_profile(tmp_path, "u_a", wait_s=10)["profile"]["segment"] == "loyal"
    got = _data.customer_profile(tmp_path, "u_b")
    assert got["status"] == "unavailable" and "no history" in got["reason"]
    # the next absorb, soon after: the profiles just made are shown (stale), no new fit yet
    monkeypatch.setattr(_data, "_compute_profiles", broken)
    (tmp_path / "warehouse.duckdb").write_bytes(b"changed again")
    got = _data.customer_profile(tmp_path, "u_a", wait_s=10)
    assert got["status"] == "ready" and got["stale"] and got["profile"]["segment"] == "loyal"


def test_figures_refreshed_in_the_background_never_hold_a_page_long() -> None:
    import threading

    release = threading.Event()
    calls = []

    def compute(v: int):
        def run() -> int:
            calls.append(v)
            if v == 2:
                release.wait(10)  # a slow warehouse read
            return v

        return run

    key = ("unit-refresh", "w")
    assert _data._cached(key, ("s1",), compute(1), float("inf"), 0.05) == 1  # the first: waited for
    assert _data._cached(key, ("s2",), compute(2), float("inf"), 0.05) == 1  # the previous figures
    assert _data._cached(key, ("s2",), compute(3), float("inf"), 0.05) == 1  # one refresh at a time
    release.set()
    _data._REFRESHING[key].join(10)
    assert _data._cached(key, ("s2",), compute(4), float("inf"), 0.05) == 2
    assert calls == [1, 2]


def _page(i: int, query: str, items: int, experiment: str | None = None, user: str = "u1") -> bytes:
    import json

    rec: dict = {"id": f"S{i}", "kind": "search", "bundle": "b1", "at": 1000.0 + i, "query": query,
                 "items": [f"p{j}" for j in range(items)], "user": user}  # fmt: skip
    if experiment:  # (a user's variant is theirs: one served by both would leave the report)
        rec.update(experiment=experiment, variant="ctl" if int(user[1:]) % 2 else "new")
    return (json.dumps(rec) + "\n").encode()


def test_served_searches_and_experiments_read_incrementally_equal_a_full_read(
    tmp_path: Path, monkeypatch
) -> None:
    """The analytics page's sums (the tally's search pages and experiment exposures) give the
    report a full read of the log gives: after appends, a rotation (`.open` renamed), a new
    segment, retention rewriting a segment with fewer lines, and a segment removed."""
    from shelfwise.search._analytics import served_search_summary, served_searches
    from shelfwise.serving import _experiments

    # each list's events: its own user's click, and a cart and a purchase on some (the users
    # `_page` gives each list below: u0..u6 for the first 40, u1 after)
    def user(i: int) -> str:
        return f"u{i % 7}" if i < 40 else "u1"

    by_list = {f"S{i}": [[user(i), 1000.0 + i, "click", 0.0]]
               + ([[user(i), 1001.0 + i, "add_to_cart", 0.0]] if i % 3 == 0 else [])
               + ([[user(i), 1002.0 + i, "purchase", 2.5 * i]] if i % 4 == 0 else [])
               for i in range(0, 200, 3)}  # fmt: skip
    monkeypatch.setattr(_experiments, "attributed_events", lambda workdir: by_list)
    # (each list's own user's click, as the search analytics reads the warehouse's events)
    attributed = [(sid, evs[0][0], evs[0][1]) for sid, evs in by_list.items()]
    folder = tmp_path / "spool" / "exposures"
    folder.mkdir(parents=True)
    a = folder / "t1-host-1.jsonl.open"
    queries = ["Red Pillow", "red  pillow", "lamp", "sofa bed", "zzz"]
    a.write_bytes(b"".join(_page(i, queries[i % 5], i % 4, "exp1", f"u{i % 7}") for i in range(40)))
    tally = _data.ExposureTally(folder)

    def same() -> None:
        t = tally.update()
        assert served_search_summary(t.searches, attributed) == served_searches(tmp_path, attributed)
        full = _experiments.experiment_report(tmp_path)
        full.pop("unknown_list_events")  # (the CLI's alone: the console counts served lists only)
        assert _experiments.experiment_summary(t.exposures, by_list) == full
        for e in full["experiments"].values():  # every planted event is its list's own user's
            for m in e["variants"].values():
                assert m["events_not_counted"] == {"another_user": 0, "before_the_list": 0}
        fresh = _data.ExposureTally(folder).update()  # and the same sums as a fresh tally's
        assert sorted(fresh.exposures) == sorted(t.exposures)

    same()
    assert (
        _experiments.experiment_report(tmp_path)["experiments"]["exp1"]["variants"]["new"]["exposures"] == 23
    )  # (the pages of u0, u2, u4 and u6 among the first 40)
    read = sum(t.lines for t in tally.files.values())
    with open(a, "ab") as fh:  # appended: only the new lines are read
        fh.write(b"".join(_page(i, "lamp", 0, "exp1") for i in range(40, 50)))
    same()
    assert sum(t.lines for t in tally.files.values()) == read + 10
    a = a.rename(folder / "t1-host-1.jsonl")  # rotation: the same inode, not read again
    (folder / "t2-host-1.jsonl.open").write_bytes(
        b"".join(_page(i, "sofa", 2, "exp2") for i in range(50, 70))
    )
    same()
    assert sum(t.lines for t in tally.files.values()) == read + 30
    # retention/erasure rewrites a segment with fewer lines (a new file renamed over it)
    kept = b"".join(line + b"\n" for line in a.read_bytes().splitlines()[::2])
    tmp = folder / "rewrite.tmp"
    tmp.write_bytes(kept)
    tmp.replace(a)
    same()
    (folder / "t2-host-1.jsonl.open").unlink()
    same()
    assert {e[0] for e in tally.update().exposures} == {"exp1"}


def test_figures_kept_in_the_workdir_serve_a_new_process_only_for_the_same_files(tmp_path: Path) -> None:
    import threading

    kept = _data.Persist("unit", dump=sorted, load=set)
    key, inf = ("unit-kept", tmp_path), float("inf")
    (tmp_path / "f").write_text("1")

    def boom() -> set:
        raise AssertionError("computed again")

    assert _data._cached(key, _data._stamp(tmp_path, "f"), lambda: {2, 1}, inf, None, (tmp_path, kept)) == {
        1,
        2,
    }
    assert (tmp_path / "state" / "console" / "unit.json").exists()
    _data._CACHE.clear()  # a new process: the same files, the kept figures
    assert _data._cached(key, _data._stamp(tmp_path, "f"), boom, inf, None, (tmp_path, kept)) == {1, 2}
    (tmp_path / "f").write_text("22")  # the files changed: computed again (and kept)
    _data._CACHE.clear()
    assert _data._cached(key, _data._stamp(tmp_path, "f"), lambda: {3}, inf, None, (tmp_path, kept)) == {3}
    _data._CACHE.clear()
    assert _data._cached(key, _data._stamp(tmp_path, "f"), boom, inf, None, (tmp_path, kept)) == {3}
    # with a wait: a new process shows the kept figures while the new ones are computed
    (tmp_path / "f").write_text("333")
    _data._CACHE.clear()
    release = threading.Event()

    def slow() -> set:
        release.wait(10)
        return {4}

    stamp = _data._stamp(tmp_path, "f")
    assert _data._cached(key, stamp, slow, inf, 0.05, (tmp_path, kept)) == {3}
    release.set()
    _data._REFRESHING[key].join(10)
    assert _data._cached(key, stamp, boom, inf, 0.05, (tmp_path, kept)) == {4}
    _data._CACHE.clear()
    assert _data._cached(key, stamp, boom, inf, 0.05, (tmp_path, kept)) == {4}


def test_a_page_during_the_warm_up_waits_for_the_same_computation(tmp_path: Path) -> None:
    import threading

    started, release, calls = threading.Event(), threading.Event(), []

    def compute() -> int:
        calls.append(1)
        started.set()
        release.wait(10)
        return 7

    key = ("unit-single", tmp_path)
    warm = threading.Thread(target=_data._cached, args=(key, ("s",), compute, float("inf")))
    warm.start()
    started.wait(10)
    got: list[int] = []
    page = threading.Thread(target=lambda: got.append(_data._cached(key, ("s",), compute, float("inf"))))
    page.start()
    page.join(0.5)  # the page reaches the entry while the warm-up still computes it
    assert page.is_alive()  # it waits (for the warm-up's result, or, without the lock, in its own)
    release.set()
    warm.join(10)
    page.join(10)
    assert got == [7] and calls == [1]


class _Version:
    def __init__(self, version: int, **tags: str):
        self.version, self.tags, self.source = str(version), tags, f"/b/{version}"


class _Client:
    def __init__(self, versions: list, aliases: dict):
        self.versions, self.aliases = versions, aliases

    def search_model_versions(self, query: str) -> list:
        return self.versions

    def get_model_version_by_alias(self, name: str, alias: str) -> _Version:
        from mlflow.exceptions import MlflowException

        if alias not in self.aliases:
            raise MlflowException("no alias")
        return _Version(self.aliases[alias])


def test_the_registry_is_read_from_its_snapshot_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    from shelfwise.governance import _model_versions as mv
    from shelfwise.lifecycle._registry import RegistryView  # (imported before the patch below:
    # the module binds mlflow_client at import, and a first import under the patch would keep
    # the raising stand-in for every later test of this process)

    (tmp_path / "mlflow.db").write_bytes(b"v1")
    first = _Client([_Version(1, bundle_version="a", ndcg_at_10="0.1"), _Version(2, bundle_version="b")],
                    {"production": 1, "candidate": 2})  # fmt: skip
    got = mv.registered_versions(tmp_path, first)  # a read through MLflow writes the snapshot
    assert [v["aliases"] for v in got] == [["production"], ["candidate"]]

    def no_mlflow(workdir: Path) -> None:
        raise AssertionError("MLflow opened")

    monkeypatch.setattr(mv, "mlflow_client", no_mlflow)
    assert mv.registered_versions(tmp_path, use_snapshot=True) == got
    view = RegistryView(tmp_path)
    assert (view.production(), view.candidate()) == ("1", "2")
    (tmp_path / "mlflow.db").write_bytes(b"v2 promoted")  # the registry changed: read again
    second = _Client(first.versions, {"production": 2})
    monkeypatch.setattr(mv, "mlflow_client", lambda workdir: second)
    assert [v["aliases"] for v in mv.registered_versions(tmp_path, use_snapshot=True)] == [[], ["production"]]
    monkeypatch.setattr(mv, "mlflow_client", no_mlflow)
    assert [v["aliases"] for v in mv.registered_versions(tmp_path, use_snapshot=True)] == [[], ["production"]]


def test_figures_from_an_older_data_state_are_marked_on_the_page(tmp_path: Path, monkeypatch) -> None:
    """While the tables' figures are recomputed after an absorb (longer than the page waits),
    the Data page shows the previous ones and says so: "as of <their time>, refreshing"; once
    the refresh is in, the note is gone."""
    import threading

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.governance import _catalog
    from shelfwise.web._routes import console_router

    release, rows = threading.Event(), iter([11, 22])

    def catalog(workdir: Path) -> dict:
        n = next(rows)
        if n == 22:
            release.wait(10)  # a slow warehouse read
        table = {"name": "curated.events", "description": "", "owner": "o", "steward": "s",
                 "contract_version": 1, "classification": {}, "rows": n, "versions": 1, "updated_at": None,
                 "quality": {"passed": True, "rows_quarantined": 0, "rows_in": n, "quarantined_share": 0.0,
                             "open_quarantine": 0, "reasons": {}}}  # fmt: skip
        return {"datasets": [table], "models": [], "rules": None, "loads": [], "contracts": []}

    monkeypatch.setattr(_catalog, "catalog", catalog)
    (tmp_path / "warehouse.duckdb").write_bytes(b"v1")
    app = FastAPI()
    app.include_router(console_router(tmp_path, lambda: None))
    with TestClient(app) as c:  # single-user mode: the in-process client counts as loopback
        page = c.get("/console/data").text
        assert '<td class="n rows">11</td>' in page and 'id="stale"' not in page
        first = json.loads((tmp_path / "state" / "console" / "catalog.json").read_text())["computed_at"]
        (tmp_path / "warehouse.duckdb").write_bytes(b"v2, an absorb later")
        page = c.get("/console/data").text  # the refresh runs longer than the page waits
        assert '<td class="n rows">11</td>' in page
        as_of = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(first))
        assert re.search(
            rf'<li data-what="tables, rows, freshness and quality">[^<]*as of {as_of} \(\d+ s ago\), refreshing',
            page,
        )
        release.set()
        _data._REFRESHING[("catalog", tmp_path)].join(10)
        page = c.get("/console/data").text
        assert '<td class="n rows">22</td>' in page and 'id="stale"' not in page


def test_a_computation_lock_is_not_dropped_while_a_thread_waits_for_it(monkeypatch) -> None:
    """The key locks' cleanup (past 1024 keys) keeps a lock a thread has taken and not yet
    acquired (else the next thread gets a second lock and the entry is computed twice), and
    drops the unused ones."""
    monkeypatch.setattr(_data, "_KEY_LOCKS", {("filler", i): _data._KeyLock() for i in range(1100)})
    key = ("unit-race", "w")
    taken = _data._take_key_lock(key)  # a page took the lock; the thread is not yet in `acquire`
    assert not taken.lock.locked()
    with _data._key_lock(("another", "key")):  # another page's entry: the cleanup runs
        assert ("filler", 1) not in _data._KEY_LOCKS
    again = _data._take_key_lock(key)  # a second page for the same entry: the same lock
    assert again is taken and taken.users == 2
    _data._drop_key_lock(taken)
    _data._drop_key_lock(again)
    assert taken.users == 0


def test_the_console_keeps_the_latest_loads_of_each_table() -> None:
    loads = [{"table": t, "at": i} for i in range(10) for t in ("events", "products")]
    loads += [{"table": "users", "at": 99}]
    got = _data._recent_loads(loads, per_table=3)
    assert [(x["table"], x["at"]) for x in got] == [
        ("events", 7), ("products", 7), ("events", 8), ("products", 8), ("events", 9), ("products", 9),
        ("users", 99),
    ]  # fmt: skip


def test_the_lineage_file_is_read_incrementally_and_equals_a_full_read(tmp_path: Path) -> None:
    from shelfwise.governance._lineage import LINEAGE_FILE, read_lineage

    assert _data.LINEAGE_FILE == LINEAGE_FILE  # the console reads it without the OpenLineage client
    path = tmp_path / LINEAGE_FILE
    path.parent.mkdir(parents=True)

    def event(i: int, state: str = "COMPLETE") -> str:
        return json.dumps({"eventType": state, "run": {"runId": f"r{i}"}, "job": {"name": f"shelfwise.ingest{i}"},
                           "inputs": [{"namespace": "file", "name": f"/d/{i}.csv"}],
                           "eventTime": f"2026-12-05T10:0{i}:00+00:00"}) + "\n"  # fmt: skip

    def full() -> dict:
        return {e["run"]["runId"]: {"job": e["job"], "inputs": e["inputs"], "eventTime": e.get("eventTime"),
                                    "made": [(o["name"], (o.get("facets") or {}).get("version", {}).get("datasetVersion") or "")
                                             for o in e.get("outputs") or []]}
                for e in read_lineage(tmp_path) if e["eventType"] == "COMPLETE"}  # fmt: skip

    path.write_text(event(1, "START") + event(1) + event(2))
    assert _data.lineage_runs(tmp_path) == full() and set(full()) == {"r1", "r2"}
    reader = _data._LINEAGE[path.resolve()]
    with open(path, "a") as fh:
        fh.write(event(3) + '{"eventType": "COMPL')  # a line being written: left for the next read
    offset = reader.offset
    assert set(_data.lineage_runs(tmp_path)) == {"r1", "r2", "r3"}
    assert reader.offset == offset + len(event(3))  # only the appended line was read
    path.write_text(event(4) + event(5) + event(6) + event(7))  # rewritten (retention): read again
    assert _data.lineage_runs(tmp_path) == full() and set(full()) == {"r4", "r5", "r6", "r7"}


def test_the_audit_log_is_read_incrementally_with_verify_s_verdict(tmp_path: Path) -> None:
    """Appends are parsed and chained from where the last read stopped; an edit in place (even
    one with an append after it) is read and verified again from the start: the verdict is
    always `AuditLog.verify()`'s."""
    from shelfwise.governance import AuditLog

    log = AuditLog(tmp_path)
    for i in range(3):
        log.append("rules.change", actor=f"p{i}", version=i)
    got = _data.audit_entries(tmp_path)
    assert got["verification"] == log.verify().as_dict() == {"ok": True, "entries": 3, "first_bad_line": None,
                                                             "reason": None}  # fmt: skip
    assert [e["seq"] for e in got["entries"]] == [3, 2, 1] and got["actors"] == ["p0", "p1", "p2"]
    reader = _data._AUDIT[log.path.resolve()]
    log.append("access.denied", actor="eve", outcome="denied")
    before = reader.lineno
    got = _data.audit_entries(tmp_path, outcome="denied")
    assert reader.lineno == before + 1 and got["matching"] == 1 and got["total"] == 4
    assert got["verification"] == log.verify().as_dict()
    # tampering: an earlier entry edited in place (same length), then an honest append
    text = log.path.read_text()
    log.path.write_text(text.replace('"actor": "p1"', '"actor": "p7"', 1))
    assert '"p7"' in log.path.read_text()
    with open(log.path, "a") as fh:
        fh.write("\n")  # the append that would let an offset-only reader miss the edit
    got = _data.audit_entries(tmp_path)
    assert got["verification"] == log.verify().as_dict() and not got["verification"]["ok"]
    assert got["verification"]["first_bad_line"] == 2


@pytest.mark.slow  # an ingest (a minute on a loaded machine)
def test_a_training_run_keeps_the_figures_the_first_server_shows(tmp_path: Path, monkeypatch) -> None:
    """`Shop.train` ends with `keep_figures`: the warehouse figures the pages read are in
    `state/console/` with the stamp of the files they came from, so the first server after it
    shows them without opening the warehouse (here: the catalog refuses to be computed again)."""
    from shelfwise import Shop
    from shelfwise.demo import generate_demo
    from shelfwise.governance import _catalog
    from shelfwise.lifecycle import _train

    generate_demo(tmp_path / "data", products=60, users=20, events=800, seed=3)
    shop = Shop(tmp_path / "w")
    shop.ingest(tmp_path / "data")
    assert not (tmp_path / "w" / "state" / "console" / "catalog.json").exists()
    # the figures, not the models; the package's lazy name first, while it still resolves to
    # the real function (patched second, it was loaded from the patched module and "restored"
    # to the lambda: a later test's Shop.train in this process trained nothing)
    monkeypatch.setattr("shelfwise.lifecycle.train", lambda *a, **k: "trained")
    monkeypatch.setattr(_train, "train", lambda *a, **k: "trained")
    assert shop.train(log=None) == "trained"
    kept = {f.name for f in (tmp_path / "w" / "state" / "console").glob("*.json")}
    assert {"catalog.json", "quarantine_summary.json", f"{_data._SEARCH_LOGGED.name}.json"} <= kept
    expected = _data.datasets(tmp_path / "w")
    _data._CACHE.clear()  # a new process

    def boom(workdir: Path) -> dict:
        raise AssertionError("the warehouse was opened")

    monkeypatch.setattr(_catalog, "catalog", boom)
    assert _data.datasets(tmp_path / "w")["datasets"] == expected["datasets"]
    assert expected["datasets"] and expected["datasets"][0]["rows"] > 0


def test_a_registered_bundle_is_found_in_a_moved_workdir(tmp_path: Path) -> None:
    """MLflow keeps the absolute path a version was registered from: a workdir copied or moved
    elsewhere (its old folder gone) reads the bundle of the same name in its own bundles/."""
    from shelfwise.governance._model_versions import bundle_path

    (tmp_path / "w" / "bundles" / "B1").mkdir(parents=True)
    assert bundle_path(tmp_path / "w", "/gone/w/bundles/B1") == str(tmp_path / "w" / "bundles" / "B1")
    # a bundle not in this workdir: where it would be here (gone), never another workdir's
    # folder of that name (a copy put the original's bundle live after retention removed its own)
    (tmp_path / "other" / "bundles" / "B2").mkdir(parents=True)
    assert bundle_path(tmp_path / "w", str(tmp_path / "other" / "bundles" / "B2")) == str(
        tmp_path / "w" / "bundles" / "B2"
    )
    # the path as registered when it is this workdir's own
    inside = tmp_path / "w" / "elsewhere" / "B3"
    inside.mkdir(parents=True)
    assert bundle_path(tmp_path / "w", str(inside)) == str(inside)


def _console_client(tmp_path: Path, service: Any = None) -> tuple[Any, str]:
    """An in-process console (single-user mode: the test client counts as loopback) and the
    CSRF token of its session; `service` stands for the loaded `Service` (None: loading)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.web._routes import console_router

    app = FastAPI()
    app.include_router(console_router(tmp_path, lambda: service))
    c = TestClient(app)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/data/quarantine").text)
    assert token is not None
    return c, token.group(1)


def test_an_audit_entry_cut_in_the_list_is_shown_whole_on_its_page(tmp_path: Path) -> None:
    """The list cuts details at 220 characters (an erasure's counts, a promotion's gates ran
    past it and were lost to the reader): a cut entry links to its page, which shows it whole,
    read from its line in the log."""
    from shelfwise.governance import AuditLog

    log = AuditLog(tmp_path)
    log.append("rules.change", actor="p0", version=1)
    tables = {f"table_{i:02d}": i for i in range(40)}
    log.append("privacy.erase", actor="stu", warehouse=tables, note="é<b>")
    c, _ = _console_client(tmp_path)
    listing = c.get("/console/audit").text
    assert listing.count('class="whole"') == 1 and 'href="/console/audit/2">whole entry' in listing
    page = c.get("/console/audit/2")
    assert page.status_code == 200 and '"table_39": 39' in html.unescape(page.text)
    assert "é&lt;b&gt;" in page.text  # escaped, not markup
    assert c.get("/console/audit/9").status_code == 404
    log.append("rules.change", actor="p1", version=2)  # read incrementally: byte offsets still right
    assert '"version": 2' in html.unescape(c.get("/console/audit/3").text)
    assert '"table_39"' in html.unescape(c.get("/console/audit/2").text)


def test_an_unreadable_line_is_fixed_by_typing_its_row_beside_its_text(tmp_path: Path) -> None:
    """A line that never became a row has only its text: the row page offered "Fix and
    re-process" with no field to fix. It shows the text and the contract's columns to type the
    row in; the typed row takes the governed path and is released."""
    from shelfwise import Shop
    from shelfwise.governance import Quarantine

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,price\np1,Hat,3\np2,Scarf,4\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        "u1,p1,view,2024-02-01T10:00:00\n"
        'u2,"p2,view,2024-02-01T10:05:00\n'  # a quote that never closes
    )
    Shop(tmp_path / "w").ingest(data)
    (row,) = Quarantine(tmp_path / "w").list("events", "malformed_row", limit=None)
    qid = row["quarantine_id"]
    c, token = _console_client(tmp_path / "w")
    page = c.get(f"/console/data/quarantine/{qid}").text
    assert 'id="unread"' in page and 'u2,"p2,view,2024-02-01T10:05:00' in html.unescape(page)
    assert all(f'name="f.{col}"' in page for col in ("user_id", "product_id", "event_type", "timestamp"))
    typed = {
        "f.user_id": "u2",
        "f.product_id": "p2",
        "f.event_type": "view",
        "f.timestamp": "2024-02-01T10:05:00",
    }
    r = c.post(
        f"/console/data/quarantine/{qid}/reprocess", data={"csrf": token, **typed}, follow_redirects=False
    )
    assert r.status_code == 303 and "released" in r.headers["location"], r.text[:800]
    assert (
        Quarantine(tmp_path / "w").list("events", "malformed_row", "released", limit=None)[0]["quarantine_id"]
        == qid
    )


def test_a_bulk_re_process_tells_what_happened_to_each_table(tmp_path: Path, monkeypatch) -> None:
    """Each table is its own governed run that commits: when the second fails, the page says the
    first's rows were re-processed (they were: released and audited) and the second's were not."""
    from shelfwise import governance
    from shelfwise.errors import ShelfwiseError

    open_rows = [
        {"quarantine_id": 1, "table": "events", "raw": {"event_id": "e1"}},
        {"quarantine_id": 2, "table": "events", "raw": {"event_id": "e2"}},
        {"quarantine_id": 3, "table": "products", "raw": {"product_id": "p1"}},
    ]
    calls: list[tuple[str, int]] = []
    failure: list[Exception] = []
    skip: list[bool] = []

    class FakeQuarantine:
        def __init__(self, workdir: Path) -> None:
            pass

        def list(self, *args: Any, **kwargs: Any) -> list[dict]:
            return open_rows

        def reprocess(self, table: str, fixed_file: Path, actor: str | None = None) -> dict:
            n = len(Path(fixed_file).read_text().splitlines())
            calls.append((table, n))
            if table == "products" and failure:
                raise failure[0]
            if skip:  # duplicate keys and unreadable lines, ticked as they are: left open
                return {
                    "released": 0,
                    "still_quarantined": 0,
                    "skipped": n,
                    "skipped_reason": "as they are: no",
                }
            return {"released": n, "still_quarantined": 0}

    monkeypatch.setattr(governance, "Quarantine", FakeQuarantine)
    c, token = _console_client(tmp_path)
    form = {"csrf": token, "q.1": "1", "q.2": "1", "q.3": "1"}
    for exc, why in [
        (_data.WarehouseBusy("Conflicting lock is held"), "warehouse busy: Conflicting lock is held"),
        (ShelfwiseError("contract v3 refuses it"), "not done: contract v3 refuses it"),
    ]:
        calls.clear()
        failure[:] = [exc]
        r = c.post("/console/data/quarantine/reprocess", data=form, follow_redirects=False)
        assert r.status_code == 303, r.text
        done = parse_qs(urlsplit(r.headers["location"]).query)["done"][0]
        assert done == (
            "events: 2 rows re-processed, 2 released into curated, 0 still quarantined; "
            f"products: 1 row NOT re-processed, still open ({why})"
        )
        assert calls == [("events", 2), ("products", 1)]
    # every table failed: nothing was done, the error page as before
    r = c.post("/console/data/quarantine/reprocess", data={"csrf": token, "q.3": "1"}, follow_redirects=False)
    assert r.status_code == 409 and "contract v3 refuses it" in r.text
    # all done: the one-line total as before
    failure.clear()
    r = c.post("/console/data/quarantine/reprocess", data={"csrf": token, "q.3": "1"}, follow_redirects=False)
    done = parse_qs(urlsplit(r.headers["location"]).query)["done"][0]
    assert done == "1 row re-processed: 1 released into curated, 0 still quarantined (see their new reasons)"
    # rows the governed path leaves open as they are: never "re-processed" (nothing ran)
    skip.append(True)
    r = c.post("/console/data/quarantine/reprocess", data={"csrf": token, "q.3": "1"}, follow_redirects=False)
    done = parse_qs(urlsplit(r.headers["location"]).query)["done"][0]
    assert done == "1 row NOT re-processed, left open (as they are: no)", done
    r = c.post("/console/data/quarantine/reprocess", data=form, follow_redirects=False)  # two tables
    done = parse_qs(urlsplit(r.headers["location"]).query)["done"][0]
    assert done == (
        "events: 2 rows NOT re-processed, left open (as they are: no); "
        "products: 1 row NOT re-processed, left open (as they are: no)"
    ), done


def test_the_quarantine_pager_offers_a_next_page_only_when_a_row_follows(tmp_path: Path, monkeypatch) -> None:
    """One row more than a page is read to know: 4 open rows in pages of 2 are two pages (the
    second without a "next"), in pages of 4 one page, in pages of 3 a page and a row."""
    from shelfwise import governance

    planted = [
        {
            "quarantine_id": i,
            "run_id": "r",
            "table": "events",
            "source_file": "in/events.csv",
            "source_line": i,
            "reason": "unknown_product",
            "reasons": ["unknown_product"],
            "detail": "",
            "raw": {"n": i},
            "status": "open",
        }  # fmt: skip
        for i in range(1, 5)
    ]

    class FakeQuarantine:
        def __init__(self, workdir: Path) -> None:
            pass

        def summary(self) -> list[dict]:
            return [{"table": "events", "reason": "unknown_product", "status": "open", "rows": 4}]

        def list(self, table=None, reason=None, status="open", limit=100, after=None) -> list[dict]:
            return [r for r in planted if after is None or r["quarantine_id"] > after][:limit]

    monkeypatch.setattr(governance, "Quarantine", FakeQuarantine)
    (tmp_path / "warehouse.duckdb").write_bytes(b"planted")
    c, _ = _console_client(tmp_path)

    def page(url: str) -> tuple[list[int], str | None]:
        html = c.get(url).text
        ids = [int(x) for x in re.findall(r'<tr class="qrow" data-qid="(\d+)"', html)]
        more = re.search(r'<a id="more-rows" href="([^"]+)"', html)
        return ids, more.group(1).replace("&amp;", "&") if more else None

    ids, more = page("/console/data/quarantine?limit=2")
    assert ids == [1, 2] and more is not None and "after=2" in more
    assert page(more) == ([3, 4], None)  # exactly `limit` rows remained: no empty third page
    assert page("/console/data/quarantine?limit=4") == ([1, 2, 3, 4], None)
    ids, more = page("/console/data/quarantine?limit=3")
    assert ids == [1, 2, 3] and more is not None and page(more) == ([4], None)


def _figures_kept_then_new_data(tmp_path: Path) -> Path:
    """A workdir whose kept console figures are of the previous data (a delivery since)."""
    from shelfwise.governance import Ingestor

    data, work = tmp_path / "d", tmp_path / "w"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,category\nP1,mug,K\nP2,pot,K\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nu1,P1,view,2024-03-01T10:00:00Z\n"
        "u2,P2,view,2024-03-01T10:01:00Z\n"
    )
    Ingestor(work).run(data)
    assert _data.keep_figures(work) == []
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nu3,P2,view,2024-03-02T10:00:00Z\n"
    )
    Ingestor(work, mode="append").run(data)
    return work


@pytest.mark.slow  # two small ingests (a minute on a loaded machine)
def test_keeping_the_figures_after_new_data_leaves_no_thread_reading_the_warehouse(
    tmp_path: Path, monkeypatch
) -> None:
    """A training run after the first (`train --append`, a retrain) finds the kept figures of
    the previous data. `keep_figures` computes the new ones in its own thread and waits for
    them: left to a page's background refresh (waited for 0.15 s), the process went on to exit
    with a thread still in DuckDB, which aborted it ("terminate called without an active
    exception", exit -6, after the bundle and the JSON were written), and kept the old figures."""
    import threading

    work = _figures_kept_then_new_data(tmp_path)
    _data._CACHE.clear()  # a new process (`shelfwise train`)
    started: list[str] = []
    real = threading.Thread

    class Recorded(real):  # type: ignore[misc,valid-type]
        def start(self) -> None:
            started.append(self.name)
            super().start()

    monkeypatch.setattr(_data.threading, "Thread", Recorded)
    # a page's budget spent: a background refresh would not be waited for at all
    token = _data.PAGE_DEADLINE.set(0.0)
    try:
        assert _data.keep_figures(work) == []
    finally:
        _data.PAGE_DEADLINE.reset(token)
    assert started == []  # computed here, no thread left running
    stamp = _data._stamp(work, *_data.WAREHOUSE)
    kept = json.loads((work / "state" / "console" / "catalog.json").read_text())
    assert kept["stamp"][: len(stamp)] == json.loads(json.dumps(stamp))  # the new data's figures


def test_an_app_with_the_console_shuts_down_after_its_background_threads(tmp_path, monkeypatch) -> None:
    """The console warms its pages in a background thread of a started app. When the app shuts
    down (a test's client leaving, an embedding application stopping) the warm-up stops before
    its next part and the shutdown waits for the part it is in: a thread still inside DuckDB when
    the interpreter finalizes aborts the process (exit 134), after every test passed."""
    import threading

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.web import mount_console

    inside, computed = threading.Event(), []

    def slow_overview(workdir: Path) -> None:  # the first part: in it when the app stops
        inside.set()
        time.sleep(1.0)
        computed.append("overview")

    monkeypatch.setattr(_data, "overview", slow_overview)
    for name in ("models", "experiments", "lineage_graph"):
        monkeypatch.setattr(_data, name, lambda workdir, _n=name: computed.append(_n))
    monkeypatch.setattr(_data, "quarantine", lambda *a: computed.append("quarantine"))
    monkeypatch.setattr(_data, "search_report", lambda *a: computed.append("search_report"))
    app = FastAPI()
    mount_console(app, tmp_path, lambda: None)
    with TestClient(app):
        assert inside.wait(30)
    assert computed == ["overview"]  # the part it was in finished; the others were not begun
    assert not [t.name for t in threading.enumerate() if t.name.startswith("console-") and t.is_alive()]


def test_the_nav_links_the_audit_page_only_for_who_may_read_it(tmp_path: Path) -> None:
    """An analyst saw "Audit" in the nav and followed it to a refusal (logged as access.denied);
    a steward sees it. A refused page of something that does not exist is titled "Not found"."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.governance import People
    from shelfwise.web._routes import console_router

    people = People(tmp_path)
    people.add("ada", "admin")
    keys = {
        who: people.add(who, role, people.load()["ada"])
        for who, role in (("ann", "analyst"), ("stu", "steward"))
    }
    app = FastAPI()
    app.include_router(console_router(tmp_path, lambda: None))

    def nav_of(who: str, path: str = "/console/lineage?served=rec_nope") -> str:
        with TestClient(app, base_url="http://127.0.0.1") as c:
            form = c.get("/console/login").text
            csrf = re.search(r'name="csrf" value="([^"]*)"', form).group(1)  # type: ignore[union-attr]
            r = c.post(
                "/console/login",
                data={"name": who, "api_key": keys[who], "csrf": csrf, "next": "/console/lineage"},
                headers={"origin": "http://127.0.0.1"},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text[:500]
            page = c.get(path)
            return f"{page.status_code} {page.headers['content-type']}\n{page.text}"

    analyst = nav_of("ann")
    assert 'href="/console/audit"' not in analyst
    assert 'href="/console/search"' in analyst and 'href="/console/users"' in analyst
    steward = nav_of("stu")
    assert 'href="/console/audit"' in steward
    # a steward may not search or look at shoppers: no link to either (each was a refusal)
    assert 'href="/console/search"' not in steward and 'href="/console/users"' not in steward
    assert "<h1>Not found</h1>" in steward, steward[-1500:]
    # an unknown console address is the console's page, not the API's raw JSON
    unknown = nav_of("stu", "/console/no-such-page")
    assert unknown.startswith("404 text/html") and "<h1>Not found</h1>" in unknown
    assert "no console page /console/no-such-page" in unknown
    # a crafted link cannot make the console say something was done
    crafted = nav_of("stu", "/console/models?done=version+3+is+production&sig=0123")
    assert crafted.startswith("200") and "version 3 is production" not in crafted


def test_the_insights_page_says_what_its_numbers_rest_on() -> None:
    """The churn evaluation shows its protocol, calls its error a mean absolute error and warns
    when the AUC is below chance; the model's at-risk count says it is not the RFM segment
    "at_risk"; a demand run where no series could be cross-validated does
    not say its models were "chosen by cross-validation"."""
    from shelfwise.web._routes import _templates

    block = _templates().env.get_template("insights.html").blocks["main"]
    env = _templates().env
    customers = {
        "customers": 281, "buyers": 281, "model": {"model": "bgnbd"}, "segments": [],
        "mean_churn_risk_buyers": 0.2, "at_risk_count": 10, "at_risk_threshold": 0.6,
        "evaluation": {"computable": True, "customers": 281, "model": "bgnbd", "bgnbd": None,
                       "shelfwise": {"churn_auc": 0.366, "mae_expected_orders": 4.6},
                       "protocol": "fitted on the events up to the cut, scored on the orders after it"},
    }  # fmt: skip
    model = {"series": 3, "last_week": "2026-11-23", "season_length": 1, "censored_weeks": 0,
             "cv_windows": 0, "cv_h": 0, "chosen": {"RecentMean": 3}, "calibration": []}  # fmt: skip
    demand = {
        "model": model,
        "top": [],
        "replenishment": {"service_level": 0.95, "review_days": 7, "rows": []},
    }

    def page(**ctx: Any) -> str:
        return "".join(block(env.get_template("insights.html").new_context(ctx)))

    html = page(customers=customers, demand=demand, audiences=[])
    assert "mean absolute error of expected orders 4.6" in html
    # the model's at-risk count is not the RFM segment of that name (they read as a conflict)
    assert "10 buyers with a churn risk of 60.0% or more (the churn model's" in html
    assert "not the RFM segment <code>at_risk</code>" in html
    assert (
        "ranks churners worse than chance" in html and "Protocol: fitted on the events up to the cut" in html
    )
    assert "chosen by cross-validation" not in html and "no series long enough to cross-validate" in html
    model.update(cv_windows=3, cv_h=13)
    html = page(customers=customers, demand=demand, audiences=[])
    assert "models chosen by cross-validation (3 rolling origins of 13 weeks): RecentMean 3" in html
    customers["evaluation"]["shelfwise"]["churn_auc"] = 0.71  # type: ignore[index]
    assert "worse than chance" not in page(customers=customers, demand=demand, audiences=[])
    # the intervals' coverage after calibration and out of sample, a factor at its bound and a
    # baseline that beat the forecast on the held-out window are said (the CLI said them; the
    # page showed the coverage before calibration alone)
    model["calibration"] = [
        {"group": "smooth, season 13", "series": 16, "factor": 4.0, "held_out_coverage_raw": 0.688,
         "held_out_errors": 208, "held_out_coverage": 0.77, "out_of_sample_coverage": 0.71, "capped": True,
         "held_out_mae": {"served": 22.41, "recent_mean_13w": 20.54, "seasonal_naive": 25.0}},
    ]  # fmt: skip
    model["series"] = 17
    demand["top"] = [{"id": f"P{i}", "model": "AutoETS", "recent_units": 1, "forecast": [], "censored": []}
                     for i in range(12)]  # fmt: skip
    html = page(customers=customers, demand=demand, audiences=[])
    assert "77.0% after (on the window the factor was learned from)" in html
    assert "71.0% with the factor learned one window earlier (out of sample)" in html
    assert "the factor hit its bound" in html
    assert "a baseline did better: recent_mean_13w</strong>" in html and "seasonal_naive 25.00" in html
    assert "The 12 of 17 product series with the most units" in html
    model["calibration"][0]["held_out_mae"]["recent_mean_13w"] = 30.0  # type: ignore[index]
    model["calibration"][0]["capped"] = False  # type: ignore[index]
    html = page(customers=customers, demand=demand, audiences=[])
    assert "did better" not in html and "hit its bound" not in html
    # a report written before those fields (the console's templates refuse a missing key)
    model["calibration"] = [{"group": "all", "series": 3, "factor": 1.2, "held_out_coverage_raw": 0.8,
                             "held_out_errors": 30}]  # fmt: skip
    assert "80.0% of 30 held-out weeks fell inside" in page(customers=customers, demand=demand, audiences=[])


def test_the_insights_pages_next_four_weeks_start_after_as_of() -> None:
    """A shop whose last trading day was a Wednesday (as of 2018-12-26): its forecasts start on
    that week's Monday, already begun; "next 4 weeks" and the first week's interval are of the
    weeks after as-of (the table summed 24 Dec .. 14 Jan: 103 units where 4 are ahead)."""
    from shelfwise.web._routes import _templates

    env = _templates().env
    block = env.get_template("insights.html").blocks["main"]
    weeks = ["2018-12-24", "2018-12-31", "2019-01-07", "2019-01-14", "2019-01-21", "2019-01-28"]
    units = [100.0, 1.0, 1.0, 1.0, 1.0, 50.0]
    forecast = [[w, u, u - 0.5, u + 0.5] for w, u in zip(weeks, units, strict=True)]
    model = {"series": 1, "last_week": "2018-12-17", "season_length": 1, "censored_weeks": 0,
             "cv_windows": 0, "cv_h": 0, "chosen": {"RecentMean": 1}, "calibration": []}  # fmt: skip
    demand = {
        "as_of": "2018-12-26T23:59:59.999999",
        "model": model,
        "top": [
            {"id": "P1", "model": "RecentMean", "recent_units": 13, "forecast": forecast, "censored": []}
        ],
        "replenishment": {"service_level": 0.95, "review_days": 7, "rows": []},
    }
    ctx = {"customers": None, "demand": demand, "audiences": []}
    html = "".join(block(env.get_template("insights.html").new_context(ctx)))
    row = html.split('<tr data-product="P1">')[1].split("</tr>")[0]
    cells = [c.split("</td>")[0] for c in row.split(">", 1)[1].split("<td")[1:]]
    assert cells[2].endswith(">4.0") and cells[3].endswith(">0.5 – 1.5"), cells
    assert "(from the first Monday after 2018-12-26)" in html


def test_the_protocol_line_says_what_a_global_time_split_targets() -> None:
    from shelfwise.web._data import protocol_said

    llo = {"split": "leave_last_out", "split_description": "leave-last-out: per user ...",
           "candidates": "full ranking (the 4,965 listed items)", "users": 1940, "exclude_seen": True,
           "bootstrap_rounds": 1000}  # fmt: skip
    said = protocol_said(llo)
    assert said is not None and said.startswith(
        "leave-last-out; full ranking (the 4,965 listed items); 1,940 test users"
    )
    gt = {"split": "global_time", "candidates": "sampled: 100 random unseen items",
          "split_description": "global time split: fitted before 2026-08-01; targets: every item each user met after the cut"}  # fmt: skip
    assert protocol_said(gt) == (
        "global time split (targets: every item each user met after the cut); sampled: 100 random unseen items"
    )
    assert protocol_said({}) is None and protocol_said(None) is None


def test_every_nav_page_needs_the_permission_its_link_is_shown_for() -> None:
    """The nav's permission per page (`NAV_NEEDS`) is the one the page's route asks
    (`ctx.need`): read from the routes' source, so a page that changes its permission cannot
    leave the nav offering a refusal."""
    import inspect

    from shelfwise.web import _ask_page, _insights_page, _privacy_page, _routes

    source = "".join(inspect.getsource(m) for m in (_routes, _insights_page, _ask_page, _privacy_page))
    for key, _, href in _routes.NAV:
        path = href.removeprefix(_routes.PREFIX) or "/"
        at = source.index(f'@router.get("{path}"')
        need = re.search(r'ctx\.need\("([^"]+)"\)', source[at:]).group(1)  # type: ignore[union-attr]
        assert _routes.NAV_NEEDS[key] == need, (key, need)


def test_lineage_tells_runs_of_one_minute_apart_and_says_a_temporary_file_is_gone(tmp_path: Path) -> None:
    """Runs were labelled by their UUIDv7's first 8 hex digits, its time to ~65 s: an ingest and
    a re-process a minute apart read "ingest 01a246fb" and "reprocess 01a246fb". They are
    labelled by job, minute and the id's (random) end; a file input no longer on disk (a run's
    staging file, a console fix) says it is gone instead of looking like a source to open."""
    w = tmp_path / "w"
    (w / "bundles" / "B1").mkdir(parents=True)
    (w / "bundles" / "CURRENT").write_text("B1")
    kept = tmp_path / "events.csv"
    kept.write_text("user_id\n")
    a, b = "01a246fb-0000-7000-8000-00000000aaaa", "01a246fb-0001-7000-8000-00000000bbbb"
    (w / "bundles" / "B1" / "manifest.json").write_text(json.dumps({
        "default_model": "popularity", "lineage": {"train_run_id": "01a246fc-0000-7000-8000-00000000cccc"},
        "data_versions": {"events": {"version": 2, "run_id": b, "rows": 3}, "products": {"version": 1, "run_id": a}},
    }))  # fmt: skip
    (w / "lineage").mkdir()
    events = [
        {"eventType": "COMPLETE", "eventTime": "2026-12-05T10:00:01+00:00", "run": {"runId": a},
         "job": {"name": "shelfwise.ingest"}, "inputs": [{"namespace": "file", "name": str(kept)}]},
        {"eventType": "COMPLETE", "eventTime": "2026-12-05T10:00:40+00:00", "run": {"runId": b},
         "job": {"name": "shelfwise.quarantine.reprocess"},
         "inputs": [{"namespace": "file", "name": str(tmp_path / "gone" / "fixed.jsonl")}]},
    ]  # fmt: skip
    (w / "lineage" / "openlineage.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    g = _data.lineage_graph(w)
    labels = {n["id"]: n["label"] for n in g["nodes"]}
    assert (
        labels[f"run:{a}"] == "ingest 12-05 10:00 ·aaaa"
        and labels[f"run:{b}"] == "reprocess 12-05 10:00 ·bbbb"
    )
    assert (
        labels[f"file:{kept}"] == "events.csv"
        and labels[f"file:{tmp_path / 'gone' / 'fixed.jsonl'}"] == "fixed.jsonl (gone)"
    )
    svg = _data.lineage_svg(g)
    assert "reprocess 12-05 10:00 ·bbbb" in svg  # drawn whole


def test_the_experiment_chart_draws_intervals_and_the_page_states_the_protocols(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    """The experiments' CTR bars had no intervals (the table beside them had) and the page
    stated no experiment protocol (the CLI's report does); the search footnote lost its labels
    ("share of logged searches ...; share of ..." with nothing saying which is which). In
    Chromium: the bars and their whiskers are drawn without a script error."""
    from fastapi import FastAPI

    from shelfwise.web._routes import mount_console
    from tests.serving.conftest import serve_in_thread

    variants = {
        "control": {"users": 80, "exposures": 400, "ctr": 0.1, "ctr_ci95": [0.07, 0.13], "add_to_cart_rate": 0.02,
                    "conversion": 0.05, "revenue_per_user": 3.0, "revenue_per_user_ci95": [2.0, 4.0]},
        "new": {"users": 80, "exposures": 400, "ctr": 0.14, "ctr_ci95": [0.11, 0.35], "add_to_cart_rate": 0.03,
                "conversion": 0.06, "revenue_per_user": 3.5, "revenue_per_user_ci95": [2.5, 4.5]},
    }  # fmt: skip
    report = {
        "protocol": "unit = user (pseudonym); 95% CIs: Wilson",
        "experiments": {"recx": {"variants": variants}},
    }
    monkeypatch.setattr(_data, "experiments", lambda w: {"configured": [], "report": report})
    from shelfwise.search._analytics import PROTOCOL

    sr = {"logged": {"searches": 1, "distinct_queries": 1, "top_queries": []},
          "served": {"pages": 0, "zero_result_pages": 0, "top_queries": [], "zero_result_queries": []},
          "no_keyword_match": [], "protocol": dict(PROTOCOL)}  # fmt: skip
    monkeypatch.setattr(_data, "search_report", lambda *a: sr)
    app = FastAPI()
    mount_console(app, tmp_path, lambda: None)  # (with its static files: uPlot)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        with serve_in_thread(app) as base:
            page.goto(base + "/console/analytics")
            page.wait_for_selector(".chart canvas")
            foot = page.locator("#search-protocol").inner_text()
            assert (
                foot.startswith("click-through (logs): share of logged searches followed by a click ")
                and "click-through (served): share of served result pages a click " in foot
                and "CTR" not in foot
            )
            assert "protocol: unit = user" in page.locator("#experiment-protocol").inner_text()
            chart = json.loads(page.locator(".chart[data-chart]").last.get_attribute("data-chart"))
            assert chart["ci"] == [[0.07, 0.13], [0.11, 0.35]]
            assert page.locator(".chart .uplot").count() >= 1 and errors == []  # drawn (whiskers' hook ran)
    finally:
        page.close()


def test_every_experiment_rate_on_the_analytics_page_has_its_interval_and_denominator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    """The analytics page gave CTR its 95% interval but add-to-cart and conversion bare (the
    report, `experiments report`, has all three): each rate now carries the report's interval
    and what it is a share of, and a note says how they are computed. Known answers: 1 of 5
    users (one list each) carts and buys: conversion's Wilson interval of 1/5 is [0.0362,
    0.6245]; add-to-cart's delta-method interval is clipped at 0 and widened to that Wilson
    bound (never narrower than Wilson over exposures)."""
    from fastapi import FastAPI

    from shelfwise.serving._experiments import experiment_summary
    from shelfwise.web._routes import mount_console
    from tests.serving.conftest import serve_in_thread

    ex = [("e", "control", f"c{i}", f"cu{i}", "b1", 0.0) for i in range(5)]
    ex += [("e", "treatment", f"t{i}", f"tu{i}", "b1", 0.0) for i in range(4)]
    by_list = {
        "c0": [["cu0", 1.0, "click", 0.0], ["cu0", 1.0, "add_to_cart", 0.0], ["cu0", 2.0, "purchase", 20.0]],
        "t0": [["tu0", 1.0, "click", 0.0], ["tu0", 1.0, "add_to_cart", 0.0]],
    }
    report = experiment_summary(ex, by_list)
    control = report["experiments"]["e"]["variants"]["control"]
    assert control["conversion_ci95"] == pytest.approx((0.0362, 0.6245), abs=5e-5)
    assert control["add_to_cart_ci95"] == pytest.approx((0.0, 0.6245), abs=5e-5)
    monkeypatch.setattr(_data, "experiments", lambda w: {"configured": [], "report": report})
    sr = {"logged": {"searches": 0, "distinct_queries": 0, "top_queries": []},
          "served": {"pages": 0, "zero_result_pages": 0, "top_queries": [], "zero_result_queries": []},
          "no_keyword_match": [], "protocol": {}}  # fmt: skip
    monkeypatch.setattr(_data, "search_report", lambda *a: sr)
    app = FastAPI()
    mount_console(app, tmp_path, lambda: None)
    page = browser.new_page()
    try:
        with serve_in_thread(app) as base:
            page.goto(base + "/console/analytics")
            rows = {
                cells[0]: cells[3:6]  # CTR, add-to-cart, conversion
                for cells in (
                    r.locator("td").all_inner_texts() for r in page.locator("table.experiment tr").all()
                )
                if cells
            }
            assert rows["control"] == [
                "0.2000 [0.0000, 0.6245] of 5 exposures",
                "0.2000 [0.0000, 0.6245] of 5 exposures",
                "0.2000 [0.0362, 0.6245] of 5 users",
            ]
            assert rows["treatment"][1:] == [
                "0.2500 [0.0000, 0.7400] of 4 exposures",
                "0.0000 [0.0000, 0.4899] of 4 users",
            ]
            note = page.locator(".rate-intervals").inner_text()
            assert "95% interval" in note and "delta method" in note and "Wilson" in note
    finally:
        page.close()


def test_the_overviews_traffic_rates_have_intervals_with_the_shopper_as_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    """The overview's click-through, engaged and conversion per list were bare. Each has its
    95% interval now, by the experiment report's per-exposure rule (the delta method over
    shoppers, `_ratio_interval`). Known answer: two shoppers with four lists each, one clicks all
    four, the other none: 50% of 8 lists, but with two shoppers the interval is [0%, 100%]
    (Wilson over the 8 lists as if independent would say [21.5%, 78.5%]); one list bought."""
    import json

    from fastapi import FastAPI

    from shelfwise.web._routes import mount_console
    from tests.serving.conftest import serve_in_thread

    folder = tmp_path / "spool" / "exposures"
    folder.mkdir(parents=True)
    recs = [
        {
            "id": f"L{i}",
            "kind": "recommendations",
            "bundle": "b1",
            "user": "u_a" if i < 4 else "u_b",
            "at": 1000.0,
        }
        for i in range(8)
    ]
    (folder / "t-h-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    attributed = [(f"L{i}", "u_a", False, 1100.0, (), "click") for i in range(4)]
    attributed.append(("L0", "u_a", True, 1100.0, (), "purchase"))
    monkeypatch.setattr(_data, "_TALLIES", {})
    traffic = _data._traffic(tmp_path, attributed)
    got = traffic["surfaces"][0]
    assert (got["served"], got["ctr"], got["conversion"]) == (8, 0.5, 0.125)
    assert got["ctr_ci95"] == (0.0, 1.0) and got["engaged_ci95"] == (0.0, 1.0)
    o = {"datasets": [], "trend": {}, "production": [], "candidates": [], "traffic": traffic,
         "audit": {"entries": 0, "ok": True}, "alerts": []}  # fmt: skip
    monkeypatch.setattr(_data, "overview", lambda workdir: o)
    app = FastAPI()
    mount_console(app, tmp_path, lambda: None)
    page = browser.new_page()
    try:
        with serve_in_thread(app) as base:
            page.goto(base + "/console/")
            row = page.locator('#traffic tr[data-surface="recommendations"]')
            assert row.locator("td.ctr").inner_text() == "50.0%"
            assert row.locator("td.ctr-ci").inner_text() == "[0.0%, 100.0%]"
            lo, hi = got["conversion_ci95"]
            assert row.locator("td.conversion-ci").inner_text() == f"[{100 * lo:.1f}%, {100 * hi:.1f}%]"
            assert "shopper is the unit" in page.locator("#traffic-intervals").inner_text()
    finally:
        page.close()


def test_the_analytics_page_names_each_search_rate_by_what_it_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    """The search tables called a share of searches (pages) followed (named) by a click, a cart
    or a purchase "session CTR" ("CTR"): each rate is shown under what it counts, the engaged
    share (the old `session_ctr`, `attributed_ctr`) as "engaged". Known answers: 8 served pages
    of "Sofa", one clicked, one carted, one bought, one clicked and bought."""
    from fastapi import FastAPI

    from shelfwise.search._analytics import PROTOCOL, add_served_search, served_search_summary
    from shelfwise.web._routes import mount_console
    from tests.serving.conftest import serve_in_thread

    per_query: dict = {}
    for i in range(8):
        add_served_search(per_query, {"query": "Sofa", "items": ["P1"], "offset": 0, "id": f"s{i}", "user": "u_a",
                                      "at": 1000.0})  # fmt: skip
    kinds = {"s0": ["click"], "s1": ["add_to_cart"], "s2": ["purchase"], "s3": ["click", "purchase"]}
    served = served_search_summary(
        per_query, [(sid, "u_a", 1100.0, (), k) for sid, ks in kinds.items() for k in ks]
    )
    logged = {"query": "sofa", "typed_query": "Sofa", "searches": 5, "users": 4, "session_ctr": 0.75,
              "session_conversion": 0.25, "searches_with_session": 4, "session_click_through": 0.25,
              "session_add_to_cart_rate": 0.5, "session_engaged": 0.75}  # fmt: skip
    sr = {"logged": {"searches": 5, "distinct_queries": 1, "top_queries": [logged]}, "served": served,
          "no_keyword_match": [], "protocol": dict(PROTOCOL)}  # fmt: skip
    monkeypatch.setattr(_data, "search_report", lambda *a: sr)
    monkeypatch.setattr(_data, "experiments", lambda w: {"configured": [], "report": {"experiments": {}}})
    app = FastAPI()
    mount_console(app, tmp_path, lambda: None)
    page = browser.new_page()
    try:
        with serve_in_thread(app) as base:
            page.goto(base + "/console/analytics")
            for table in ("#top-queries", "#served-queries"):
                heads = page.locator(f"{table} th").all_inner_texts()
                assert heads[-4:] == ["click-through", "add-to-cart rate", "conversion", "engaged"], heads
                assert not [h for h in heads if "CTR" in h]
            cells = page.locator("#top-queries tr").nth(1).locator("td").all_inner_texts()
            assert cells == ["Sofa", "5", "4", "4", "25.0%", "50.0%", "25.0%", "75.0%"]
            cells = page.locator("#served-queries tr").nth(1).locator("td").all_inner_texts()
            assert [c.split(" [")[0] for c in cells] == ["Sofa", "8", "25.0%", "12.5%", "25.0%", "50.0%"]
            assert "CTR" not in page.locator("h2").all_inner_texts().__str__()
    finally:
        page.close()


def test_the_analytics_pages_search_rates_have_their_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    """The search tables' rates were bare: each is shown with its 95% interval from the report
    (the user as unit, `ratio_interval`), beside its denominator (searches with a session, pages
    served), and a note says how. Known answer: 8 pages of two shoppers, one of whom clicked all
    four of theirs: 50.0% [0.0%, 100.0%]."""
    from fastapi import FastAPI

    from shelfwise.search._analytics import PROTOCOL, add_served_search, served_search_summary
    from shelfwise.web._routes import mount_console
    from tests.serving.conftest import serve_in_thread

    per_query: dict = {}
    for i in range(8):
        add_served_search(per_query, {"query": "lamp", "items": ["P1"], "offset": 0, "id": f"s{i}",
                                      "user": "u_a" if i < 4 else "u_b", "at": 1000.0})  # fmt: skip
    served = served_search_summary(per_query, [(f"s{i}", "u_a", 1100.0, (), "click") for i in range(4)])
    logged = {"query": "lamp", "typed_query": "lamp", "searches": 4, "users": 4, "session_ctr": 0.25,
              "session_conversion": 0.25, "searches_with_session": 4, "session_click_through": 0.25,
              "session_add_to_cart_rate": 0.0, "session_engaged": 0.25,
              "session_click_through_ci95": [0.0, 0.74], "session_add_to_cart_rate_ci95": [0.0, 0.4899],
              "session_conversion_ci95": [0.0, 0.74], "session_engaged_ci95": [0.0, 0.74]}  # fmt: skip
    sr = {"logged": {"searches": 4, "distinct_queries": 1, "top_queries": [logged]}, "served": served,
          "no_keyword_match": [], "protocol": dict(PROTOCOL)}  # fmt: skip
    monkeypatch.setattr(_data, "search_report", lambda *a: sr)
    monkeypatch.setattr(_data, "experiments", lambda w: {"configured": [], "report": {"experiments": {}}})
    app = FastAPI()
    mount_console(app, tmp_path, lambda: None)
    page = browser.new_page()
    try:
        with serve_in_thread(app) as base:
            page.goto(base + "/console/analytics")
            row = page.locator("#served-queries tr").nth(1)
            assert row.locator("td.ctr").inner_text() == "50.0% [0.0%, 100.0%]"
            assert row.locator("td.add-to-cart").inner_text() == "0.0% [0.0%, 32.4%]"  # Wilson's 0 of 8
            row = page.locator("#top-queries tr").nth(1)
            assert row.locator("td.with-session").inner_text() == "4"
            assert row.locator("td.ctr").inner_text() == "25.0% [0.0%, 74.0%]"
            assert row.locator("td.add-to-cart").inner_text() == "0.0% [0.0%, 49.0%]"
            note = page.locator("#search-intervals").inner_text()
            assert "95% interval" in note and "user is the unit" in note and "searches with a session" in note
    finally:
        page.close()


def test_the_access_download_of_an_id_in_any_script_is_named_in_ascii(tmp_path: Path) -> None:
    """`filename="access-用户1.json"` made Starlette raise UnicodeEncodeError (a 500) after the
    export was written and audited: the header holds Latin-1 only."""
    from shelfwise import Shop

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\np1,Hat\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n用户1,p1,view,2024-02-01T10:00:00\n"
    )
    Shop(tmp_path / "w").ingest(data)
    c, token = _console_client(tmp_path / "w")
    r = c.post("/console/privacy/export", data={"csrf": token, "user_id": "用户1"})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-disposition"] == 'attachment; filename="access-__1.json"'
    doc = r.json()
    assert doc["parts"]["raw.events"]["rows"], doc["parts"].keys()
    bad = c.post("/console/privacy/export", data={"csrf": token, "user_id": "x" * 300})
    assert bad.status_code == 409 and "longer than 256" in bad.text and 'id="error-back"' in bad.text


def test_the_lineage_of_an_appended_version_goes_back_through_every_delivery(tmp_path: Path) -> None:
    """A bundle trained on events version 3 (a full load, then two daily deliveries) traced to
    the last day's file alone: an append's run named its delivery, not the version it added to.
    It names both, so the graph reaches every file; a re-send that changed nothing claims no
    version (three runs claimed to have made the same one)."""
    from shelfwise.governance import Ingestor
    from shelfwise.governance._lineage import LINEAGE_FILE

    w = tmp_path / "w"
    days = []
    for i, rows in enumerate((["u1,p1,view,2024-01-01T10:00:00"], ["u2,p1,view,2024-01-02T10:00:00"],
                              ["u3,p1,view,2024-01-03T10:00:00"]), 1):  # fmt: skip
        d = tmp_path / f"day{i}"
        d.mkdir()
        if i == 1:
            (d / "products.csv").write_text("product_id,title\np1,Chair\n")
        (d / "events.csv").write_text("user_id,product_id,event_type,timestamp\n" + "\n".join(rows) + "\n")
        days.append(Ingestor(w, mode="replace" if i == 1 else "append").run(d))
    resend = Ingestor(w, mode="append").run(tmp_path / "day3")
    made = {}
    for line in (w / LINEAGE_FILE).read_text().splitlines():
        e = json.loads(line)
        if e.get("eventType") == "COMPLETE":
            made[e["run"]["runId"]] = [o["name"] for o in e.get("outputs", [])]
    assert "curated.events" not in made[resend.run_id]
    (w / "bundles" / "B1").mkdir(parents=True)
    (w / "bundles" / "CURRENT").write_text("B1")
    (w / "bundles" / "B1" / "manifest.json").write_text(json.dumps({
        "default_model": "popularity", "lineage": {},
        "data_versions": {"events": {"version": 3, "run_id": days[2].run_id, "rows": 3}},
    }))  # fmt: skip
    g = _data.lineage_graph(w)
    files = {n["detail"] for n in g["nodes"] if n["kind"] == "file"}
    assert {str(tmp_path / f"day{i}" / "events.csv") for i in (1, 2, 3)} <= files, files
    assert sum(1 for n in g["nodes"] if n["kind"] == "run") == 3


def test_the_consoles_audit_check_says_what_shelfwise_audit_says_of_a_removed_log(tmp_path: Path) -> None:
    """The console reset a missing log to "0 entries, intact" while `shelfwise audit` failed it
    (the lineage records runs), and did not read the head (newest lines removed)."""
    from shelfwise.governance import AuditLog
    from shelfwise.governance._audit import AUDIT_FILE

    w = tmp_path / "w"
    for i in range(3):
        AuditLog(w).append("train", run_id=f"r{i}")
    (w / "lineage").mkdir()
    (w / "lineage" / "openlineage.jsonl").write_text('{"eventType": "COMPLETE", "run": {"runId": "r0"}}\n')
    assert _data.audit_check(w)["ok"]
    lines = (w / AUDIT_FILE).read_text().splitlines()
    (w / AUDIT_FILE).write_text(lines[0] + "\n")  # the newest two removed, the head left
    got = _data.audit_check(w)
    assert not got["ok"] and "entry 3 was written" in got["reason"]
    import shutil

    shutil.rmtree(w / "audit")
    got = _data.audit_check(w)
    assert not got["ok"] and "completed run" in got["reason"]


def _as_person(workdir: Path, role: str, service: Any = None) -> Any:
    """A TestClient of a console whose only person (beside the admin who added them) has
    `role`, logged in; `service` stands for the loaded `Service` (None: still loading)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.governance import People
    from shelfwise.web._routes import console_router

    people = People(workdir)
    if "ada" not in people.load():
        people.add("ada", "admin")
    name = f"{role[:3]}-{len(people.load())}"
    key = people.add(name, role, people.load()["ada"])
    app = FastAPI()
    app.include_router(console_router(workdir, lambda: service))
    c = TestClient(app, base_url="http://127.0.0.1")
    csrf = re.search(r'name="csrf" value="([^"]*)"', c.get("/console/login").text).group(1)  # type: ignore[union-attr]
    r = c.post(
        "/console/login",
        data={"name": name, "api_key": key, "csrf": csrf, "next": "/console/"},
        headers={"origin": "http://127.0.0.1"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    return c


def _fake_service() -> Any:
    """What the shopper page reads of a `Service`: a shopper (pseudonym u_known) whose history
    is the one product "Secret diary", recommended two products an item model explains by it."""
    from types import SimpleNamespace as NS

    import numpy as np

    class Explainer:
        def explain_many(self, user: int, items: list[int], history: Any = None) -> dict[int, list[dict]]:
            return {i: [{"item": 0}] for i in items}  # every item: because of the history's item 0

    snap = NS(
        version="b1",
        user_index={"u_known": 0},
        item_index={"p_secret": 0, "p_hat": 1, "p_scarf": 2},
        item_ids=["p_secret", "p_hat", "p_scarf"],
        info={},
        history=lambda u, recent: [0],
        bundle=NS(
            titles=["Secret diary", "Hat", "Scarf"],
            interactions=NS(sequence=lambda u: np.array([0])),
            models={"itemknn": Explainer()},
            manifest={"default_model": "itemknn"},
        ),
    )
    answer = NS(items=["p_hat", "p_scarf"], model="itemknn", source="itemknn", experiment=None, variant=None)
    return NS(
        snapshot=snap,
        pseudonymize=lambda user_id: "u_known" if user_id == "C-1" else "u_other",
        online=NS(recent=lambda pseudo: (None, [])),
        recommend=lambda user_id, k: answer,
        experiments=[],
        personalizes=lambda pseudo, requested=True: True,
    )


def test_a_role_that_may_not_read_a_history_sees_nothing_of_it_on_the_shopper_page(tmp_path: Path) -> None:
    """An engineer (and a scientist) saw "because of: <title>" under each recommendation, a
    product of the shopper's history, while the audit entry said `history_shown: false`. Without
    the history permission nothing read from the history shows; the audit entry says what did."""
    from shelfwise.governance import AuditLog

    service = _fake_service()
    for role, may in (("engineer", False), ("scientist", False), ("analyst", True)):
        page = _as_person(tmp_path, role, service).get("/console/users/C-1")
        assert page.status_code == 200, page.text[-800:]
        recs = page.text.split('id="recommendations"')[1].split("</ol>")[0]
        assert 'data-product="p_hat"' in recs  # the list itself is the `recommend` permission's
        assert ("Secret diary" in page.text) is may, role  # the history's product, anywhere
        assert ("because of:" in recs) is may, role
        assert ('id="because-hidden"' in page.text) is not may
        entry = [e for e in AuditLog(tmp_path).entries() if e["action"] == "console.shopper"][-1]
        assert entry["details"]["history_shown"] is may, role


def test_a_spike_compares_a_delivery_with_the_previous_delivery_by_the_ingests_count(
    tmp_path: Path, monkeypatch
) -> None:
    """ "quarantine spike in events: 9.9% of the latest load vs 0.0% before": 24/243 where the
    CLI, the table and the report judge 23 of 242 (a re-sent row is not judged), against the
    absorbs of served events between (0%) rather than the shop's previous delivery. The Data
    page said "24 of 243 quarantined (9.5%)" of the same load."""
    from shelfwise.governance import _catalog
    from shelfwise.governance._load_state import REPROCESS_JOB

    def load(job: str, rows_in: int, quarantined: int, again: int = 0, at: str = "") -> dict[str, Any]:
        return {"job": job, "table": "events", "rows_in": rows_in, "rows_quarantined": quarantined,
                "rows_redelivered": again, "rows_withheld": 0, "at": at}  # fmt: skip

    served = "shelfwise.events"  # serving/_feedback.py's absorbs of served events
    loads = [
        load("shelfwise.ingest", 2137, 84, at="d1"),  # 3.9%
        load(served, 35, 0, at="a1"),
        load(served, 10, 0, at="a2"),
        load("shelfwise.ingest", 243, 24, again=1, at="d2"),  # 23 of 242 new rows: 9.5%
        load(REPROCESS_JOB, 2, 2, at="r1"),
        load(served, 10, 0, at="a3"),
    ]
    spikes = [
        a["what"] for a in _data.alerts({"datasets": [], "loads": loads}, [], True) if "spike" in a["what"]
    ]
    assert spikes == [
        "quarantine spike in events: 9.5% of the latest delivery vs 3.9% of the delivery before"
    ]
    loads[0]["rows_quarantined"] = 130  # 6.1% before: 9.5% is no spike against it
    assert not [a for a in _data.alerts({"datasets": [], "loads": loads}, [], True) if "spike" in a["what"]]
    # the absorbs of served events against each other
    loads.append(load(served, 10, 3, at="a4"))
    spikes = [
        a["what"] for a in _data.alerts({"datasets": [], "loads": loads}, [], True) if "spike" in a["what"]
    ]
    assert spikes == [
        "quarantine spike in events: 30.0% of the latest absorb of served events vs 0.0% of the absorb before"
    ]
    # a whole delivery re-sent judges no row: no 0% load on the trend's scale of a spike
    loads.append(load("shelfwise.ingest", 243, 242, again=242, at="d3"))
    assert (
        len([a for a in _data.alerts({"datasets": [], "loads": loads}, [], True) if "spike" in a["what"]])
        == 1
    )

    # the Data page counts the latest load as the CLI does
    quality = {"latest_load": "d2", "rows_in": 243, "rows_quarantined": 24, "rows_redelivered": 1,
               "rows_withheld": 0, "quarantined_share": 0.095, "passed": False, "reasons": {},
               "open_quarantine": 24, "open_reasons": {}}  # fmt: skip
    table = {"name": "curated.events", "owner": "o", "steward": "s", "description": "", "classification": {},
             "contract_version": "1", "contract_in_force": "1", "rows": 2300, "versions": 2,
             "latest_version": 2, "updated_at": "2026-12-06 18:45:31", "quality": quality}  # fmt: skip
    monkeypatch.setattr(
        _catalog,
        "catalog",
        lambda w: {"datasets": [table], "models": [], "rules": None, "loads": loads, "contracts": []},
    )
    c, _ = _console_client(tmp_path)
    (tmp_path / "warehouse.duckdb").write_bytes(b"planted")
    page = c.get("/console/data").text
    assert "23 of 242 new rows quarantined" in page and "(9.5%; 1 re-sent)" in page, page[-3000:]


def test_the_quarantine_summary_follows_the_status_filter(tmp_path: Path, monkeypatch) -> None:
    """`?status=open` listed the superseded, released and re-delivered lines in the summary
    table too, while `shelfwise quarantine list` and the README say it follows the filters."""
    from shelfwise import governance

    summary = [
        {"table": "events", "reason": "unknown_reference", "status": "open", "rows": 19},
        {"table": "events", "reason": "duplicate_row", "status": "redelivered", "rows": 220},
        {"table": "events", "reason": "invalid_value", "status": "released", "rows": 1},
        {"table": "products", "reason": "duplicate_row", "status": "superseded", "rows": 1065},
    ]

    class FakeQuarantine:
        def __init__(self, workdir: Path) -> None:
            pass

        def summary(self) -> list[dict]:
            return summary

        def list(self, table=None, reason=None, status="open", limit=100, after=None) -> list[dict]:
            return []

    monkeypatch.setattr(governance, "Quarantine", FakeQuarantine)
    (tmp_path / "warehouse.duckdb").write_bytes(b"planted")
    c, _ = _console_client(tmp_path)

    def lines(url: str) -> list[tuple[str, ...]]:
        table = c.get(url).text.split('<table class="summary">')[1].split("</table>")[0]
        return [tuple(re.findall(r"<td[^>]*>([^<]*)</td>", tr)[:3]) for tr in table.split("<tr>")[2:]]

    assert lines("/console/data/quarantine?status=open") == [("events", "unknown_reference", "open")]
    assert lines("/console/data/quarantine") == [("events", "unknown_reference", "open")]  # open by default
    assert len(lines("/console/data/quarantine?status=all")) == 4
    assert lines("/console/data/quarantine?status=superseded&table=products") == [
        ("products", "duplicate_row", "superseded")
    ]


def test_the_search_playground_says_what_it_could_not_read(tmp_path: Path) -> None:
    """`price_max=$20` was ignored (every price shown, no word) where `/v1/search` answers 422;
    `k=-5`, `sort=bogus`, `in_stock=maybe` and `offset=-3` were clamped or defaulted. The page
    names each value it could not read, keeps them in the form, and searches nothing."""
    from types import SimpleNamespace as NS

    searched: list[Any] = []
    service = _fake_service()
    service.snapshot.search = None
    service.sync_synonyms = lambda snap: None
    service.synonyms = NS(bundle_synonyms=lambda engine: None)
    service.rules = NS(version=1, items=[])
    service.search = lambda *a, **kw: searched.append(a)
    c, _ = _console_client(tmp_path, service)
    r = c.get("/console/search?q=mug&price_max=%2420&k=-5&sort=bogus&in_stock=maybe&offset=-3")
    assert r.status_code == 422, r.text[-1500:]
    said = html.unescape(r.text.split('id="search-error"')[1].split("</div>")[0])
    assert "price_max: not a number (got '$20'" in said
    assert "k: from 1 to 50 (got '-5')" in said and "offset: from 0 to 1000 (got '-3')" in said
    assert "sort: one of relevance, price_asc, price_desc, popularity (got 'bogus')" in said
    assert "in_stock: true or false (got 'maybe')" in said
    form = html.unescape(r.text.split('id="search-form"')[1].split("</form>")[0])
    assert (
        'name="price_max" value="$20"' in form
        and 'name="k" type="number" min="1" max="50" value="-5"' in form
    )
    assert '<option value="bogus" selected>' in form and '<option value="maybe" selected>' in form
    assert 'id="results"' not in r.text and searched == []
    # what it reads is as the API reads it: an empty field is the default, a sound value taken
    assert _playground.search_args("10", "0", "", " 20.5 ", "TRUE", "") == (
        {"k": 10, "offset": 0, "price_min": None, "price_max": 20.5, "in_stock": True, "sort": "relevance"},
        [],
    )
    assert _playground.search_args("60", "0", "nan", "-1", "", "relevance")[1] == [
        "k: from 1 to 50 on the playground (got '60')",  # (the API's max_k is 100: the review's)
        "price_min: from 0 to 1000000000 (got 'nan')",
        "price_max: from 0 to 1000000000 (got '-1')",
    ]
    assert c.get("/console/search?price_max=20&sort=price_asc").status_code == 200  # (no query: no search)


def test_analytics_links_a_query_to_the_playground_only_for_who_may_search(
    tmp_path: Path, monkeypatch
) -> None:
    """A steward's analytics page linked each served and no-result query to the search
    playground, which refused them ("may not search", audited as a denial)."""
    report = {
        "logged": {"searches": 3, "distinct_queries": 2, "top_queries": []},
        "served": {"pages": 3, "zero_result_pages": 1, "top_queries": [{"query": "red mug", "pages": 2,
                   "attributed_ctr": 0.5}], "zero_result_queries": [{"query": "blu pot", "zero_result_pages": 1}]},
        "no_keyword_match": [{"query": "crockery", "searches": 1}],
        "protocol": {},
    }  # fmt: skip
    monkeypatch.setattr(_data, "search_report", lambda workdir, lexical: report)
    monkeypatch.setattr(
        _data, "experiments", lambda workdir: {"configured": [], "report": {"experiments": {}}}
    )
    for role, may in (("steward", False), ("analyst", True)):
        page = _as_person(tmp_path, role).get("/console/analytics")
        assert page.status_code == 200, page.text[-800:]
        for q in ("red mug", "blu pot", "crockery"):
            assert q in page.text
        assert ('href="/console/search?q=' in page.text) is may, role


def test_an_overview_alert_links_its_page_only_for_who_may_open_it(tmp_path: Path, monkeypatch) -> None:
    """ "the audit trail's hash chain is broken" linked an analyst to the audit page, a refusal."""
    o = {"datasets": [], "trend": {}, "production": [], "candidates": [], "traffic": {"surfaces": []},
         "audit": {"entries": 3, "ok": False},
         "alerts": _data.alerts({"datasets": [], "loads": []}, [], audit_ok=False)}  # fmt: skip
    monkeypatch.setattr(_data, "overview", lambda workdir: o)
    for role, may in (("analyst", False), ("steward", True)):
        page = _as_person(tmp_path, role).get("/console/").text
        alerts = page.split('id="alerts"')[1].split("</ul>")[0]
        assert "hash chain is broken" in alerts
        assert ('href="/console/audit"' in alerts) is may, role


def test_the_shopper_page_looks_a_pseudonym_up_or_says_what_to_enter(tmp_path: Path, monkeypatch) -> None:
    """`/console/users/u_…` (the pseudonyms the Insights report lists) said "Not in the serving
    bundle (a new visitor)" with a cold-start list. A role that may name customers by shop id
    sees the customer it names (the look-up audited); the others, and a pseudonym no customer
    held has, are told it is a pseudonym and to give the shop's own id, with no list."""
    from shelfwise import Shop
    from shelfwise.governance import AuditLog, Pseudonymizer
    from shelfwise.insights import _reports

    data, work = tmp_path / "data", tmp_path / "w"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,price\np_hat,Hat,3\np_scarf,Scarf,4\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nC-1,p_hat,view,2024-02-01T10:00:00\n"
    )
    Shop(work).ingest(data)
    pseudo = Pseudonymizer.of(work).many(["C-1"])[0]
    service = _fake_service()
    real = {"C-1": "u_known"}
    service.pseudonymize = lambda user_id: real.get(user_id, "u_other")

    analyst = _as_person(work, "analyst", service)
    page = analyst.get(f"/console/users/{pseudo}")
    assert page.status_code == 200, page.text[-1500:]
    assert "<h1>Shopper C-1</h1>" in page.text and 'id="from-pseudonym"' in page.text
    assert "Known to the serving bundle" in page.text and 'data-product="p_hat"' in page.text
    entry = [e for e in AuditLog(work).entries() if e["action"] == "console.shopper"][-1]
    assert entry["details"]["looked_up_by"] == "pseudonym" and entry["details"]["pseudonym"] == "u_known"
    assert "C-1" not in json.dumps(entry)

    for who, url, why in (
        (
            _as_person(work, "engineer", service),
            f"/console/users/{pseudo}",
            "may not look a customer's shop id up",
        ),
        (analyst, "/console/users/u_" + "0" * 32, "no customer the shop still holds has it"),
    ):
        page = who.get(url)
        assert page.status_code == 422, page.text[-800:]
        note = html.unescape(page.text.split('id="pseudonym-note">')[1].split("</p>")[0])
        assert "is a pseudonym" in note and why in note and "give the shop's own user id" in note
        assert 'id="recommendations"' not in page.text and "Not in the serving bundle" not in page.text

    # the Insights report's at-risk customers link to it for who may open it and look them up
    report = {"as_of": "2024-02-02", "horizon_days": 90, "customers": 1, "buyers": 1, "model": {"model": "bgnbd"},
              "segments": [], "mean_churn_risk_buyers": 0.7, "at_risk_count": 1, "at_risk_threshold": 0.6,
              "evaluation": {"computable": False},
              "at_risk": [{"pseudonym": pseudo, "segment": "loyal", "churn_risk": 0.7, "value_at_stake": 2.1}]}  # fmt: skip
    monkeypatch.setattr(_reports, "read_report", lambda w, name: report if "customer" in str(name) else None)
    for who, linked in ((analyst, True), (_as_person(work, "scientist", service), False)):
        page = who.get("/console/insights").text
        assert pseudo in page
        assert (f'href="/console/users/{pseudo}"' in page) is linked


def test_a_failed_row_fix_names_and_opens_the_row_that_holds_it_now(tmp_path: Path) -> None:
    """ "row #1159: still quarantined (see its new reason)" named neither the new row nor its
    reason, and opened the status=all list at its top, oldest first (the new row ~24 pages on)."""
    from shelfwise import Shop
    from shelfwise.governance import Quarantine

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,price\np1,Hat,3\np2,Scarf,4\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nu1,p1,view,2024-02-01T10:00:00\n"
        "u2,p9,view,2024-02-01T10:05:00\n"  # an unknown product
    )
    Shop(tmp_path / "w").ingest(data)
    (row,) = Quarantine(tmp_path / "w").list("events", limit=None)
    qid = row["quarantine_id"]
    c, token = _console_client(tmp_path / "w")
    fix = {"f.user_id": "u2", "f.product_id": "p2", "f.event_type": "view", "f.timestamp": "not a time"}
    r = c.post(
        f"/console/data/quarantine/{qid}/reprocess", data={"csrf": token, **fix}, follow_redirects=False
    )
    assert r.status_code == 303, r.text[-800:]
    (new,) = Quarantine(tmp_path / "w").list("events", limit=None)  # the open one
    assert new["quarantine_id"] != qid
    where = urlsplit(r.headers["location"])
    assert where.path == f"/console/data/quarantine/{new['quarantine_id']}"
    done = parse_qs(where.query)["done"][0]
    assert done.startswith(
        f"row #{qid}: still quarantined, now as row #{new['quarantine_id']}: {new['reason']}"
    )
    page = c.get(r.headers["location"]).text
    assert 'class="flash ok"' in page and html.escape(done, quote=False) in page
    assert f'data-qid="{new["quarantine_id"]}"' in page
    # fixed: released, and the row's own page says so
    fix["f.timestamp"] = "2024-02-01T10:05:00"
    r = c.post(
        f"/console/data/quarantine/{new['quarantine_id']}/reprocess",
        data={"csrf": token, **fix},
        follow_redirects=False,
    )
    assert urlsplit(r.headers["location"]).path == f"/console/data/quarantine/{new['quarantine_id']}"
    assert "released into curated" in html.unescape(c.get(r.headers["location"]).text)


def test_a_variants_rules_are_said_in_words() -> None:
    """The search-experiment comparison printed "rules {'items': [{'action': 'boost', ...}]}"."""
    said = _playground.rules_said(
        {
            "items": [
                {"action": "boost", "category": "Home > Kitchen", "factor": 2.0, "surfaces": ["search"]},
                {"action": "pin", "product_id": "P12", "position": 1, "query": "kettle"},
            ],
            "max_per_category": 1,
        }  # fmt: skip
    )
    assert (
        said
        == "boost category Home > Kitchen x2 on search; pin product P12 at 1 for 'kettle'; max per category 1"
    )
    assert "{" not in said


def test_a_passing_gate_that_says_a_delivery_failed_is_a_warning_not_a_green_check(
    tmp_path: Path, monkeypatch
) -> None:
    """The data_contracts gate passes while it says a delivery behind the model failed its quality
    check ("FAILING: 1,065 of 3,385"): a green check beside it read as all well."""
    import inspect

    from shelfwise.lifecycle._registry import Registry

    # the words the page reads are the registry's
    assert "a delivery failed its quality check" in inspect.getsource(Registry._data_gate)
    gates = [
        {"name": "data_contracts", "passed": True, "review": False,
         "detail": "every curated input is valid under its contract in force; a delivery failed its quality "
                   "check (its quarantined rows held back): products v1: FAILING: 1,065 of 3,385"},
        {"name": "beats_baseline", "passed": True, "review": False, "detail": "ndcg 0.3 > 0.2"},
        {"name": "coverage", "passed": False, "review": False, "detail": "too low"},
    ]  # fmt: skip
    version = {"version": "1", "aliases": ["candidate"], "status": "READY", "bundle": "b1", "default_model": "m",
               "metrics": {}, "gates": gates, "gates_live": True, "registered_by": "eve", "approved_by": None}  # fmt: skip
    monkeypatch.setattr(_data, "models", lambda workdir, live=True: [version])
    c, _ = _console_client(tmp_path)
    page = html.unescape(c.get("/console/models").text)
    looks = re.findall(r'<li class="(\w+)" title="[^"]*">(\S) (\w+)', page)
    assert looks == [
        ("warn", "!", "data_contracts"),
        ("pass", "✔", "beats_baseline"),
        ("fail", "✘", "coverage"),
    ]


def test_a_logged_out_session_cookie_no_longer_opens_the_console(tmp_path: Path) -> None:
    """Logging out only deleted the cookie in that browser: a copy of it (another tab's, a
    proxy's log) opened the console for the rest of its 12 hours. The server now refuses it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise import Shop
    from shelfwise.web._routes import console_router

    key = Shop(tmp_path).add_person("ada", "admin")
    app = FastAPI()
    app.include_router(console_router(tmp_path, lambda: None))
    c = TestClient(app)

    def token(page: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found is not None
        return found.group(1)

    r = c.post(
        "/console/login",
        data={"csrf": token(c.get("/console/login").text), "name": "ada", "api_key": key},
        follow_redirects=False,
    )
    assert r.status_code == 303
    copied = c.cookies.get("shelfwise_console")
    page = c.get("/console/data/quarantine")
    assert page.status_code == 200 and "ada" in page.text
    assert (
        c.post("/console/logout", data={"csrf": token(page.text)}, follow_redirects=False).status_code == 303
    )
    thief = TestClient(app)
    thief.cookies.set("shelfwise_console", copied, path="/console")
    again = thief.get("/console/data/quarantine", follow_redirects=False)
    assert again.status_code in (303, 401) and "ada" not in again.text, again.status_code
    # a new login works as before
    r = thief.post(
        "/console/login",
        data={"csrf": token(thief.get("/console/login").text), "name": "ada", "api_key": key},
        follow_redirects=False,
    )
    assert r.status_code == 303 and thief.get("/console/data/quarantine").status_code == 200


def test_an_unreadable_logout_list_fails_closed_and_is_never_left_half_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`secrets/console-logouts.json` that could not be read was read as empty: every session
    logged out came back to life (a copied cookie opened the console again). While the list
    cannot be read every person's session is refused, said once in the log naming the file; the
    next login replaces it by a cut-off that keeps refusing every session issued before it. A
    write that fails leaves the list as it was, and no temporary file beside it."""
    import logging

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise import Shop
    from shelfwise.web._routes import console_router

    key = Shop(tmp_path).add_person("ada", "admin")
    app = FastAPI()
    app.include_router(console_router(tmp_path, lambda: None))

    def token(page: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found is not None
        return found.group(1)

    def logged_in() -> TestClient:
        c = TestClient(app)
        r = c.post(
            "/console/login",
            data={"csrf": token(c.get("/console/login").text), "name": "ada", "api_key": key},
            follow_redirects=False,
        )
        assert r.status_code == 303
        return c

    def opens(cookie: str) -> bool:
        c = TestClient(app)
        c.cookies.set("shelfwise_console", cookie, path="/console")
        page = c.get("/console/data/quarantine", follow_redirects=False)
        return page.status_code == 200 and "ada" in page.text

    left, stays = logged_in(), logged_in()
    copied, kept = left.cookies.get("shelfwise_console"), stays.cookies.get("shelfwise_console")
    page = left.get("/console/data/quarantine")
    assert (
        left.post("/console/logout", data={"csrf": token(page.text)}, follow_redirects=False).status_code
        == 303
    )
    assert not opens(copied) and opens(kept)

    logouts = tmp_path / "secrets" / "console-logouts.json"
    logouts.write_text('{"3f2a": 17')  # cut short (a disk full, a hand edit)
    with caplog.at_level(logging.ERROR, logger="shelfwise.web"):
        assert not opens(copied)  # (read as empty, the logged-out cookie opened the console again)
        assert not opens(kept)  # which sessions were logged out is unknown: none is trusted
    said = [r.getMessage() for r in caplog.records if "console-logouts.json" in r.getMessage()]
    assert len(said) == 1 and str(logouts) in said[0], said

    fresh = logged_in()  # a login sets the cut-off: the console opens to it, not to the old cookies
    assert fresh.get("/console/data/quarantine").status_code == 200
    assert not opens(copied) and not opens(kept)
    assert set(json.loads(logouts.read_text())) == {_auth.ISSUED_BEFORE}
    assert [p.name.split(".unreadable-")[0] for p in logouts.parent.glob("*.unreadable-*")] == [logouts.name]

    # a logout whose write fails midway leaves the list as it was, and nothing half-written
    before = logouts.read_text()

    def broken(obj: Any, fh: Any) -> None:
        fh.write('{"half')
        raise OSError("no space left on device")

    monkeypatch.setattr(_auth.json, "dump", broken)
    page = fresh.get("/console/data/quarantine")
    with pytest.raises(OSError, match="no space left"):
        fresh.post("/console/logout", data={"csrf": token(page.text)}, follow_redirects=False)
    assert logouts.read_text() == before
    assert [p.name for p in logouts.parent.iterdir() if p.name.endswith(".tmp")] == []

    # unreadable again: a login whose cut-off cannot be written leaves the unreadable list in
    # place (moved aside first, no list at all was left: read as "nobody logged out")
    live = token(fresh.get("/console/data/quarantine").text)  # a page of a session still open
    logouts.write_text('{"3f2a": 17')
    with pytest.raises(OSError, match="no space left"):
        logged_in()
    assert logouts.read_text() == '{"3f2a": 17'
    assert not opens(copied) and not opens(kept)
    monkeypatch.undo()
    # "Log out" from a session the unreadable list refuses only clears the cookie (it was a 500)
    r = fresh.post("/console/logout", data={"csrf": live}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/console/login")
    assert "shelfwise_console" not in fresh.cookies


def test_the_next_weeks_column_says_how_many_weeks_it_sums():
    """A report whose forecasts start at a week already begun at as-of, with fewer than 4 weeks
    after it: the column headed "next 4 weeks" says the number of weeks it summed (it said 4)."""
    from shelfwise.web._routes import _templates

    env = _templates().env
    forecast = [[w, 10.0, 9.0, 11.0] for w in ("2018-12-24", "2018-12-31", "2019-01-07", "2019-01-14")]
    model = {"series": 1, "last_week": "2018-12-17", "season_length": 1, "censored_weeks": 0}
    model |= {"cv_windows": 0, "cv_h": 0, "chosen": {"RecentMean": 1}, "calibration": []}
    top = [{"id": "P1", "model": "RecentMean", "recent_units": 130, "forecast": forecast, "censored": []}]
    demand = {"as_of": "2018-12-26T23:59:59.999999", "model": model, "top": top}
    demand["replenishment"] = {"service_level": 0.95, "review_days": 7, "rows": []}
    tpl = env.get_template("insights.html")
    html = "".join(
        tpl.blocks["main"](tpl.new_context({"customers": None, "demand": demand, "audiences": []}))
    )
    row = html.split('<tr data-product="P1">')[1].split("</tr>")[0]
    assert "30.0" in row and "(3 weeks)" in row


def _playground_console(tmp_path: Path, monkeypatch, col: dict[str, Any]) -> tuple[Any, list[Any]]:
    """A console whose search playground answers every query with `col` (a result column as
    `_playground.search_side` gives it), and the filters each search was asked with."""
    from types import SimpleNamespace as NS

    asked: list[Any] = []
    service = _fake_service()
    service.snapshot.search = None
    service.sync_synonyms = lambda snap: None
    service.synonyms = NS(bundle_synonyms=lambda engine: None)
    service.rules = NS(version=1, items=[])
    monkeypatch.setattr(
        _playground, "search_side", lambda s, q, k, side, **how: asked.append(how["filters"]) or col
    )
    c, _ = _console_client(tmp_path, service)
    return c, asked


def _column(facets: dict[str, Any]) -> dict[str, Any]:
    item = {"position": 1, "product_id": "p_hat", "title": "Hat", "brand": "Acme", "category": "Hats",
            "price": 9.5, "image": None, "engine_rank": 1, "score": 1.0, "rules": [], "why": {}}  # fmt: skip
    return {"label": "serving", "bundle": "b1", "match": "keyword", "total": 1, "corrected_query": None,
            "stages": ["lexical"], "facets": facets, "fallback": None, "items": [item]}  # fmt: skip


def test_the_playground_shows_attribute_facets_only_for_a_catalog_with_attributes(
    tmp_path: Path, monkeypatch
) -> None:
    """A shop whose products have no attributes gets no attribute facets nor filters on the
    playground (the page as before); one with attributes gets each value as a link that
    filters, its count as the page's facets say it."""
    plain = {"category": [{"value": "Hats", "count": 1}], "brand": [{"value": "Acme", "count": 1}]}
    for facets in (plain, {**plain, "attributes": {}}):
        c, asked = _playground_console(tmp_path, monkeypatch, _column(facets))
        r = c.get("/console/search?q=hat")
        assert r.status_code == 200, r.text[-1500:]
        assert 'data-product="p_hat"' in r.text
        assert "attr-facets" not in r.text and 'id="active-filters"' not in r.text
        assert 'name="attr.' not in r.text and asked[-1].attributes == {}
    got = {"color": [{"value": "Red", "count": 3}, {"value": "blue", "count": 2}]}
    c, asked = _playground_console(tmp_path, monkeypatch, _column({**plain, "attributes": got}))
    r = c.get("/console/search?q=hat&sort=price_asc&offset=10")
    box = html.unescape(r.text.split('class="attr-facets"')[1].split("</details>")[0])
    links = dict(re.findall(r'href="([^"]+)" data-value="([^"]+)" data-count="3"', box))
    assert list(links.values()) == ["Red"]
    # the link keeps the page's fields but its place (a filter changes the pages), adds the value
    link = next(iter(links))
    assert parse_qs(urlsplit(link).query) == {"q": ["hat"], "sort": ["price_asc"], "attr.color": ["Red"]}
    assert "(3)" not in r.text.split('class="facets"')[1]  # (said once: the links, not the summary too)


def test_the_playgrounds_attribute_filters_are_read_as_the_api_reads_them(
    tmp_path: Path, monkeypatch
) -> None:
    """`attr.color=red&attr.color=blue&attr[size]=M` is the search `/v1/search` makes (one key's
    values ORed, keys ANDed); the filters in force are shown, each with a link that removes it,
    and carried by the form's next search; a blank value, which the API refuses with a 422, is
    said and nothing is searched."""
    facets = {"attributes": {"color": [{"value": "red", "count": 3}, {"value": "blue", "count": 2},
                                       {"value": "green", "count": 1}], "size": [{"value": "M", "count": 4}]}}  # fmt: skip
    c, asked = _playground_console(tmp_path, monkeypatch, _column(facets))
    r = c.get("/console/search?q=hat&attr.color=red&attr.Colour=Blue&attr[size]=M")
    assert r.status_code == 200, r.text[-1500:]
    assert asked[-1].attributes == {"color": ("blue", "red"), "size": ("m",)}
    chosen = html.unescape(r.text.split('id="active-filters">')[1].split("</p>")[0])
    said = " ".join(re.sub(r"<[^>]+>", " ", chosen).split())
    assert said.startswith("Filtered on color red × or Blue × and size M × · clear all"), said
    removes = dict(re.findall(r'href="([^"]+)" data-value="([^"]+)"', chosen))
    by_value = {v: parse_qs(urlsplit(h).query) for h, v in removes.items()}
    assert by_value["Blue"] == {"q": ["hat"], "attr.color": ["red"], "attr.size": ["M"]}
    assert by_value["M"] == {"q": ["hat"], "attr.color": ["red"], "attr.Colour": ["Blue"]}
    # the facets mark the values chosen (their link removes them), the others add theirs
    box = html.unescape(r.text.split('class="attr-facets"')[1].split("</details>")[0])
    on = re.findall(r'class="chip on" href="([^"]+)" data-value="([^"]+)"', box)
    assert sorted(v for _, v in on) == ["M", "blue", "red"]
    green = re.search(r'href="([^"]+)" data-value="green"', box)
    assert green is not None
    assert [p for p in parse_qsl(urlsplit(green.group(1)).query) if p[0].startswith("attr")] == [
        ("attr.color", "red"), ("attr.Colour", "Blue"), ("attr.size", "M"), ("attr.color", "green")
    ]  # fmt: skip
    # the form's next search (another sort, say) keeps them
    form = html.unescape(r.text.split('id="search-form"')[1].split("</form>")[0])
    assert re.findall(r'type="hidden" name="(attr\.[^"]+)" value="([^"]*)"', form) == [
        ("attr.color", "red"), ("attr.Colour", "Blue"), ("attr.size", "M")
    ]  # fmt: skip
    n = len(asked)
    bad = c.get("/console/search?q=hat&attr.color=%20")
    assert bad.status_code == 422 and len(asked) == n
    said = html.unescape(bad.text.split('id="search-error"')[1].split("</div>")[0])
    assert "attr.color: empty (give attr.KEY=VALUE, e.g. attr.color=red)" in said
    many = "&".join(f"attr.size={i}" for i in range(21))
    assert "more than 20 attribute filter values" in html.unescape(
        c.get(f"/console/search?q=hat&{many}").text
    )
