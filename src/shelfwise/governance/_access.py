"""People, roles and permissions.

`<workdir>/governance/people.json` (0600) lists the people and services of a shop with their role
and the sha256 of their API key (keys are 32 random bytes, shown once when made; a fast hash is
enough for a random key and lets the HTTP layer check one per request). A workdir with nobody
registered runs in *single-user mode*: everything is allowed and every trained bundle goes live.
Once people exist, every governed action needs an identity (`--as NAME` or `SHELFWISE_AS`, with
`SHELFWISE_API_KEY`) whose role permits it; a denial is a clear error and an audit entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import AccessDenied, PersonRevoked, ShelfwiseError
from ._audit import AuditLog

PEOPLE_FILE = Path("governance") / "people.json"
ENV_AS = "SHELFWISE_AS"
ENV_KEY = "SHELFWISE_API_KEY"


class Role(StrEnum):
    ADMIN = "admin"
    STEWARD = "steward"  # data steward: owns data quality and personal data
    SCIENTIST = "scientist"  # data scientist: trains and evaluates
    ENGINEER = "engineer"  # ML engineer: puts models and rules live
    ANALYST = "analyst"  # reads curated, pseudonymized data and reports
    SERVICE = "service"  # a program calling the serving API


H = {Role.ADMIN, Role.STEWARD, Role.SCIENTIST, Role.ENGINEER, Role.ANALYST}  # people, not services

# action -> roles allowed. The action names are stable: audit entries and docs use them.
PERMISSIONS: dict[str, set[Role]] = {
    "ingest": {Role.ADMIN, Role.STEWARD, Role.ENGINEER},
    "train": {Role.ADMIN, Role.SCIENTIST, Role.ENGINEER},
    "evaluate": set(H),
    "recommend": {Role.ADMIN, Role.SCIENTIST, Role.ENGINEER, Role.ANALYST},
    # every customer's shop id with a list (`recommend --engine spark --all-users`): a contact
    # list, so only the roles that may see shop ids for campaigns (as `audiences.shop_ids`)
    "recommend.all_users": {Role.ADMIN, Role.ANALYST},
    "search": {Role.ADMIN, Role.SCIENTIST, Role.ENGINEER, Role.ANALYST},
    "export": set(H),  # curated data is pseudonymized; personal columns never reach it
    "quarantine.read_raw": {Role.ADMIN, Role.STEWARD},  # raw rows may hold personal data
    "quarantine.summary": set(H),  # the counts per table, reason and status: no row's fields
    "quarantine.reprocess": {Role.ADMIN, Role.STEWARD},
    "lineage.read": set(H),
    "catalog.read": set(H),
    "audit.read": {Role.ADMIN, Role.STEWARD},
    "models.read": set(H),
    "models.approve": {Role.ADMIN, Role.ENGINEER, Role.STEWARD},
    "models.promote": {Role.ADMIN, Role.ENGINEER},
    "models.rollback": {Role.ADMIN, Role.ENGINEER},
    "rules.change": {Role.ADMIN, Role.ENGINEER},
    "experiments.change": {Role.ADMIN, Role.SCIENTIST, Role.ENGINEER},
    "events.absorb": {Role.ADMIN, Role.STEWARD, Role.ENGINEER},
    "privacy.erase": {Role.ADMIN, Role.STEWARD},
    # a shopper's consent comes through the shop's own systems (the service role, over HTTP) or
    # a steward handling a request by hand
    "privacy.consent": {Role.ADMIN, Role.STEWARD, Role.SERVICE},
    "privacy.export": {Role.ADMIN, Role.STEWARD},  # the right of access: the raw ids and rows
    "retention.enforce": {Role.ADMIN, Role.STEWARD},
    "users.manage": {Role.ADMIN},
    "serve.run": {Role.ADMIN, Role.ENGINEER},
    # the serving endpoints, and their Python twins' lists served to shoppers (`Shop.recommend`,
    # `similar`, `search_pages` with `served=True`): the service role serves them either way;
    # the offline lists (`recommend`, `search`) stay the people's
    "serve.call": {Role.ADMIN, Role.ENGINEER, Role.SERVICE, Role.SCIENTIST, Role.ANALYST},
    "serve.admin": {Role.ADMIN, Role.ENGINEER},
    # shopper events write the shop's data (purchases, revenue an experiment reads): the shop's
    # own systems and the people who run them, not those who only read lists and reports
    "events.post": {Role.ADMIN, Role.ENGINEER, Role.SERVICE},
    # profiles name customers by the shop's own ids: people who work with customers' data
    "insights.customers": {Role.ADMIN, Role.STEWARD, Role.SCIENTIST, Role.ANALYST},
    "ask": set(H) | {Role.SERVICE},  # the FAQ is the shop's public text
    # demand and reorder suggestions are aggregates per product: no customer is named
    "insights.demand": set(H),
    "insights.replenishment": set(H),
    # marketing audiences (issue 18): built and listed by those who work with customers' data;
    # exported by the same, but the shop's own ids (who to contact) only to the roles that run
    # campaigns and own personal data: the others get the warehouse's pseudonyms
    "audiences.build": {Role.ADMIN, Role.SCIENTIST, Role.ANALYST},
    "audiences.read": {Role.ADMIN, Role.STEWARD, Role.SCIENTIST, Role.ANALYST},
    "audiences.export": {Role.ADMIN, Role.STEWARD, Role.SCIENTIST, Role.ANALYST},
    "audiences.shop_ids": {Role.ADMIN, Role.STEWARD, Role.ANALYST},
    # one customer's profile over HTTP, for the shop's own systems (a CRM, the shop front)
    "insights.profile": {Role.ADMIN, Role.STEWARD, Role.ANALYST, Role.SERVICE},
}


@dataclass
class Person:
    name: str
    role: Role
    key_sha256: str
    created_at: str
    created_by: str | None = None
    active: bool = True


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class People:
    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.path = self.workdir / PEOPLE_FILE

    def load(self) -> dict[str, Person]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
            return {n: Person(**{**p, "role": Role(p["role"])}) for n, p in doc.items()}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # (a register overwritten or damaged: every command would die with a traceback)
            raise ShelfwiseError(
                f"{self.path}: the people register is damaged ({type(exc).__name__}: {str(exc)[:120]}); "
                "restore it from a backup (nobody can be authorized until then)"
            ) from None

    def _save(self, people: dict[str, Person]) -> None:
        workdir = self.path.parent.parent
        if not workdir.exists():  # (a shop begun with `users add`: made as any new workdir is)
            from ..storage._warehouse import _close_to_others

            workdir.mkdir(parents=True)
            _close_to_others(workdir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({n: {**asdict(p), "role": p.role.value} for n, p in people.items()}, fh, indent=2)
        tmp.replace(self.path)

    @property
    def governed(self) -> bool:
        return self.path.exists() and bool(self.load())

    def add(self, name: str, role: str, by: Person | None = None) -> str:
        """Register a person or service; returns their API key (shown once, stored hashed)."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", name):
            raise ShelfwiseError(f"name {name!r}: 1-64 letters, digits, '.', '_', '@', '-'")
        try:
            r = Role(role)
        except ValueError:
            raise ShelfwiseError(f"role {role!r}: one of {', '.join(x.value for x in Role)}") from None
        people = self.load()
        if not people and r is not Role.ADMIN:
            raise ShelfwiseError("the first person registered in a workdir must be an admin")
        known = people.get(by.name) if by is not None else None
        if people and (known is None or known.role is not Role.ADMIN or not known.active):
            # the register's own rule, whoever calls it (`Shop.add_person` checks the key): an
            # entry "users.add by <the new person>" would let anyone make themselves admin
            raise ShelfwiseError(
                f"{name!r}: once people are registered, only a registered admin adds people (`by`)"
            )
        if name in people:
            back = (
                "; revoked: `rotate_key(name, reactivate=True)` (`users rotate-key --reactivate`) "
                "makes them active again with a new key"
                if not people[name].active
                else ""
            )
            raise ShelfwiseError(f"{name!r} is already registered (role {people[name].role.value}){back}")
        key = "swk_" + secrets.token_urlsafe(32)
        people[name] = Person(name, r, _hash_key(key), datetime.now(UTC).isoformat(), by.name if by else None)
        self._save(people)
        AuditLog(self.workdir).append("users.add", actor=by.name if by else name, name=name, role=r.value)
        return key

    def revoke(self, name: str, by: Person) -> None:
        """`name`'s key stops working (a leaked service key, a person who left): the entry stays,
        inactive, for the audit trail's names; running servers drop the key at their next look
        at the register. The last active admin cannot be revoked (nobody could manage people)."""
        people = self._managed(name, by)
        person = people[name]
        if person.role is Role.ADMIN and not any(
            q.active and q.role is Role.ADMIN and q.name != name for q in people.values()
        ):
            why = f"{name!r} is the last active admin: register another admin first"
            AuditLog(self.workdir).append(  # (refused, as a refused promote or rollback is audited)
                "users.revoke", actor=by.name, outcome="refused", name=name, reason=why
            )
            raise ShelfwiseError(why)
        people[name] = replace(person, active=False)
        self._save(people)
        AuditLog(self.workdir).append("users.revoke", actor=by.name, name=name, role=person.role.value)

    def rotate_key(self, name: str, by: Person, *, reactivate: bool = False) -> str:
        """A new API key for `name` (returned, shown once); the old one stops working. A revoked
        (inactive) person is refused unless `reactivate`: then they are active again with it,
        and the audit entry says `reactivated` (a rotation of every key brought every revoked
        account back without a word)."""
        people = self._managed(name, by)
        person = people[name]
        if not person.active and not reactivate:
            why = (
                f"{name!r} is revoked (inactive): a new key would make them active again; "
                "to do that, say so (`rotate_key(name, reactivate=True)`, `users rotate-key --reactivate`)"
            )
            AuditLog(self.workdir).append(
                "users.rotate_key", actor=by.name, outcome="refused", name=name, reason=why
            )
            raise PersonRevoked(why, name=name)
        key = "swk_" + secrets.token_urlsafe(32)
        people[name] = replace(person, key_sha256=_hash_key(key), active=True)
        self._save(people)
        back: dict[str, Any] = {"reactivated": True} if not person.active else {}
        AuditLog(self.workdir).append("users.rotate_key", actor=by.name, name=name, **back)
        return key

    def _managed(self, name: str, by: Person) -> dict[str, Person]:
        people = self.load()
        known = people.get(by.name)
        if known is None or known.role is not Role.ADMIN or not known.active:
            raise ShelfwiseError(f"{name!r}: only a registered admin manages people")
        if name not in people:
            raise ShelfwiseError(f"{name!r} is not registered (registered: {', '.join(sorted(people))})")
        return people

    def by_key(self, key: str) -> Person | None:
        h = _hash_key(key)
        for p in self.load().values():
            if p.active and hmac.compare_digest(p.key_sha256, h):
                return p
        return None

    def authenticate(self, name: str | None, key: str | None) -> Person:
        people = self.load()
        if not name:
            raise AccessDenied(
                f"{self.workdir}: this workdir has registered people; say who you are with "
                f"--as NAME (or {ENV_AS}) and {ENV_KEY} (in Python: Shop(W, as_=NAME, api_key=KEY))"
            )
        p = people.get(name)
        right = p is not None and bool(key) and hmac.compare_digest(p.key_sha256, _hash_key(key or ""))
        if p is not None and right and not p.active:  # (their own key: told why, not "wrong key")
            raise AccessDenied(f"{name!r}: access revoked (an admin revoked this person's key)")
        if p is None or not right:
            raise AccessDenied(f"{name!r}: unknown person or wrong API key ({ENV_KEY})")
        return p


