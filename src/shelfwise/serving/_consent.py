"""Consent as serving reads it: whether a shopper may get personalized answers, now, on every
replica.

The consent register (`governance/_consent.py`) is the record; this is the online view of it.
With Redis (`serve --redis-url`), each flag's current values live in one Redis hash
(`shelfwise:consent:<flag>`, pseudonym -> "1"/"0"): `PUT /v1/users/{id}/consent` on any replica
writes it, and every replica reads it on each request, so the next answer on every replica
obeys it. Without Redis the view is in the process. Either way the view also follows the register
file: when it changes (a steward's `shelfwise privacy consent`, a load that brought the users
table's consent columns, an erasure's tombstone, a PUT answered by another worker process) the
lines appended are read within `follow_interval_s` (0.1 s: two `stat` calls per check, which cost
~100 µs each in a sandboxed container, too much for every request; Redis is then updated from the
register, which every replica sharing the workdir agrees on). Pseudonyms only, as in the online
state.

An anonymous session (`~anonymous:<session_id>`) is personalized only while every customer it is
linked to (the same session id: they browsed, then logged in) has the consent too, as training
leaves such sessions out (`governance._consent.consent_withdrawn`); the link is read from the
curated events and from the spool of events accepted since (`_session_links.SessionLinks`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from ..governance._consent import (
    CONSENTS_FILE,
    FLAGS,
    PRIVACY_FILE,
    Consents,
    _state,
    load_privacy_settings,
    parse_records,
)
from ..governance._privacy import is_anonymous
from ._session_links import LookDue, SessionLinks

CONSENT_PREFIX = "shelfwise:consent:"

__all__ = ["CONSENT_PREFIX", "ConsentView", "LookDue"]


class ConsentView:
    def __init__(
        self,
        workdir: str | Path,
        redis_client: Any = None,
        prefix: str = CONSENT_PREFIX,
        follow_interval_s: float = 0.1,
    ):
        self.workdir = Path(workdir)
        self.follow_interval_s = follow_interval_s
        self._checked = float("-inf")
        self.client = redis_client
        self.prefix = prefix
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._offset = 0  # bytes of the register read so far (it only grows, unless rewritten)
        self._consents = Consents({}, dict.fromkeys(FLAGS, True))
        self.personalized_serving = True
        self._matters: frozenset[str] = frozenset()  # see `_link_matters`; replaced, never changed
        self.links = SessionLinks(self.workdir, redis_client, follow_interval_s)
        self._follow()

    def _files_stamp(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for rel in (CONSENTS_FILE, PRIVACY_FILE):
            try:
                st = os.stat(self.workdir / rel)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _follow(self, wait: bool = True) -> None:
        """Catch up with the register and the shop's settings when their files changed: the
        lines appended since (a rewritten register, by erasure or retention, is read whole).
        `wait=False` (the event loop): `LookDue` instead of reading a changed file."""
        now = time.monotonic()
        if now - self._checked < self.follow_interval_s:
            return
        stamp = self._files_stamp()
        if stamp == self._stamp:
            self._checked = now
            return
        if not wait:
            raise LookDue
        self._checked = now
        with self._lock:
            if stamp == self._stamp:
                return
            reg, old = stamp[0], (self._stamp or (None, None))[0]
            path = self.workdir / CONSENTS_FILE
            grown = reg is not None and old is not None and reg[0] == old[0] and reg[1] >= self._offset
            records: list[dict[str, Any]] = []
            if reg is not None:
                with open(path, "rb") as fh:
                    if grown:
                        fh.seek(self._offset)
                    data = fh.read()
                end = data.rfind(b"\n") + 1  # a line being appended is read next time
                first = 1 if not grown else -1  # line numbers only for a whole read
                records = parse_records(data[:end].decode("utf-8"), path, first)
                self._offset = (self._offset if grown else 0) + end
            else:
                self._offset = 0
            state = _state(records, self._consents.state if grown else None)
            if self.client is not None:
                self._to_redis(records, state, whole=not grown)
            settings = load_privacy_settings(self.workdir)
            same_default = settings.default_consent == self._consents.default
            self._consents = Consents(state, settings.default_consent)
            self.personalized_serving = settings.personalized_serving
            self._track({r["pseudonym"] for r in records} if grown and same_default else None)
            self._stamp = stamp

    def _track(self, pseudonyms: set[str] | None) -> None:
        """Keep `_matters` (see `_link_matters`) up to date for these pseudonyms (None: all);
        incremental, as a register may hold a record for every user of the shop. A new frozen
        set each time (per register change, not per request): requests read it without a copy."""
        default = self._consents.default["personalization"]
        state = self._consents.state
        matters = set() if pseudonyms is None else set(self._matters)
        for p in set(state) if pseudonyms is None else pseudonyms:
            v = state.get(p, {}).get("personalization")
            if (v is False and not is_anonymous(p)) if default else (v is True and is_anonymous(p)):
                matters.add(p)
            else:
                matters.discard(p)
        self._matters = frozenset(matters)

    def _to_redis(
        self, records: list[dict[str, Any]], state: dict[str, dict[str, bool]], whole: bool
    ) -> None:
        """The new records (or, after a whole read, the whole state) into the shared hashes."""
        pipe = self.client.pipeline(transaction=True)
        users = set(state) if whole else {r["pseudonym"] for r in records}
        erased = {r["pseudonym"] for r in records if "erased" in r}
        for flag in FLAGS:
            key = self.prefix + flag
            values = {p: "1" if state[p][flag] else "0" for p in users if flag in state.get(p, {})}
            gone = sorted(p for p in erased | users if flag not in state.get(p, {}))
            if gone:
                pipe.hdel(key, *gone)
            if values:
                pipe.hset(key, mapping=values)
        pipe.execute()

    def personalizes(self, pseudonym: str, *, wait: bool = True) -> bool:
        """Whether the shop serves personalized answers at all (`personalized_serving`) and this
        shopper has personalization consent: both as of now. An anonymous session also needs the
        consent of every customer it is linked to (`_session_links`: a customer's withdrawal
        covers their anonymous browsing, in the warehouse or still in the spool). With
        `wait=False` (the server's event loop) it reads no file: `LookDue` when the answer
        needs one (a worker thread asks again with `wait=True`)."""
        self._follow(wait)
        if not (self.personalized_serving and self.allows(pseudonym, wait=wait)):
            return False
        if not is_anonymous(pseudonym):
            return True
        interesting = self._link_matters()
        if not interesting:
            return True
        linked = self.links.linked(pseudonym, interesting, wait=wait)
        if linked is None:  # the links could not be read now: fail closed (see `SessionLinks`)
            return False
        return all(self.allows(c, wait=wait) for c in linked)

    def _link_matters(self) -> frozenset[str]:
        """The pseudonyms whose sessions decide an anonymous session's consent: the customers
        without it (recorded withdrawals) in a shop whose default is consent; the anonymous
        sessions recorded with it in an opt-in shop (the others have none by default). An
        immutable snapshot: read per request without a lock or a copy."""
        return self._matters

    def allows(self, pseudonym: str, flag: str = "personalization", *, wait: bool = True) -> bool:
        """The shopper's current consent for `flag` (the shop's default when unrecorded)."""
        self._follow(wait)
        if self.client is None:
            return self._consents.allows(pseudonym, flag)
        v = self.client.hget(self.prefix + flag, pseudonym)
        return self._consents.default[flag] if v is None else v == b"1"

    def current(self, pseudonym: str) -> dict[str, bool]:
        return {f: self.allows(pseudonym, f) for f in FLAGS}

    def set(self, pseudonym: str, values: dict[str, bool]) -> None:
        """What a PUT just recorded, for this and (through Redis) every other replica at once."""
        if self.client is not None:
            pipe = self.client.pipeline(transaction=True)
            for flag, v in values.items():
                pipe.hset(self.prefix + flag, pseudonym, "1" if v else "0")
            pipe.execute()
        with self._lock:
            self._consents.state.setdefault(pseudonym, {}).update(values)
            self._track({pseudonym})
