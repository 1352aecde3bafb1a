"""Curated warehouse tables -> Interactions and the catalog arrays the models use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..storage import read_only
from ._interactions import DEFAULT_EVENT_WEIGHTS, Interactions


@dataclass
class Catalog:
    """Per-item arrays in the interactions' item order (missing values where unknown)."""

    item_ids: np.ndarray
    titles: list[str]
    categories: list[str]
    category_codes: np.ndarray  # int, -1 = unknown
    prices: np.ndarray  # float, nan = unknown
    in_stock: np.ndarray  # bool
    brands: list[str] = field(default_factory=list)  # "" = unknown


_NO_EVENTS = {
    "user_id": np.empty(0, object),
    "product_id": np.empty(0, object),
    "ts": np.empty(0, np.int64),
    "w": np.empty(0, np.float32),
}


def load_interactions(
    workdir: str | Path,
    event_weights: dict[str, float] | None = None,
    *,
    leave_out: Callable[[list[str]], set[str]] | None = None,
) -> tuple[Interactions, Catalog]:
    """Item events from `curated.events` (pseudonymized users), every catalog product indexed;
    no interactions (and the catalog) when the warehouse has no events table yet.

    `leave_out` is given the users of the events and returns those whose events no model may
    learn from (training passes the users without personalization consent): their events stay
    in the warehouse but not in the interactions.

    Event weight comes from its type; a rating is weighted by its value (a 1-star rating is a
    weak signal, a 5-star one strong). Searches have no product and are not interactions.
    """
    weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
    with read_only(workdir) as (con, tables):
        has_events = "events" in tables
        cases = " ".join(f"WHEN '{t}' THEN {float(w)}" for t, w in weights.items() if t != "rating")
        rating_w = float(weights.get("rating", 0.0))
        # a shop with a catalog and no behaviour yet: no interactions, every product indexed
        ev = (
            con.sql(
                f"""SELECT user_id, product_id, epoch(timestamp)::BIGINT AS ts,
                       CASE event_type {cases}
                            WHEN 'rating' THEN {rating_w} * coalesce(greatest(value, 0.5), 3.0) / 5.0
                       END AS w
                FROM curated.events
                WHERE product_id IS NOT NULL AND product_id <> '' AND user_id IS NOT NULL
                  AND event_type IN ({", ".join(f"'{t}'" for t in weights)})"""
            ).fetchnumpy()
            if has_events
            else _NO_EVENTS
        )
        if "products" in tables:
            prod = con.sql(
                "SELECT product_id, coalesce(title, '') AS title, coalesce(category, '') AS category, "
                "price, coalesce(in_stock, true) AS in_stock, coalesce(brand, '') AS brand FROM curated.products ORDER BY product_id"
            ).fetchnumpy()
        else:
            prod = None
    if leave_out is not None and len(ev["user_id"]):
        users = np.asarray(ev["user_id"], dtype=object)
        out = leave_out(sorted(set(users.tolist())))
        if out:
            keep = ~np.isin(users, np.array(sorted(out), dtype=object))
            ev = {k: np.asarray(v)[keep] for k, v in ev.items()}
    catalog_ids = None if prod is None else np.asarray(prod["product_id"], dtype=object)
    inter = Interactions.from_arrays(ev["user_id"], ev["product_id"], ev["ts"], ev["w"], item_ids=catalog_ids)
    n = inter.n_items
    titles, cats, brands = [""] * n, [""] * n, [""] * n
    prices = np.full(n, np.nan)
    stock = np.ones(n, bool)
    if prod is not None:
        # catalog rows come first in the item index, in the same order (from_arrays keeps it)
        assert catalog_ids is not None
        m = len(catalog_ids)
        titles[:m] = [str(t) for t in prod["title"]]
        cats[:m] = [str(c) for c in prod["category"]]
        prices[:m] = np.asarray(prod["price"], dtype=float)
        stock[:m] = np.asarray(prod["in_stock"], dtype=bool)
        brands[:m] = [str(b) for b in prod["brand"]]
    vocab = {c: i for i, c in enumerate(sorted({c for c in cats if c}))}
    codes = np.array([vocab.get(c, -1) for c in cats], np.int64)
    return inter, Catalog(inter.item_ids, titles, cats, codes, prices, stock, brands)
