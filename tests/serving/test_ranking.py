"""`rank_user`, the one ranking the server and the Spark batch job share: each branch on a
five-item shop with a scripted model (a known answer), in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shelfwise.features import Interactions
from shelfwise.lifecycle._spark_jobs import _Ranker
from shelfwise.models._base import Results
from shelfwise.serving._ranking import rank_user
from shelfwise.serving._rules import Rules

NO_RULES = Rules(filter_out_of_stock=False)
ITEMS = ["a", "b", "c", "d", "e"]


class Scripted:
    """A model whose ranking is fixed (best first: e, d, c, b, a), minus the history's items."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def recommend(self, users: Any, n: int, *, exclude_seen: bool, history: Interactions) -> Results:
        seen = history.sequence(0).tolist()
        self.asked.append(seen)
        ranked = [i for i in (4, 3, 2, 1, 0) if i not in seen][:n]
        ids = np.full((1, n), -1)
        scores = np.full((1, n), -np.inf, np.float32)
        ids[0, : len(ranked)] = ranked
        scores[0, : len(ranked)] = [10.0 - j for j in range(len(ranked))]
        return Results(ids, scores)


@dataclass
class View:
    """Two users: 0 saw a and b (and bought b), 1 saw c; user 0's list is precomputed."""

    toplist: Any = None
    toplist_model: str | None = "m"
    item_ids: list[str] = field(default_factory=lambda: list(ITEMS))
    item_index: dict[str, int] = field(default_factory=lambda: {p: i for i, p in enumerate(ITEMS)})
    interactions: Interactions = field(
        default_factory=lambda: Interactions(
            np.array([0, 0, 1], np.int32),
            np.array([0, 1, 2], np.int32),
            np.ones(3, np.float32),
            np.arange(3, dtype=np.int64),
            np.array(["u0", "u1"], object),
            np.array(ITEMS, object),
        )
    )
    info: dict[str, tuple[str, str, bool]] = field(
        default_factory=lambda: {p: ("cat", "brand", p != "d") for p in ITEMS}  # d is out of stock
    )
    purchases: dict[int, dict[str, float]] = field(default_factory=lambda: {0: {"b": 1.0}})
    cold: list[str] = field(default_factory=lambda: ["a", "b", "c", "d", "e"])

    def cold_candidates(self, n: int, context: str | None) -> list[str]:
        return self.cold[:n]


class Cache(dict):
    def put(self, key: Any, value: Any) -> None:
        self[key] = value


def test_each_branch_of_the_shared_ranking() -> None:
    view, model = View(), Scripted()
    # a never-seen user: the cold-start candidates, no model call
    got = rank_user(view, "m", model, None, 3, 5, NO_RULES)
    assert got is not None and (got.items, got.source, got.scores) == (
        ["a", "b", "c"],
        "cold_start",
        [None] * 3,
    )
    assert model.asked == []
    # a known user: the model, asked with the user's history, its scores kept
    got = rank_user(view, "m", model, 1, 2, 5, NO_RULES)
    assert got is not None and (got.items, got.scores, got.source) == (["e", "d"], [10.0, 9.0], "m")
    assert model.asked == [[2]]
    # ... with recent online events added to the history, and cached: the next ask is a cache hit
    cache = Cache()
    got = rank_user(view, "m", model, 1, 2, 5, NO_RULES, recent=["e"], cache=cache, cache_key="k")
    assert got is not None and got.items == ["d", "b"] and model.asked[-1] == [2, 4]
    asked = len(model.asked)
    hit = rank_user(
        view, "m", model, 1, 2, 5, NO_RULES, recent=["e"], cache=cache, cache_key="k", cached_only=True
    )
    assert (
        hit is not None and (hit.items, hit.source) == (["d", "b"], "cached:m") and len(model.asked) == asked
    )
    assert (
        rank_user(view, "m", model, 1, 2, 5, NO_RULES, cache=Cache(), cache_key="x", cached_only=True) is None
    )
    # the precomputed list (this model's, no recent events) is used as it is
    view.toplist = np.array([[3, 2, -1], [-1, -1, -1]])
    got = rank_user(view, "m", model, 0, 5, 3, NO_RULES)
    # the rules keep d and c; too few: the popular list fills with what user 0 has not seen
    assert got is not None and (got.items, got.source) == (["d", "c", "e"], "precomputed:m")
    # ... not for another model, nor for a user whose row was not precomputed (-1)
    assert rank_user(view, "other", model, 0, 1, 3, NO_RULES).source == "other"  # type: ignore[union-attr]
    assert rank_user(view, "m", model, 1, 1, 3, NO_RULES).source == "m"  # type: ignore[union-attr]
    # the shop's rules apply to every branch (d is out of stock)
    got = rank_user(view, "m", model, 0, 2, 3, Rules())
    assert got is not None and got.items == ["c", "e"]


