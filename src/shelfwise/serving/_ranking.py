"""One user's recommendation list from one bundle: the ranking both the server
(`Service.recommend`) and the Spark batch job (`recommend --engine spark`) call, so that a
change to serving's ranking reaches the batch lists too (they are compared user for user).

`rank_user` takes what it needs of a bundle as a `RankingView`: the server's `Snapshot`, or the
slimmer object the Spark job broadcasts to its executors (one model, no search index).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..features import Interactions
from ._rules import ItemInfo, Rules

# the precomputed top list's first place for a user whose model has no evidence to rank by
# (item-kNN, transitions: every place -1); -1 there means "not precomputed"
NO_EVIDENCE = -2

__all__ = ["NON_PERSONAL", "Ranked", "RankingView", "rank_user", "user_history"]


class RankingView(Protocol):
    """What a list needs of one bundle (attributes as `Snapshot` names them)."""

    item_ids: list[str]
    item_index: dict[str, int]
    interactions: Interactions
    toplist: Any  # (users x n) int array of item indices, -1 past the end; or None
    toplist_model: str | None
    info: ItemInfo
    purchases: dict[int, dict[str, float]]
    cold: list[str]  # the popular list that fills a list the rules thinned

    def cold_candidates(self, n: int, context: str | None) -> list[str]:
        """A never-seen user's candidates (the cold-start order, `context` first)."""
        ...


class _Cache(Protocol):
    def get(self, key: Any) -> Any: ...
    def put(self, key: Any, value: Any) -> None: ...


@dataclass(frozen=True)
class Ranked:
    items: list[str]
    scores: list[
        float | None
    ]  # the model's score where it scored the item (None: precomputed, popular, cached)
    source: str  # model name, "precomputed:<model>", "cached:<model>", "cold_start"
    # how many of the items are the model's for this user (its candidates: 0 for a cold-start
    # list) and how many the popular list filled (every place of a cold-start list; for a known
    # user, the places the model had no evidence for or the rules thinned). A product a rule
    # pins is neither.
    personal: int = 0
    filled: int = 0


# models whose list is the shop's best sellers for everyone (less what the shopper has seen): a
# known shopper's list from them is the popular list, not a personal one, as a stranger's is
NON_PERSONAL = frozenset({"popularity"})


def user_history(view: RankingView, user: int | None, recent: Sequence[str] = ()) -> Interactions:
    """The user's bundle history, then their recent online events, as a one-user matrix."""
    seq = view.interactions.sequence(user) if user is not None else np.empty(0, np.int64)
    extra = [view.item_index[p] for p in recent if p in view.item_index]
    items = np.concatenate([np.asarray(seq, np.int64), np.asarray(extra, np.int64)])
    return Interactions.of_one_user(items, view.interactions.item_ids)


def rank_user(
    view: RankingView,
    name: str,
    model: Any,
    user: int | None,
    k: int,
    n_cand: int,
    rules: Rules,
    *,
    recent: Sequence[str] = (),
    context: str | None = None,
    online_purchases: Callable[[], dict[str, float]] | None = None,
    cache: _Cache | None = None,
    cache_key: Any = None,
    cached_only: bool = False,
) -> Ranked | None:
    """The top-k of `user` (its index in the bundle; None: a never-seen user, or one not to be
    personalized) under model `name` (`model`, the fitted object) and `rules`: candidates from
    the cold-start list (no user, no `recent` events), the precomputed top list (this model's,
    no recent events), the `cache` or the model itself; the rules keep k of them, and the
    popular list fills a list they thinned. `cached_only`: None when the model would have to
    compute (the server sends those to its queue). `online_purchases`: read only once the
    candidates are there (a Redis round trip the queued path would otherwise pay twice)."""
    scores: dict[str, float] = {}
    source = name
    ids = view.item_ids
    cands: list[str] | None
    if user is None and not recent:
        cands = view.cold_candidates(n_cand, context)
        source = "cold_start"
    elif (
        not recent
        and user is not None
        and view.toplist is not None
        and name == view.toplist_model
        # -1: not precomputed (training's time budget ran out); NO_EVIDENCE: computed, and the
        # model knows nothing to rank for this user
        and view.toplist[user, 0] != -1
    ):
        cands = [ids[i] for i in view.toplist[user, :n_cand].tolist() if i >= 0]
        source = f"precomputed:{name}"
    else:
        cands = cache.get(cache_key) if cache is not None else None
        if cands is None and cached_only:
            return None
        if cands is None:
            r = model.recommend(
                np.array([0]), n_cand, exclude_seen=True, history=user_history(view, user, recent)
            )
            cands = [ids[i] for i in r.ids[0] if i >= 0]
            scores = {ids[i]: float(s) for i, s in zip(r.ids[0], r.scores[0], strict=True) if i >= 0}
            if cache is not None:
                cache.put(cache_key, cands)
        else:
            source = f"cached:{name}"
    purchases = dict(view.purchases.get(user, {})) if user is not None else {}
    purchases.update(online_purchases() if online_purchases is not None else {})
    items = rules.apply(cands, k, view.info, surface="recommendations", context=context, purchases=purchases)
    more: list[str] = []
    if len(items) < k or rules.crowded(items, view.info):
        # rules removed too much (or too few unseen items), or the candidates had too few
        # products of other categories to keep the category cap: the popular list fills. The
        # candidates followed by the popular list, through the rules once, not a second list
        # appended to the first: a pin is placed once and where it asks, and the fill obeys
        # the same rules (a hide limited to the request's `context` too)
        seen = set(recent)
        if user is not None:
            seen |= {ids[i] for i in view.interactions.sequence(user)}
        # (the popular list as long as the list asked for: a fusion ranks only its generators'
        # candidates, 189 products of MovieLens, and a k=1000 list for an offline evaluation
        # came back with those alone)
        need = k + len(seen) + len(cands)
        fill = view.cold if need <= len(view.cold) else view.cold_candidates(need, None)
        more = [p for p in fill if p not in seen]
        items = rules.apply(
            [*cands, *more], k, view.info, surface="recommendations", context=context, purchases=purchases
        )
    items = items[:k]
    # (a place is the model's when it is one of its candidates; the popular fill's when the
    # candidates were the popular list - a cold-start list, or a model that ranks everyone by
    # popularity - or it came from the fill)
    best_sellers = source == "cold_start" or name in NON_PERSONAL
    mine: set[str] = set() if best_sellers else set(cands)
    popular: set[str] = {*(cands if best_sellers else ()), *more}
    personal = sum(1 for p in items if p in mine)
    filled = sum(1 for p in items if p not in mine and p in popular)
    return Ranked(items, [scores.get(p) for p in items], source, personal, filled)
