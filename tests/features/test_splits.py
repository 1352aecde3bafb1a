import numpy as np

from shelfwise.features import Interactions, global_time, leave_last_out


def toy():
    users = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    items = ["x1", "x2", "x3", "x4", "x5", "y1", "y2", "y3", "z1", "z2"]
    ts = [1, 2, 3, 4, 5, 1, 2, 3, 10, 11]
    return Interactions.from_arrays(users, items, ts)


def test_leave_last_out_no_leak():
    inter = toy()
    s = leave_last_out(inter)
    uid = {u: i for i, u in enumerate(inter.user_ids)}
    iid = {p: i for i, p in enumerate(inter.item_ids)}
    assert sorted(inter.user_ids[s.test.users]) == ["a", "b"]  # c has only 2 steps
    a = uid["a"]
    assert s.train.sequence(a).tolist() == [iid[x] for x in ["x1", "x2", "x3"]]
    row = list(s.test.users).index(a)
    assert s.test.targets[row].indices.tolist() == [iid["x5"]]
    assert s.validation.targets[row].indices.tolist() == [iid["x4"]]
    # the test history holds the validation step, never the test step
    assert iid["x4"] in s.test.history.sequence(a) and iid["x5"] not in s.test.history.sequence(a)
    # nothing a model is fitted on is at or after a user's validation step
    for u in s.test.users:
        hist = set(s.train.sequence(u).tolist())
        assert not hist & set(s.validation.targets[list(s.test.users).index(u)].indices)
    # c stays in training entirely
    assert len(s.train.sequence(uid["c"])) == 2


def test_global_time_no_leak():
    rng = np.random.default_rng(0)
    n = 2000
    inter = Interactions.from_arrays(
        rng.integers(0, 50, n).astype(str),
        rng.integers(0, 80, n).astype(str),
        rng.integers(0, 10_000, n),
        collapse=False,
    )
    s = global_time(inter, test_fraction=0.2, validation_fraction=0.2)
    t_val = s.train.timestamp.max()
    assert s.validation.history.timestamp.max() == t_val
    assert s.test.history.timestamp.max() >= t_val
    # targets are new to the user at query time
    seen = s.test.history.seen()
    for r, u in enumerate(s.test.users):
        assert not set(s.test.targets[r].indices) & set(seen[u].indices)


def test_collapse_keeps_strongest_weight_of_a_run():
    inter = Interactions.from_arrays(["u"] * 4, ["p", "p", "q", "p"], [1, 2, 3, 4], [1, 8, 1, 2])
    assert [inter.item_ids[i] for i in inter.sequence(0)] == ["p", "q", "p"]
    assert inter.weight.tolist() == [8, 1, 2]


def test_catalog_items_are_indexed_even_without_events():
    inter = Interactions.from_arrays(["u"], ["p2"], [1], item_ids=["p1", "p2", "p3"])
    assert list(inter.item_ids) == ["p1", "p2", "p3"] and inter.n_items == 3


def test_global_time_targets_the_next_new_item_of_users_active_before_the_cut():
    """ "Time to Split": after each global cut, a returning user's target is the first item new
    to them; users with no history before the cut, or who never come back, are not evaluated."""
    rows = [
        ("u1", "p1", 1), ("u1", "p2", 2), ("u1", "p3", 8), ("u1", "p4", 12), ("u1", "p5", 13),
        ("u2", "p1", 1), ("u2", "p6", 9), ("u2", "p1", 12), ("u2", "p7", 14),  # p1 again: seen
        ("u3", "p8", 12), ("u3", "p9", 13),  # cold: nothing before the test cut
        ("u4", "p2", 3), ("u4", "p3", 4),  # never comes back
        ("u5", "p4", 5), ("u5", "p5", 6),
    ]  # fmt: skip
    inter = Interactions.from_arrays(*zip(*rows, strict=True))
    s = global_time(inter, test_fraction=0.3, validation_fraction=0.2)
    assert s.train.timestamp.max() == 6 and s.test.history.timestamp.max() == 9  # cuts at 8 and 12
    uid = {u: i for i, u in enumerate(inter.user_ids)}
    iid = {p: i for i, p in enumerate(inter.item_ids)}

    def answer(fold):
        return {
            inter.user_ids[u]: inter.item_ids[fold.targets[r].indices].tolist()
            for r, u in enumerate(fold.users)
        }

    assert answer(s.validation) == {"u1": ["p3"], "u2": ["p6"]}
    assert answer(s.test) == {"u1": ["p4"], "u2": ["p7"]}  # not p5 (later), not u2's p1 (seen), not u3
    assert iid["p6"] in s.test.history.sequence(uid["u2"])  # the validation period is history now
    every = global_time(inter, test_fraction=0.3, validation_fraction=0.2, targets="all")
    assert answer(every.test) == {"u1": ["p4", "p5"], "u2": ["p7"], "u3": ["p8", "p9"]}


