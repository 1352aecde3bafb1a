"""Curated tables -> the search catalog and the relevance judgments used to train the ranker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..storage import read_only
from ._retrievers import SearchCatalog


def _flatten(attributes: str | None) -> str:
    if not attributes:
        return ""
    try:
        obj = json.loads(attributes)
    except ValueError:
        return str(attributes)
    if isinstance(obj, dict):
        return " ".join(f"{k} {v}" for k, v in obj.items() if not isinstance(v, (list, dict)))
    return ""


def load_query_log(workdir: str | Path, limit: int = 200_000) -> list[str]:
    """Shoppers' search queries (masked) from curated events, each once per identified shopper
    who typed it (lower-cased; a shopper repeating a query, or a script, counts once; an
    anonymous session counts for nobody: one client can open as many as it likes): the source
    of autocomplete, which suggests a query only when enough shoppers typed it."""
    from ..governance._privacy import ANONYMOUS_PSEUDONYM_PREFIX

    with read_only(workdir) as (con, tables):
        if "events" not in tables:
            return []
        rows = con.sql(
            f"""SELECT DISTINCT user_id, lower(trim(query)) FROM curated.events
                WHERE event_type = 'search' AND query IS NOT NULL AND trim(query) <> ''
                  AND NOT starts_with(user_id, '{ANONYMOUS_PSEUDONYM_PREFIX}')
                ORDER BY 1, 2 LIMIT {int(limit)}"""
        ).fetchall()
    return [r[1] for r in rows]


def load_ctr(workdir: str | Path, product_ids: list[str], prior_views: float = 20.0) -> np.ndarray:
    """Clicks per view of each product from curated events, smoothed towards the catalog-wide
    rate with `prior_views` pseudo-views (a product viewed twice and clicked once is not a 50%
    product); NaN for every product when the events have no views or no clicks."""
    out = np.full(len(product_ids), np.nan, np.float32)
    with read_only(workdir) as (con, tables):
        if "events" not in tables:
            return out
        rows = con.sql(
            """SELECT product_id, count(*) FILTER (WHERE event_type = 'view'),
                      count(*) FILTER (WHERE event_type = 'click')
               FROM curated.events WHERE product_id IS NOT NULL AND event_type IN ('view', 'click')
               GROUP BY 1"""
        ).fetchall()
    views = {str(p): float(v) for p, v, _ in rows}
    clicks = {str(p): float(c) for p, _, c in rows}
    total_v, total_c = sum(views.values()), sum(clicks.values())
    if total_v <= 0 or total_c <= 0:
        return out
    base = min(1.0, total_c / total_v)
    for i, p in enumerate(product_ids):
        out[i] = min(1.0, (clicks.get(p, 0.0) + prior_views * base) / (views.get(p, 0.0) + prior_views))
    return out


def load_search_data(
    workdir: str | Path,
) -> tuple[SearchCatalog | None, dict[str, str], dict[str, dict[str, float]]]:
    """(catalog or None when there are no products, queries by id, gains[query_id][product_id]).

    Gains are relevance minus the lowest grade in the judgments (so `1 = irrelevant` scales such
    as Home Depot's get gain 0 there, and 0-based scales stay as they are).
    """
    with read_only(workdir) as (con, tables):
        if "products" not in tables:
            return None, {}, {}
        rows = con.sql(
            "SELECT product_id, coalesce(title,''), coalesce(brand,''), coalesce(category,''), coalesce(description,''), "
            "attributes, price, in_stock FROM curated.products ORDER BY product_id"
        ).fetchall()
        queries: dict[str, str] = {}
        gains: dict[str, dict[str, float]] = {}
        if {"queries", "judgments"} <= tables:
            queries = {
                str(q): str(t or "")
                for q, t in con.sql("SELECT query_id, query FROM curated.queries").fetchall()
            }
            jr = con.sql(
                "SELECT query_id, product_id, relevance FROM curated.judgments WHERE relevance IS NOT NULL"
            ).fetchall()
            low = min((r[2] for r in jr), default=0.0)
            for q, p, rel in jr:
                gains.setdefault(str(q), {})[str(p)] = float(rel) - float(low)
    catalog = SearchCatalog(
        [r[0] for r in rows],
        [r[1] for r in rows],
        brand=[r[2] for r in rows],
        category=[r[3] for r in rows],
        description=[r[4] for r in rows],
        attributes=[_flatten(r[5]) for r in rows],
        price=np.array([np.nan if r[6] is None else r[6] for r in rows], float),
        in_stock=np.array([r[7] is None or bool(r[7]) for r in rows], bool),
        stock_known=np.array([r[7] is not None for r in rows], bool),
        attribute_json=[str(r[5] or "") for r in rows],
    )
    return catalog, queries, gains