def test_the_spark_ranker_answers_with_the_shared_ranking() -> None:
    class Snap(View):
        bundle: Any = None

    snap = Snap()
    snap.toplist = np.array([[3, 2, -1], [-1, -1, -1]])
    snap.bundle = type("B", (), {"models": {"m": Scripted()}, "interactions": snap.interactions})()
    ranker = _Ranker(snap, "m", 3, 3)
    assert ranker.top(0) == (["d", "c", "e"], [None, None, None], "precomputed:m")
    assert ranker.top(1) == (["e", "d", "b"], [10.0, 9.0, 8.0], "m")


def test_the_category_cap_holds_when_the_candidates_are_all_of_one_category() -> None:
    """`max_per_category` among the top k: a shopper whose candidates are all cycling (the
    model's whole list) got a page of cycling past the cap, the overflow filling it; the
    popular list of other categories fills first. When the shop has too few other
    categories, the overflow still fills (a short list is worse)."""
    items = [f"c{i}" for i in range(6)] + ["h1", "h2", "k1"]
    view = View(
        item_ids=items,
        item_index={p: i for i, p in enumerate(items)},
        info={
            p: ({"c": "Sports > Cycling", "h": "Home > Lamps", "k": "Home > Kitchen"}[p[0]], "b", True)
            for p in items
        },
        purchases={},
        cold=["h1", "c0", "k1", "h2"],
    )
    view.toplist = np.array([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]])
    capped = Rules(filter_out_of_stock=False, max_per_category=2, category_level=2)
    got = rank_user(view, "m", Scripted(), 1, 5, 6, capped)
    assert got is not None and got.items == ["c0", "c1", "h1", "k1", "h2"], got.items
    assert not capped.crowded(got.items, view.info)
    # two categories at level 1 (Sports, Home), two a category: a page of 5 cannot keep the cap
    level1 = Rules(filter_out_of_stock=False, max_per_category=2, category_level=1)
    got = rank_user(view, "m", Scripted(), 1, 5, 6, level1)
    assert got is not None and got.items == ["c0", "c1", "h1", "k1", "c2"], got.items


def test_a_list_longer_than_the_popular_fill_is_filled_from_the_whole_popular_order() -> None:
    """A model that ranks only its own candidates (a fusion: 189 of MovieLens's 1,682) and a
    k=1000 list for an offline evaluation: the popular list the server keeps for filling is
    shorter than that; the fill reads the whole popular order, not its first products only."""

    class Narrow(Scripted):
        def recommend(self, users: Any, n: int, *, exclude_seen: bool, history: Interactions) -> Results:
            return Results(
                np.array([[4, -1, -1, -1]]), np.array([[1.0, -np.inf, -np.inf, -np.inf]], np.float32)
            )

    view = View()
    view.cold = ["e", "a"]  # (the short fill list) while the popular order holds every product
    view.cold_candidates = lambda n, context: ["e", "a", "b", "c", "d"][:n]  # type: ignore[method-assign]
    got = rank_user(view, "m", Narrow(), 1, 4, 4, NO_RULES)
    assert got is not None and got.items == ["e", "a", "b", "d"]  # user 1 saw c


