"""Personalized search: what a shopper's own history says about each candidate.

A `Profile` summarizes the user's most recent interactions (the last `RECENT` products viewed,
clicked, carted or bought before the moment of the search): their share in each category path,
in each top-level category and per brand, their mean log price, and the products themselves.
The ranker gets, per candidate (`USER_FEATURES`): the user's share of its category path, of its
top-level category and of its brand, the distance of its log price to the user's mean, and
whether the user interacted with it before. Without a profile (anonymous or new shoppers,
judged queries) the values are NaN: LightGBM sends missing values down a learned side of each
split, so one model serves both.

Training groups get point-in-time profiles: the user's events strictly before the search
(`histories_before`), so nothing that happened after the search leaks into its features.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._retrievers import SearchCatalog

RECENT = 50  # interactions a profile is made of
USER_FEATURES = ["user_category", "user_top_category", "user_brand", "user_price_gap", "user_seen"]
HISTORY_EVENTS = ("view", "click", "add_to_cart", "purchase")


def top_category(path: str) -> str:
    return path.split(">")[0].strip().lower()


@dataclass(frozen=True)
class ProfileColumns:
    """The catalog columns profiles are made of and compared with, normalized once per catalog:
    lower-cased category path, top-level category and brand, log1p price (NaN when unknown)."""

    category: Sequence[str]  # lists, or `_compact.Coded` columns in a built or loaded engine
    top: Sequence[str]
    brand: Sequence[str]
    log_price: np.ndarray

    @classmethod
    def of(cls, catalog: SearchCatalog) -> ProfileColumns:
        price = np.asarray(catalog.price, float)
        return cls(
            [c.strip().lower() for c in catalog.category],
            [top_category(c) for c in catalog.category],
            [b.strip().lower() for b in catalog.brand],
            np.where(np.isfinite(price) & (price >= 0), np.log1p(np.abs(price)), np.nan),
        )


@dataclass(frozen=True)
class Profile:
    category: dict[str, float]  # share of the recent history per category path (lower case)
    top: dict[str, float]  # ... per top-level category
    brand: dict[str, float]  # ... per brand (lower case)
    log_price: float  # mean log1p(price) of the priced products; NaN when none
    seen: frozenset[int]  # catalog rows
    size: int

    @classmethod
    def of(cls, rows: list[int], cols: ProfileColumns) -> Profile | None:
        """The profile of a history given as catalog rows, oldest first (None when empty)."""
        rows = [int(r) for r in rows][-RECENT:]
        if not rows:
            return None
        n = float(len(rows))

        def shares(column: Sequence[str]) -> dict[str, float]:
            return {v: c / n for v, c in Counter(column[r] for r in rows if column[r]).items()}

        price = cols.log_price[rows]
        price = price[np.isfinite(price)]
        return cls(
            shares(cols.category),
            shares(cols.top),
            shares(cols.brand),
            float(price.mean()) if len(price) else float("nan"),
            frozenset(rows),
            len(rows),
        )

    def features(self, cands: np.ndarray, cols: ProfileColumns) -> np.ndarray:
        """(len(cands), len(USER_FEATURES)) for candidate catalog rows."""
        out = np.empty((len(cands), len(USER_FEATURES)), np.float32)
        for j, d in enumerate(cands.tolist()):
            out[j, 0] = self.category.get(cols.category[d], 0.0)
            out[j, 1] = self.top.get(cols.top[d], 0.0)
            out[j, 2] = self.brand.get(cols.brand[d], 0.0) if cols.brand[d] else np.nan
            out[j, 3] = abs(cols.log_price[d] - self.log_price)  # NaN when either is unknown
            out[j, 4] = float(d in self.seen)
        return out


def histories_before(
    events: dict[str, tuple[np.ndarray, list[str]]], user: str | None, at: float | None, limit: int = RECENT
) -> list[str]:
    """The last `limit` products `user` interacted with strictly before time `at` (epoch s),
    from `events[user] = (sorted timestamps, product ids)`."""
    if user is None or at is None or user not in events:
        return []
    ts, products = events[user]
    end = int(np.searchsorted(ts, at, side="left"))
    return products[max(0, end - limit) : end]