def audit_failed_login(
    workdir: str | Path, name: str | None, action: str, reason: str, **details: Any
) -> None:
    """The `access.denied` entry of a failed authentication (CLI, Python API, console login): a
    name with a wrong key is a claim, not a person, so the entry must not read as theirs (actor
    `unauthenticated`, the name as `claimed`); no name at all is `anonymous`."""
    claim = {"claimed": name} if name else {}
    AuditLog(workdir).append(
        "access.denied",
        actor="unauthenticated" if name else "anonymous",
        outcome="denied",
        denied_action=action,
        reason=reason,
        **claim,
        **details,
    )


def authorize(
    workdir: str | Path, action: str, *, name: str | None = None, key: str | None = None
) -> Person | None:
    """The person allowed to do `action`, or None in single-user mode; AccessDenied otherwise
    (and the denial is audited)."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}")
    people = People(workdir)
    if not people.governed:
        return None
    name = name if name is not None else os.environ.get(ENV_AS)
    key = key if key is not None else os.environ.get(ENV_KEY)
    try:
        person = people.authenticate(name, key)
    except AccessDenied as exc:
        audit_failed_login(workdir, name, action, str(exc))
        raise
    if person.role not in PERMISSIONS[action]:
        allowed = ", ".join(sorted(r.value for r in PERMISSIONS[action]))
        AuditLog(workdir).append(
            "access.denied", actor=person.name, outcome="denied", denied_action=action, role=person.role.value
        )
        raise AccessDenied(
            f"{person.name} (role {person.role.value}) may not {action}; roles allowed: {allowed}"
        )
    return person
