"""Search analytics for merchandisers: top queries, zero-result queries, rates per query.

Two sources, each labelled in the report:
- the shop's own logs (curated `search` events): how often each query is searched, by how many
  users, and the share of its searches followed in the same session of the same user within 30
  minutes (the usual definition when the log carries no result ids) by a click (click-through),
  an add-to-cart, a purchase (conversion), or any of the three (engaged: `session_ctr`, its first
  name, is no click-through);
- the served log (`spool/exposures/` from `shelfwise serve`): result pages actually shown, which
  of them were empty (zero results) and the share of served pages that a later click,
  add-to-cart, purchase, or any of them names by `search_id` (`attributed_ctr` is the last).
Queries whose words match nothing in the keyword index ("no keyword match": only the semantic
retriever answers them, usually a synonym or vocabulary gap worth a rule or a synonym line) are
found by running the most frequent logged queries through the current bundle's lexical index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

SESSION_WINDOW_S = 1800


_FOLLOWED = f"in the same session of the same user within {SESSION_WINDOW_S // 60} min (of the searches with a session: searches_with_session)"
_NAMED = "names by its search_id (the page's shopper's, dated no more than a day before the page was served)"
PROTOCOL = {
    "session_click_through": f"share of logged searches followed by a click {_FOLLOWED}",
    "session_add_to_cart_rate": f"share of logged searches followed by an add-to-cart {_FOLLOWED}",
    "session_conversion": f"share of logged searches followed by a purchase {_FOLLOWED}",
    "session_engaged": f"share of logged searches followed by a click, add-to-cart or purchase {_FOLLOWED}",
    "session_ctr": "session_engaged under its first name (no click-through: a cart or a purchase without a click counts)",
    "attributed_click_through": f"share of served result pages a click {_NAMED}",
    "attributed_add_to_cart_rate": f"share of served result pages an add-to-cart {_NAMED}",
    "attributed_conversion": f"share of served result pages a purchase {_NAMED}",
    "attributed_engaged": f"share of served result pages a click, add-to-cart or purchase {_NAMED}",
    "attributed_ctr": "attributed_engaged under its first name (no click-through: a cart or a purchase without a click counts)",
    "ci95": "each rate's 95% interval (`<rate>_ci95`) with the user as unit, as `experiments report` computes its "
    "per-exposure rates: delta method over users (a user's searches, pages, are not independent), never narrower "
    "than the Wilson interval over the searches (pages)",
    "zero_results": "served pages with no result for their query: empty, or the popular fallback of a query "
    "that matched nothing (served log); queries with no keyword match (current index)",
}


def search_analytics(workdir: str | Path, top: int = 50, lexical: Any = None) -> dict[str, Any]:
    """The report; `lexical` is the current bundle's keyword index when the caller has it loaded
    (a serving process), else it is read from the bundle (once per bundle and process). Three
    parts that change at different times (a caller may cache each on its own): the logged
    searches and attributed search ids (the warehouse), the served pages (the exposure log) and
    the queries without a keyword match (the warehouse's top queries and the bundle)."""
    workdir = Path(workdir)
    logged, attributed = logged_searches(workdir, top)
    lexical = lexical if lexical is not None else current_lexical(workdir)
    return {
        "protocol": dict(PROTOCOL),
        "logged": logged,
        "served": served_searches(workdir, attributed, top),
        "no_keyword_match": no_keyword_match(lexical, logged["top_queries"], top),
    }


def logged_searches(
    workdir: str | Path, top: int = 50
) -> tuple[dict[str, Any], list[tuple[str, str, float, tuple[str, ...], str]]]:
    """The shop's logged searches (top queries with their session click-through, add-to-cart
    rate, conversion and engaged share) and the curated clicks, carts and purchases that name a
    served page (search id, user, time, linked shoppers, event type: for the served pages'
    attributed rates, `served_search_summary`).

    A search is credited with the click, cart or purchase that follows it within
    `SESSION_WINDOW_S` in the same session *of the same user*: both rows' `user_id` (the
    warehouse's pseudonym, the same keyed HMAC for every row of a user) and `session_id` match.
    Session ids are not unique across users in every shop (some number each user's sessions 1,
    2, ...), and on `session_id` alone one user's purchase would be credited to another user's
    search. Every curated event has a user (the events contract requires `user_id`), so there is
    no session-only fallback: an action logged under another user id than its search (a guest
    who logs in to pay, if the shop logs the two under different ids) is not credited, which
    understates rather than invents conversions. Searches without a session count in `searches`
    but not in the rates' denominators (`searches_with_session`)."""
    from ..evaluation._metrics import ratio_interval_from_sums
    from ..storage import read_only, relation_columns

    logged: dict[str, Any] = {"searches": 0, "distinct_queries": 0, "top_queries": []}
    attributed: list[tuple[str, str, float, tuple[str, ...], str]] = []
    with read_only(workdir) as (con, tables):
        if "events" not in tables:
            return logged, attributed
        rows = con.sql(
            f"""WITH s AS (
                    SELECT user_id, session_id, query, timestamp FROM curated.events
                    WHERE event_type = 'search' AND query IS NOT NULL),
                a AS (
                    SELECT user_id, session_id, timestamp,
                           CASE event_type WHEN 'click' THEN 1 WHEN 'add_to_cart' THEN 2 ELSE 4 END AS kind
                    FROM curated.events
                    WHERE event_type IN ('click', 'add_to_cart', 'purchase') AND session_id IS NOT NULL),
                followed AS (  -- per search: NULL (nothing followed), else 1 click | 2 add-to-cart | 4 purchase
                    SELECT s.query, s.user_id, s.session_id IS NOT NULL AS has_session,
                           (SELECT bit_or(a.kind) FROM a WHERE a.session_id = s.session_id
                                   AND a.user_id = s.user_id AND a.timestamp >= s.timestamp
                                   AND a.timestamp <= s.timestamp + INTERVAL {SESSION_WINDOW_S} SECOND) AS m
                    FROM s),
                flagged AS (
                    SELECT query, user_id, has_session, m IS NOT NULL AS engaged,
                           coalesce(m & 1, 0) > 0 AS clicked, coalesce(m & 2, 0) > 0 AS carted,
                           coalesce(m & 4, 0) > 0 AS converted
                    FROM followed),
                forms AS (  -- each key's forms as typed (outer spaces aside) and how often
                    SELECT lower(trim(query)) AS q, trim(query) AS form, count(*) AS n FROM s GROUP BY 1, 2),
                shown AS (  -- the most frequent form; between equally frequent ones the first in code-point order
                    SELECT q, form FROM (
                        SELECT q, form, row_number() OVER (PARTITION BY q ORDER BY n DESC, form) AS r FROM forms)
                    WHERE r = 1),
                per_user AS (  -- a query's searches per user: the rates' unit (a user's searches are not independent)
                    SELECT lower(trim(query)) AS q, user_id, count(*) AS n, sum(has_session::INT) AS y,
                           sum(engaged::INT) AS xe, sum(converted::INT) AS xb, sum(clicked::INT) AS xc,
                           sum(carted::INT) AS xk
                    FROM flagged GROUP BY 1, 2),
                counted AS (  -- the sums and, per rate, the users' moments its interval needs
                    SELECT q, sum(n) AS n, count(user_id) AS users, sum(y) AS with_session, sum(xe) AS engaged,
                           sum(xb) AS converted, sum(xc) AS clicked, sum(xk) AS carted,
                           count(*) FILTER (WHERE y > 0) AS units, sum(y * y) AS yy,
                           sum(xe * xe) AS ee, sum(xe * y) AS ey, sum(xb * xb) AS bb, sum(xb * y) AS bq,
                           sum(xc * xc) AS cc, sum(xc * y) AS cy, sum(xk * xk) AS kk, sum(xk * y) AS ky
                    FROM per_user GROUP BY 1)
                SELECT c.q, c.n, c.users, c.with_session, c.engaged, c.converted, coalesce(shown.form, c.q),
                       c.clicked, c.carted,
                       [c.units, c.yy, c.ee, c.ey, c.bb, c.bq, c.cc, c.cy, c.kk, c.ky]
                FROM counted c LEFT JOIN shown USING (q) ORDER BY c.n DESC, c.q"""
        ).fetchall()

        def ci(x: Any, ws: Any, m: list[Any], at: int) -> list[float] | None:
            """A rate's 95% interval with the user as unit (`ratio_interval_from_sums`): `x` of
            the `ws` searches with a session; `m[at]`, `m[at + 1]`: the users' sums of x*x, x*y."""
            if not ws:
                return None
            lo_hi = ratio_interval_from_sums(
                int(m[0]), float(x), float(ws), float(m[at]), float(m[1]), float(m[at + 1])
            )
            return [round(v, 4) for v in lo_hi]

        logged["searches"] = int(sum(r[1] for r in rows))
        logged["distinct_queries"] = len(rows)
        logged["top_queries"] = [
            {
                # the key it is counted under (as before), and its most frequent form as typed
                "query": q,
                "typed_query": form or q,
                "searches": int(n),
                "users": int(u),
                # (kept: the share of searches followed by a click, cart or purchase, `session_engaged`)
                "session_ctr": round(e / ws, 4) if ws else None,
                "session_conversion": round(b / ws, 4) if ws else None,
                # each rate by what it counts, of the searches with a session
                "searches_with_session": int(ws),
                "session_click_through": round(c / ws, 4) if ws else None,
                "session_add_to_cart_rate": round(k / ws, 4) if ws else None,
                "session_engaged": round(e / ws, 4) if ws else None,
                # their 95% intervals, the user as unit (`experiments report`'s per-exposure rule)
                "session_click_through_ci95": ci(c, ws, m, 6),
                "session_add_to_cart_rate_ci95": ci(k, ws, m, 8),
                "session_conversion_ci95": ci(b, ws, m, 4),
                "session_engaged_ci95": ci(e, ws, m, 2),
            }
            for q, n, u, ws, e, b, form, c, k, m in rows[:top]
        ]
        cols = set(relation_columns(con, "curated.events"))
        if "search_id" in cols:
            # (search id, user, epoch seconds, linked shoppers, event type) of the clicks, carts
            # and purchases that name a page (a `search` event naming its own page is no click:
            # every page was "clicked")
            attributed = [
                (str(i), str(u), float(ts), also, str(kind))
                for i, u, _, ts, also, kind in attributed_events(con, "search_id", workdir, kinds=True)
            ]
    return logged, attributed


def linked_shoppers_sql(workdir: str | Path, attributed: str) -> tuple[str, str, list[Any]]:
    """SQL over a curated event `e` (with `LINKS`, the CTE it names, joined as `l`) of the other
    pseudonyms of its shopper (`also`): a customer's event is also the anonymous session it was
    made in (the browsing before the login: a list served to `~anonymous:<session>`); an anonymous
    event is also the customers whose events carry its session. `attributed`: the condition of
    the events the caller reads (only their anonymous sessions are looked up: grouping every
    session of the table cost 20 times the query). (the CTE, the expression, its parameters)"""
    from ..governance import Pseudonymizer
    from ..governance._compile import lit
    from ..governance._privacy import ANONYMOUS_PREFIX, ANONYMOUS_PSEUDONYM_PREFIX

    anon, params = Pseudonymizer.of(workdir).sql(f"({lit(ANONYMOUS_PREFIX)} || trim(e.session_id))")
    cte = (
        "links AS (SELECT session_id, list(DISTINCT user_id ORDER BY user_id) AS customers "
        f"FROM curated.events WHERE session_id IS NOT NULL AND NOT starts_with(user_id, '{ANONYMOUS_PSEUDONYM_PREFIX}') "
        f"AND session_id IN (SELECT session_id FROM curated.events WHERE ({attributed}) "
        f"AND starts_with(user_id, '{ANONYMOUS_PSEUDONYM_PREFIX}')) GROUP BY 1)"
    )
    also = (
        f"CASE WHEN starts_with(e.user_id, '{ANONYMOUS_PSEUDONYM_PREFIX}') THEN coalesce(l.customers, []::VARCHAR[]) "
        f"WHEN e.session_id IS NOT NULL THEN [{anon}] ELSE []::VARCHAR[] END"
    )
    return cte, also, params


def attributed_events(
    con: Any, column: str, workdir: str | Path, *, kinds: bool = False
) -> list[tuple[Any, ...]]:
    """(list id, user, a purchase, the latest time: epoch seconds, the shopper's other
    pseudonyms: `linked_shoppers_sql`) per served list the curated clicks, carts and purchases
    name in `column` (`search_id`, `recommendation_id`), on a connection to the warehouse (of
    `workdir`): what the console's traffic and the search analytics attribute. `kinds`: one row
    per event type, which is added last (the console's traffic tells a click from a purchase)."""
    cte, also, params = linked_shoppers_sql(
        workdir, f"{column} IS NOT NULL AND event_type IN ('click', 'add_to_cart', 'purchase')"
    )
    kind = ", e.event_type" if kinds else ""
    return [
        (r[0], r[1], r[2], r[3], tuple(r[4]), *r[5:])
        for r in con.execute(
            f"""WITH {cte}
                SELECT e.{column}, coalesce(e.user_id, ''), e.event_type = 'purchase',
                  max(epoch(e."timestamp"))::DOUBLE, {also} AS also{kind}
                FROM curated.events e LEFT JOIN links l ON l.session_id = e.session_id
                WHERE e.{column} IS NOT NULL AND e.event_type IN ('click', 'add_to_cart', 'purchase')
                GROUP BY ALL""",
            params,
        ).fetchall()
    ]


# an event dated this long before its list was served still counts for it (the shop's clocks
# and the server's disagree; a date without a time is midnight; a naive local time is read as
# UTC: up to 14 hours off); an older one was not caused by the list
CLOCK_SKEW_S = 86_400.0


def not_counted(
    list_user: str, list_at: float, event_user: str, event_ts: float, also: Any = ()
) -> str | None:
    """Why an event naming a served list does not count for it (None: it counts): another
    shopper's event ("another_user"; `also`, the event's shopper's other pseudonyms
    (`linked_shoppers_sql`): an anonymous session's list bought after a login in that session,
    or a customer's list clicked in a session of theirs, is the same shopper's; a list served to
    no shopper is anyone's), or one dated more than CLOCK_SKEW_S before the list was served
    ("before_the_list"). One rule for the experiment report, the console's traffic and the
    search analytics. (An anonymous session's event counted for any list: a stranger's click on
    a customer's list raised its variant's CTR.)"""
    # (a list served to nobody in particular - similar items, a search without a shopper - is
    # any shopper's: only its time is read)
    if list_user and event_user != list_user and list_user not in also:
        return "another_user"
    if list_at and event_ts < list_at - CLOCK_SKEW_S:
        return "before_the_list"
    return None


def served_searches(workdir: str | Path, attributed: Any, top: int = 50) -> dict[str, Any]:
    """The result pages `shelfwise serve` logged: per query, pages, empty pages and the share
    of pages a curated click, cart or purchase names (`attributed`: `logged_searches`' events,
    read by `served_search_summary`)."""
    per_query: dict[str, list[Any]] = {}
    for rec in served_search_pages(workdir):
        add_served_search(per_query, rec)
    return served_search_summary(per_query, attributed, top)


def add_served_search(per_query: dict[str, list[Any]], rec: dict[str, Any]) -> None:
    """Count one logged search page into `per_query` (normalized query -> [pages, empty
    pages, the pages' list ids, {the query as typed (masked, outer spaces aside): pages}]):
    sums a reader can keep and add to as the log grows (the console's exposure tally) and that
    give `served_searches` whatever the order."""
    from ..governance._privacy import mask_pii
    from ._analyze import words

    # (a log written before servers masked the queries they log is masked here)
    raw = str(rec.get("query") or "")
    raw = raw if rec.get("masked") else mask_pii(raw)
    q = " ".join(words(raw)) or raw.strip().lower()
    d = per_query.setdefault(q, [0, 0, [], {}])
    d[0] += 1
    form = raw.strip() or q
    d[3][form] = d[3].get(form, 0) + 1
    # an empty page past the end of the results (`offset` beyond `total`) is no zero-result
    # search: the query had results on its earlier pages; nor is a page the shopper's filters
    # emptied ("earbuds" under 5 dollars: the words found products, the filters none:
    # `words_found`); a page of popular products shown because the query matched nothing
    # (`fallback`, `match` none) is one, filtered or not
    found = bool(rec.get("items")) and not rec.get("fallback") and rec.get("match") != "none"
    emptied = bool(rec.get("filtered") and rec.get("words_found"))
    d[1] += 0 if found or emptied or int(rec.get("offset") or 0) > 0 else 1
    if rec.get("id"):  # (with its shopper and time: the attribution rule reads them)
        d[2].append([str(rec["id"]), str(rec.get("user") or ""), float(rec.get("at") or 0.0)])


def merge_served_searches(into: dict[str, list[Any]], other: dict[str, list[Any]]) -> None:
    for q, (pages, zero, ids, *forms) in other.items():
        d = into.setdefault(q, [0, 0, [], {}])
        d[0] += pages
        d[1] += zero
        d[2].extend(ids)
        for form, n in (forms[0] if forms else {}).items():
            d[3][form] = d[3].get(form, 0) + n


def shown_form(key: str, forms: dict[str, int] | None) -> str:
    """How a query counted under `key` is shown: its most frequent form as typed, the first in
    code-point order between equally frequent ones (the logged searches' rule); `key` when no
    form was kept (a tally made before forms were)."""
    return min(forms.items(), key=lambda fn: (-fn[1], fn[0]))[0] if forms else key


def served_search_summary(per_query: dict[str, list[Any]], attributed: Any, top: int = 50) -> dict[str, Any]:
    """`served_searches` from the per-query sums of `add_served_search`. An event naming a page
    counts for it when `not_counted` lets it (its shopper's, not dated before it was served: the
    console's traffic and the experiment report read events the same way); a page is engaged
    when a click, cart or purchase counts, clicked (carted, bought) when a click (an add-to-cart,
    a purchase) does. `attributed`: (search id, user, epoch seconds, linked shoppers, event
    type) per such event (without a type: engaged only)."""
    events: dict[str, list[tuple[str, float, tuple[str, ...], str | None]]] = {}
    for a in attributed:
        if isinstance(a, str):  # (an id alone: anyone's, any time)
            events.setdefault(a, []).append(("", float("inf"), (), None))
        else:
            also = tuple(a[3]) if len(a) > 3 else ()
            kind = str(a[4]) if len(a) > 4 else None
            events.setdefault(str(a[0]), []).append((str(a[1]), float(a[2]), also, kind))

    def counted(page: Any) -> set[str | None]:
        pid, user, at = (page, "", 0.0) if isinstance(page, str) else (page[0], page[1], page[2])
        return {k for u, ts, also, k in events.get(pid, ()) if not_counted(user, at, u, ts, also) is None}

    def tally(ids: list[Any]) -> dict[str, Any]:
        got = [counted(p) for p in ids]
        return {"engaged": sum(1 for k in got if k), "clicked": sum("click" in k for k in got),
                "carted": sum("add_to_cart" in k for k in got), "bought": sum("purchase" in k for k in got),
                "ids": ids, "got": got}  # fmt: skip

    def intervals(d: dict[str, Any]) -> dict[str, list[float]]:
        """The page rates' 95% intervals with the shopper as unit (`ratio_interval`: the
        experiment report's per-exposure rule); a page served to nobody in particular is a
        unit of its own, as is every page when the tally kept no ids."""
        from ..evaluation._metrics import ratio_interval

        units: dict[str, list[int]] = {}  # shopper -> [pages, engaged, clicked, carted, bought]
        for page, k in zip(d["ids"], d["got"], strict=True):
            pid, user = (page, "") if isinstance(page, str) else (page[0], page[1])
            u = units.setdefault(user or "\x00" + str(pid), [0, 0, 0, 0, 0])
            for col, hit in enumerate((True, bool(k), "click" in k, "add_to_cart" in k, "purchase" in k)):
                u[col] += hit
        rows = list(units.values()) + [[1, 0, 0, 0, 0]] * max(0, d["pages"] - len(d["ids"]))
        a = np.asarray(rows, np.float64)
        return {
            f"attributed_{name}_ci95": [round(v, 4) for v in ratio_interval(a[:, col], a[:, 0])]
            for name, col in (
                ("click_through", 2),
                ("add_to_cart_rate", 3),
                ("conversion", 4),
                ("engaged", 1),
            )
        }

    served = sorted(
        (
            {"key": q, "query": shown_form(q, forms[0] if forms else None), "pages": pages, "zero": zero,
             **tally(ids)}
            for q, (pages, zero, ids, *forms) in per_query.items()
        ),
        key=lambda d: (-d["pages"], d["key"]),
    )  # fmt: skip
    return {
        "pages": sum(d["pages"] for d in served),
        "zero_result_pages": sum(d["zero"] for d in served),
        # each query under the key it is counted under, with its most frequent form as typed
        "top_queries": [
            {"query": d["key"], "typed_query": d["query"], "pages": d["pages"],
             # (kept: the share of pages a click, cart or purchase names, `attributed_engaged`)
             "attributed_ctr": round(d["engaged"] / d["pages"], 4),
             # each rate by what it counts, of the pages served
             "attributed_click_through": round(d["clicked"] / d["pages"], 4),
             "attributed_add_to_cart_rate": round(d["carted"] / d["pages"], 4),
             "attributed_conversion": round(d["bought"] / d["pages"], 4),
             "attributed_engaged": round(d["engaged"] / d["pages"], 4),
             **intervals(d)}
            for d in served[:top]
        ],
        "zero_result_queries": [
            {"query": d["key"], "typed_query": d["query"], "zero_result_pages": d["zero"]}
            for d in served if d["zero"]
        ][:top],
    }  # fmt: skip


def no_keyword_match(
    lexical: Any,
    top_queries: list[dict[str, Any]],
    top: int = 50,
    synonyms: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """The logged top queries none of whose words (synonyms expanded, as search does) the
    keyword index knows (`lexical`: the serving bundle's; None: no search index, no such list)."""
    from ._analyze import ENGLISH
    from ._shopper import expand_synonyms

    out: list[dict[str, Any]] = []
    if lexical is None:
        return out
    for r in top_queries[: max(top, 200)]:
        q = r["query"]  # (what was counted; `typed_query` is shown)
        terms = getattr(lexical, "analyzer", ENGLISH).analyze(expand_synonyms(q, synonyms) if synonyms else q)
        if terms and len(lexical.search_terms(terms, 1).ids[0]) == 0:
            out.append(
                {"query": r["query"], **({"typed_query": r["typed_query"]} if "typed_query" in r else {}),
                 "searches": r["searches"]}
            )  # fmt: skip
    return out


def served_search_pages(workdir: str | Path) -> Iterator[dict[str, Any]]:
    """Every search page `shelfwise serve` logged (`spool/exposures/`), oldest segment first;
    unreadable lines are skipped. Each segment is read whole, never half rewritten by an
    erasure or retention run (`storage._segments.iter_records`)."""
    from ..storage._segments import iter_records

    for rec in iter_records(Path(workdir) / "spool" / "exposures"):
        if isinstance(rec, dict) and rec.get("kind") == "search":
            yield rec


_LEXICAL: dict[Path, Any] = {}  # bundle's search folder -> its keyword index (bundles never change)


def current_lexical(workdir: str | Path) -> Any:
    """The serving bundle's keyword index alone (not the whole engine: no embeddings, catalog
    analysis or ranker; ~10x less to load), kept per bundle: a bundle is immutable once made."""
    from ..serving._bundle import BUNDLES_DIR, CURRENT
    from ._retrievers import LexicalRetriever

    workdir = Path(workdir)
    pointer = workdir / BUNDLES_DIR / CURRENT
    if not pointer.exists():
        return None
    path = workdir / BUNDLES_DIR / pointer.read_text().strip() / "search"
    if not path.exists():
        return None
    if path not in _LEXICAL:
        if len(_LEXICAL) >= 4:
            _LEXICAL.clear()
        _LEXICAL[path] = LexicalRetriever.load(path / "lexical")
    return _LEXICAL[path]


def write_search_report(workdir: str | Path) -> tuple[Path, Path]:
    """reports/search-analytics.html (charts) and reports/search-analytics.json."""
    from html import escape

    from ..reporting._charts import bar_chart
    from ..reporting._html import html_table

    workdir = Path(workdir)
    a = search_analytics(workdir)
    reports = workdir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    js = reports / "search-analytics.json"
    js.write_text(json.dumps(a, indent=2, ensure_ascii=False))
    top = a["logged"]["top_queries"][:15]
    top_svg = (
        bar_chart(
            [t.get("typed_query", t["query"]) for t in top],
            [float(t["searches"]) for t in top],
            title="Top queries (logged searches)",
        )
        if top
        else "<p>No searches in the logs.</p>"
    )
    with_ctr = [t for t in top if t.get("session_click_through") is not None]
    ctr_svg = (
        bar_chart(
            [t.get("typed_query", t["query"]) for t in with_ctr],
            [100.0 * t["session_click_through"] for t in with_ctr],
            title="Session click-through of the top queries (%)",
        )
        if with_ctr
        else "<p>No sessions in the logs.</p>"
    )

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    def labelled(rows: list[dict[str, Any]], cols: dict[str, str]) -> list[dict[str, Any]]:
        """The rows under their labels (`cols`: field -> label), each rate as a percentage with
        its 95% interval."""
        rates = {c for c in cols if c not in ("query", "searches", "users", "searches_with_session", "pages")}

        def rate(r: dict[str, Any], c: str) -> str:
            ci = r.get(f"{c}_ci95")
            return pct(r.get(c)) + (f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else "")

        return [
            {
                label: rate(r, c)
                if c in rates
                else r.get("typed_query", r["query"])
                if c == "query"
                else r.get(c, "")
                for c, label in cols.items()
            }
            for r in rows
        ]

    def shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows with each query as shoppers typed it."""
        return [{**r, "query": r.get("typed_query", r["query"])} for r in rows]

    logged_cols = {"query": "query", "searches": "searches", "users": "users",
                   "searches_with_session": "with a session", "session_click_through": "click-through",
                   "session_add_to_cart_rate": "add-to-cart rate", "session_conversion": "conversion",
                   "session_engaged": "engaged (click, cart or purchase)"}  # fmt: skip
    served_cols = {"query": "query", "pages": "pages", "attributed_click_through": "click-through",
                   "attributed_add_to_cart_rate": "add-to-cart rate", "attributed_conversion": "conversion",
                   "attributed_engaged": "engaged (click, cart or purchase)"}  # fmt: skip

    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shelfwise search analytics</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}}
table{{border-collapse:collapse;margin:1rem 0;font-size:14px}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}}
th{{background:#f4f4f4}}.protocol{{background:#f7f7f7;padding:.6rem;border-radius:6px;font-size:13px}}</style>
</head><body><h1>Search analytics</h1>
<div class="protocol" id="protocol">{"<br>".join(f"<b>{escape(k)}</b>: {escape(v)}" for k, v in a["protocol"].items())}</div>
<p id="totals">{a["logged"]["searches"]:,} logged searches, {a["logged"]["distinct_queries"]:,} distinct queries;
{a["served"]["pages"]:,} served result pages, {a["served"]["zero_result_pages"]:,} of them with no result (empty, or the popular fallback).</p>
<h2>Top queries</h2>{top_svg}{ctr_svg}
<p>Each rate a share of the query's searches with a session, by what followed in that session.</p>
{html_table(labelled(a["logged"]["top_queries"], logged_cols), list(logged_cols.values()))}
<h2>Served: attributed rates per query</h2>
<p>Each rate a share of the query's served pages, by the events that name a page.</p>
{html_table(labelled(a["served"]["top_queries"], served_cols), list(served_cols.values()))}
<h2>Zero-result queries (served)</h2>{html_table(shown(a["served"]["zero_result_queries"]), ["query", "zero_result_pages"])}
<h2>No keyword match (answered by the semantic retriever only)</h2>{html_table(shown(a["no_keyword_match"]), ["query", "searches"])}
</body></html>"""
    page = reports / "search-analytics.html"
    page.write_text(html)
    return page, js
