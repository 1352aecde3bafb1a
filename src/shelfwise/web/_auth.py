"""Who is using the console: a signed session cookie, CSRF tokens, and the permission check.

The session is a cookie holding JSON (`n` the person's name, `h` a prefix of their API key's
sha256, `c` the CSRF token, `t` when it was issued) and an HMAC-SHA256 over it with a key kept in
`<workdir>/secrets/console.key` (0600, made on first use). Nothing secret is in the cookie: the
API key itself never leaves the login form. The key-hash prefix ties a session to the key it was
opened with, so a person whose key is replaced or who is deactivated is logged out at their next
request. Every request re-reads `governance/people.json` (a small file): roles are never cached.
Logging out ends that session on the server too: its token's hash is kept in
`<workdir>/secrets/console-logouts.json` until the cookie would have expired (a copied cookie
opened the console for 12 hours after its owner logged out). That list fails closed: while it
cannot be read (corrupt, unreadable) every person's session is refused, with one error in the
log naming the file, and the next login replaces it by a cut-off that refuses every cookie
issued before it (the revocations it held are unknown; a copy of it is kept aside); it is written
whole or not at all (a write that fails leaves the list as it was, unreadable ones included). A
"Log out" from a session already refused (expired, revoked, or the list unreadable) only clears
the cookie.

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
import logging
import math
import secrets
import shutil
import time
from collections.abc import Callable
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

log = logging.getLogger("shelfwise.web")

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
    session = Session(str(doc["c"]), doc.get("n"), doc.get("h"), float(doc.get("t", 0)))
    if session.name and _revoked(workdir, session):
        return None
    return session


LOGOUTS = Path("secrets") / "console-logouts.json"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# the entry of the logout list that refuses every session issued before it (epoch seconds): what
# replaces a list that could not be read (no token hash is this: those are 64 hex digits)
ISSUED_BEFORE = "issued_before"


class _Unreadable(Exception):
    """The logout list exists and cannot be read as one (corrupt, unreadable)."""


def _logged_out(workdir: Path) -> dict[str, float]:
    """The sessions logged out before they expired: token hash -> when the cookie expires (and
    `ISSUED_BEFORE` -> a cut-off). No file: nobody logged out. A file that cannot be read as such
    a list raises `_Unreadable`: it read as empty, and every revoked session came back to life."""
    path = workdir / LOGOUTS
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # (ValueError: not UTF-8)
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _Unreadable(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _Unreadable(f"a JSON {type(doc).__name__}, not an object")
    for h, t in doc.items():
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise _Unreadable(f"entry {h!r} holds {t!r}, not a time")
    return {str(h): float(t) for h, t in doc.items()}


# (path, mtime_ns, size) of the unreadable lists already said in the log: one error per state of
# the file, not one per request
_said_unreadable: set[tuple[str, int, int]] = set()


def _say_unreadable(workdir: Path, why: str) -> None:
    path = workdir / LOGOUTS
    try:
        st = path.stat()
        state = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        state = (str(path), -1, -1)
    if state in _said_unreadable:
        return
    _said_unreadable.add(state)
    log.error(
        "console: the logout list %s cannot be read (%s): every console session is refused as "
        "logged out until the next login replaces it with a cut-off (sessions issued before it "
        "stay refused)",
        path,
        why,
    )


def _revoked(workdir: Path, session: Session) -> bool:
    """Whether a person's session was logged out: its token is on the list, or it was issued
    before the list's cut-off; every session while the list cannot be read (fail closed)."""
    try:
        out = _logged_out(workdir)
    except _Unreadable as exc:
        _say_unreadable(workdir, str(exc))
        return True
    return _token_hash(session.csrf) in out or session.issued < out.get(ISSUED_BEFORE, 0.0)


def _write_logouts(workdir: Path, change: Callable[[dict[str, float] | None], dict[str, float]]) -> None:
    """Rewrite the logout list under a lock (one writer at a time across the server's workers:
    two read-merge-writes at once lost one revocation, and its cookie kept working): `change`
    gets the current entries (None when the file cannot be read) and returns the new ones. The
    file is written whole or not at all (a temporary file, flushed to disk, renamed over it);
    an unreadable one is kept beside it (`.unreadable-<time>`) for whoever looks into it."""
    import fcntl
    import os

    path = workdir / LOGOUTS
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = os.open(path.with_name(f".{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current: dict[str, float] | None = _logged_out(workdir)
        except _Unreadable as exc:
            _say_unreadable(workdir, str(exc))
            current = None
            # a copy kept aside, the list itself left in place until its replacement is: a write
            # that fails below leaves the unreadable list, which still refuses every session (moved
            # aside first, a failed write left no list at all, read as "nobody logged out")
            try:
                shutil.copyfile(path, path.with_name(f"{path.name}.unreadable-{int(time.time())}"))
            except OSError:
                pass  # (replaced below all the same)
        entries = change(current)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(entries, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # (the list stays as it was: no half-written file anywhere)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # (the rename itself survives a crash)
        finally:
            os.close(dir_fd)
    finally:
        os.close(lock)  # (closing releases the lock)


def _kept(entries: dict[str, float] | None, now: float) -> dict[str, float]:
    """The entries still refusing a live cookie; for a list that could not be read, a cut-off
    at `now`: every session issued before it is refused (which it logged out is unknown)."""
    if entries is None:
        return {ISSUED_BEFORE: now}
    kept = {h: t for h, t in entries.items() if h != ISSUED_BEFORE and t > now}
    cut = entries.get(ISSUED_BEFORE)
    if cut is not None and cut + MAX_AGE_S > now:  # (a cookie issued before it may live still)
        kept[ISSUED_BEFORE] = cut
    return kept


def end_session(workdir: Path, session: Session | None) -> None:
    """Log `session` out on the server: its cookie is refused from now on, wherever it was
    copied, until it would have expired anyway (then its entry goes)."""
    if session is None or not session.name:
        return
    token, expires = _token_hash(session.csrf), session.issued + MAX_AGE_S

    def change(entries: dict[str, float] | None) -> dict[str, float]:
        return {**_kept(entries, time.time()), token: expires}

    _write_logouts(workdir, change)


def judge_logouts(workdir: Path) -> None:
    """Before a login: a logout list that cannot be read is replaced by a cut-off at this moment
    (every session issued before it stays refused; the one about to be issued is not), so the
    console opens again to whoever logs in. A readable list is left as it is."""
    try:
        _logged_out(workdir)
        return
    except _Unreadable:
        pass
    _write_logouts(workdir, lambda entries: _kept(entries, time.time()))


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
    judge_logouts(workdir)  # (an unreadable logout list refused every session: the new one too)
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