def test_places_a_model_has_no_evidence_for_are_filled_from_the_popular_list() -> None:
    """A shop's first week: transitions knew one product that follows a shopper's history and
    ranked the rest of the catalog at score 0 in catalog order (a magnetic catch, a toilet
    auger...), served as personalized. Places with no evidence are left empty by the model and
    filled from the popular list, as a short list is."""
    from shelfwise.models import Transitions

    inter = Interactions(
        np.array([0, 0, 1], np.int32),
        np.array([0, 1, 0], np.int32),  # u0: a then b; u1: a
        np.ones(3, np.float32),
        np.arange(3, dtype=np.int64),
        np.array(["u0", "u1"], object),
        np.array(ITEMS, object),
    )
    model = Transitions().fit(inter)
    r = model.recommend(np.array([1]), 3, exclude_seen=True, history=inter)
    assert r.ids[0].tolist() == [1, -1, -1]  # b follows a; nothing else is known to
    view = View(interactions=inter, cold=["e", "d", "c", "b", "a"], purchases={})
    got = rank_user(view, "transitions", model, 1, 3, 5, NO_RULES)
    assert got is not None and got.items == ["b", "e", "d"] and got.source == "transitions", got
    # a user the model knows nothing to rank for: the popular fill; precomputed as such
    # (NO_EVIDENCE), so the server does not run the model for it again (`source` stays the
    # model's: `cold_start` says a shopper was not personalized)
    from shelfwise.serving._ranking import NO_EVIDENCE

    assert model.recommend(np.array([0]), 3, exclude_seen=True, history=inter).ids[0].tolist() == [-1] * 3
    got = rank_user(view, "transitions", model, 0, 3, 5, NO_RULES)
    assert got is not None and got.items == ["e", "d", "c"] and got.source == "transitions", got
    view.toplist, view.toplist_model = np.array([[NO_EVIDENCE, -1, -1], [1, -1, -1]]), "transitions"
    got = rank_user(view, "transitions", model, 0, 3, 5, NO_RULES, cached_only=True)
    assert got is not None and got.items == ["e", "d", "c"] and got.source == "precomputed:transitions", got


def test_a_list_counts_the_places_that_are_the_models_and_those_the_popular_list_filled() -> None:
    """A known shopper the model had no evidence for got ten best sellers labelled with the
    model's name and `personalized: true`: the ranking says how many places are the model's for
    the shopper (`personal`) and how many the popular list filled (`filled`), a partial fill
    showing as both."""
    from shelfwise.models import Transitions
    from shelfwise.serving._ranking import NO_EVIDENCE

    inter = Interactions(
        np.array([0, 0, 1], np.int32),
        np.array([0, 1, 0], np.int32),  # u0: a then b; u1: a
        np.ones(3, np.float32),
        np.arange(3, dtype=np.int64),
        np.array(["u0", "u1"], object),
        np.array(ITEMS, object),
    )
    model = Transitions().fit(inter)
    view = View(interactions=inter, cold=["e", "d", "c", "b", "a"], purchases={})
    part = rank_user(view, "transitions", model, 1, 3, 5, NO_RULES)  # b follows a; the rest filled
    assert part is not None and (part.items, part.personal, part.filled) == (["b", "e", "d"], 1, 2)
    none = rank_user(view, "transitions", model, 0, 3, 5, NO_RULES)  # nothing follows b
    assert none is not None and (none.source, none.personal, none.filled) == ("transitions", 0, 3)
    view.toplist, view.toplist_model = np.array([[NO_EVIDENCE, -1, -1], [1, -1, -1]]), "transitions"
    pre = rank_user(view, "transitions", model, 0, 3, 5, NO_RULES, cached_only=True)
    assert pre is not None and (pre.source, pre.personal, pre.filled) == ("precomputed:transitions", 0, 3)
    cold = rank_user(view, "transitions", model, None, 3, 5, NO_RULES)
    assert cold is not None and (cold.source, cold.personal, cold.filled) == ("cold_start", 0, 3)
    full = rank_user(View(), "m", Scripted(), 1, 3, 5, NO_RULES)  # a model that ranks everything
    assert full is not None and (full.personal, full.filled) == (3, 0)
    # the popularity model ranks every shopper by the best sellers: its list is the popular
    # list for a known shopper too (it said personal, where a stranger's same list said filled)
    pop = rank_user(View(), "popularity", Scripted(), 1, 3, 5, NO_RULES)
    assert pop is not None and (pop.source, pop.personal, pop.filled) == ("popularity", 0, 3)
