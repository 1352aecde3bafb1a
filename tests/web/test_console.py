"""The console (`/console` of `shelfwise serve`) in Debian's Chromium: every page renders with no
JavaScript error, shows what the CLI and the API say, each action works end to end (a promotion
approved by a second person, a quarantined row fixed and released, a rule saved that changes the
search), and a person without the role is refused (a 403 page and an audit entry).

One served copy of the demo shop (tests/serving's trained workdir) with five people registered
and a second registry version (the same bundle, registered by the engineer) as the candidate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_cli import sw
from tests.serving.conftest import Server, known_users

PEOPLE = {"ada": "admin", "sam": "scientist", "eve": "engineer", "stu": "steward", "ana": "analyst"}
pytestmark = pytest.mark.slow  # one trained demo shop (about a minute), then seconds per test
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


class Shop:
    def __init__(self, data: Path, work: Path, keys: dict[str, str], server: Server):
        self.data, self.work, self.keys, self.server = data, work, keys, server
        self.url = server.url

    def cli(self, who: str, *args: str, as_json: bool = True) -> Any:
        env = {"SHELFWISE_AS": who, "SHELFWISE_API_KEY": self.keys[who]}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            out = sw(*args, "--workdir", str(self.work), *(["--json"] if as_json else [])).stdout
            return json.loads(out) if as_json else out
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def api(self, who: str, path: str) -> Any:
        """GET PATH as WHO, as a well-behaved client: a 503 (the server shedding load, which a
        loaded test machine can make it do) is asked again after its Retry-After, a few times."""
        for _ in range(5):
            r = httpx.get(self.url + path, headers={"X-API-Key": self.keys[who]}, timeout=30)
            if r.status_code != 503:
                break
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 5.0))
        r.raise_for_status()
        return r.json()

    def audit(self) -> list[dict[str, Any]]:
        path = self.work / "audit" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def console_workdir(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(data dir, trained workdir): tests/serving's fast-trained demo shop, or with
    SHELFWISE_CONSOLE_WORKDIR a trained `shelfwise demo --workdir W` (its demo-data inside; the
    full-size demo shop for the README's screenshots: `SHELFWISE_SCREENSHOTS=1`). Copied, never changed."""
    given = os.environ.get("SHELFWISE_CONSOLE_WORKDIR")
    if given:
        return Path(given) / "demo-data", Path(given)
    return request.getfixturevalue("served_workdir")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def shop(console_workdir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    data, trained = console_workdir
    work = tmp_path_factory.mktemp("console") / "w"
    shutil.copytree(trained, work, ignore=shutil.ignore_patterns("serve-*.log", "spool", "demo-data"))
    keys = {}
    for name, role in PEOPLE.items():  # the admin first; then the admin adds the others
        env_as = {} if not keys else {"SHELFWISE_AS": "ada", "SHELFWISE_API_KEY": keys["ada"]}
        old = {k: os.environ.get(k) for k in env_as}
        os.environ.update(env_as)
        try:
            out = sw("users", "add", "--workdir", str(work), "--name", name, "--role", role, "--json")
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        keys[name] = json.loads(out.stdout)["api_key"]
    from shelfwise.lifecycle._registry import Registry
    from shelfwise.serving import current_bundle

    # a candidate: the serving bundle registered again, by the engineer (four eyes: not theirs to approve)
    Registry(work).register(current_bundle(work), None, "eve")
    server = Server(
        work, "--absorb-seconds", "0", "--reload-seconds", "0.5", "--search-budget-ms", "10000",
        env={"SHELFWISE_AS": "eve", "SHELFWISE_API_KEY": keys["eve"]},
    )  # fmt: skip
    yield Shop(data, work, keys, server)
    server.stop()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    p.js_errors = []  # type: ignore[attr-defined]
    p.on("pageerror", lambda e: p.js_errors.append(str(e)))
    # a refusal (401/403) is a page the test asks for, not a script error
    expected = ("status of 401", "status of 403", "status of 409")
    p.on(
        "console",
        lambda m: (
            p.js_errors.append(m.text)
            if m.type == "error" and not any(x in m.text for x in expected)
            else None
        ),
    )
    yield p
    ctx.close()


def login(page: Any, shop: Shop, who: str) -> None:
    page.goto(shop.url + "/console/login")
    page.fill("input[name=name]", who)
    page.fill("input[name=api_key]", shop.keys[who])
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".person").inner_text().startswith(who)


def shot(page: Any, name: str) -> None:
    if os.environ.get("SHELFWISE_SCREENSHOTS"):  # README's pictures: SHELFWISE_SCREENSHOTS=1 pytest tests/web
        import io

        from PIL import Image

        IMG.mkdir(parents=True, exist_ok=True)
        img = Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB")
        img = img.resize((960, round(img.height * 960 / img.width)), Image.Resampling.LANCZOS)
        img.quantize(64).save(IMG / f"console-{name}.png", optimize=True)  # small PNGs for the README


def denied_since(shop: Shop, n: int, who: str, action: str) -> bool:
    """A denial of `action` for `who` since entry n (`who`'s name claimed with a wrong key
    counts: such an entry is the claim's, actor "unauthenticated")."""
    return any(
        e["action"] == "access.denied"
        and who in (e["actor"], e["details"].get("claimed"))
        and e["details"].get("denied_action") == action
        for e in shop.audit()[n:]
    )


def test_login_logout_and_anonymous(shop: Shop, page: Any) -> None:
    page.goto(shop.url + "/console/")
    assert "/console/login" in page.url  # not logged in: the login form
    n = len(shop.audit())
    page.fill("input[name=name]", "ana")
    page.fill("input[name=api_key]", "swk_wrong")
    page.click("form.stack button[type=submit]")
    assert "wrong API key" in page.locator(".flash.bad").inner_text()
    assert denied_since(shop, n, "ana", "console.login")
    assert [e["actor"] for e in shop.audit()[n:] if e["action"] == "access.denied"] == ["unauthenticated"]
    login(page, shop, "ana")
    assert page.url.rstrip("/").endswith("/console")
    page.click("text=log out")
    page.wait_for_load_state("networkidle")
    assert "/console/login" in page.url
    page.goto(shop.url + "/console/models")
    assert "/console/login" in page.url
    assert page.js_errors == []


