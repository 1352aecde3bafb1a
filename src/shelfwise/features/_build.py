"""Curated warehouse tables -> Interactions and the catalog arrays the models use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    # each product's `attributes` (a JSON object as text, "" = none): {"color": "red", ...}
    attributes: list[str] = field(default_factory=list)
    # in the curated products table (None: every item, a shop with no products table). An item
    # known only from events (its catalog row quarantined, or never delivered) is learned from
    # but never served: serving has no valid title, price or stock for it; nor is one whose
    # catalog row says it is not published (`published` false: a draft, private, archived)
    listed: np.ndarray | None = None
    unpublished: int = 0  # of those not listed, the catalog's products it says are not published
    # per item, the group (style) it belongs to: its catalog row's `group_id`, else its own
    # product id; empty where the catalog has no groups (then every product is its own)
    groups: list[str] = field(default_factory=list)
    # what train derives from these arrays once and reads more than once (the attribute matrix
    # SASRec and the fusion both read: see lifecycle `_item_attributes`)
    derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)


_NO_EVENTS = {
    "user_id": np.empty(0, object),
    "product_id": np.empty(0, object),
    "ts": np.empty(0, np.int64),
    "w": np.empty(0, np.float32),
}


def event_weight_sql(weights: dict[str, float], q: str = '"') -> tuple[str, str]:
    """(the weight of an event row, the filter of item events) as SQL both DuckDB and Spark
    read (`q`: the engine's identifier quote)."""
    cases = " ".join(f"WHEN '{t}' THEN {float(w)}" for t, w in weights.items() if t != "rating")
    rating_w = float(weights.get("rating", 0.0))
    weight = f"CASE event_type {cases} WHEN 'rating' THEN {rating_w} * coalesce(greatest(value, 0.5), 3.0) / 5.0 END"
    types = ", ".join(f"'{t}'" for t in weights)
    where = f"product_id IS NOT NULL AND product_id <> '' AND user_id IS NOT NULL AND event_type IN ({types})"
    return weight, where


def load_interactions(
    workdir: str | Path,
    event_weights: dict[str, float] | None = None,
    *,
    leave_out: Callable[[list[str]], set[str]] | None = None,
    events: Callable[[dict[str, float]], dict[str, np.ndarray]] | None = None,
) -> tuple[Interactions, Catalog]:
    """Item events from `curated.events` (pseudonymized users), every catalog product indexed;
    no interactions (and the catalog) when the warehouse has no events table yet.

    `leave_out` is given the users of the events and returns those whose events no model may
    learn from (training passes the users without personalization consent): their events stay
    in the warehouse but not in the interactions.

    Event weight comes from its type; a rating is weighted by its value (a 1-star rating is a
    weak signal, a 5-star one strong). Searches have no product and are not interactions.

    `events` reads the event rows elsewhere (`user_id`, `product_id`, `ts`, `w`: what the
    warehouse query below gives, in the curated table's order), e.g. on Spark from the curated
    Parquet (`lifecycle/_spark_jobs.spark_event_rows`); the catalog is read here.
    """
    weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
    with read_only(workdir) as (con, tables):
        has_events = "events" in tables
        weight, where = event_weight_sql(weights)
        # a shop with a catalog and no behaviour yet: no interactions, every product indexed
        if not has_events:
            ev = _NO_EVENTS
        elif events is not None:
            ev = events(weights)
        else:
            ev = con.sql(
                f"""SELECT user_id, product_id, epoch(timestamp)::BIGINT AS ts, {weight} AS w
                    FROM curated.events WHERE {where}"""
            ).fetchnumpy()
        if "products" in tables:
            # (a products version published before the contract had `attributes` lacks it)
            cols = {r[0] for r in con.sql("DESCRIBE curated.products").fetchall()}
            attrs = "coalesce(attributes::VARCHAR, '')" if "attributes" in cols else "''"
            # (not published: a draft, private or archived product, learned from, never served)
            published = "coalesce(published, true)" if "published" in cols else "true"
            # (a variant's style, `group_id`, from contract 1.3.0: a product of none is its own)
            group = "nullif(trim(group_id), '')" if "group_id" in cols else "NULL::VARCHAR"
            prod = con.sql(
                "SELECT product_id, coalesce(title, '') AS title, coalesce(category, '') AS category, "
                "price, coalesce(in_stock, true) AS in_stock, coalesce(brand, '') AS brand, "
                f"{attrs} AS attributes, {published} AS published, {group} AS group_id "
                "FROM curated.products ORDER BY product_id"
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
    titles, cats, brands, attributes = [""] * n, [""] * n, [""] * n, [""] * n
    prices = np.full(n, np.nan)
    stock = np.ones(n, bool)
    listed = None
    unpublished = 0
    if prod is not None:
        # catalog rows come first in the item index, in the same order (from_arrays keeps it)
        assert catalog_ids is not None
        m = len(catalog_ids)
        titles[:m] = [str(t) for t in prod["title"]]
        cats[:m] = [str(c) for c in prod["category"]]
        prices[:m] = np.asarray(prod["price"], dtype=float)
        stock[:m] = np.asarray(prod["in_stock"], dtype=bool)
        brands[:m] = [str(b) for b in prod["brand"]]
        attributes[:m] = [str(a) for a in prod["attributes"]]
        # (a products table whose every row was quarantined lists nothing: then, as without
        # one, the products seen in events are the catalog, rather than a shop with nothing to show)
        listed = np.arange(n) < m if m else None
        if listed is not None:  # a product the catalog says is not published is never served
            listed[:m] &= np.asarray(prod["published"], dtype=bool)
            unpublished = int(m - listed[:m].sum())
    groups: list[str] = []
    # (a NULL comes back masked, not None: only a text is a group)
    named = [g if isinstance(g, str) and g else None for g in prod["group_id"]] if prod is not None else []
    if any(g is not None for g in named):
        groups = [str(p) for p in inter.item_ids]
        for i, g in enumerate(named):
            if g is not None:
                groups[i] = g
    vocab = {c: i for i, c in enumerate(sorted({c for c in cats if c}))}
    codes = np.array([vocab.get(c, -1) for c in cats], np.int64)
    return inter, Catalog(
        inter.item_ids, titles, cats, codes, prices, stock, brands, attributes, listed, unpublished, groups
    )
