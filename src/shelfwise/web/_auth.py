"""Who is using the console: a signed session cookie, CSRF tokens, and the permission check.

The session is a cookie holding JSON (`n` the person's name, `h` a prefix of their API key's
sha256, `c` the CSRF token, `t` when it was issued) and an HMAC-SHA256 over it with a key kept in
`<workdir>/secrets/console.key` (0600, made on first use). Nothing secret is in the cookie: the
API key itself never leaves the login form. The key-hash prefix ties a session to the key it was
opened with, so a person whose key is replaced or who is deactivated is logged out at their next
request. Every request re-reads `governance/people.json` (a small file): roles are never cached.
Logging out ends that session on the server too: its token's hash is kept in
`<workdir>/secrets/console-logouts.json` until the cookie would have expired (a copied cookie
opened the console for 12 hours after its owner logged out).

Permissions are `governance.PERMISSIONS`, the table the CLI and the HTTP API check; a refusal is
the same `access.denied` audit entry (with `via: "console"` and the page's path). In
single-user mode (nobody registered) the console is open to requests from the loopback interface
only, as `single-user` (the CLI's actor name for that mode).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request

from ..governance import PERMISSIONS, AuditLog, People, Role
from ..governance._access import audit_failed_login
from ..governance._privacy import SecretStore

__all__ = [
    "COOKIE",
    "Denied",
    "Session",
    "User",
    "check_csrf",
    "form",
    "permit",
    "read_session",
    "write_session",
]

COOKIE = "shelfwise_console"
MAX_AGE_S = 12 * 3600  # a working day; then log in again
SINGLE_USER = "single-user"
PEOPLE_ROLES = {Role.ADMIN, Role.STEWARD, Role.SCIENTIST, Role.ENGINEER, Role.ANALYST}  # not services


class Denied(Exception):
    """A refusal, shown as a 403 (or 401: not logged in) page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class User:
    name: str
    role: str  # a Role value, or "admin" in single-user mode (everything is allowed there)
    single_user: bool = False

    def may(self, action: str) -> bool:
        return self.single_user or self.role in {r.value for r in PERMISSIONS[action]}


@dataclass
class Session:
    csrf: str
    name: str | None = None
    key_hash: str | None = None
    issued: float = 0.0


def _key(workdir: Path) -> bytes:
    return SecretStore(workdir).get_or_create("console")


def _sign(workdir: Path, body: bytes) -> str:
    return hmac.new(_key(workdir), body, hashlib.sha256).hexdigest()


def read_session(request: Request, workdir: Path) -> Session | None:
    raw = request.cookies.get(COOKIE)
    if not raw or "." not in raw:
        return None
    b64, sig = raw.rsplit(".", 1)
    try:
        body = base64.urlsafe_b64decode(b64.encode())
    except ValueError:
        return None
    if not hmac.compare_digest(_sign(workdir, body), sig):
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if time.time() - float(doc.get("t", 0)) > MAX_AGE_S:
        return None
    if _token_hash(str(doc["c"])) in _logged_out(workdir):
        return None
    return Session(str(doc["c"]), doc.get("n"), doc.get("h"), float(doc.get("t", 0)))


