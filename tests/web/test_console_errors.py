"""The console's answers to an address it cannot serve as asked: a query or path parameter of the
wrong type is the console's own error page (a person reads it), not the API's JSON error, which
the /v1 routes keep; the quarantine page's filters are checked against the values that exist.

The serving app itself (`create_app`) on an empty workdir, in-process: the console and the API
with the error handlers they have in production; nothing loaded (no lifespan, no bundle), which
these answers do not need. Single-user mode: the test client and the browser are on loopback."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import free_port

BAD_ADDRESSES = [  # (address, the parameter named in the title, the way back without it)
    ("/console/data/quarantine?table=events&limit=abc", "limit", "/console/data/quarantine?table=events"),
    ("/console/data/quarantine?after=first", "after", "/console/data/quarantine"),
    ("/console/data/quarantine/abc", "qid", None),  # (a bad path: only the overview)
    ("/console/users/shopper-1?k=ten", "k", "/console/users/shopper-1"),
    ("/console/search?q=mug&k=many", "k", "/console/search?q=mug"),
]


def _app(work: Path) -> Any:
    from shelfwise.serving import create_app

    return create_app(work)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(_app(tmp_path / "w"))  # (not entered: no lifespan, nothing loaded)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """The app over real HTTP (uvicorn in a thread, its lifespan off: no bundle to load)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_app(tmp_path / "w"), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _h1(html: str) -> str:
    m = re.search(r"<h1>(.*?)</h1>", html, re.S)
    return m.group(1).strip() if m else ""


@pytest.mark.parametrize(("url", "param", "back"), BAD_ADDRESSES)
def test_a_bad_parameter_is_the_consoles_error_page(
    client: Any, url: str, param: str, back: str | None
) -> None:
    """It was the API's JSON error (`{"error": ..., "details": [...]}`, a 422) in the browser."""
    r = client.get(url)
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("text/html")
    assert _h1(r.text) == f"Bad request: invalid {param}"
    assert "<title>Bad request: invalid" in r.text and 'href="/console/static/console.css"' in r.text
    msg = re.search(r'id="error-message">(.*?)</p>', r.text, re.S)
    assert msg is not None and msg.group(1).startswith(f"{param}: Input should be a valid integer")
    link = re.search(r'<a href="([^"]*)" id="error-back">', r.text)
    assert (link.group(1).replace("&amp;", "&") if link else None) == back
    assert 'href="/console/"' in r.text  # the overview, always


def test_the_api_keeps_its_json_errors(client: Any) -> None:
    r = client.get("/v1/recommendations/shopper-1?k=abc")
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    assert r.json()["details"] == ["k: Input should be a valid integer, unable to parse string as an integer"]


def test_a_bad_parameter_in_a_browser_is_a_page_with_a_way_back(served: str, browser: Any) -> None:
    page = browser.new_page()
    try:
        resp = page.goto(served + "/console/data/quarantine?table=events&limit=abc")
        assert resp is not None and resp.status == 400
        assert page.title().startswith("Bad request: invalid limit")
        assert page.locator("h1").inner_text() == "Bad request: invalid limit"
        assert "valid integer" in page.locator("#error-message").inner_text()
        assert "{" not in page.locator("body").inner_text().split("server time")[0]  # no JSON
        assert page.locator("header.top nav a").count() > 0  # the console's layout
        page.click("#error-back")
        page.wait_for_load_state()
        assert page.url.endswith("/console/data/quarantine?table=events")
        assert page.locator("h1").inner_text() == "Quarantine"
        # an unknown filter value is said, not an empty list
        resp = page.goto(served + "/console/data/quarantine?status=closed")
        assert resp is not None and resp.status == 400
        assert "unknown status 'closed'" in page.locator("#filter-error").inner_text()
        assert page.locator("tr.qrow").count() == 0 and page.locator("#qrows").count() == 0
        options = page.locator("select[name=status] option").all_inner_texts()
        assert options == ["open", "released", "superseded", "redelivered", "withheld", "all"]
    finally:
        page.close()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (
            "status=closed",
            "unknown status 'closed': choose one of open, released, superseded, redelivered, withheld, all",
        ),
        ("reason=bad_vibes", "unknown reason 'bad_vibes': choose one of malformed_row, missing_required"),
        ("table=orders", "unknown table 'orders': choose one of products, queries, users, events"),
        ("table=events&status=Open", "unknown status 'Open'"),
    ],
)
def test_an_unknown_quarantine_filter_is_said(client: Any, query: str, says: str) -> None:
    """An unknown table, reason or status listed nothing ("No row matches."), as if nothing of
    it were quarantined; the CLI refuses such a filter, naming the valid ones."""
    r = client.get(f"/console/data/quarantine?{query}")
    assert r.status_code == 400 and _h1(r.text) == "Quarantine", r.text[:300]
    assert "<title>Quarantine: unknown filter" in r.text
    err = re.search(r'id="filter-error">(.*?)</div>', r.text, re.S)
    assert err is not None and says in err.group(1).replace("&#39;", "'"), r.text[-2000:]
    assert "No row matches" not in r.text and 'id="qrows"' not in r.text


def test_every_known_filter_value_lists_rows(client: Any) -> None:
    """The known values, `withheld` among the statuses offered (re-processed rows of an erased
    user), and every reason code: an empty list where nothing is quarantined, not an error."""
    from shelfwise.governance._reasons import Reason

    r = client.get("/console/data/quarantine")
    offered = re.findall(
        r"<option[^>]*>([^<]*)</option>", r.text.split('name="status"')[1].split("</select>")[0]
    )
    assert offered == ["open", "released", "superseded", "redelivered", "withheld", "all"]
    for q in [
        *(f"status={s}" for s in offered),
        *(f"reason={x.value}" for x in Reason),
        "table=events",
        "status=",
    ]:
        r = client.get(f"/console/data/quarantine?{q}")
        assert r.status_code == 200 and 'id="filter-error"' not in r.text, (q, r.text[-1500:])
    r = client.get("/console/data/quarantine?status=withheld")
    assert re.search(r"<option selected>withheld</option>", r.text)


def test_a_reason_the_quarantine_holds_is_known_though_no_longer_a_code(tmp_path: Path, monkeypatch) -> None:
    """Rows quarantined under a reason code of an earlier version are still listed by it."""
    from fastapi.testclient import TestClient

    from shelfwise import governance

    row = {
        "quarantine_id": 1, "run_id": "r", "table": "events", "source_file": "in/events.csv",
        "source_line": 2, "reason": "unknown_product", "reasons": ["unknown_product"], "detail": "",
        "raw": {"n": 1}, "status": "open",
    }  # fmt: skip

    class FakeQuarantine:
        def __init__(self, workdir: Path) -> None:
            pass

        def summary(self) -> list[dict]:
            return [{"table": "events", "reason": "unknown_product", "status": "open", "rows": 1}]

        def list(self, table=None, reason=None, status="open", limit=100, after=None) -> list[dict]:
            return [row] if reason in (None, "unknown_product") else []

    monkeypatch.setattr(governance, "Quarantine", FakeQuarantine)
    work = tmp_path / "w"
    work.mkdir()
    (work / "warehouse.duckdb").write_bytes(b"planted")
    c = TestClient(_app(work))
    r = c.get("/console/data/quarantine?reason=unknown_product")
    assert r.status_code == 200 and re.findall(r'<tr class="qrow" data-qid="(\d+)"', r.text) == ["1"]
    r = c.get("/console/data/quarantine?reason=unknown_prodct")
    assert r.status_code == 400 and "unknown_product" in r.text and 'class="qrow"' not in r.text
