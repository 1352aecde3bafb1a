"""Free-text searches as demand (issue 18.3): a shopper who searches "bosch drill 18v" while that
drill is out of stock leaves a `search` event with the query and no product_id (nothing was shown
to click), precisely in the stock-out weeks whose demand the forecast must estimate. Such a search
is resolved to the product it names, point in time, and counted in that product's weekly interest
(`load_weekly`: a separate `searched` count as well), so the censored-week rule and the
interest-driven estimate of `_demand.uncensor` see it.

What is read: the curated `search` events without a product_id up to `as_of` (an erased user's
rows are gone from the curated tables, so are their searches), grouped by the normalized query
(lower-cased, NFKC, `search._analyze.words`) and week in the warehouse: each distinct query is
resolved once. The products are those of the products version current at `as_of` (their title
and brand: the product's name); when no version had been ingested by then (history loaded after
the fact), the first version ingested, said in the summary (`catalog_after_as_of`).

The rule (strict: a query counts for a product only when it clearly names it):
1. the query is spelling-corrected to the catalog's words (the shop's search engine's speller
   when `train` built one, else `search.Speller` on the names: rapidfuzz, edit distance 1-2) and
   reduced to its content words (English filler words dropped, as `ask` does);
2. fewer than MIN_WORDS distinct content words names nothing ("drill", "bosch": a kind or a brand);
3. a word is covered by a product whose name holds all its analyzed terms (stemmed; "18v" is "18"
   and "v"), or those of one of the shop's (single-word) synonyms of the word;
4. the query names the one product whose name covers every one of its words (COVERAGE), when
   *no other product of the catalog covers as many* (a tie, "cordless drill" with five cordless
   drills, names nothing). Measured on real shopper queries (the Home Depot development split,
   8,277 queries over its 40,979 titles, no engine): all words named 528 queries (6.4%), the named
   product rated 2.67 on average (1-3; >= 2.67 for 73%, <= 1.67 for 5%) where it was judged,
   against 2.38 (46%, 16%) for every judged pair; 75% of the words named 720, rated 2.61 (66%,
   6%): the stricter rule was kept;
5. with the shop's search engine, that product must also be on the first ENGINE_PAGE keyword hits
   the engine gives the query among the catalog's products (`SearchEngine.keyword_hits`: BM25 on
   every text field, spelling and synonyms as served): the engine agrees it answers the query.
Semantic-only resemblance never resolves a query. The engine's index is the catalog it was
trained on: a product it does not hold (added since) cannot be confirmed and is not resolved.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

MIN_WORDS = 2  # distinct content words a query needs to name one product
COVERAGE = 1.0  # the share of its words the named product's name must cover (see the docstring)
ENGINE_PAGE = 10  # the named product must be on the engine's first page of keyword hits
ENGINE_DEPTH = 50  # keyword hits read (before keeping the as-of catalog's products)


@dataclass
class QueryResolver:
    """Resolves free-text queries to the one product of `names` (product_id -> title and brand)
    they name (see the module's rule); `engine`: the shop's SearchEngine or None."""

    names: dict[str, str]
    engine: Any = None
    _ids: list[str] = field(init=False, repr=False)
    _postings: dict[str, set[int]] = field(init=False, repr=False)
    _correct: Callable[[str], str] = field(init=False, repr=False)
    _synonyms: dict[str, list[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from ..search._analyze import ENGLISH

        self._ids = list(self.names)
        self._postings = {}
        # the search engine's analysis (its shop's language) when there is one
        analyze = getattr(self.engine, "analyzer_", ENGLISH).analyze
        for i, name in enumerate(self.names.values()):
            for t in set(analyze(name)):
                self._postings.setdefault(t, set()).add(i)
        if self.engine is not None:
            self._correct = self.engine.correct
            self._synonyms = dict(self.engine.synonyms_ or {})
        else:
            from ..search._shopper import Speller

            self._correct = Speller.from_texts(list(self.names.values())).correct
            self._synonyms = {}

    @property
    def how(self) -> str:
        return "the search engine" if self.engine is not None else "the catalog's names"

    def _covering(self, word: str) -> set[int]:
        """The products whose name holds every analyzed term of `word` or of one of its synonyms."""
        from ..search._analyze import ENGLISH

        analyze = getattr(self.engine, "analyzer_", ENGLISH).analyze
        out: set[int] = set()
        for alt in (word, *self._synonyms.get(word, ())):
            terms = set(analyze(alt))
            if not terms:
                continue
            rows = [self._postings.get(t, set()) for t in terms]
            out |= set.intersection(*rows)
        return out

    def resolve(self, query: str) -> str | None:
        """The product `query` names, or None."""
        from ._faq_stage import content_words

        fixed = self._correct(query)
        ws = list(dict.fromkeys(w.lower() for w in content_words(fixed).split()))
        if len(ws) < MIN_WORDS:
            return None
        covered: Counter[int] = Counter()
        for w in ws:
            covered.update(self._covering(w))
        if not covered:
            return None
        (best, n), *rest = covered.most_common(2) + [(-1, 0)]
        if n < max(MIN_WORDS, math.ceil(COVERAGE * len(ws))) or rest[0][1] == n:
            return None
        pid = self._ids[best]
        if self.engine is not None:
            hits = [p for p in self.engine.keyword_hits(query, ENGINE_DEPTH) if p in self.names]
            if pid not in hits[:ENGINE_PAGE]:
                return None
        return pid


def free_text_searches(con: Any, as_of: datetime) -> pd.DataFrame:
    """The curated search events without a product_id up to `as_of`, per normalized query and
    week: `query, ds, n` (the raw queries grouped in the warehouse first)."""
    from ..search._analyze import words
    from ..storage import relation_columns

    have = set(relation_columns(con, "curated.events"))
    if "query" not in have:
        return pd.DataFrame({"query": [], "ds": [], "n": []})
    raw = con.execute(
        """SELECT lower(trim(query)) AS q, date_trunc('week', "timestamp") AS ds, count(*) AS n
           FROM curated.events
           WHERE event_type = 'search' AND product_id IS NULL AND query IS NOT NULL
             AND trim(query) <> '' AND "timestamp" <= ?
           GROUP BY ALL""",
        [as_of],
    ).df()
    if raw.empty:
        return pd.DataFrame({"query": [], "ds": [], "n": []})
    norm = {q: " ".join(words(q)) for q in raw["q"].unique()}
    raw["query"] = raw["q"].map(norm)
    raw = raw[raw["query"] != ""]
    out = raw.groupby(["query", "ds"], as_index=False)["n"].sum()
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    return out


def catalog_names(con: Any, as_of: datetime | None) -> tuple[dict[str, str], dict[str, Any]]:
    """product_id -> its name (title and brand) in the products version current at `as_of` (None:
    the newest), else the first version ingested; and which version that was."""
    from ..storage import relation_columns
    from ._demand import _catalog_at, version_relation

    info: dict[str, Any] = {"catalog_version": None, "catalog_after_as_of": False}
    rel, cat = _catalog_at(con, as_of)
    if rel is None:
        rows = con.sql(
            "SELECT version, physical_name FROM meta.table_versions WHERE table_name = 'products' "
            "ORDER BY version LIMIT 1"
        ).fetchall()
        if not rows:
            return {}, info
        version, physical = rows[0]
        rel = version_relation(physical)
        cat = {"version": int(version)}
        info["catalog_after_as_of"] = True
    info["catalog_version"] = cat["version"]
    have = set(relation_columns(con, rel))
    if "title" not in have:
        return {}, info
    brand = "coalesce(\"brand\", '')" if "brand" in have else "''"
    rows = con.sql(f"SELECT product_id, coalesce(\"title\", ''), {brand} FROM {rel}").fetchall()
    return {str(p): f"{t} {b}".strip() for p, t, b in rows}, info


def shop_engine(workdir: str | Path) -> tuple[Any, str | None]:
    """The search engine of the bundle in production and the bundle's name, or (None, None)."""
    from ._faq_stage import live_bundle, search_engine

    bundle = live_bundle(workdir)
    engine = search_engine(bundle)
    return engine, (bundle.name if engine is not None and bundle is not None else None)


def resolve_searches(
    searches: pd.DataFrame, names: dict[str, str], engine: Any = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`searches` (`free_text_searches`) resolved: `product_id, ds, searched` (resolved searches
    per product and week) and the counts (`searches`, `distinct_queries`, `resolved_searches`,
    `resolved_queries`, `products`, `resolved_by`, `seconds`)."""
    t0 = time.monotonic()
    total = int(searches["n"].sum()) if len(searches) else 0
    queries = sorted(searches["query"].unique()) if len(searches) else []
    summary: dict[str, Any] = {
        "searches": total,
        "distinct_queries": len(queries),
        "resolved_searches": 0,
        "resolved_queries": 0,
        "products": 0,
        "resolved_by": None,
    }
    empty = pd.DataFrame({"product_id": pd.Series(dtype=str), "ds": pd.Series(dtype="datetime64[ns]"),
                          "searched": pd.Series(dtype=float)})  # fmt: skip
    if not queries or not names:
        summary["seconds"] = round(time.monotonic() - t0, 2)
        return empty, summary
    resolver = QueryResolver(names, engine)
    named = {q: p for q in queries if (p := resolver.resolve(q)) is not None}
    summary["resolved_by"] = resolver.how
    out = searches[searches["query"].isin(named.keys())].assign(product_id=lambda d: d["query"].map(named))
    out = out.groupby(["product_id", "ds"], as_index=False)["n"].sum().rename(columns={"n": "searched"})
    out["searched"] = out["searched"].astype(float)
    summary["resolved_searches"] = int(out["searched"].sum())
    summary["resolved_queries"] = len(named)
    summary["products"] = int(out["product_id"].nunique())
    summary["seconds"] = round(time.monotonic() - t0, 2)
    return (out if len(out) else empty), summary


__all__ = [
    "COVERAGE",
    "ENGINE_PAGE",
    "MIN_WORDS",
    "QueryResolver",
    "catalog_names",
    "free_text_searches",
    "resolve_searches",
    "shop_engine",
]