def test_overview_matches_the_cli(shop: Shop, page: Any) -> None:
    login(page, shop, "ana")
    page.wait_for_selector(".chart canvas")  # uPlot drew the quality trend
    shot(page, "overview")
    cat = shop.cli("ana", "catalog")
    for d in cat["datasets"]:
        row = page.locator(f"#freshness tr[data-table='{d['name']}'] .rows")
        assert int(row.inner_text()) == d["rows"]
    prod = [m for m in shop.cli("ana", "models", "list") if "production" in m["aliases"]]
    shown = page.locator(".card[data-version] [data-metric='ndcg@10']").first.inner_text()
    assert float(shown) == pytest.approx(prod[0]["ndcg@10"], abs=1e-4)
    # every metric shown says how it was measured (split, candidates, users, intervals)
    said = page.locator(".card[data-version] .protocol").first.inner_text()
    assert said.startswith("protocol: leave-last-out; full ranking") and "test users" in said, said
    # a table whose latest load failed its quality check (the small demo's bot traffic
    # quarantines more than 5% of the events) is named by an alert, the others are not
    alerts = page.locator("#alerts").inner_text()
    for d in cat["datasets"]:
        assert (f"{d['name']}: the latest load" in alerts) == (not d["quality"]["passed"]), d["name"]
    assert page.js_errors == []


def test_promotion_needs_a_second_person(shop: Shop, page: Any) -> None:
    listed = shop.cli("ana", "models", "list")
    cand = next(m for m in listed if "candidate" in m["aliases"])
    live_before = next(m for m in listed if "production" in m["aliases"])["version"]
    v = cand["version"]
    n = len(shop.audit())
    # the analyst sees no buttons, and a forged post is refused and audited
    login(page, shop, "ana")
    page.goto(shop.url + "/console/models")
    assert page.locator(f"tr[data-version='{v}'] button.approve").count() == 0
    assert page.locator("tr.protocol").count() == page.locator("tr[data-version]").count()
    csrf = page.locator("body").get_attribute("hx-headers")
    token = json.loads(csrf)["X-CSRF-Token"]
    r = page.request.post(shop.url + f"/console/models/{v}/approve", form={"csrf": token})
    assert r.status == 403
    assert denied_since(shop, n, "ana", "models.approve")
    # the engineer registered it: four eyes refuses their approval
    login(page, shop, "eve")
    page.goto(shop.url + "/console/models")
    # one version went live so far: nothing to roll back to, so no button offering it
    assert (
        page.locator("#rollback").count() == 0
        and "Nothing to roll back to" in page.locator("#no-rollback").inner_text()
    )
    shot(page, "models")
    page.click(f"tr[data-version='{v}'] button.approve")
    assert "someone else must approve" in page.locator("#error-message").inner_text()
    # promotion without approval is refused (and audited as refused by the registry)
    page.goto(shop.url + "/console/models")
    page.click(f"tr[data-version='{v}'] button.promote")
    assert "no approval" in page.locator("#error-message").inner_text()
    # the steward approves, the engineer promotes
    login(page, shop, "stu")
    page.goto(shop.url + "/console/models")
    page.click(f"tr[data-version='{v}'] button.approve")
    assert f"version {v} approved by stu" in page.locator(".flash.ok").inner_text()
    login(page, shop, "eve")
    page.goto(shop.url + "/console/models")
    page.click(f"tr[data-version='{v}'] button.promote")
    assert "is production" in page.locator(".flash.ok").inner_text()
    assert page.locator(f"tr[data-version='{v}'] .status").inner_text() == "production"
    listed = {m["version"]: m for m in shop.cli("ana", "models", "list")}
    assert "production" in listed[v]["aliases"] and listed[v]["approved_by"] == "stu"
    trail = shop.audit()[n:]
    assert any(e["action"] == "model.approve" and e["actor"] == "stu" for e in trail)
    assert any(e["action"] == "model.promote" and e["actor"] == "eve" and e["outcome"] == "ok" for e in trail)
    assert any(e["action"] == "access.denied" and e["details"].get("reason") == "four eyes" for e in trail)
    # and back: the rollback button
    assert page.locator("#rollback").inner_text() == f"Roll back production to v{live_before}"
    page.click("#rollback")
    assert "production again" in page.locator(".flash.ok").inner_text()
    assert page.js_errors == []


def test_quarantine_row_fixed_and_released(shop: Shop, page: Any) -> None:
    n = len(shop.audit())
    login(page, shop, "ana")  # analysts do not read raw rows
    page.goto(shop.url + "/console/data")
    for d in shop.cli("ana", "catalog")["datasets"]:  # contract, owner, rows as the CLI says
        row = page.locator(f"#datasets tr[data-table='{d['name']}']")
        assert int(row.locator(".rows").inner_text()) == d["rows"]
        assert d["owner"] in row.inner_text() and f"v{d['contract_version']}" in row.inner_text()
    page.goto(shop.url + "/console/data/quarantine?table=products")  # the counts, not the raw rows
    summary = shop.cli("stu", "quarantine", "list", "--table", "products")["summary"]
    shown = page.locator("table.summary tr").all_inner_texts()[1:]
    assert len(shown) == len([s for s in summary if s["table"] == "products"]) > 0
    assert page.locator("tr.qrow").count() == 0 and page.locator("#rows-hidden").count() == 1
    token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    listed = shop.cli("stu", "quarantine", "list", "--table", "products", "--reason", "out_of_range")["rows"]
    qid, other = listed[0]["quarantine_id"], listed[1]["quarantine_id"]
    r = page.request.get(shop.url + f"/console/data/quarantine/{qid}")  # nor one row's page
    assert r.status == 403 and denied_since(shop, n, "ana", "quarantine.read_raw")
    r = page.request.post(
        shop.url + "/console/data/quarantine/reprocess", form={"csrf": token, f"q.{qid}": "1"}
    )
    assert r.status == 403 and denied_since(shop, n, "ana", "quarantine.reprocess")
    login(page, shop, "stu")
    page.goto(shop.url + "/console/data/quarantine?table=products&reason=out_of_range")
    first = page.locator("tr.qrow").first
    assert int(first.get_attribute("data-qid")) == qid
    first.locator("details summary").click()  # the raw fields, as the CLI lists them
    assert json.loads(first.locator("pre").inner_text()) == listed[0]["raw"]
    shot(page, "quarantine")
    # a row ticked and re-processed as it is: still out of range, so still quarantined (audited)
    page.locator(f"tr.qrow[data-qid='{other}'] input[type=checkbox]").check()
    page.click("#reprocess-selected")
    assert (
        "1 row re-processed: 0 released into curated, 1 still quarantined"
        in page.locator(".flash.ok").inner_text()
    )
    assert "reason=out_of_range" in page.url  # back to the same filtered list
    # a row opened, its price fixed and re-processed: released into curated
    page.locator(f"tr.qrow[data-qid='{qid}'] a.fix").click()
    assert page.locator("#qrow").get_attribute("data-qid") == str(qid)
    page.locator("input[name='f.price']").fill("12.50")
    page.locator("button.reprocess").click()
    assert "released into curated" in page.locator(".flash.ok").inner_text()
    released = shop.cli("stu", "quarantine", "list", "--status", "released", "--limit", "1000")["rows"]
    assert qid in {r["quarantine_id"] for r in released}
    entries = [e for e in shop.audit()[n:] if e["action"] == "quarantine.reprocess"]
    assert [(e["actor"], e["details"]["released"]) for e in entries] == [("stu", 0), ("stu", 1)]
    # the htmx filter swaps the rows without a reload; the next page of rows follows the last one
    page.goto(shop.url + "/console/data/quarantine")
    page.select_option("select[name=table]", "events")
    page.wait_for_function(
        "document.querySelectorAll('tr.qrow').length > 0 && location.search.includes('table=events')"
    )
    page.goto(shop.url + "/console/data/quarantine?table=events&limit=5")
    ids = [int(x) for x in page.locator("tr.qrow").evaluate_all("els => els.map(e => e.dataset.qid)")]
    page.click("#more-rows")
    more = [int(x) for x in page.locator("tr.qrow").evaluate_all("els => els.map(e => e.dataset.qid)")]
    events = shop.cli("stu", "quarantine", "list", "--table", "events", "--limit", "10")["rows"]
    assert ids + more == [r["quarantine_id"] for r in events]
    assert page.js_errors == []


