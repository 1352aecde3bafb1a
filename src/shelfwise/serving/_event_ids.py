"""Idempotency keys of posted events: which `event_id`s the server has already accepted.

A client that did not get an answer (a timeout, a restart) sends the same batch again; events
that carry an `event_id` it already accepted are answered `duplicate` and not spooled twice.

The ids live in a small embedded store that every worker process of the server shares and that
survives a restart and `kill -9`: SQLite in WAL mode (`spool/event_ids.sqlite`; a commit is in
the OS before the answer, so a killed process loses nothing; `synchronous=NORMAL` skips the
per-commit fsync, which only a power loss could need, and the warehouse still drops a repeated
event_id then). With `--redis-url` the ids are Redis keys with a time to live, shared by replicas.

The order is: claim the ids, spool (fsync) the new events, then remember (commit) their ids, or
release the claims when the spool failed. The claim is atomic across processes, so a retry
reaching another worker, server or replica while the first request is stalled on its fsync
(when clients time out and retry) is not accepted a second time:

- SQLite: one `BEGIN IMMEDIATE` transaction looks each id up: remembered (table `ids`) ->
  duplicate; claimed (table `claims`: id, owner, at) by a live owner -> busy; claimed by a dead
  owner, by this one (a leftover) or longer than `claim_ttl_s` ago -> taken over; else claimed.
  A claim is all or nothing: when any id is busy nothing is claimed (a request holding some ids
  while waiting for others could wait for one that waits for it), and the caller polls again
  with a short backoff until the owner has remembered it (a duplicate now) or let it go. An owner
  is each store object, named `<host>-<pid>-<random>`: it holds an exclusive `flock` on
  `.owners/<name>` beside the database for its lifetime (taken before the file gets its name);
  the kernel drops that lock when the process dies, `kill -9` included, so an owner whose file
  can be locked (or is gone) is dead. `ids(id, at)` is the table of older versions, unchanged:
  they still share the file (without the cross-process claim).
- Redis: the claim is `SET key <owner> NX PX claim_ttl_s`, the remembering `SET key 1 EX
  window_s`, the release a delete only while the key still holds this owner's claim. A dead
  replica's claims expire after `claim_ttl_s`.

`claim_ttl_s` (60 s, far longer than a request) bounds every wait: a claim that old is taken
over even if its owner lives (stuck, or a leftover of a cancelled request). Only an owner stalled
longer than that between its claim and its remembering lets a retry be accepted twice.

A process killed between the spool and the remembering has answered nothing, so the client
retries; the retry takes the dead owner's claim over and is accepted again, and the store is
topped up at start from the spool segments not yet absorbed. Whatever slips through is dropped by
the warehouse, which never curates an event_id twice (`duplicate_row`): the store makes the HTTP
answer right, the warehouse makes the data right.

Within one process the requests wait for each other without polling the store: an id is claimed
in memory (`InFlight`) before the store is asked and released after it is remembered, so a
concurrent retry of it in this process waits for that outcome.

Ids are kept `window_s` (default 7 days; a client retries within minutes): the store does not
grow without bound, and a later repeat is still dropped at absorb.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

__all__ = ["Claimed", "EventIds", "InFlight", "RedisEventIds", "SqliteEventIds"]

DEFAULT_WINDOW_S = 7 * 86400.0
CLAIM_TTL_S = 60.0


class Claimed(NamedTuple):
    """A store's answer to a claim: the ids accepted already (duplicates), and those another
    owner is accepting right now (`busy`: then nothing was claimed; ask again). When nothing is
    busy, every id but the duplicates is this owner's until remembered or released."""

    duplicates: set[str]
    busy: set[str]


class EventIds:
    """The interface: `claim(ids)`, then `remember(ids)` once stored or `release(ids)`;
    `seen(ids)` -> the subset already accepted."""

    def claim(self, ids: list[str]) -> Claimed:
        raise NotImplementedError

    def remember(self, ids: Iterable[str]) -> None:
        raise NotImplementedError

    def release(self, ids: Iterable[str]) -> None:
        raise NotImplementedError

    def seen(self, ids: list[str]) -> set[str]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _owner_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def _chunks(ids: list[str]) -> Iterable[tuple[str, list[str]]]:
    for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
        chunk = ids[i : i + 500]
        yield ",".join("?" * len(chunk)), chunk


