"""The HTTP contract: `/openapi.json` describes the API (typed answers, request bodies, the one
error shape, the API-key schemes), Schemathesis finds nothing against a served shop, and the API
docs (`/docs`, `/redoc`) render from the package with no request leaving the machine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from shelfwise.serving import create_app
from shelfwise.serving._http_docs import ASSETS
from tests.cli.test_cli import sw
from tests.serving.conftest import Server, catalog_products, free_port

LISTS = ("/v1/recommendations/{user_id}", "/v1/items/{product_id}/similar", "/v1/search", "/v1/suggest")


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The document of a shop with people registered (the API needs a key). It is built without a
    bundle: the lifespan loads one, the schema does not need it."""
    from shelfwise.governance import People

    work = tmp_path_factory.mktemp("schema")
    People(work).add("ann", "admin")
    return create_app(work).openapi()


def _json_schema(op: dict, status: str) -> dict:
    return op["responses"][status]["content"]["application/json"]["schema"]


def test_every_json_answer_is_typed_and_every_error_has_the_one_shape(schema):
    paths = schema["paths"]
    for path in (*LISTS, "/healthz", "/readyz", "/v1/admin/reload"):
        (op,) = paths[path].values()
        assert "$ref" in _json_schema(op, "200"), path  # not `"type": "string"`
    for path in LISTS:
        op = paths[path]["get"]
        for status in ("401", "403", "422", "503"):
            assert _json_schema(op, status) == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's shape, not ours
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    events = paths["/v1/events"]["post"]
    assert set(events["responses"]) >= {"202", "207", "400", "413", "422"}
    body = events["requestBody"]["content"]["application/json"]["schema"]
    event = body["anyOf"][0]["items"]
    assert set(event["required"]) == {"user_id", "event_type", "timestamp"}
    assert event["additionalProperties"] is False and "recommendation_id" in event["properties"]
    # the API key, as header or bearer token, on every /v1 operation (not on the probes)
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    for path, ops in paths.items():
        for op in ops.values():
            assert (op.get("security") is not None) == path.startswith("/v1/"), path
    search_q = next(p for p in paths["/v1/search"]["get"]["parameters"] if p["name"] == "q")
    assert search_q["schema"]["maxLength"] == 512 and search_q["schema"]["pattern"]
    # the attribute filters: one documented parameter (`attr.color=red`, `attr[color]=red`)
    attr = next(p for p in paths["/v1/search"]["get"]["parameters"] if p["name"] == "attr")
    assert attr["style"] == "deepObject" and "attr.color=red" in attr["description"]
    assert attr["schema"]["additionalProperties"]["maxLength"] == 256
    # a blank key or value is refused (422): the document says so, or a fuzzer sends one
    for part in (attr["schema"]["additionalProperties"], attr["schema"]["propertyNames"]):
        assert re.search(part["pattern"], "red") and not re.search(part["pattern"], " "), part
    facets = schema["components"]["schemas"]["Facets"]["properties"]
    assert "its own `attr.` one" in facets["attributes"]["description"]


def test_single_user_mode_declares_no_key(tmp_path: Path):
    """Nobody registered: every call is allowed, so no operation asks for a key (an API tester
    would otherwise expect a 401); the schemes stay documented."""
    schema = TestClient(create_app(tmp_path)).get("/openapi.json").json()
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
    assert all("security" not in op for ops in schema["paths"].values() for op in ops.values())


def test_errors_outside_the_routes_have_the_one_shape_too(tmp_path: Path):
    client = TestClient(create_app(tmp_path))  # no lifespan: no bundle loaded
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.delete("/v1/search")
    assert (
        r.status_code == 405 and r.json() == {"error": "Method Not Allowed"} and r.headers["allow"] == "GET"
    )
    r = client.get("/v1/search", params={"q": "tea"})
    assert r.status_code == 503 and r.json() == {"error": "not ready: the bundle is still loading"}
    r = client.get("/v1/search", params={"q": "tea", "k": 0})
    assert r.status_code in (422, 503) and set(r.json()) <= {"error", "details"}


