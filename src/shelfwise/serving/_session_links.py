"""Which customers an anonymous session belongs to, as serving sees it: the other half of
`ConsentView` for anonymous shoppers.

A customer's withdrawal of personalization consent covers the anonymous sessions linked to them
(an anonymous session's rows and the customer's share a session id: they browsed, then logged
in; `governance._consent.consent_withdrawn`). Training reads the link from the curated events;
serving must obey it from the next request on, before the next training, and the link may be
newer than the warehouse: a shopper browses anonymously, logs in, and the events saying so are
in the spool (acknowledged, not absorbed yet). So the link is read from both:

- the curated events (`session_members`): the sessions of the users whose consent matters (the
  customers without it, in a shop whose default is consent; the anonymous sessions that were
  given it, in an opt-in shop, where an anonymous session has none by default) and the sessions
  seen in the spool, read again when the warehouse changes;
- the spool of accepted events, every process's (file segments, or the Redis stream): the lines
  appended since the last look, their user and session ids as the warehouse will curate them
  (`check_record`), pseudonymized.

What is kept are facts (who shared a session); consent is weighed per request, so a consent
given back is obeyed at once too. Nothing is read while no consent makes a link matter (the
common case costs one look at the register state). Sessions read from a spool segment are
forgotten once the segment is gone (absorbed: the warehouse has them, read again then).

It fails closed: while the warehouse could not be asked about the users (or spooled sessions)
whose consent just started to matter (it cannot be opened read-only while something writes it:
an absorb, an ingest, another worker), `linked` answers None (unknown: not personalized) and the
look is tried again at the next refresh. A look that failed only because the warehouse changed
(nothing new to ask) keeps the links already known: facts, still true.

A look reads files and may query the warehouse (after an absorb, tens of milliseconds): the
server's event loop, which answers cached lists, must not wait for it. It asks with
`wait=False`: when a look is due (or another thread is doing one) `LookDue` is raised and the
request goes to a worker thread (the recommendation or search queue), which asks again with
`wait=True` and does the look; between looks the event loop answers from what is known.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from ..governance._privacy import is_anonymous

__all__ = ["LookDue", "SessionLinks"]


class LookDue(Exception):  # noqa: N818 - a signal, not an error
    """`linked(..., wait=False)`: the answer needs a look at the spool or the warehouse (or
    another thread is doing one); ask again where waiting is allowed (a worker thread)."""


class SessionLinks:
    def __init__(self, workdir: str | Path, redis_client: Any = None, follow_interval_s: float = 0.1):
        self.workdir = Path(workdir)
        self.client = redis_client
        self.follow_interval_s = follow_interval_s
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._pseudonymize: Callable[[str], str] | None = None
        # spool: segment stem -> (bytes read, the last line read, session -> pseudonyms); the
        # Redis stream's last id
        self._segments: dict[str, tuple[int, bytes, dict[str, set[str]]]] = {}
        self._stream_id = "-"
        self._stream: dict[str, set[str]] = {}
        # the warehouse: session -> pseudonyms, and what it was asked about at which file stamp
        self._curated: dict[str, set[str]] = {}
        self._asked_users: set[str] = set()
        self._asked_sessions: set[str] = set()
        self._stamp: tuple[Any, ...] | None = None
        self._absorbed: list[dict[str, set[str]]] = []  # of segments gone since the last read
        self._by_user: dict[str, set[str]] = {}  # pseudonym -> sessions, over both sources
        self._pending = False  # a look the answer depends on failed: unknown until one succeeds

    def linked(self, anonymous: str, interesting: AbstractSet[str], *, wait: bool = True) -> set[str] | None:
        """The customers sharing a session with this anonymous session's pseudonym, as of now;
        `interesting`: the pseudonyms whose sessions must be known (see the module doc). None
        when they cannot be known now (the warehouse could not be read: fail closed). With
        `wait=False` no file is read: `LookDue` when the answer needs a look (see the module doc)."""
        if not self._lock.acquire(blocking=wait):
            raise LookDue  # another thread is looking: the answer may change with it
        try:
            now = time.monotonic()
            # a user whose consent just started to matter (a withdrawal on this replica): at once
            if now - self._checked >= self.follow_interval_s or not interesting <= self._asked_users:
                if not wait:
                    raise LookDue
                self._checked = now
                self._follow(interesting)
            if self._pending:
                return None
            out: set[str] = set()
            for s in self._by_user.get(anonymous, ()):
                for source in self._sources():
                    out |= {u for u in source.get(s, ()) if not is_anonymous(u)}
            return out
        finally:
            self._lock.release()

    def _sources(self) -> list[dict[str, set[str]]]:
        return [self._curated, self._stream, *self._absorbed, *(m for _, _, m in self._segments.values())]

    # -- reading --------------------------------------------------------------------------------
    def _follow(self, interesting: AbstractSet[str]) -> None:
        changed = self._read_spool()
        stamp = self._warehouse_stamp()
        again = stamp != self._stamp
        new_users = set(interesting) - self._asked_users
        users = set(interesting) if again else new_users
        sessions: set[str] = set()
        new_sessions: set[str] = set()
        if changed or again or users or self._pending:  # a failed look is retried whole
            # the spool's sessions the warehouse may know more of: those of the users that
            # matter (a customer without consent logging in to a session whose anonymous rows
            # are curated)
            spooled = {
                s
                for source in (self._stream, *(m for _, _, m in self._segments.values()))
                for s, members in source.items()
                if members & interesting
            }
            new_sessions = spooled - self._asked_sessions
            sessions = spooled if again else new_sessions
        self._pending = False
        if users or sessions or again:
            from ..governance._consent import session_members

            try:
                found = session_members(self.workdir, users=users, sessions=sessions)
            except Exception:  # noqa: BLE001 - the warehouse is being written (absorb): next look
                found = None
                # unknown links of users (sessions) that matter now: fail closed until it succeeds
                self._pending = bool(new_users or new_sessions)
            if found is not None:
                if again:  # what was absorbed is the warehouse's now
                    self._curated, self._asked_users, self._asked_sessions = {}, set(), set()
                    self._absorbed = []
                    if self.client is not None:  # the stream as it is now (absorbed entries left it)
                        self._stream, self._stream_id = {}, "-"
                        self._read_stream()
                for s, members in found.items():
                    self._curated.setdefault(s, set()).update(members)
                self._asked_users |= users
                self._asked_sessions |= sessions
                self._stamp = stamp
                changed = True
        if changed:
            by_user: dict[str, set[str]] = {}
            for source in self._sources():
                for s, members in source.items():
                    for u in members:
                        by_user.setdefault(u, set()).add(s)
            self._by_user = by_user

    def _warehouse_stamp(self) -> tuple[Any, ...]:
        """The warehouse file's and its write-ahead log's (a commit may stay in the log)."""
        out: list[Any] = []
        for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
            try:
                st = (self.workdir / name).stat()
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _read_spool(self) -> bool:
        """Read the lines appended to the spool since the last look (True: there were some, or a
        segment went or was rewritten). A segment gone was absorbed: what it held is kept until
        the warehouse is read again. A segment rewritten since the last look (an erasure or
        retention run removed lines: it no longer holds the line last read where it was) is
        read again whole, what it held before forgotten. Each read is of the whole file between
        rewrites, never one half rewritten (`storage._segments.read_segment`)."""
        from ..storage._segments import read_segment
        from ._feedback import EVENTS_DIR
        from ._spool import all_segments, segment_stem

        seen, changed = set(), False
        for path in all_segments(self.workdir / EVENTS_DIR):
            stem = segment_stem(path)
            if stem in seen:  # listed under both names (closed meanwhile): read once
                continue
            seen.add(stem)
            offset, last, members = self._segments.get(stem, (0, b"", {}))
            # from the start of the line last read: still there, the file was only appended to
            data = read_segment(path, offset - len(last))
            if data is not None and not data.startswith(last):
                offset, last, members, changed = 0, b"", {}, True
                data = read_segment(path)
            elif data is not None:
                data = data[len(last) :]
            if data is None:  # absorbed meanwhile: gone at the next look
                continue
            end = data.rfind(b"\n") + 1  # a line being written is read next time
            if end:
                self._add(data[:end].splitlines(), members)
                last = data[data.rfind(b"\n", 0, end - 1) + 1 : end]
                changed = True
            self._segments[stem] = (offset + end, last, members)
        for stem in set(self._segments) - seen:
            self._absorbed.append(self._segments.pop(stem)[2])
            changed = True
        return self._read_stream() or changed

    def _read_stream(self) -> bool:
        """The Redis stream's entries since the last look (with `serve --redis-url`)."""
        if self.client is None:
            return False
        from ._feedback import REDIS_EVENTS

        start = "-" if self._stream_id == "-" else f"({self._stream_id}"
        entries = self.client.xrange(REDIS_EVENTS, start, "+")
        if entries:
            self._stream_id = entries[-1][0].decode()
            self._add([f[b"e"] for _, f in entries], self._stream)
        return bool(entries)

    def _add(self, lines: Iterable[bytes], members: dict[str, set[str]]) -> None:
        import orjson

        from ..governance._contracts import EVENTS
        from ..governance._row_check import check_record

        for line in lines:
            try:
                ev = orjson.loads(line)["event"]
                session = ev.get("session_id")
                if session is None or not str(session).strip():
                    continue
                values = check_record(EVENTS, ev, known={}).values
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not an event the warehouse would curate: no link either
            user, session = values.get("user_id"), values.get("session_id")
            if user is None or session is None:
                continue
            members.setdefault(str(session).strip(), set()).add(self._pseudonym(str(user)))

    def _pseudonym(self, raw: str) -> str:
        if self._pseudonymize is None:
            from ..governance import Pseudonymizer

            self._pseudonymize = Pseudonymizer.of(self.workdir)
        return self._pseudonymize(raw)