class SqliteEventIds(EventIds):
    def __init__(
        self, path: str | Path, window_s: float = DEFAULT_WINDOW_S, claim_ttl_s: float = CLAIM_TTL_S
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window_s = window_s
        self.claim_ttl_s = claim_ttl_s
        self._owners = self.path.parent / ".owners"
        self._owner_fh: IO[bytes] | None = None
        self._owner_pid = 0
        self._lock = threading.Lock()  # one connection per process, used from worker threads
        # several worker processes write here: wait for another's transaction instead of failing
        self._con = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID"
        )
        self._con.execute("CREATE INDEX IF NOT EXISTS ids_at ON ids (at)")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, owner TEXT NOT NULL, at REAL NOT NULL)"
            " WITHOUT ROWID"
        )
        self._owner()

    def _owner(self) -> str:
        """This owner's name, its file locked for its lifetime (anew in a forked child)."""
        if self._owner_pid != os.getpid():
            if self._owner_fh is not None:  # the parent's: its lock stays the parent's
                self._owner_fh.close()
            self._owners.mkdir(exist_ok=True)
            self.owner = _owner_name()
            fh = open(self._owners / f".{self.owner}", "wb")
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(self._owners / f".{self.owner}", self._owners / self.owner)  # locked before seen
            self._owner_fh, self._owner_pid = fh, os.getpid()
        return self.owner

    def _alive(self, owner: str) -> bool:
        """Whether `owner` still holds the lock on its file (a dead one's file is removed)."""
        if owner == self.owner:
            return True
        if "/" in owner or owner.startswith("."):
            return False
        path = self._owners / owner
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell: `claim_ttl_s` bounds the wait
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return True
        else:
            path.unlink(missing_ok=True)  # dead: its file goes, under the lock taken here
            return False
        finally:
            os.close(fd)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (others wait for it, across processes)."""
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def _select(self, sql: str, ids: list[str]) -> list[Any]:
        rows: list[Any] = []
        for marks, chunk in _chunks(ids):
            rows += self._con.execute(sql.format(marks), chunk).fetchall()
        return rows

    def claim(self, ids: list[str]) -> Claimed:
        """Claim `ids` for this owner in one transaction (all of them but the duplicates, or
        none when another live owner is accepting some)."""
        if not ids:
            return Claimed(set(), set())
        me, now = self._owner(), time.time()
        with self._write():
            dup = {r[0] for r in self._select("SELECT id FROM ids WHERE id IN ({})", ids)}
            alive: dict[str, bool] = {}
            busy = set()
            for i, owner, at in self._select("SELECT id, owner, at FROM claims WHERE id IN ({})", ids):
                if i in dup or owner == me or now - at >= self.claim_ttl_s:
                    continue  # a leftover of this owner, or stale: taken over
                if owner not in alive:
                    alive[owner] = self._alive(owner)
                if alive[owner]:
                    busy.add(i)
            if not busy:
                rows = [(i, me, now) for i in dict.fromkeys(ids) if i not in dup]
                self._con.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", rows)
        return Claimed(dup, busy)

    def seen(self, ids: list[str]) -> set[str]:
        with self._lock:
            return {r[0] for r in self._select("SELECT id FROM ids WHERE id IN ({})", ids)}

    def remember(self, ids: Iterable[str]) -> None:
        """Accepted (and stored): duplicates from now on, whoever claimed them."""
        now = time.time()
        rows = [(i, now) for i in ids]
        if not rows:
            return
        with self._write():
            self._con.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)", rows)
            self._con.executemany("DELETE FROM claims WHERE id = ?", [r[:1] for r in rows])

    def release(self, ids: Iterable[str]) -> None:
        """Not stored: this owner's claims of `ids` end (a retry may be accepted now)."""
        rows = [(i, self.owner) for i in ids]
        if rows:
            with self._write():
                self._con.executemany("DELETE FROM claims WHERE id = ? AND owner = ?", rows)

    def prune(self) -> int:
        """Forget ids older than the window (and claims left over by a crash, and the files of
        dead owners); returns how many ids."""
        for p in self._owners.iterdir():
            self._alive(p.name)
        with self._lock:
            cur = self._con.execute("DELETE FROM ids WHERE at < ?", (time.time() - self.window_s,))
            self._con.execute("DELETE FROM claims WHERE at < ?", (time.time() - self.window_s,))
            return cur.rowcount

    def __len__(self) -> int:
        with self._lock:
            row = self._con.execute("SELECT count(*) FROM ids").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()
            if self._owner_fh is not None and self._owner_pid == os.getpid():
                (self._owners / self.owner).unlink(missing_ok=True)
                self._owner_fh.close()
                self._owner_fh = None