def test_search_playground_and_a_saved_rule(shop: Shop, page: Any) -> None:
    q = "red pillow"
    for _ in range(20):  # a page the queue answered below the full pipeline (a busy machine) differs
        api = shop.api("eve", f"/v1/search?q={q.replace(' ', '+')}&k=10")
        if not api["degraded"]:
            break
        time.sleep(0.5)
    assert not api["degraded"]
    login(page, shop, "eve")
    page.goto(shop.url + f"/console/search?q={q.replace(' ', '+')}&compare=1&b_rules=none")
    page.locator(".col").first.locator("details.why summary").first.click()
    shot(page, "search")
    col = page.locator(".col").first
    ids = col.locator("li[data-product]").evaluate_all("els => els.map(e => e.dataset.product)")
    assert ids == [it["product_id"] for it in api["items"]]
    assert col.locator("details.why").count() >= 1  # scores (and ranker contributions) per result
    # a sorted, filtered later page: what the API gives for it (the form's fields were ignored)
    how = "&sort=price_asc&in_stock=true&price_max=500&offset=5"
    sorted_api = api_search(shop, q + how)
    page.goto(shop.url + f"/console/search?q={q.replace(' ', '+')}&k=10{how}")
    got = (
        page.locator(".col")
        .first.locator("li[data-product]")
        .evaluate_all("els => els.map(e => e.dataset.product)")
    )
    assert got == [it["product_id"] for it in sorted_api["items"]] and got != ids
    assert page.locator("select[name=sort]").input_value() == "price_asc"
    page.goto(shop.url + f"/console/search?q={q.replace(' ', '+')}&compare=1&b_rules=none")
    top = ids[0]
    rules = {"filter_out_of_stock": True, "items": [{"action": "hide", "product_id": top, "query": q}]}
    page.fill("#rules-form textarea", json.dumps(rules))
    page.click("#preview")
    page.wait_for_selector("#preview-cols .col:nth-child(2)")
    draft = page.locator("#preview-cols .col").nth(1).locator("li[data-product]")
    assert top not in draft.evaluate_all("els => els.map(e => e.dataset.product)")
    # the analyst may search but not change rules: refused and audited
    n = len(shop.audit())
    other = page.context.browser.new_context()
    p2 = other.new_page()
    login(p2, shop, "ana")
    token = json.loads(p2.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    r = p2.request.post(shop.url + "/console/rules", form={"csrf": token, "rules": json.dumps(rules)})
    assert r.status == 403 and denied_since(shop, n, "ana", "rules.change")
    other.close()
    # a draft the rules refuse is kept in the editor, with the reason (a page of its own lost it)
    bad = json.dumps({"items": [{"action": "pin", "product_id": top, "position": 0, "query": q}]})
    page.fill("#rules-form textarea", bad)
    page.click("#save-rules")
    assert "Rules not saved" in page.locator("#error-message").inner_text()
    assert "position" in page.locator("#error-message").inner_text()
    assert page.locator("#rules-form textarea").input_value() == bad
    # (the refusal is a 422, which the browser logs as a failed load: the one expected entry)
    assert [e for e in page.js_errors if "422" not in e] == []
    page.js_errors.clear()
    page.fill("#rules-form textarea", json.dumps(rules))
    page.click("#save-rules")
    assert "saved" in page.locator(".flash.ok").inner_text()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = [
            it["product_id"] for it in shop.api("eve", f"/v1/search?q={q.replace(' ', '+')}&k=10")["items"]
        ]
        if top not in now:
            break
        time.sleep(0.3)
    assert top not in now  # the API follows the rule saved in the console
    entry = [e for e in shop.audit() if e["action"] == "rules.change"][-1]
    assert entry["actor"] == "eve"
    # the page says who installed the version in force, and when (the audit trail's entry)
    version = entry["details"]["version"]
    page.goto(shop.url + f"/console/search?q={q.replace(' ', '+')}")
    said = page.locator("#rules-in-force").inner_text()
    assert f"v{version}, installed by eve at {entry['at']}" in said, said
    # the same text saved again makes no new version: said "unchanged"
    n = len([e for e in shop.audit() if e["action"] == "rules.change"])
    page.click("#save-rules")
    assert f"rules unchanged (version {version} in force)" in page.locator(".flash.ok").inner_text()
    assert len([e for e in shop.audit() if e["action"] == "rules.change"]) == n
    assert page.js_errors == []


def api_search(shop: Shop, q: str, k: int = 10) -> dict[str, Any]:
    """/v1/search's full-pipeline page (a busy machine's queue may answer below it for a while)."""
    for _ in range(20):
        got = shop.api("eve", f"/v1/search?q={q.replace(' ', '+')}&k={k}")  # (q may carry &params)
        if not got["degraded"]:
            return got  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(f"/v1/search?q={q} stayed degraded")


def _shown(page: Any) -> tuple[list[str], int, dict[str, list[tuple[str, int]]]]:
    """The playground's first column: its result ids, its total and its attribute facets."""
    col = page.locator("#results .col").first
    ids = col.locator("li[data-product]").evaluate_all("els => els.map(e => e.dataset.product)")
    total = int(re.search(r"(\d+) candidates", col.locator("p.muted").first.inner_text()).group(1))  # type: ignore[union-attr]
    facets = col.locator(".attr-facets .facet").evaluate_all(
        "els => els.map(f => [f.dataset.key, [...f.querySelectorAll('a.chip')].map(a => [a.dataset.value, +a.dataset.count])])"
    )
    return ids, total, {k: [tuple(v) for v in vs] for k, vs in facets}


def _api_said(api: dict[str, Any]) -> tuple[list[str], int, dict[str, list[tuple[str, int]]]]:
    attrs = api["facets"].get("attributes") or {}
    return (
        [it["product_id"] for it in api["items"]],
        api["total"],
        {k: [(f["value"], f["count"]) for f in vs] for k, vs in attrs.items()},
    )


def _attr_params(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return [(n, v) for n, v in parse_qsl(urlsplit(url).query) if n.startswith("attr")]


def test_playground_filters_by_the_attribute_facets_the_api_counts(shop: Shop, page: Any) -> None:
    """The demo shop's products carry color, material and size: the playground shows the
    query's attribute facets as `/v1/search` counts them, and a click on a value filters as
    `attr.KEY=VALUE` does (a second color ORed, a size ANDed): the page's results, total and
    facets are the API's for the same query and filters at each step. The filters in force are
    shown and removable, the address carries them (opened by another person, it is the same
    page), and the form's next search keeps them."""
    from urllib.parse import quote

    q = "wireless"  # (a keyword match: a semantic one's facets count its filtered candidates alone)
    login(page, shop, "eve")
    page.goto(shop.url + f"/console/search?q={q}")
    api = api_search(shop, q)
    assert (
        api["match"] == "keyword" and api["facets"]["attributes"]
    )  # (the demo shop's products have attributes)
    assert _shown(page) == _api_said(api) and page.locator("#active-filters").count() == 0
    colors = [v for v, n in _api_said(api)[2]["color"] if n > 0]

    def choose(key: str, value: str) -> None:
        link = page.locator("#results .col").first.locator(
            f'.facet[data-key="{key}"] a[data-value="{value}"]'
        )
        with page.expect_navigation():
            link.click()

    def api_for(pairs: list[tuple[str, str]], more: str = "") -> dict[str, Any]:
        return api_search(shop, q + "".join(f"&{n}={quote(v)}" for n, v in pairs) + more)

    choose("color", colors[0])
    one = api_for([("attr.color", colors[0])])
    assert _attr_params(page.url) == [("attr.color", colors[0])]
    assert _shown(page) == _api_said(one) and _shown(page)[0] != _api_said(api)[0]
    choose("color", colors[1])  # another value of the same attribute: either (OR)
    either = api_for([("attr.color", colors[0]), ("attr.color", colors[1])])
    assert _shown(page) == _api_said(either) and either["total"] > one["total"]
    sizes = [v for v, n in _shown(page)[2]["size"] if n > 0]
    choose("size", sizes[0])  # another attribute: both (AND)
    pairs = [("attr.color", colors[0]), ("attr.color", colors[1]), ("attr.size", sizes[0])]
    both = api_for(pairs)
    assert _attr_params(page.url) == pairs
    assert _shown(page) == _api_said(both) and 0 < both["total"] < either["total"]
    assert both["match"] == "keyword"
    chosen = page.locator("#active-filters a.chip").evaluate_all("els => els.map(e => e.dataset.value)")
    assert chosen == [colors[0], colors[1], sizes[0]]
    on = page.locator("#results .col").first.locator(".attr-facets a.chip.on")
    assert sorted(on.evaluate_all("els => els.map(e => e.dataset.value)")) == sorted(chosen)
    # the address is the page: another person opening it sees the same results and filters
    shared = page.url
    other = page.context.browser.new_context()
    p2 = other.new_page()
    login(p2, shop, "ana")
    p2.goto(shared)
    assert _shown(p2) == _shown(page)
    assert p2.locator("#active-filters a.chip").evaluate_all("els => els.map(e => e.dataset.value)") == chosen
    other.close()
    # the form's next search (another sort) keeps the filters
    page.select_option("select[name=sort]", "price_asc")
    with page.expect_navigation():
        page.click("#search-form button[type=submit]")
    assert _attr_params(page.url) == pairs
    assert _shown(page) == _api_said(api_for(pairs, "&sort=price_asc"))
    # a filter removed from those in force, then all of them
    with page.expect_navigation():
        page.locator(f'#active-filters a.chip[data-value="{colors[1]}"]').click()
    assert _attr_params(page.url) == [pairs[0], pairs[2]]
    assert _shown(page) == _api_said(api_for([pairs[0], pairs[2]], "&sort=price_asc"))
    with page.expect_navigation():
        page.click("#clear-filters")
    assert _attr_params(page.url) == [] and page.locator("#active-filters").count() == 0
    assert _shown(page) == _api_said(api_search(shop, q + "&sort=price_asc"))
    assert page.js_errors == []


def test_saved_synonyms_change_the_search(shop: Shop, page: Any) -> None:
    q = "sofa"  # no catalog word: only the semantic retriever answers it
    before = api_search(shop, q)
    assert before["match"] != "keyword"
    # the analyst may search but not change synonyms: refused and audited, nothing written
    n = len(shop.audit())
    login(page, shop, "ana")
    page.goto(shop.url + f"/console/search?q={q}")
    assert page.locator("#save-synonyms").count() == 0
    token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    r = page.request.post(shop.url + "/console/synonyms", form={"csrf": token, "synonyms": "sofa => pillow"})
    assert r.status == 403 and denied_since(shop, n, "ana", "rules.change")
    assert not (shop.work / "config" / "synonyms.txt").exists()
    # the engineer previews a synonym, then saves it
    login(page, shop, "eve")
    page.goto(shop.url + f"/console/search?q={q}")
    page.fill("#synonyms-form textarea", "sofa => pillow\n")
    page.click("#preview-synonyms")
    page.wait_for_selector("#synonyms-out .col:nth-child(2)")
    cols = page.locator("#synonyms-out .col")
    assert cols.nth(0).locator(".match").inner_text() != "keyword"
    assert cols.nth(1).locator(".match").inner_text() == "keyword"
    draft = cols.nth(1).locator("li[data-product]").evaluate_all("els => els.map(e => e.dataset.product)")
    page.click("#save-synonyms")
    assert "synonyms version 1 saved" in page.locator(".flash.ok").inner_text()
    # the preview showed exactly what saving did: the playground and the API answer the draft
    shown = page.locator("#results .col").first.locator("li[data-product]")
    assert shown.evaluate_all("els => els.map(e => e.dataset.product)") == draft
    after = api_search(shop, q)
    assert after["match"] == "keyword" and [it["product_id"] for it in after["items"]] == draft
    assert [it["product_id"] for it in after["items"]] != [it["product_id"] for it in before["items"]]
    assert all("pillow" in it["title"].lower() for it in after["items"][:3])
    entry = [e for e in shop.audit() if e["action"] == "rules.change"][-1]
    assert entry["actor"] == "eve" and entry["details"]["what"] == "synonyms"
    assert entry["details"]["version"] == 1
    assert page.js_errors == []


def test_shopper_view_matches_the_api(shop: Shop, page: Any) -> None:
    user = known_users(shop.data, shop.work, 1)[0]
    login(page, shop, "sam")
    page.goto(shop.url + f"/console/users/{user}")
    api = shop.api("sam", f"/v1/recommendations/{user}?k=10")
    ids = page.locator("#recommendations li").evaluate_all("els => els.map(e => e.dataset.product)")
    assert ids == api["items"]
    # a customer's history by their shop id is not a scientist's, nor the items of it that
    # explain the list ("because of: <title>" showed them); the look-up is audited
    assert page.locator("#history li").count() == 0
    assert "because of:" not in page.locator("#recommendations").inner_text()
    assert "may not read a customer's history by their id" in page.locator("#history").inner_text()
    looked = [e for e in shop.audit() if e["action"] == "console.shopper"][-1]
    assert looked["actor"] == "sam" and looked["details"]["history_shown"] is False
    assert user not in json.dumps(looked) and looked["details"]["pseudonym"].startswith("u_")
    # an id holding a "/" (the form quotes it): the shopper page of a user never seen, not a 404
    r = page.goto(shop.url + "/console/users?user_id=a%2Fb")
    assert r is not None and r.status == 200 and "text/html" in r.headers["content-type"]
    # a profile by the shop's id is not a scientist's (the API refuses them; it showed here)
    page.goto(shop.url + f"/console/users/{user}")
    assert page.locator("#profile").get_attribute("data-status") == "unavailable"
    assert "may not read a customer's profile by their id" in page.locator("#profile").inner_text()
    login(page, shop, "ana")
    page.goto(shop.url + f"/console/users/{user}")
    # the customer profile (computed in the background for every customer): as the CLI says
    deadline = time.monotonic() + 120
    while (
        page.locator("#profile").get_attribute("data-status") == "computing" and time.monotonic() < deadline
    ):
        time.sleep(2)
        page.reload()
    assert page.locator("#profile").get_attribute("data-status") == "ready"
    assert page.locator("#history li[data-product]").count() > 0  # the roles that read profiles
    shot(page, "shopper")
    out = shop.work.parent / "profiles.jsonl"  # (outside the workdir, as every --out)
    # (an analyst: shop ids in the file; a scientist's names users by pseudonyms, as audiences do)
    shop.cli("ana", "insights", "customers", "--out", str(out), as_json=False)
    cli = next(r for r in map(json.loads, out.read_text().splitlines()) if r["user_id"] == user)
    assert page.locator("#profile .segment").inner_text() == cli["segment"]
    assert int(page.locator("#profile .frequency").get_attribute("data-value")) == cli["frequency"]
    recency = page.locator("#profile .recency").get_attribute("data-value")  # None: no purchase yet
    assert (
        recency == "None"
        if cli["recency_days"] is None
        else float(recency) == pytest.approx(cli["recency_days"], abs=0.01)
    )
    churn = float(page.locator("#profile .churn").get_attribute("data-value"))
    assert churn == pytest.approx(cli["churn_risk"], abs=1e-3)
    login(page, shop, "eve")  # engineers see recommendations, not customer insights
    page.goto(shop.url + f"/console/users/{user}")
    assert page.locator("#profile").get_attribute("data-status") == "unavailable"
    assert "may not read a customer's profile by their id" in page.locator("#profile").inner_text()
    n = len(shop.audit())
    login(page, shop, "stu")  # stewards do not browse shoppers' recommendations
    page.goto(shop.url + f"/console/users/{user}")
    assert page.locator("#error-message").count() == 1
    assert denied_since(shop, n, "stu", "recommend")
    assert page.js_errors == []


def test_shopper_view_shows_what_each_experiment_variant_would_show(shop: Shop, page: Any) -> None:
    from shelfwise.serving._experiments import save_experiments

    user = known_users(shop.data, shop.work, 1)[0]
    doc = {"experiments": [{"name": "recx", "surface": "recommendations", "variants": [
        {"name": "popular", "weight": 50, "model": "popularity"}, {"name": "usual", "weight": 50},
    ]}]}  # fmt: skip
    save_experiments(shop.work, doc, actor="eve")
    try:
        for _ in range(40):  # the server reads the experiments within --reload-seconds
            api = shop.api("sam", f"/v1/recommendations/{user}?k=10")
            if api.get("experiment"):
                break
            time.sleep(0.25)
        assert api["experiment"]["name"] == "recx"
        login(page, shop, "sam")
        page.goto(shop.url + f"/console/users/{user}")
        cols = page.locator(".col.variant")
        assert sorted(cols.evaluate_all("els => els.map(e => e.dataset.variant)")) == ["popular", "usual"]
        mine = page.locator(".col.variant[data-mine='true']")
        assert mine.count() == 1 and mine.get_attribute("data-variant") == api["experiment"]["variant"]
        for i in range(2):
            assert cols.nth(i).locator("li[data-product]").count() == 10
        shown = page.locator("#recommendations li").evaluate_all("els => els.map(e => e.dataset.product)")
        assert shown == api["items"]  # what the shopper gets: their variant's list
        # and their variant's column is that list too: the page ranks as the server does
        in_column = mine.locator("li[data-product]").evaluate_all("els => els.map(e => e.dataset.product)")
        assert in_column == api["items"]
        assert page.js_errors == []
    finally:
        save_experiments(shop.work, {"experiments": []}, actor="eve", end_missing=True)


def test_experiments_are_started_and_ended_from_the_analytics_page(shop: Shop, page: Any) -> None:
    """An engineer starts an A/B test from the console's editor (checked and installed as
    `experiments set` installs it, audited with their name; the server assigns shoppers at
    once); a draft that is no JSON is refused with the reason and kept; a configuration leaving
    out the running experiment is refused until ticked; "End now" ends it (its `end` set, kept
    in the file); an analyst sees no editor and is refused the action (audited)."""
    from datetime import UTC, datetime

    from shelfwise.serving._experiments import EXPERIMENTS_FILE, load_experiments, save_experiments
    from shelfwise.web import _data

    user = known_users(shop.data, shop.work, 1)[0]
    doc = {"experiments": [{"name": "recx", "surface": "recommendations", "variants": [
        {"name": "popular", "weight": 1, "model": "popularity"}, {"name": "usual", "weight": 1},
    ]}]}  # fmt: skip
    try:
        login(page, shop, "eve")
        page.goto(shop.url + "/console/analytics")
        assert json.loads(page.locator("#experiments-form textarea").input_value()) == {"experiments": []}
        page.locator("#experiments-form textarea").fill("{not json")
        page.click("#save-experiments")
        assert "not valid JSON" in page.locator("#experiments-error").inner_text()
        assert page.locator("#experiments-form textarea").input_value() == "{not json"  # (the draft kept)
        n = len(shop.audit())
        page.locator("#experiments-form textarea").fill(json.dumps(doc))
        page.click("#save-experiments")
        assert "experiments saved (recx)" in page.locator(".flash.ok").inner_text()
        changes = [e for e in shop.audit()[n:] if e["action"] == "experiments.change"]
        assert [e["actor"] for e in changes] == ["eve"]
        for _ in range(40):  # this server follows at once; the loop only bounds a slow machine
            api = shop.api("sam", f"/v1/recommendations/{user}?k=10")
            if api.get("experiment"):
                break
            time.sleep(0.25)
        assert api["experiment"]["name"] == "recx"
        # refused, each with the reason: a save over a file changed since the page was opened,
        # a bundle the registry does not know
        token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
        stamp = _data.experiments_stamp(shop.work)
        stale = {"csrf": token, "stamp": "0" * 64, "experiments": json.dumps(doc)}
        r = page.request.post(shop.url + "/console/experiments", form=stale)
        assert r.status == 422 and "changed since this page was opened" in r.text()
        unknown = {"experiments": [{**doc["experiments"][0], "variants": [
            {"name": "usual", "weight": 1}, {"name": "other", "weight": 1, "bundle": "no-such-bundle"}]}]}  # fmt: skip
        form = {"csrf": token, "stamp": stamp, "experiments": json.dumps(unknown)}
        r = page.request.post(shop.url + "/console/experiments", form=form)
        assert (
            r.status == 422 and "no-such-bundle" in r.text() and _data.experiments_stamp(shop.work) == stamp
        )
        # a configuration without the running experiment would end it: refused until ticked
        page.locator("#experiments-form textarea").fill('{"experiments": []}')
        page.click("#save-experiments")
        said = page.locator("#experiments-error").inner_text()
        assert "leaves out running experiment(s) recx" in said and "tick" in said, said
        page.goto(shop.url + "/console/analytics")
        page.click(".end-experiment[data-experiment='recx'] button")
        assert "experiment recx ended now" in page.locator(".flash.ok").inner_text()
        (ended,) = load_experiments(shop.work)
        assert ended.name == "recx" and ended.end is not None and not ended.active(datetime.now(UTC))
        assert page.locator(".end-experiment").count() == 0
        assert [e for e in page.js_errors if "status of 422" not in e] == []  # (the two refusals')
        login(page, shop, "ana")
        page.goto(shop.url + "/console/analytics")
        assert page.locator("#experiments-editor").count() == 0
        token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
        n = len(shop.audit())
        form = {"csrf": token, "stamp": _data.experiments_stamp(shop.work), "experiments": json.dumps(doc)}
        assert page.request.post(shop.url + "/console/experiments", form=form).status == 403
        assert denied_since(shop, n, "ana", "experiments.change")
        # a scientist may run experiments, not change the shop's merchandising through one
        login(page, shop, "sam")
        token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
        for variant in ({"rules": {"max_per_category": 1}}, {"shop_rules": False}):
            mine = {"experiments": [{"name": "merch", "surface": "search", "variants": [
                {"name": "control", "weight": 1}, {"name": "other", "weight": 1, **variant}]}]}  # fmt: skip
            n = len(shop.audit())
            form = {
                "csrf": token,
                "stamp": _data.experiments_stamp(shop.work),
                "experiments": json.dumps(mine),
            }
            assert page.request.post(shop.url + "/console/experiments", form=form).status == 403, variant
            assert denied_since(shop, n, "sam", "rules.change"), variant
        # a file that cannot be read: said on the page, shown as it is in the editor to mend it
        (shop.work / EXPERIMENTS_FILE).write_text("{bad")
        page.goto(shop.url + "/console/analytics")
        assert page.locator("#experiments-unreadable").count() == 1
        assert page.locator("#experiments-form textarea").input_value() == "{bad"
    finally:
        (shop.work / EXPERIMENTS_FILE).unlink(missing_ok=True)
        save_experiments(shop.work, {"experiments": []}, actor="eve", end_missing=True)


def test_audit_lineage_and_analytics(shop: Shop, page: Any) -> None:
    login(page, shop, "ana")  # a refusal to filter the log by, whichever tests ran before
    token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    assert page.request.post(shop.url + "/console/rules", form={"csrf": token, "rules": "{}"}).status == 403
    login(page, shop, "ada")
    page.goto(shop.url + "/console/audit")
    shot(page, "audit")
    cli = shop.cli("ada", "audit", "--limit", "1")
    assert f"{cli['verification']['entries']} entries" in page.locator("#verification").inner_text()
    page.select_option("select[name=action]", "access.denied")
    page.click("form.filters button[type=submit]")
    actions = page.locator("#audit td.action").all_inner_texts()
    assert actions and set(actions) == {"access.denied"}
    page.goto(shop.url + "/console/lineage")
    shot(page, "lineage")
    kinds = page.locator("svg.lineage g.node").evaluate_all("els => els.map(e => e.getAttribute('class'))")
    assert {"node node-bundle", "node node-run", "node node-dataset", "node node-file"} <= set(kinds)
    # from a served list (the id its answer carried) back to the bundle that answered it
    served = api_search(shop, "pillow")
    url = shop.url + f"/console/lineage?served={served['search_id']}"
    for _ in range(40):  # the exposure log is written every 0.5 s (a 404 until then)
        if page.request.get(url).status == 200:
            break
        time.sleep(0.25)
    page.goto(url)
    assert page.locator(f"svg.lineage g.node-served[data-id='served:{served['search_id']}']").count() == 1
    assert (
        page.locator(f"svg.lineage g.node-bundle[data-id='bundle:{served['bundle_version']}']").count() == 1
    )
    # and from a registry version (the models page links each to its lineage)
    page.goto(shop.url + "/console/models")
    page.locator("tr[data-version] a.lineage-link").first.click()
    assert "Registry version" in page.locator("#lineage-origin").inner_text()
    assert page.locator("svg.lineage g.node-model").count() >= 1
    assert page.request.get(shop.url + "/console/lineage?served=srch_nope").status == 404
    page.goto(shop.url + "/console/analytics")
    rep = shop.cli("ada", "report", "search")
    first = page.locator("#top-queries tr").nth(1)
    top = rep["logged"]["top_queries"][0]
    assert first.locator("td").first.inner_text() == top["query"]
    # conversion per query (Algolia's set) as the report computes it (its known answers on a
    # planted log: tests/search/test_analytics.py)
    assert top["session_conversion"] is not None
    lo, hi = top["session_conversion_ci95"]  # (with its 95% interval, the user as unit)
    assert (
        first.locator("td.conversion").inner_text()
        == f"{100 * top['session_conversion']:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"
    )
    page.wait_for_selector(".chart canvas")
    shot(page, "analytics")
    assert page.js_errors == []


def test_pages_read_without_javascript(shop: Shop, browser: Any) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    p = ctx.new_page()
    login(p, shop, "ada")
    user = known_users(shop.data, shop.work, 1)[0]
    qid = shop.cli("ada", "quarantine", "list", "--limit", "1")["rows"][0]["quarantine_id"]
    for path in (
        "/console/",
        "/console/models",
        "/console/data",
        "/console/data/quarantine",
        f"/console/data/quarantine/{qid}",
        "/console/search?q=pillow&compare=1&b_rules=none",
        f"/console/users/{user}",
        "/console/analytics",
        "/console/insights",
        "/console/lineage",
        "/console/audit",
    ):
        r = p.goto(shop.url + path)
        assert r is not None and r.status == 200, path
        assert p.locator("main h1").count() == 1, path
        assert p.locator("header nav a[href='/docs']").count() == 1  # the API docs, served offline
    p.goto(shop.url + "/console/lineage")
    assert p.locator("svg.lineage g.node").count() > 0  # the graph is drawn on the server
    for path in ("/docs", "/redoc"):  # their scripts from the package (tests/serving/test_openapi.py)
        r = p.goto(shop.url + path)
        assert r is not None and r.status == 200 and "cdn" not in r.text().lower(), path
    ctx.close()


def test_single_user_mode_is_loopback_only_and_forms_need_the_token(console_workdir, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from shelfwise.serving import ServeSettings
    from shelfwise.serving._app import create_app

    _, trained = console_workdir
    work = tmp_path / "w"
    shutil.copytree(trained, work, ignore=shutil.ignore_patterns("serve-*.log", "spool"))
    settings = ServeSettings(absorb_interval_s=0, reload_interval_s=0, warm_search_queries=0)
    app = create_app(work, settings)
    with TestClient(app, client=("203.0.113.9", 40000)) as remote:
        r = remote.get("/console/")
        assert r.status_code == 403 and "loopback" in r.text
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 40000)) as local:
        r = local.get("/console/")
        assert r.status_code == 200 and "single-user" in r.text
        before = (work / "config" / "rules.json").exists()
        r = local.post("/console/rules", data={"rules": "{}"})  # no CSRF token
        assert r.status_code == 403 and "CSRF" in r.text
        assert (work / "config" / "rules.json").exists() == before
        # previews without JavaScript (a whole page) and of a synonyms list (a copy of the engine)
        page = local.get("/console/search?q=red+pillow&k=5").text
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        top = re.search(r'data-product="([^"]+)"', page).group(1)
        hide = {"items": [{"action": "hide", "product_id": top}]}
        r = local.post(
            "/console/search/preview",
            data={"csrf": token, "q": "red pillow", "k": "5", "what": "rules", "rules": json.dumps(hide)},
        )
        assert r.status_code == 200 and "<h1>Preview" in r.text
        in_force, draft = r.text.split('data-label="draft rules', 1)
        assert f'data-product="{top}"' in in_force and f'data-product="{top}"' not in draft
        syn = {"csrf": token, "q": "sofa", "k": "5", "what": "synonyms", "synonyms": "sofa => pillow"}
        r = local.post("/console/search/preview", data=syn, headers={"hx-request": "true"})
        in_force_match, draft_match = re.findall(r'class="match">(\w+)', r.text)
        assert in_force_match != "keyword" and draft_match == "keyword"  # the synonym finds pillows


def test_playground_compares_a_search_experiment_variant(shop: Shop, page: Any) -> None:
    """Column B shows what a search experiment's variant would answer (its rules over those in
    force: here one product per category), column A what serving answers."""
    from shelfwise.serving._experiments import save_experiments

    q = "pillow"
    doc = {"experiments": [{"name": "srch", "surface": "search", "variants": [
        {"name": "control", "weight": 100}, {"name": "one-per-category", "weight": 0, "rules": {"max_per_category": 1}},
    ]}]}  # fmt: skip
    save_experiments(shop.work, doc, actor="eve")
    try:
        api = api_search(shop, q)
        login(page, shop, "eve")
        for _ in range(20):  # the server reads the experiments within --reload-seconds
            page.goto(shop.url + f"/console/search?q={q}&compare=1&b_variant=srch:one-per-category")
            if page.locator("select[name=b_variant] option", has_text="srch:one-per-category").count():
                break
            time.sleep(0.5)
        cols = page.locator(".col")
        assert cols.count() == 2 and "variant srch:one-per-category" in cols.nth(1).get_attribute(
            "data-label"
        )
        a = cols.nth(0).locator("li[data-product]").evaluate_all("els => els.map(e => e.dataset.product)")
        assert a == [it["product_id"] for it in api["items"]]
        cats = cols.nth(1).locator("li[data-product]").evaluate_all("els => els.map(e => e.dataset.category)")
        # one per category first; when the candidates run out of categories, the rest follow
        # in rank order (a short list is worse than a repeat): nothing new after a repeat
        first = next((i for i, c in enumerate(cats) if c in cats[:i]), len(cats))
        assert cats and len(set(cats[:first])) == first and set(cats[first:]) <= set(cats[:first])
        assert page.js_errors == []
        r = page.request.get(shop.url + f"/console/search?q={q}&compare=1&b_variant=srch:nope")
        assert r.status == 404
    finally:
        save_experiments(shop.work, {"experiments": []}, actor="eve", end_missing=True)


def test_a_stewards_privacy_requests_consent_access_and_erasure(shop: Shop, page: Any) -> None:
    """A steward handles a shopper's requests on the privacy page: a consent change (what
    `privacy consent` then shows), everything held as a download (what `privacy export` writes),
    an erasure confirmed by typing the id again; each audited in the steward's name. Last in
    the module: the erased shopper is gone for the tests after it."""
    user = known_users(shop.data, shop.work, 8)[-1]
    n = len(shop.audit())
    login(page, shop, "stu")
    assert page.locator("header.top a", has_text="Privacy").count() == 1  # a steward's page
    page.goto(shop.url + f"/console/privacy?user_id={user}")
    page.select_option("#consent-form select[name=personalization]", "withdrawn")
    page.click("#consent-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "consent of" in page.locator(".flash.ok").inner_text()
    flag = page.locator("td.flag[data-flag=personalization]")
    assert flag.get_attribute("data-value") == "false"
    cli = shop.cli("stu", "privacy", "consent", "--user", user)
    assert cli["consent"]["personalization"] is False
    assert [(r["source"], r["by"]) for r in cli["history"]][-1] == ("console", "stu")
    assert page.locator("#consent-history tbody tr").first.inner_text().count("console") == 1

    with page.expect_download() as dl:
        page.click("#export-form button[type=submit]")
    doc = json.loads(Path(dl.value.path()).read_text())
    out = shop.work.parent / "access.json"
    shop.cli("stu", "privacy", "export", "--user", user, "--out", str(out))
    by_cli = json.loads(out.read_text())
    assert doc["pseudonym"] == by_cli["pseudonym"] and set(doc["parts"]) == set(by_cli["parts"])

    def rows(d: dict) -> dict:  # (the audit part: the CLI's export came after the download)
        return {k: len(v.get("rows", [])) for k, v in d["parts"].items() if k != "audit"}

    assert rows(doc) == rows(by_cli) and rows(doc)["curated.events@v1"] > 0

    page.fill("#erase-form input[name=confirm]", "someone else")
    page.click("#erase-form button[type=submit]")
    assert "type the id" in page.locator("#error-message").inner_text()  # nothing erased
    page.goto(shop.url + f"/console/privacy?user_id={user}")
    page.fill("#erase-form input[name=confirm]", user)
    page.click("#erase-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert f"{user} erased:" in page.locator(".flash.ok").inner_text()
    assert page.locator("#consent").get_attribute("data-erased") == "true"
    entries = shop.audit()[n:]
    mine = [e["action"] for e in entries if e["actor"] == "stu" and e["action"].startswith("privacy.")]
    assert mine.count("privacy.consent") == 1 and "privacy.erase" in mine and "privacy.export" in mine
    # what the CLI's access document finds now: nothing of theirs in curated data
    shop.cli("stu", "privacy", "export", "--user", user, "--out", str(out))
    after = json.loads(out.read_text())
    assert rows(after).get("curated.events@v1", 0) == 0 and after["parts"]["erasure"]["erased_at"]
    # erased, nothing came in since: no second erasure offered; consent reads as the default now
    assert (
        page.locator("#erase-form").count() == 0
        and "nothing to erase again" in page.locator("#erase").inner_text()
    )
    assert "no record since the erasure" in page.locator("td.flag[data-flag=personalization]").inner_text()
    # a mistyped id is said to hold nothing (it looked exactly like a shopper's record)
    page.goto(shop.url + "/console/privacy?user_id=NO-SUCH-SHOPPER-42")
    assert "Nothing held under this id" in page.locator("#nothing-held").inner_text()
    page.fill("#erase-form input[name=confirm]", "NO-SUCH-SHOPPER-42")
    page.click("#erase-form button[type=submit]")
    assert "nothing was held under 'NO-SUCH-SHOPPER-42'" in page.locator(".flash.ok").inner_text()
    # a pseudonym (what curated tables show) names nobody: refused, not looked up
    page.goto(shop.url + "/console/privacy?user_id=u_" + "0" * 32)
    assert (
        "is a pseudonym" in page.locator("#problem").inner_text()
        and page.locator("#consent-form").count() == 0
    )
    assert page.js_errors == []

    n = len(shop.audit())
    login(page, shop, "ana")  # analysts handle no privacy requests
    assert page.locator("header.top a", has_text="Privacy").count() == 0
    page.goto(shop.url + f"/console/privacy?user_id={user}")
    assert page.locator("#error-message").count() == 1
    # the people's roles allowed (a service cannot log in to the console)
    assert page.locator("#error-message").inner_text().endswith("roles allowed: admin, steward")
    assert denied_since(shop, n, "ana", "privacy.consent")
