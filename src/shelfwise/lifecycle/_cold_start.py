"""The cold-start list: what a shopper the models do not know gets, diverse by category.

Ordered by popularity alone (or, in a shop with no events yet, by how relevant the search
judgments found each product), the list fills with the one category that sells most (or that
the judged queries were about): a new shopper sees ten drills. Here the products with any signal
are taken round-robin over their categories: every category's best product first (the
categories in the order of their best products, so the most popular product still leads), then
every category's second, and so on; the products with no signal follow, round-robin alike, in catalog order, and the
products out of stock come last. Within a
category the order is the signal's. Categories are compared at the shallowest level of the path
that tells the products apart (a shared root such as "All > ..." is skipped). Deterministic: ties
go to catalog order. The serving rules (`max_per_category`, pins, boosts) still apply to the
list at request time, so a shop's own setting wins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MAX_CATEGORY_DEPTH", "diverse_cold_start"]

MAX_CATEGORY_DEPTH = 4  # deeper paths are compared at this level at most


def diverse_cold_start(
    signal: np.ndarray,
    tiebreak: np.ndarray,
    categories: Sequence[str],
    available: np.ndarray | None = None,
) -> np.ndarray:
    """Item indices in cold-start order. `signal`: per item, higher first (popularity; 0 when
    there is none); `tiebreak`: per item, higher first among equal signal (the judged gain);
    `categories`: per item, a path `a > b > c` ("" unknown); `available`: per item, in stock
    (the products out of stock come last, round-robin alike: the default rule drops them, and
    the turns of the categories must survive that). Without two categories to tell apart the
    order is the signal's, ties by `tiebreak`, then catalog order, out of stock last."""
    n = len(signal)
    signal = np.asarray(signal, np.float64)
    tiebreak = np.asarray(tiebreak, np.float64)
    base = np.lexsort((np.arange(n), -tiebreak, -signal)).astype(np.int64)
    stocked = np.ones(n, bool) if available is None else np.asarray(available, bool)
    groups = _groups(categories)
    if groups is None:  # one category: the signal's order, out of stock last all the same
        return np.concatenate([base[stocked[base]], base[~stocked[base]]]).astype(np.int32)
    # the products with a signal (popularity when there is any, else, in a shop with no events
    # yet, the judged gain) come before those without, each part round-robin over categories
    scored = (signal > 0) if (signal > 0).any() else (tiebreak > 0)
    parts = (scored & stocked, ~scored & stocked, ~stocked)
    out = [_merged(base[part[base]], groups, signal, tiebreak) for part in parts]
    return np.concatenate(out).astype(np.int32)


def _merged(order: np.ndarray, groups: np.ndarray, signal: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """`order` (best first) with the products of a known category round-robin, and those
    without one (group < 0) merged in where their signal puts them: each takes its place when
    it outsells (ties: the judged gain, then the earlier in `order`) the known product due
    next. As one "unknown" category taking turns, one categorized product came second for every
    visitor; each unknown product taking a turn of its own put them all in the first round."""
    rr = _round_robin(order[groups[order] >= 0], groups)
    unknown = order[groups[order] < 0]
    if len(unknown) == 0:
        return rr
    place = {int(i): n for n, i in enumerate(order.tolist())}
    out, a, b = [], 0, 0
    while a < len(rr) and b < len(unknown):
        x, y = int(rr[a]), int(unknown[b])
        if (signal[y], tiebreak[y], -place[y]) > (signal[x], tiebreak[x], -place[x]):
            out.append(y)
            b += 1
        else:
            out.append(x)
            a += 1
    out += rr[a:].tolist() + unknown[b:].tolist()
    return np.asarray(out, np.int64)


def _groups(categories: Sequence[str]) -> np.ndarray | None:
    """Per item, its category's code at the shallowest path level with two distinct known
    values (None: every item in one category, or none has one). An item without a category is
    a group of its own, never one "unknown" category taking turns with the known ones (a
    catalog without categories but one product's: that product came second for every new
    visitor, a new shop's walk)."""
    paths = [[p.strip() for p in (c or "").split(">")] for c in categories]
    for depth in range(1, MAX_CATEGORY_DEPTH + 1):
        keys = [" > ".join(p[:depth]) for p in paths]
        if len(set(keys) - {""}) >= 2:
            codes: dict[str, int] = {}
            return np.array([codes.setdefault(k, len(codes)) if k else -1 for k in keys], np.int64)
        if all(len(p) <= depth for p in paths):
            break  # no deeper level to look at
    return None


def _round_robin(order: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """`order` (item indices, best first) re-ordered by rounds: each round takes every
    category's next item, the categories in the order of their best item."""
    if len(order) == 0:
        return order
    g = groups[order].tolist()
    rank = np.zeros(len(order), np.int64)  # within its category: 0 for the best, 1 the second, ...
    first: dict[int, int] = {}  # category -> its place among the categories
    seen: dict[int, int] = {}
    for i, c in enumerate(g):
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
        first.setdefault(c, len(first))
    pos = np.array([first[c] for c in g], np.int64)
    return order[np.lexsort((pos, rank))]
