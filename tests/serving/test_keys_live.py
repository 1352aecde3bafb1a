"""API keys as a running server sees them: a revoked key stops at once, refused in its owner's
name."""

from __future__ import annotations

import shutil
from pathlib import Path

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
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    mia = ada.add_person("mia", "engineer")
    svc = Service(work)
    assert svc.caller(mia, "serve.call") == (True, "mia")
    ada.revoke_person("mia")
    assert svc.caller(mia, "serve.call") == (False, "mia")  # at once, no refresh
    ctx = type("Ctx", (), {"service": lambda self: svc, "workdir": work})()
    scope = {"type": "http", "headers": [(b"x-api-key", mia.encode())], "method": "GET", "path": "/v1/search"}
    try:
        authorize(ctx, Request(scope))  # type: ignore[arg-type]
        raise AssertionError("a revoked key was let through")
    except HTTPException as exc:
        assert exc.status_code == 401 and "revoked" in str(exc.detail)
    denied = [e for e in ada.audit(limit=5) if e["action"] == "access.denied"]
    assert denied[-1]["actor"] == "mia"
