"""Where a user's online state lives in Redis: the key names, shared by the serving side that
writes them (`serving._online.RedisState`) and the erasure that deletes them (`_erase`), kept
here so that governance does not import serving."""

from __future__ import annotations

ONLINE_PREFIX = "shelfwise:"
# the streams of served events (accepted, rejected) that `events absorb` takes into the warehouse
REDIS_EVENTS = "shelfwise:events"
REDIS_REJECTED = "shelfwise:rejected"

__all__ = ["ONLINE_PREFIX", "REDIS_EVENTS", "REDIS_REJECTED", "online_keys"]


def online_keys(user: str, prefix: str = ONLINE_PREFIX) -> tuple[str, str, str]:
    """(recent items list, purchases hash, version counter) of one user pseudonym."""
    return f"{prefix}recent:{user}", f"{prefix}bought:{user}", f"{prefix}v:{user}"
