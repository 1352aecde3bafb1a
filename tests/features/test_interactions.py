"""Interactions index users by their events, not by their pseudonyms."""

from __future__ import annotations

import hashlib

import numpy as np

from shelfwise.features import Interactions
from shelfwise.features._splits import leave_last_out


def _events(seed: int = 0) -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    users = [f"C{u:04d}" for u in rng.integers(0, 60, 2000)]
    items = [f"P{i:03d}" for i in rng.integers(0, 80, 2000)]
    ts = rng.integers(1_700_000_000, 1_700_900_000, 2000)
    return users, items, ts


def _pseudonymize(users: list[str], key: str) -> list[str]:
    return ["u_" + hashlib.sha256((key + u).encode()).hexdigest()[:16] for u in users]


def test_two_pseudonym_keys_give_the_same_user_order():
    users, items, ts = _events()
    a = Interactions.from_arrays(_pseudonymize(users, "key-a"), items, ts)
    b = Interactions.from_arrays(_pseudonymize(users, "key-b"), items, ts)
    # the pseudonym order differs between the two keys ...
    assert list(np.argsort(a.user_ids.astype(str))) != list(np.argsort(b.user_ids.astype(str)))
    # ... the user index, and so every row and every per-user draw, does not
    for name in ("user_idx", "item_idx", "weight", "timestamp"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    back_a = dict(zip(_pseudonymize(sorted(set(users)), "key-a"), sorted(set(users)), strict=True))
    back_b = dict(zip(_pseudonymize(sorted(set(users)), "key-b"), sorted(set(users)), strict=True))
    assert [back_a[u] for u in a.user_ids] == [back_b[u] for u in b.user_ids]
    sa, sb = leave_last_out(a), leave_last_out(b)
    assert np.array_equal(sa.test.users, sb.test.users)


def test_users_come_in_order_of_their_first_event_and_keep_their_rows():
    users = ["zed", "amy", "bob", "amy", "zed"]
    items = ["P1", "P2", "P3", "P1", "P2"]
    ts = [10, 30, 20, 40, 50]
    inter = Interactions.from_arrays(users, items, ts)
    assert list(inter.user_ids) == ["zed", "bob", "amy"]  # not their alphabetical order
    rows = {str(inter.user_ids[u]): [] for u in range(inter.n_users)}
    for u, i, t in zip(inter.user_idx, inter.item_idx, inter.timestamp, strict=True):
        rows[str(inter.user_ids[u])].append((str(inter.item_ids[i]), int(t)))
    assert rows == {"amy": [("P2", 30), ("P1", 40)], "bob": [("P3", 20)], "zed": [("P1", 10), ("P2", 50)]}
