"""Who may call the API: the API-key check of every `/v1` endpoint.

A shop with no people registered serves everyone (single-user mode). Once people are registered
(`shelfwise users add`), each call needs the API key of someone whose role may do the action
(header `X-API-Key`, or `Authorization: Bearer <key>`): 401 without a known key, 403 when the
role may not; both are written to the audit log.

The check is a plain call at the top of each endpoint, not a FastAPI dependency: solving a
dependency (with the security classes as sub-dependencies) cost ~60 µs per request, 15% of a
cached recommendation, measured in-process. The two headers are declared to OpenAPI by hand
(`SCHEMES`, `REQUIREMENT`), so `/openapi.json` and `/docs` ("Authorize") show them all the same.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from ._http_context import AppContext
from ._service import Service

__all__ = ["REQUIREMENT", "SCHEMES", "authenticate", "authorize", "route_path"]

_KEY_DOC = "a person's or service's API key (`shelfwise users add`); needed once people are registered"
SCHEMES: dict[str, dict[str, Any]] = {
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": _KEY_DOC},
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": _KEY_DOC + " (as a bearer token)"},
}
# either scheme (a list of alternatives); `openapi_extra={"security": REQUIREMENT}` on a route
REQUIREMENT: list[dict[str, list[str]]] = [{name: []} for name in SCHEMES]


def authorize(ctx: AppContext, request: Request, action: str = "serve.call") -> Service:
    """The service when the caller may do `action` (serve.call, serve.admin); 503 while the
    bundle loads, 401 / 403 (audited) otherwise."""
    s = ctx.service()
    key = _key_of(request)
    allowed, name = s.caller(key, action)  # (allowed, None: nobody registered, single-user mode)
    if allowed:
        request.state.caller = name  # (who posted: recorded beside their events)
        return s
    status = 403 if name is not None and name not in s.revoked_keys.values() else 401
    denials(ctx).deny(name or "anonymous", action, route_path(request), status)
    if name is None or not allowed and name in s.revoked_keys.values():  # (a revoked key: 401)
        if key:  # a key was sent: it is not one of this shop's (mistyped, revoked, another shop's)
            raise HTTPException(401, "this API key is not valid here (unknown or revoked)")
        raise HTTPException(401, "an API key is required (header X-API-Key)")
    raise HTTPException(403, f"{name} may not {action}")


def authenticate(ctx: AppContext, request: Request) -> None:
    """The 401 of `authorize` (audited as it audits) when the shop asks for API keys and the
    request carries no known one; a known key passes whatever its role (the route judges that).
    A request that fails validation is answered this first: a caller without a key was told
    which fields a route takes and what they hold (400 or 422 before 401)."""
    s = ctx.service()
    allowed, name = s.caller(_key_of(request), "serve.call")
    if allowed or (name is not None and name not in s.revoked_keys.values()):
        return
    authorize(ctx, request, "serve.call")  # raises its 401


def _key_of(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if key is None and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key


DENIAL_WINDOW_S = 10.0


class Denials:
    """A server's `access.denied` audit entries. The first denial of a kind (caller, action,
    route, status) is audited at once; the ones that follow within `DENIAL_WINDOW_S` are counted
    and audited as one entry (`repeated`: how many it stands for) once the window has passed, at
    the next denial or the server's stop (`flush`). A flood of calls without a key was one
    entry each, every one an exclusive lock and an fsync on the event loop: 85 answers a
    second, and the shop's own traffic queued behind them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._open: dict[tuple[str, str, str, int], list[float]] = {}  # kind -> [since, held]
        self._lock = threading.Lock()

    def deny(self, actor: str, action: str, path: str, status: int) -> None:
        kind = (actor, action, path, status)
        now = time.monotonic()
        with self._lock:
            due = self._due(now)
            window = self._open.get(kind)
            if window is None:
                self._open[kind] = [now, 0.0]
                due.append((kind, 1))
            else:
                window[1] += 1
        self._write(due)

    def flush(self, *, passed_only: bool = False) -> None:
        """Audit the counts held: of the windows that have passed (`passed_only`: every
        `DENIAL_WINDOW_S` while the server runs, so that a burst is in the log within seconds,
        not at the next denial), or all of them (the server's stop)."""
        with self._lock:
            due = self._due(time.monotonic() if passed_only else float("inf"))
        self._write(due)

    def _due(self, now: float) -> list[tuple[tuple[str, str, str, int], int]]:
        """The held counts of the windows that have passed (their kinds start afresh)."""
        due = []
        for kind, (since, held) in list(self._open.items()):
            if now - since >= DENIAL_WINDOW_S:
                del self._open[kind]
                if held:
                    due.append((kind, int(held)))
        return due

    def _write(self, entries: list[tuple[tuple[str, str, str, int], int]]) -> None:
        from ..governance import AuditLog

        for (actor, action, path, status), n in entries:
            extra = {"repeated": n, "within_s": DENIAL_WINDOW_S} if n > 1 else {}
            AuditLog(self.workdir).append(
                "access.denied",
                actor=actor,
                outcome="denied",
                denied_action=action,
                path=path,
                status=status,
                **extra,
            )


def denials(ctx: AppContext) -> Denials:
    """The app's one `Denials` (made at its first denial)."""
    got: Denials | None = ctx.state.get("denials")
    if got is None:
        got = ctx.state.setdefault("denials", Denials(ctx.workdir))
    return got


def route_path(request: Request) -> str:
    """The route's template (`/v1/users/{user_id}/profile`), not the requested path: a path can
    hold the shop's own user id, and the append-only audit log holds no raw ids."""
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template or request.scope.get("root_path", "") or "unmatched")