# Schemathesis against a served shop whose API needs a key (people are registered), every check,
# a bounded deterministic run, with the repository's schemathesis.toml (what it tells Schemathesis
# about POST /v1/events, and why, is written there) and a product the catalog has for /similar.
CONFIG = Path(__file__).parents[2] / "schemathesis.toml"
SIMILAR = """
[[operations]]
include-path = "/v1/items/{{product_id}}/similar"
parameters = {{ "path.product_id" = "{product}" }}
"""


@pytest.fixture(scope="module")
def keyed_server(served_workdir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    _, work = served_workdir
    copy = tmp_path_factory.mktemp("openapi") / "w"
    shutil.copytree(work, copy)  # events posted by the run (and the registered key) stay in the copy
    key = json.loads(
        sw("users", "add", "--workdir", str(copy), "--name", "ann", "--role", "admin", "--json").stdout
    )
    env = {"SHELFWISE_AS": "ann", "SHELFWISE_API_KEY": key["api_key"]}
    s = Server(copy, "--absorb-seconds", "0", "--reload-seconds", "0", "--drain-seconds", "0", env=env)
    yield s, key["api_key"]
    s.stop()


@pytest.mark.slow
def test_schemathesis_finds_no_failure_against_a_served_shop(keyed_server, tmp_path: Path):
    server, key = keyed_server
    assert server.client.get("/v1/search", params={"q": "tea"}).status_code == 401  # the key is needed
    # a field is text or a number: an object (or list, or true/false) is rejected, not stored as text
    product = catalog_products(server.workdir)[0]
    event = {"user_id": {"id": 1}, "product_id": product, "event_type": "click", "timestamp": "2026-11-01"}
    r = server.client.post("/v1/events", json=[event], headers={"X-API-Key": key})
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "invalid_type", r.text
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.read_text() + SIMILAR.format(product=product))
    proc = subprocess.run(
        [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
         "--config-file", str(config), "run", f"{server.url}/openapi.json", "--checks", "all",
         "--max-examples", "10", "--generation-deterministic", "--workers", "1", "--no-color",
         "--header", f"X-API-Key: {key}", "--report", "junit", "--report-dir", str(tmp_path / "report")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    # POST /v1/ask, GET /v1/users/{user_id}/profile (issue 18), PUT /v1/users/{user_id}/consent (19)
    assert "12 selected / 12 total" in out, out[-3000:]


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app under uvicorn in a thread, without its lifespan: /docs, /redoc and /openapi.json
    need no bundle."""
    import uvicorn

    if not (ASSETS / "swagger-ui-bundle.js").is_file():
        pytest.fail("the API docs assets are not installed: run scripts/docs-assets.sh (make install does)")
    port = free_port()
    app = create_app(tmp_path_factory.mktemp("docs"))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(10)


def _offline_page(browser, url: str):
    """A page on which every request that would leave the machine is refused and recorded."""
    page = browser.new_page()
    outside: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def route(r) -> None:
        if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda req: failed.append(f"{req.url}: {req.failure}"))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page, outside, failed, errors


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/docs", ".opblock-summary-path[data-path='/v1/search']"),
        ("/redoc", "h2:has-text('Search the catalog')"),
    ],
)
def test_api_docs_render_offline(browser, docs_url, path, operation):
    page, outside, failed, errors = _offline_page(browser, docs_url + path)
    try:
        page.wait_for_selector(operation, timeout=20_000)
        body = page.inner_text("body")
        for summary in ("Recommendations for a shopper", "Post shopper events"):
            assert summary in body, path
        page.wait_for_load_state("networkidle")
        assert outside == [] and failed == [] and errors == [], (outside, failed, errors)
    finally:
        page.close()