class RedisEventIds(EventIds):
    """One key per id: an owner's claim (`pending:<owner>`, expiring after `claim_ttl_s`), then
    `1` with a time to live of the window once accepted; shared by every replica."""

    prefix = "shelfwise:event_id:"
    _RELEASE = (  # delete a key only while it holds this owner's claim
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
    )

    def __init__(self, client: Any, window_s: float = DEFAULT_WINDOW_S, claim_ttl_s: float = CLAIM_TTL_S):
        self.client = client
        self.ttl = max(1, int(window_s))
        self.claim_ttl_ms = max(1, int(claim_ttl_s * 1000))
        self._release = client.register_script(self._RELEASE)
        self._pid = 0

    @property
    def owner(self) -> str:
        if self._pid != os.getpid():  # a forked child is an owner of its own
            self._owner, self._pid = f"pending:{_owner_name()}", os.getpid()
        return self._owner

    def claim(self, ids: list[str]) -> Claimed:
        me, ids = self.owner, list(dict.fromkeys(ids))
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.set(self.prefix + i, me, nx=True, px=self.claim_ttl_ms)
        got = pipe.execute()
        mine = [i for i, ok in zip(ids, got, strict=True) if ok]
        others = [i for i, ok in zip(ids, got, strict=True) if not ok]
        dup, busy = set(), set()
        for i, value in zip(others, self._values(others), strict=True):
            if value == me:  # this owner's leftover: taken over
                self.client.set(self.prefix + i, me, xx=True, px=self.claim_ttl_ms)
                mine.append(i)
            elif value is None or value.startswith("pending:"):  # or just let go: ask again
                busy.add(i)
            else:
                dup.add(i)
        if busy:
            self.release(mine)
        return Claimed(dup, busy)

    def _values(self, ids: list[str]) -> list[str | None]:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.get(self.prefix + i)
        return [v.decode() if isinstance(v, bytes) else v for v in pipe.execute()]

    def seen(self, ids: list[str]) -> set[str]:
        values = self._values(ids)
        return {i for i, v in zip(ids, values, strict=True) if v is not None and not v.startswith("pending:")}

    def remember(self, ids: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.set(self.prefix + i, 1, ex=self.ttl)
        pipe.execute()

    def release(self, ids: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            self._release(keys=[self.prefix + i], args=[self.owner], client=pipe)
        pipe.execute()


class InFlight:
    """The event_ids that requests of this process are accepting right now: claimed before
    the store is asked, released once they are remembered (or were not stored). Between the
    look-up and the remembering a concurrent retry would find the store unwritten and be
    accepted too (the online state then counted the event twice); it waits for the claim
    instead. Only requests sharing an id wait for each other.

    A claim is all or nothing: a request holding some ids while waiting for others could wait
    for one that waits for it (batches `[a, b]` and `[b, a]`). The waits are
    `concurrent.futures.Future`s, so that requests on different event loops or threads can wait
    for each other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[str, Future[bool]] = {}

    def claim(self, ids: Iterable[str]) -> dict[str, Future[bool]]:
        """Claim every id (returns `{}`), or none of them when some are claimed already: then
        their claims, each resolving to whether the id was accepted (a duplicate now) or not
        (ask the store again)."""
        ids = list(ids)
        with self._lock:
            busy = {i: f for i in ids if (f := self._claims.get(i)) is not None}
            if not busy:
                for i in ids:
                    # running: a waiter whose request is cancelled cannot cancel it for the others
                    # (`asyncio.wrap_future` passes a cancellation on to a pending future)
                    claim: Future[bool] = Future()
                    claim.set_running_or_notify_cancel()
                    self._claims[i] = claim
            return busy

    def release(self, ids: Iterable[str], accepted: bool) -> None:
        """End the claims of `ids` (made by this caller): `accepted`, they are stored and
        remembered (or were already); otherwise the waiting requests look them up again."""
        with self._lock:
            claims = [f for i in ids if (f := self._claims.pop(i, None)) is not None]
        for f in claims:
            f.set_result(accepted)
