import numpy as np

from shelfwise.features import Interactions


def planted_groups(seed: int = 0, n_users: int = 120, n_items: int = 40) -> Interactions:
    """Two taste groups: even users touch only even items, odd users only odd items."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        for t, i in enumerate(rng.choice(pool, 8, replace=False)):
            users.append(f"u{u}")
            items.append(f"i{i:03d}")
            ts.append(t)
    return Interactions.from_arrays(users, items, ts)


def planted_cycles(seed: int = 0, n_users: int = 200, n_items: int = 30, length: int = 12) -> Interactions:
    """Every user walks the cycle i -> i+1 -> i+2 ... from a random start: the next item is
    fully determined by the last one."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        start = rng.integers(0, n_items)
        for t in range(length):
            users.append(f"u{u}")
            items.append(f"i{(start + t) % n_items:03d}")
            ts.append(t)
    return Interactions.from_arrays(users, items, ts)


def two_themes(ids: list[str], n_users: int = 120, length: int = 6, seed: int = 0) -> Interactions:
    """Even users touch only ids[0:4], odd users only ids[4:8] (drawn with replacement); the
    other ids (new products) have no interaction at all."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        theme = range(0, 4) if u % 2 == 0 else range(4, 8)
        for t in range(length):
            users.append(f"u{u}")
            items.append(ids[int(rng.choice(list(theme)))])
            ts.append(t)
    return Interactions.from_arrays(users, items, ts, item_ids=ids)


def assert_new_products_follow_their_theme(model, inter: Interactions, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    """With `two_themes(ids)`: the first even user ranks the new product i8 (of the first theme)
    above i9 (of the second), the first odd user the reverse."""
    first, second = ids.index("i8"), ids.index("i9")
    for u, want, other in (("u0", first, second), ("u1", second, first)):
        ranked = list(model.recommend(np.array([list(inter.user_ids).index(u)]), k=len(ids)).ids[0])
        assert ranked.index(want) < ranked.index(other), (u, ranked)
