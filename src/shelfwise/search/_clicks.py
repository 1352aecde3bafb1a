"""Search clicks as training data for the ranker, with the positions they were shown at.

Two sources:
- **served pages** (`spool/exposures/`, written by `shelfwise serve`): the products shown for a
  query at their display positions (offset + rank), and the events that name the page's
  `search_id`. Shoppers look at the top of a page more than at the bottom, so raw click rates
  favour whatever was shown first. `debias` corrects for it with the position-based click model:
  P(click) = P(examine position) x P(relevant); the examination propensities are estimated from
  the logs themselves by intervention harvesting (the same product for the same query shown at
  different positions on different pages: its click rates at the two positions give their
  propensity ratio), and each (query, product) gets relevance = clicks / sum of the propensities
  of its impressions.
- **logged searches** (curated `search` events): the products the same shopper clicked, carted
  or bought in the same session within 30 minutes after the search (the user too: a shop may
  number each user's sessions 1, 2, ...). Positions are unknown: no correction.

Labels: click 1, add to cart 2, purchase 3 (the strongest action per product wins).

Logged searches also carry the shopper's history before the search (`ClickGroup.history`, the
last products they interacted with, strictly earlier than the search): the point-in-time
profile the personalized ranker features are computed from (see `_personal`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ._analytics import SESSION_WINDOW_S, served_search_pages
from ._personal import HISTORY_EVENTS, histories_before

ACTION_GRADE = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


@dataclass
class ClickGroup:
    query: str
    labels: dict[str, float]  # product id -> grade (only products acted on)
    positions: dict[str, int] = field(default_factory=dict)  # product id -> 1-based display position
    source: str = "logged"  # logged | served
    history: list[str] = field(default_factory=list)  # the shopper's products before the search


def load_click_groups(
    workdir: str | Path,
    *,
    max_groups: int = 50_000,
    leave_out: Callable[[list[str]], set[str]] | None = None,
) -> dict[str, ClickGroup]:
    """Click groups by id (a search_id for served pages, `log:<n>` for logged searches).
    `leave_out(users)`: the pseudonyms among `users` whose searches no model may learn from
    (no personalization consent): their groups are dropped, history and all."""
    from ..storage import read_only, relation_columns

    workdir = Path(workdir)
    groups: dict[str, ClickGroup] = {}
    acted: dict[str, dict[str, float]] = {}
    with read_only(workdir) as (con, tables):
        if "events" not in tables:
            return groups
        cols = set(relation_columns(con, "curated.events"))
        grades = (
            "CASE event_type " + " ".join(f"WHEN '{a}' THEN {g}" for a, g in ACTION_GRADE.items()) + " END"
        )
        if "search_id" in cols:
            for sid, pid, g in con.sql(
                f"""SELECT search_id, product_id, max({grades}) FROM curated.events
                    WHERE search_id IS NOT NULL AND product_id IS NOT NULL
                      AND event_type IN ('click', 'add_to_cart', 'purchase') GROUP BY 1, 2"""
            ).fetchall():
                acted.setdefault(sid, {})[pid] = float(g)
        rows = con.sql(
            f"""WITH s AS (
                    SELECT row_number() OVER (ORDER BY timestamp, session_id, query) AS n, session_id, query, timestamp,
                           user_id
                    FROM curated.events
                    WHERE event_type = 'search' AND query IS NOT NULL AND session_id IS NOT NULL),
                a AS (
                    SELECT session_id, user_id, product_id, timestamp, {grades} AS g FROM curated.events
                    WHERE event_type IN ('click', 'add_to_cart', 'purchase') AND session_id IS NOT NULL
                      AND product_id IS NOT NULL)
                SELECT s.n, any_value(s.query), a.product_id, max(a.g), any_value(s.user_id),
                       epoch(any_value(s.timestamp))
                FROM s JOIN a ON a.session_id = s.session_id AND a.user_id = s.user_id
                     AND a.timestamp >= s.timestamp
                     AND a.timestamp <= s.timestamp + INTERVAL {SESSION_WINDOW_S} SECOND
                GROUP BY s.n, a.product_id ORDER BY s.n LIMIT {int(max_groups) * 20}"""
        ).fetchall()
        out = leave_out(sorted({str(r[4]) for r in rows if r[4] is not None})) if leave_out else set()
        searched_at: dict[str, tuple[str, float]] = {}
        for n, query, pid, g, user, at in rows:
            if user is not None and str(user) in out:
                continue
            gid = f"log:{n}"
            if gid not in groups:
                if len(groups) >= max_groups:
                    break
                groups[gid] = ClickGroup(query, {})
                if user is not None:
                    searched_at[gid] = (str(user), float(at))
            groups[gid].labels[pid] = float(g)
        histories = _histories(con, {u for u, _ in searched_at.values()})
    for gid, (user, at) in searched_at.items():
        groups[gid].history = histories_before(histories, user, at)
    pages = [r for r in served_search_pages(workdir) if r.get("sort", "relevance") == "relevance"]
    if leave_out is not None:
        out = leave_out(sorted({str(r["user"]) for r in pages if r.get("user")}))
        pages = [r for r in pages if not r.get("user") or str(r["user"]) not in out]
    for rec in pages:
        offset = int(rec.get("offset") or 0)
        shown = {p: offset + i + 1 for i, p in enumerate(rec.get("items") or [])}
        sid = str(rec.get("id") or "")
        labels = {p: g for p, g in acted.get(sid, {}).items() if p in shown}
        if sid and shown and len(groups) < max_groups:  # pages without a click count as impressions
            groups[sid] = ClickGroup(rec.get("query") or "", labels, shown, "served")
    return groups


def _histories(con: Any, users: set[str]) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per user: (sorted epoch timestamps, product ids) of their product interactions."""
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    if not users:
        return out
    kinds = ", ".join(f"'{k}'" for k in HISTORY_EVENTS)
    con.register("_searchers", pa.table({"user_id": sorted(users)}))
    try:
        rows = con.sql(
            f"""SELECT e.user_id, list(epoch(e.timestamp) ORDER BY e.timestamp, e.product_id),
                       list(e.product_id ORDER BY e.timestamp, e.product_id)
                FROM curated.events e SEMI JOIN _searchers s ON e.user_id = s.user_id
                WHERE e.event_type IN ({kinds}) AND e.product_id IS NOT NULL GROUP BY 1"""
        ).fetchall()
    finally:
        con.unregister("_searchers")
    for user, ts, products in rows:
        out[str(user)] = (np.asarray(ts, float), [str(p) for p in products])
    return out


