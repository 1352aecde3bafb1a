"""API keys as a running server sees them: a revoked key stops at once, refused in its owner's
name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shelfwise.serving import Service


def test_a_revoked_key_stops_at_once_and_its_refusal_names_the_owner(served_workdir, tmp_path: Path) -> None:
    """A revoked key kept working until the server's next refresh (2-3 s), and its refusals were
    audited as "anonymous": the register is looked at on every call, a revoked key is refused
    (401) in its owner's name."""
    from fastapi import HTTPException
    from starlette.requests import Request

    from shelfwise import Shop
    from shelfwise.serving._http_auth import authorize

    _, src = served_workdir
    work = tmp_path / "w"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("serve-*.log"))
    svc = Service(work)  # started in single-user mode: everyone served
    ctx = type("Ctx", (), {"service": lambda self: svc, "workdir": work, "state": {}})()

    def asks(key: str | None) -> Request:
        headers = [(b"x-api-key", key.encode())] if key else []
        return Request({"type": "http", "headers": headers, "method": "GET", "path": "/v1/search"})

    assert authorize(ctx, asks(None)) is svc  # type: ignore[arg-type]
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    # the first person registered: keys are asked for at once, not from the next refresh
    with pytest.raises(HTTPException) as denied:
        authorize(ctx, asks(None))  # type: ignore[arg-type]
    assert denied.value.status_code == 401
    mia = ada.add_person("mia", "engineer")
    assert svc.caller(mia, "serve.call") == (True, "mia")
    ada.revoke_person("mia")
    assert svc.caller(mia, "serve.call") == (False, "mia")  # at once, no refresh
    with pytest.raises(HTTPException) as revoked:
        authorize(ctx, asks(mia))  # type: ignore[arg-type]
    assert revoked.value.status_code == 401 and "revoked" in str(revoked.value.detail)
    denied = [e for e in ada.audit(limit=5) if e["action"] == "access.denied"]
    assert denied[-1]["actor"] == "mia"


def test_a_request_without_a_key_is_refused_before_its_validation_errors_are_said(
    served_workdir, tmp_path: Path
) -> None:
    """Over real HTTP: a /v1/ request without a key got its 400 or 422, naming the fields the
    route takes, before the 401 (an SRE's walk: `POST /v1/ask` with a bad body); now 401 first,
    and the same requests with a key get their validation answers as before."""
    from shelfwise import Shop

    from .conftest import Server

    _, src = served_workdir
    work = tmp_path / "w"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("serve-*.log"))
    key = Shop(work).add_person("ada", "admin")
    server = Server(work, "--absorb-seconds", "0", env={"SHELFWISE_AS": "ada", "SHELFWISE_API_KEY": key})
    try:
        bad = [
            ("POST", "/v1/ask", {"content": b"not json", "headers": {"content-type": "application/json"}}),
            ("GET", "/v1/search", {}),  # no q
            ("GET", "/v1/search?q=chair&k=0", {}),
            ("POST", "/v1/events", {"content": b"[{", "headers": {"content-type": "application/json"}}),
            ("PUT", "/v1/users/u1/consent", {"json": {"marketing": "perhaps"}}),
        ]
        for method, path, kw in bad:
            got = server.client.request(method, path, **kw)
            assert got.status_code == 401, (method, path, got.status_code, got.text)
            assert "API key" in got.json()["error"]
        for method, path, kw in bad:
            headers = {**kw.get("headers", {}), "x-api-key": key}
            got = server.client.request(method, path, **{**kw, "headers": headers})
            assert got.status_code in (400, 422), (method, path, got.status_code, got.text)
        assert server.client.get("/readyz").status_code == 200  # no key asked where none is
    finally:
        server.stop()
