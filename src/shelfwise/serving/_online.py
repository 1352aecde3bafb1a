"""Online state: what users did since the bundle was trained (recent items, purchases).

Recommendations read it so that a click posted a second ago changes the next list, and a new
user becomes personalized after a few events. `MemoryState` lives in one process (one worker);
`RedisState` is shared by every worker and replica (README: scaling out). Both hold pseudonyms
only, never raw user ids. One contract test runs against both (tests/serving/test_online.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any, Protocol

from ..features._interactions import DEFAULT_EVENT_WEIGHTS
from ..governance._online_keys import ONLINE_PREFIX, online_keys

RECENT_MAX = 50
# The event types that say what a user wants, as training weighs them: a `return` or a
# `no_sale` (and a purchase of 0 or fewer units, which the row check turns into those) is no
# interest in the product, and must not become the user's freshest signal online either.
ONLINE_TYPES = frozenset(DEFAULT_EVENT_WEIGHTS)


class OnlineState(Protocol):
    def record(self, events: list[tuple[str, str, str, float]]) -> None:
        """(user pseudonym, product id, event type, epoch seconds), in arrival order; events of
        a type training does not learn from (not in `ONLINE_TYPES`) are left out."""

    def recent(self, user: str) -> tuple[int, list[str]]:
        """(a version that changes with every recorded item, recent product ids oldest first)."""

    def purchases(self, user: str) -> dict[str, float]: ...

    def forget(self, user: str) -> None: ...


class MemoryState:
    def __init__(self, max_users: int = 200_000):
        self.max_users = max_users
        self._recent: OrderedDict[str, deque[str]] = OrderedDict()
        self._version: dict[str, int] = {}
        self._purchases: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def record(self, events: list[tuple[str, str, str, float]]) -> None:
        with self._lock:
            for user, product, etype, ts in events:
                if not product or etype not in ONLINE_TYPES:
                    continue
                q = self._recent.get(user)
                if q is None:
                    q = self._recent[user] = deque(maxlen=RECENT_MAX)
                    if len(self._recent) > self.max_users:  # least recently active user leaves
                        old, _ = self._recent.popitem(last=False)
                        self._version.pop(old, None)
                        self._purchases.pop(old, None)
                else:
                    self._recent.move_to_end(user)
                q.append(product)
                self._version[user] = self._version.get(user, 0) + 1
                if etype == "purchase":
                    self._purchases.setdefault(user, {})[product] = ts

    def recent(self, user: str) -> tuple[int, list[str]]:
        q = self._recent.get(user)
        return (self._version.get(user, 0), list(q)) if q else (0, [])

    def purchases(self, user: str) -> dict[str, float]:
        return dict(self._purchases.get(user, {}))

    def forget(self, user: str) -> None:
        with self._lock:
            self._recent.pop(user, None)
            self._version.pop(user, None)
            self._purchases.pop(user, None)


class RedisState:
    """Recent items in a capped list per user, purchases in a hash, a version counter."""

    def __init__(self, client: Any, prefix: str = ONLINE_PREFIX, ttl_seconds: int = 30 * 86400):
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds

    def _keys(self, user: str) -> tuple[str, str, str]:
        return online_keys(user, self.prefix)

    def record(self, events: list[tuple[str, str, str, float]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for user, product, etype, ts in events:
            if not product or etype not in ONLINE_TYPES:
                continue
            recent, bought, version = self._keys(user)
            pipe.rpush(recent, product)
            pipe.ltrim(recent, -RECENT_MAX, -1)
            pipe.expire(recent, self.ttl)
            pipe.incr(version)
            pipe.expire(version, self.ttl)
            if etype == "purchase":
                pipe.hset(bought, product, ts)
                pipe.expire(bought, self.ttl)
        pipe.execute()

    def recent(self, user: str) -> tuple[int, list[str]]:
        recent, _, version = self._keys(user)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(version)
        pipe.lrange(recent, 0, -1)
        v, items = pipe.execute()
        return (int(v or 0), [i.decode() for i in items])

    def purchases(self, user: str) -> dict[str, float]:
        _, bought, _ = self._keys(user)
        return {k.decode(): float(v) for k, v in self.client.hgetall(bought).items()}

    def forget(self, user: str) -> None:
        self.client.delete(*self._keys(user))