LOGOUTS = Path("secrets") / "console-logouts.json"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _logged_out(workdir: Path) -> dict[str, float]:
    """The sessions logged out before they expired: token hash -> when the cookie expires."""
    try:
        doc = json.loads((workdir / LOGOUTS).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def end_session(workdir: Path, session: Session | None) -> None:
    """Log `session` out on the server: its cookie is refused from now on, wherever it was
    copied, until it would have expired anyway (then its entry goes)."""
    if session is None or not session.name:
        return
    import fcntl
    import os

    path = workdir / LOGOUTS
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # one logout at a time across the server's workers: two read-merge-writes at once lost one
    # revocation, and its cookie kept working (the review's)
    lock = os.open(path.with_name(f".{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = time.time()
        kept = {h: t for h, t in _logged_out(workdir).items() if float(t) > now}
        kept[_token_hash(session.csrf)] = session.issued + MAX_AGE_S
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(kept, fh)
        tmp.replace(path)
    finally:
        os.close(lock)  # (closing releases the lock)


def new_session(name: str | None = None, key_hash: str | None = None) -> Session:
    return Session(secrets.token_urlsafe(24), name, key_hash, time.time())


def write_session(response: Any, workdir: Path, session: Session, secure: bool = False) -> None:
    body = json.dumps(
        {"c": session.csrf, "n": session.name, "h": session.key_hash, "t": session.issued},
        separators=(",", ":"),
    ).encode()
    value = base64.urlsafe_b64encode(body).decode() + "." + _sign(workdir, body)
    response.set_cookie(
        COOKIE, value, max_age=MAX_AGE_S, path="/console", httponly=True, samesite="lax", secure=secure
    )


def _loopback_name(host: str) -> bool:
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def is_loopback(request: Request) -> bool:
    """A request from this machine, addressed to this machine by a loopback name: the `Host` check
    stops DNS rebinding (a page on attacker.example re-pointed at 127.0.0.1 would otherwise be
    served the single-user admin console, and its forms with it)."""
    client = request.client.host if request.client else ""
    host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
    if client == "testclient":  # Starlette's TestClient (in-process tests), addressed as testserver
        return host in ("testserver", "localhost") or _loopback_name(host)
    return _loopback_name(client) and _loopback_name(host)


def current_user(request: Request, workdir: Path, session: Session | None) -> User | None:
    """The logged-in person (re-checked against people.json), the single-user identity, or None."""
    people = People(workdir).load()
    if not people:
        return User(SINGLE_USER, Role.ADMIN.value, single_user=True) if is_loopback(request) else None
    if session is None or not session.name:
        return None
    p = people.get(session.name)
    if p is None or not p.active or not session.key_hash or not p.key_sha256.startswith(session.key_hash):
        return None
    return User(p.name, p.role.value)


def login(workdir: Path, name: str, key: str) -> tuple[User, str]:
    """Check a name and API key (as `People.authenticate`); (user, key-hash prefix) or Denied.
    Failures and services trying to log in are audited as `access.denied`."""
    from ..errors import AccessDenied

    people = People(workdir)
    try:
        p = people.authenticate(name or None, key or None)
    except AccessDenied as exc:
        audit_failed_login(workdir, name or None, "console.login", str(exc), via="console")
        raise Denied(401, "unknown person or wrong API key") from None
    if p.role not in PEOPLE_ROLES:
        AuditLog(workdir).append(
            "access.denied",
            actor=p.name,
            outcome="denied",
            denied_action="console.login",
            role=p.role.value,
            via="console",
        )
        raise Denied(403, f"{p.name} is a {p.role.value}: services call the API, people use the console")
    return User(p.name, p.role.value), p.key_sha256[:16]


def permit(workdir: Path, user: User | None, action: str, path: str) -> User:
    """`user` if their role may do `action` (governance.PERMISSIONS); Denied (audited) otherwise."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}")
    if user is None:
        raise Denied(401, "log in first")
    if user.may(action):
        return user
    AuditLog(workdir).append(
        "access.denied",
        actor=user.name,
        outcome="denied",
        denied_action=action,
        role=user.role,
        path=path,
        via="console",
    )
    # the people's roles: a service cannot log in to the console ("roles allowed: admin, service,
    # steward" sent a scientist looking for a service's key)
    allowed = ", ".join(sorted(r.value for r in PERMISSIONS[action] if r is not Role.SERVICE))
    raise Denied(403, f"{user.name} (role {user.role}) may not {action}; roles allowed: {allowed}")


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the console's forms post nothing else; no multipart parser needed)."""
    body = await request.body()
    if len(body) > 1 << 20:
        raise Denied(413, "form larger than 1 MiB")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def check_csrf(session: Session | None, fields: dict[str, str], request: Request) -> None:
    """Every state-changing request carries the session's token (form field or htmx header)."""
    token = fields.get("csrf") or request.headers.get("x-csrf-token") or ""
    if session is None or not hmac.compare_digest(session.csrf, token):
        raise Denied(403, "the form expired or did not come from this console (CSRF check); reload the page")
    # and the browser says the form came from this site (a second line of defence: Origin, else Referer)
    source = request.headers.get("origin") or request.headers.get("referer")
    if source and source != "null" and urlsplit(source).netloc != request.headers.get("host", ""):
        raise Denied(403, "the form did not come from this console (its Origin is another site)")
