"""The count-based models learn per product group (a size/colour variant's style) when fitted
with the catalog's groups: sizes no longer split a style's signal, each variant is scored with
its group's score and its own count breaks the tie within the group. Without groups they are
the item-level models, unchanged."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from shelfwise.features import Interactions
from shelfwise.models import ItemKNN, Popularity, Transitions
from shelfwise.models._loading import load_model

SIZES = ("S", "M", "L", "XL")
STYLES = ("A", "B", "C", "D")
ITEMS = [f"{s}-{z}" for s in STYLES for z in SIZES]  # item index = style * 4 + size
GROUPS = np.repeat(np.arange(len(STYLES)), len(SIZES))


def _interactions(rows: list[tuple[str, str]]) -> Interactions:
    users = [u for u, _ in rows]
    items = [i for _, i in rows]
    return Interactions.from_arrays(
        users, items, np.arange(len(rows)), item_ids=np.array(ITEMS, dtype=object)
    )


def _paired() -> Interactions:
    """Style A is always bought with style B, each in a random size (so every size pair is
    rare); a few shoppers buy the same A and D sizes together (one strong size pair); C and D
    go together otherwise."""
    rng = random.Random(3)
    rows: list[tuple[str, str]] = []
    for u in range(24):
        rows += [(f"ab{u}", f"A-{rng.choice(SIZES)}"), (f"ab{u}", f"B-{rng.choice(SIZES)}")]
    for u in range(4):
        rows += [(f"ad{u}", "A-S"), (f"ad{u}", "D-S")]
    for u in range(24):
        rows += [(f"cd{u}", f"C-{rng.choice(SIZES)}"), (f"cd{u}", f"D-{rng.choice(SIZES)}")]
    return _interactions(rows)


def _style(i: int) -> str:
    return ITEMS[i].split("-")[0]


@pytest.mark.parametrize("cls", [ItemKNN, Transitions])
def test_similar_items_of_a_size_come_from_its_style_s_neighbours(cls: type) -> None:
    inter = _paired()
    a_s = ITEMS.index("A-S")
    by_item = cls().fit(inter).similar_items(np.array([a_s]), k=10).ids[0]
    assert _style(by_item[0]) == "D"  # item level: the one strong size pair wins over B's split sizes
    grouped = cls().fit(inter, groups=GROUPS)
    got = [int(i) for i in grouped.similar_items(np.array([a_s]), k=10).ids[0] if i >= 0]
    assert _style(got[0]) == "B", [ITEMS[i] for i in got]
    assert "A" not in {_style(i) for i in got}  # a style is no neighbour of itself
    # every size of B follows, the most bought of them first (the tie-breaker)
    b = [i for i in got if _style(i) == "B"]
    counts = np.bincount(inter.item_idx, minlength=len(ITEMS))
    assert b == sorted(b, key=lambda i: -counts[i])


def test_popularity_counts_a_style_over_its_sizes() -> None:
    """Style A sells 3 of each size (12), the one-size product C-S sells 5: A first by group,
    C-S first by item; within A, the size that sold most first."""
    rows = [(f"a{z}{n}", f"A-{z}") for z in SIZES for n in range(3)] + [("a-extra", "A-L")]
    rows += [(f"c{n}", "C-S") for n in range(5)] + [(f"b{n}", "B-M") for n in range(4)]
    inter = _interactions(rows)
    groups = GROUPS.copy()
    assert (
        ITEMS[int(Popularity().fit(inter).recommend(np.array([0]), k=1, exclude_seen=False).ids[0, 0])]
        == "C-S"
    )
    pop = Popularity().fit(inter, groups=groups)
    top = [ITEMS[int(i)] for i in pop.recommend(np.array([0]), k=6, exclude_seen=False).ids[0]]
    assert top[0] == "A-L" and {_style(ITEMS.index(p)) for p in top[:4]} == {"A"}, top
    assert top[4] == "C-S", top


def test_a_catalog_without_groups_learns_as_before(tmp_path: Path) -> None:
    """No groups, or every product its own group: the same scores as an item-level fit."""
    inter = _paired()
    for cls in (Popularity, ItemKNN, Transitions):
        plain = cls().fit(inter).score(np.arange(5))
        assert np.array_equal(cls().fit(inter, groups=None).score(np.arange(5)), plain)
        own = np.arange(len(ITEMS))
        assert np.array_equal(cls().fit(inter, groups=own).score(np.arange(5)), plain)


def test_a_grouped_model_saves_loads_refits_and_explains(tmp_path: Path) -> None:
    inter = _paired()
    model = ItemKNN().fit(inter, groups=GROUPS)
    model.save(tmp_path / "itemknn")
    back = load_model(tmp_path / "itemknn", inter)
    assert np.array_equal(back.score(np.arange(5)), model.score(np.arange(5)))
    model.fit(inter)  # a refit (serving's, on all data) keeps the groups it was fitted with
    assert np.array_equal(model.score(np.arange(5)), back.score(np.arange(5)))
    u = int(np.flatnonzero(inter.user_ids == "ab0")[0])
    b_item = int(next(i for i in model.recommend(np.array([u]), k=5).ids[0] if i >= 0))
    why = model.explain(u, b_item)
    assert why and all(_style(w["item"]) in ("A", "B") for w in why), why


def test_popularity_counts_a_run_in_a_style_at_its_strongest_step() -> None:
    """A view of A-S then a purchase of A-M is one step of style A, of the purchase's weight
    (as one product's view then purchase is one step of the purchase's weight); a run of views
    of one style counts one view."""
    rows = [
        ("u1", "A-S", 1.0),
        ("u1", "A-M", 5.0),  # bought after viewing another size: a purchase of A
        ("u2", "B-S", 1.0),
        ("u2", "B-M", 1.0),
        ("u2", "B-L", 1.0),  # three sizes looked at: one view of B
        ("u3", "C-S", 5.0),
        ("u3", "C-M", 1.0),  # bought C-S, then looked at C-M: still the purchase
    ]
    inter = Interactions.from_arrays(
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.arange(len(rows)),
        [r[2] for r in rows],
        item_ids=np.array(ITEMS, dtype=object),
    )
    pop = Popularity(weighted=True).fit(inter, groups=GROUPS)
    by_style = {s: float(pop.scores_[ITEMS.index(f"{s}-S")]) for s in STYLES}
    # the group's weighted count, plus at most 0.5 for the variant's own share
    assert 5 <= by_style["A"] < 6 and 5 <= by_style["C"] < 6, by_style
    assert 1 <= by_style["B"] < 2 and by_style["D"] < 1, by_style
    # unweighted: one step per run
    plain = Popularity().fit(inter, groups=GROUPS)
    assert all(1 <= plain.scores_[ITEMS.index(f"{s}-S")] < 2 for s in "ABC")


def test_transitions_by_group_step_from_a_run_in_a_style_and_never_to_itself() -> None:
    """Viewing A-S, buying A-M, then B-S: A is followed by B one step later (the run in A is one
    step), and A never follows A."""
    rows = [("u1", "A-S"), ("u1", "A-M"), ("u1", "B-S"), ("u2", "C-S"), ("u2", "D-S"), ("u2", "C-M")]
    model = Transitions(alpha=0.0).fit(_interactions(rows), groups=GROUPS)
    t = model.transitions_.toarray()
    a, b, c, d = range(4)
    assert t[a, b] == pytest.approx(1.0) and t[b, a] == pytest.approx(0.5), t  # one step apart
    assert np.diag(t).tolist() == [0.0] * 4, t  # C, D, C: no C -> C two steps on
    assert t[c, d] == pytest.approx(1.0 + 0.5) and t[d, c] == pytest.approx(1.0 + 0.5), t


def test_popularity_counts_a_run_in_a_style_that_began_before_its_window() -> None:
    """With `window_days`, the steps inside the window count by style: a run in style D that
    began before the window (D-S 30 days ago, then D-M and D-L inside it) is one step of D, as
    C's run wholly inside it is (it was not counted: its first step was outside)."""
    day = 86400
    rows = [("u1", "D-S", 0), ("u1", "D-M", 29 * day), ("u1", "D-L", 29 * day + 60), ("u2", "C-S", 30 * day)]
    inter = Interactions.from_arrays(
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.array([r[2] for r in rows]),
        item_ids=np.array(ITEMS, dtype=object),
    )
    pop = Popularity(window_days=7).fit(inter, groups=GROUPS)
    by_style = {s: float(pop.scores_[ITEMS.index(f"{s}-M")]) for s in STYLES}
    assert 1 <= by_style["D"] < 2 and 1 <= by_style["C"] < 2, by_style
    assert by_style["A"] < 1 and by_style["B"] < 1, by_style