def test_global_time_keeps_events_after_the_cut_out_of_training(tmp_path):
    """A view on day 1 and a purchase of the same item on day 100 collapse into one step dated
    day 1 with the purchase's weight; with the cut on day ~80 that weight came from after it.
    The split weighs a step by its events before each cut only."""
    day = 86400
    users, items, ts, w = [], [], [], []
    for u in range(50):
        for d in range(100):
            users.append(f"U{u}")
            items.append(f"P{(u + d) % 20 + 2}")
            ts.append(d * day + u)
            w.append(1.0)
    users += ["LEAK", "LEAK"]
    items += ["P1", "P1"]
    ts += [1 * day, 100 * day]
    w += [1.0, 8.0]
    inter = Interactions.from_arrays(users, items, ts, w)
    leak = list(inter.user_ids).index("LEAK")
    assert inter.weight[inter.user_idx == leak].tolist() == [8.0]  # all data: the purchase counts
    for loaded in (inter, _saved(inter, tmp_path)):  # a bundle's history splits the same way
        s = global_time(loaded)
        assert s.train.timestamp.max() < 100 * day
        for part in (s.train, s.validation.history, s.test.history):
            m = part.user_idx == leak
            assert part.item_ids[part.item_idx[m]].tolist() == ["P1"]
            assert part.weight[m].tolist() == [1.0] and part.timestamp[m].tolist() == [day]


def _saved(inter: Interactions, tmp_path) -> Interactions:
    inter.save(tmp_path / "interactions.npz")
    return Interactions.load(tmp_path / "interactions.npz")


def test_what_was_known_before_a_cut_is_the_events_before_it_collapsed():
    """`before(t)` equals building the interactions from the events before t alone."""
    rng = np.random.default_rng(4)
    n = 3000
    users = rng.integers(0, 40, n).astype(str)
    items = rng.integers(0, 6, n).astype(str)  # few items: many runs of one item
    ts = rng.integers(0, 1000, n)
    w = rng.choice([1.0, 2.0, 4.0, 8.0], n)
    inter = Interactions.from_arrays(users, items, ts, w)
    assert inter.raises is not None and len(inter) < n

    def rows(x: Interactions) -> list[tuple]:
        return sorted(
            zip(
                x.user_ids[x.user_idx],
                x.item_ids[x.item_idx],
                x.timestamp.tolist(),
                x.weight.tolist(),
                strict=True,
            )
        )

    for t in (0, 1, 250, 500.5, 999, 1000):
        early = ts < t
        want = (
            Interactions.from_arrays(users[early], items[early], ts[early], w[early]) if early.any() else None
        )
        assert rows(inter.before(t)) == (rows(want) if want is not None else []), t
    # a subset keeps what its steps' later events added: cutting it gives the same rows
    first_half = inter.take(inter.user_idx < 20)
    kept = set(inter.user_ids[:20])
    assert rows(first_half.before(500)) == [r for r in rows(inter.before(500)) if r[0] in kept]


def test_a_global_time_split_says_its_cuts_as_dates():
    """Its description printed epoch seconds ("fitted before 889237269")."""
    import re

    day = 86_400
    inter = Interactions.from_arrays(
        [f"u{i % 20}" for i in range(400)],
        [f"i{i % 37}" for i in range(400)],
        [1_700_000_000 + i * day for i in range(400)],
    )
    said = global_time(inter, test_fraction=0.2, validation_fraction=0.2).description
    assert re.search(r"fitted before 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d, validated on \[20", said), said
    assert "(UTC)" in said and "epoch" not in said


def test_leave_last_out_says_how_many_users_last_two_steps_tie():
    """Ratings given in one second (415 of MovieLens's 943 users): which of the two is the
    test target is the input's order, and the protocol says for how many users."""
    assert "share a timestamp" not in leave_last_out(toy()).description
    users = ["a"] * 3 + ["b"] * 3
    tied = Interactions.from_arrays(users, ["x1", "x2", "x3", "y1", "y2", "y3"], [1, 2, 2, 1, 2, 3])
    assert (
        "; 1 of the 2 users' last two steps share a timestamp to the second"
        in leave_last_out(tied).description
    )