def propensities(pages: list[ClickGroup], max_position: int = 20, prior: float = 5.0) -> dict[int, float]:
    """Examination propensity per display position, position 1 = 1.0, by intervention harvesting:
    for every (query, product) seen at position 1 and at position k, the ratio of its click rates
    there (pooled over such pairs) estimates p(k) / p(1). Smoothed towards the usual 1/k prior
    with `prior` pseudo-impressions, so positions with little evidence stay close to 1/k."""
    stats: dict[tuple[str, str], dict[int, list[float]]] = {}
    for g in pages:
        for p, pos in g.positions.items():
            if pos <= max_position:
                s = stats.setdefault((g.query, p), {}).setdefault(pos, [0.0, 0.0])
                s[0] += 1.0 if g.labels.get(p, 0) > 0 else 0.0
                s[1] += 1.0
    out = {1: 1.0}
    for k in range(2, max_position + 1):
        c1 = ck = n = 0.0  # weighted click rates at positions 1 and k over the shared pairs
        for by_pos in stats.values():
            if 1 in by_pos and k in by_pos:
                w = min(by_pos[1][1], by_pos[k][1])  # weight each pair by its smaller side
                c1 += w * by_pos[1][0] / by_pos[1][1]
                ck += w * by_pos[k][0] / by_pos[k][1]
                n += w
        base = 1.0 / k
        if n > 0 and c1 > 0:
            out[k] = float(min(1.0, (ck / c1 * n + base * prior) / (n + prior)))
        else:
            out[k] = base
    return out


def debias(
    groups: dict[str, ClickGroup], min_impressions: int = 3
) -> tuple[dict[str, dict[str, float]], dict[int, float]]:
    """Served pages -> relevance per (query, product) = clicks / sum of the examination
    propensities of its impressions (capped at 1), for products with at least `min_impressions`;
    also the propensities used. Queries are grouped by their normalized text."""
    from ._analyze import words

    # the caller's groups are left as they are: normalized copies
    pages = [
        replace(g, query=" ".join(words(g.query)) or g.query.strip().lower())
        for g in groups.values()
        if g.source == "served"
    ]
    prop = propensities(pages)
    floor = min(prop.values())
    # (query, product) -> [sum of examination propensities, impressions, clicks]
    seen: dict[tuple[str, str], list[float]] = {}
    for g in pages:
        for p, pos in g.positions.items():
            acc = seen.setdefault((g.query, p), [0.0, 0.0, 0.0])
            acc[0] += prop.get(pos, floor)
            acc[1] += 1
            acc[2] += 1.0 if g.labels.get(p, 0) > 0 else 0.0
    rel: dict[str, dict[str, float]] = {}
    for (q, p), (exam, imps, clicks) in seen.items():
        by = rel.setdefault(q, {})
        if imps >= min_impressions:
            by[p] = min(1.0, clicks / exam)
    return {q: r for q, r in rel.items() if any(v > 0 for v in r.values())}, prop
