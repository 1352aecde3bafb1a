"""Idempotency keys of posted events: which `event_id`s the server has already accepted.

A client that did not get an answer (a timeout, a restart) sends the same batch again; events
that carry an `event_id` it already accepted are answered `duplicate` and not spooled twice.

The ids live in a small embedded store that every worker process of the server shares and that
survives a restart and `kill -9`: SQLite in WAL mode (`spool/event_ids.sqlite`; a commit is in
the OS before the answer, so a killed process loses nothing; `synchronous=NORMAL` skips the
per-commit fsync, which only a power loss could need, and the warehouse still drops a repeated
event_id then). With `--redis-url` the ids are Redis keys with a time to live, shared by replicas.

The order is: look the ids up, spool (fsync) the new events, then remember their ids. A process
killed between the spool and the remembering has answered nothing, so the client retries; the
store is topped up at start from the spool segments not yet absorbed, so that retry is a
`duplicate` too. Whatever slips through (two replicas taking the same retry at the same moment)
is dropped by the warehouse, which never curates an event_id twice (`duplicate_row`): the store
makes the HTTP answer right, the warehouse makes the data right.

Within one process the requests are not left to race: an id is claimed (`InFlight`) before it
is looked up and released after it is remembered, so a concurrent retry of it waits for that
outcome instead of finding the store not yet written and being accepted a second time.

Ids are kept `window_s` (default 7 days; a client retries within minutes): the store does not
grow without bound, and a later repeat is still dropped at absorb.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

__all__ = ["EventIds", "InFlight", "RedisEventIds", "SqliteEventIds"]

DEFAULT_WINDOW_S = 7 * 86400.0


class EventIds:
    """The interface: `seen(ids)` -> the subset already accepted; `remember(ids)`."""

    def seen(self, ids: list[str]) -> set[str]:
        raise NotImplementedError

    def remember(self, ids: Iterable[str]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqliteEventIds(EventIds):
    def __init__(self, path: str | Path, window_s: float = DEFAULT_WINDOW_S):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window_s = window_s
        self._lock = threading.Lock()  # one connection per process, used from worker threads
        # several worker processes write here: wait for another's transaction instead of failing
        self._con = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID"
        )
        self._con.execute("CREATE INDEX IF NOT EXISTS ids_at ON ids (at)")

    def seen(self, ids: list[str]) -> set[str]:
        out: set[str] = set()
        with self._lock:
            for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                out.update(
                    r[0] for r in self._con.execute(f"SELECT id FROM ids WHERE id IN ({marks})", chunk)
                )
        return out

    def remember(self, ids: Iterable[str]) -> None:
        now = time.time()
        rows = [(i, now) for i in ids]
        if not rows:
            return
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)", rows)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def prune(self) -> int:
        """Forget ids older than the window; returns how many."""
        with self._lock:
            cur = self._con.execute("DELETE FROM ids WHERE at < ?", (time.time() - self.window_s,))
            return cur.rowcount

    def __len__(self) -> int:
        with self._lock:
            row = self._con.execute("SELECT count(*) FROM ids").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


class RedisEventIds(EventIds):
    """One key per id with a time to live (`SET NX EX`): shared by every replica."""

    prefix = "shelfwise:event_id:"

    def __init__(self, client: Any, window_s: float = DEFAULT_WINDOW_S):
        self.client = client
        self.ttl = max(1, int(window_s))

    def seen(self, ids: list[str]) -> set[str]:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.exists(self.prefix + i)
        return {i for i, hit in zip(ids, pipe.execute(), strict=True) if hit}

    def remember(self, ids: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.set(self.prefix + i, 1, ex=self.ttl, nx=True)
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
