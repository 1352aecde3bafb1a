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
    """Shoppers' search queries (masked) from curated events: the source of autocomplete."""
    with read_only(workdir) as (con, tables):
        if "events" not in tables:
            return []
        rows = con.sql(
            f"SELECT query FROM curated.events WHERE event_type = 'search' AND query IS NOT NULL AND query <> '' LIMIT {int(limit)}"
        ).fetchall()
    return [r[0] for r in rows]


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
            "attributes, price, coalesce(in_stock, true) FROM curated.products ORDER BY product_id"
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
        in_stock=np.array([bool(r[7]) for r in rows]),
    )
    return catalog, queries, gains
