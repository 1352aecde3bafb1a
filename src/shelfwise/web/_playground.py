"""The search playground and the shopper view: what the serving code answers, and why.

Pages come from the serving code itself (`Service`, its snapshots and `Rules.apply`), in the
order `/v1/search` and `/v1/recommendations` give them; nothing here is logged as an exposure
(the team's looking is not shopper traffic). The *why* of a search result is the ranker's input:
the retrievers' scores (BM25, cosines, reciprocal rank fusion) and the LightGBM ranker's per-feature
contributions (`pred_contrib`, SHAP values: they sum to the score), plus the merchandising rules
that touched the item. The why of a recommendation is the model's `explain` (the user's items
that raise it most).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import numpy as np

from ..serving._ranking import rank_user
from ..serving._service import NO_RULES, search_counts

__all__ = ["AttributeFilters", "Side", "rules_said", "search_args", "search_side", "shopper"]

EXPLAINED = 5  # recommendations explained on the shopper page
_IMAGE = re.compile(r"https?://[^\s\"']+\.(?:jpe?g|png|webp|gif)(?:\?[^\s\"']*)?", re.IGNORECASE)


class Side:
    """One column of the playground: a bundle (None: the one serving) and rules (None: none)."""

    def __init__(self, bundle: str | None, rules: Any, label: str):
        self.bundle = bundle
        self.rules = rules
        self.label = label


def _snapshot(service: Any, bundle: str | None) -> Any:
    if not bundle or bundle == service.snapshot.version:
        return service.snapshot
    from ..serving._experiments import Variant

    return service._snapshot_for(Variant("console", 1.0, bundle=bundle))  # loaded once, kept


def _rules_hits(rules: Any, pid: str, info: Any, surface: str, query: Any) -> list[str]:
    if rules is None or pid not in info:
        return []
    category, brand, _ = info[pid]
    now = datetime.now(UTC)
    out = []
    for r in rules.items:
        if r.applies(surface, query, None, now) and r.targets(pid, category, brand):
            target = r.product_id or (f"category {r.category}" if r.category else f"brand {r.brand}")
            out.append(f"{r.action} ({target}{', query ' + r.query if r.query else ''})")
    return out


def _explain(engine: Any, q: str, rows: list[int], top: int = 5) -> list[dict[str, Any]]:
    """Per row: the retrievers' scores and the ranker's largest feature contributions."""
    from ..search._engine import _COLUMN, FEATURES

    if not rows:
        return []
    query = engine._query(q)
    _, x = engine._features(query, np.asarray(rows, np.int64))
    scores = {n: x[:, _COLUMN[n]] for n in ("bm25", "cosine", "rrf", "title_coverage") if n in _COLUMN}
    contrib = None
    names = FEATURES
    if engine.ranker_ is not None and hasattr(engine.ranker_, "booster_"):
        cols = engine.ranker_columns_
        xx = x if cols is None else x[:, cols]
        names = FEATURES if cols is None else [FEATURES[c] for c in cols]
        contrib = np.asarray(engine.ranker_.booster_.predict(xx, pred_contrib=True, num_threads=1))
    out = []
    for i in range(len(rows)):
        d: dict[str, Any] = {
            "scores": {n: round(float(v[i]), 4) for n, v in scores.items() if np.isfinite(v[i])},
            "features": [],
        }
        if contrib is not None:
            c = contrib[i, :-1]  # the last column is the bias (the expected score)
            order = np.argsort(-np.abs(c))[:top]
            d["features"] = [
                {"name": names[j], "value": round(float(xx[i, j]), 4), "contribution": round(float(c[j]), 4)}
                for j in order
                if c[j] != 0
            ]
            d["ranker_score"] = round(float(contrib[i].sum()), 4)
        out.append(d)
    return out


def _image(engine: Any, row: int) -> str | None:
    attrs = engine.catalog.attributes[row] if engine.catalog.attributes else ""
    m = _IMAGE.search(attrs or "")
    return m.group(0) if m else None


def search_side(
    service: Any, q: str, k: int, side: Side, *, user_id: str | None = None, explain: bool = True,
    synonyms: dict[str, list[str]] | None = None, filters: Any = None, sort: str = "relevance",
    offset: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """One column of results: what `/v1/search?q=&k=&offset=&sort=` with its filters answers for
    the side's bundle and rules (the page is computed, not taken from the server's cache), each
    item with its why. `synonyms` previews a synonyms list instead of the ones in force (a copy
    of the engine)."""
    from ..search import Filters
    from ..serving._service import _filtered

    filters = filters if filters is not None else Filters()

    snap = _snapshot(service, side.bundle)
    service.sync_synonyms(snap)  # the synonyms in force now (config/synonyms.txt), as /v1/search
    engine = snap.search
    if engine is None:
        return {
            "label": side.label,
            "bundle": snap.version,
            "error": "this bundle has no search index",
            "items": [],
        }
    if synonyms is not None:
        engine = copy.copy(engine)
        engine.synonyms_ = synonyms
    profile = None
    if user_id and engine.personalized_:
        pseudo = service.pseudonymize(user_id)
        u = snap.user_index.get(pseudo)
        seq = snap.bundle.interactions.sequence(u).tolist() if u is not None else []
        profile = engine.profile([snap.item_ids[i] for i in seq] + list(service.online.recent(pseudo)[1]))
    from ..serving._service import _DEEPEST

    n_cand = max(100, offset + k * service.settings.candidates_factor + 20)  # as Service._search_key
    pin_ok = _filtered(engine, filters)  # (a pin passes the page's filters, as on the server)
    deepest = min(_DEEPEST, len(snap.item_ids))
    while True:
        page = engine.query(q, n_cand, filters=filters, sort=sort, profile=profile)
        ranked = [it["product_id"] for it in page["items"]]
        asked = (q, page["corrected_query"]) if page.get("corrected_query") else q  # (as the server asks)
        if side.rules is not None:
            items = side.rules.apply(
                ranked, offset + k, snap.info, surface="search", query=asked, pin_allowed=pin_ok
            )
        else:
            items = ranked[: offset + k]
        # a page the rules thinned retrieves deeper, as `/v1/search` does (`Service._deepen`)
        if len(items) >= offset + k or sort != "relevance" or n_cand >= deepest or len(ranked) < n_cand:
            break
        n_cand = min(deepest, n_cand * 2)
    engine_rank = {p: i + 1 for i, p in enumerate(ranked)}
    score = {it["product_id"]: it["score"] for it in page["items"]}
    items = items[offset:]
    idx = engine._index
    rows = [idx[p] for p in items if p in idx]
    why = _explain(engine, q, rows) if explain and page["match"] != "none" else [{} for _ in rows]
    cat = engine.catalog
    out_items: list[dict[str, Any]] = []
    for pos, p in enumerate(items, offset + 1):
        r = idx.get(p)
        w = why[len(out_items)] if r is not None and len(out_items) < len(why) else {}
        out_items.append(
            {
                "position": pos,
                "product_id": p,
                "title": cat.title[r] if r is not None else p,
                "brand": cat.brand[r] if r is not None else "",
                "category": cat.category[r] if r is not None else "",
                "price": float(cat.price[r])
                if r is not None and cat.price is not None and np.isfinite(cat.price[r])
                else None,
                "image": _image(engine, r) if r is not None else None,
                "engine_rank": engine_rank.get(p),
                "score": round(float(score[p]), 4) if p in score else None,
                "rules": _rules_hits(side.rules, p, snap.info, "search", asked),
                "why": w,
            }
        )
    total, facets = search_counts(snap, page, side.rules or NO_RULES, asked, pin_ok)
    return {
        "label": side.label,
        "bundle": snap.version,
        "match": page["match"],
        "total": total,
        "corrected_query": page["corrected_query"],
        "stages": page["stages"],
        "facets": facets,
        "fallback": page.get("fallback"),
        # (as /v1/search's `warnings`: attribute filters on a bundle trained before them)
        "warnings": engine.filter_warnings(filters, snap.version),
        "items": out_items,
    }


MAX_K = 50  # results a playground column shows
MAX_OFFSET = 1000  # as /v1/search allows
MAX_PRICE = 1e9  # as /v1/search allows
_BOOL = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def search_args(
    k: str, offset: str, price_min: str, price_max: str, in_stock: str, sort: str
) -> tuple[dict[str, Any], list[str]]:
    """The playground's values read as `/v1/search` reads them, and what could not be: the API
    answers 422 for `price_max=$20`, `k=-5`, `sort=bogus`, `in_stock=maybe` or `offset=-3`, where
    the page ignored the price (every result shown) and clamped or defaulted the rest. Each
    problem names the field and the value given; an empty text is the field's default."""
    from ..search import SORTS

    got: dict[str, Any] = {"k": 10, "offset": 0, "price_min": None, "price_max": None, "in_stock": None}
    problems: list[str] = []

    def whole(name: str, text: str, low: int, high: int) -> None:
        if not text.strip():
            return
        try:
            v = int(text.strip())
        except ValueError:
            problems.append(f"{name}: not a whole number (got {text!r})")
            return
        if not low <= v <= high:
            # (the API's max_k is the server's --max-k, 100 by default: the playground's 50 is its own)
            mine = " on the playground" if name == "k" and v > high else ""
            problems.append(f"{name}: from {low} to {high}{mine} (got {text!r})")
            return
        got[name] = v

    whole("k", k, 1, MAX_K)
    whole("offset", offset, 0, MAX_OFFSET)
    for name, text in (("price_min", price_min), ("price_max", price_max)):
        if not text.strip():
            continue
        try:
            v = float(text.strip())
        except ValueError:
            problems.append(f"{name}: not a number (got {text!r}; a price is digits, no currency sign)")
            continue
        if not 0 <= v <= MAX_PRICE:  # (a NaN fails this too; an infinity is past the bound)
            problems.append(f"{name}: from 0 to {MAX_PRICE:.0f} (got {text!r})")
            continue
        got[name] = v
    if in_stock.strip():
        if in_stock.strip().lower() in _BOOL:
            got["in_stock"] = _BOOL[in_stock.strip().lower()]
        else:
            problems.append(f"in_stock: true or false (got {in_stock!r})")
    got["sort"] = sort or "relevance"
    if got["sort"] not in SORTS:
        problems.append(f"sort: one of {', '.join(SORTS)} (got {sort!r})")
    return got, problems


class AttributeFilters:
    """The playground's attribute filters as its address carries them (`attr.color=red`, or
    `attr[color]=red`, as `/v1/search` reads them: one key's values ORed, keys ANDed), and the
    links that add or remove one, so that a filtered page is a link to share. The filters are
    read by `/v1/search`'s own reader (a blank value or more than 20 values is a problem the
    page states, as the API's 422); the facets shown are the page's own (`search_side`: the
    serving code's counts), never recounted here. A link keeps every other field of the address
    and starts again at the first result (a filter changes what the pages hold)."""

    def __init__(self, path: str, params: Iterable[tuple[str, str]]):
        from ..serving._http_lists import attribute_param_key

        self.path = path
        self.given: list[tuple[str, str]] = []  # (key, value) as typed, in the address's order
        self._rest: list[tuple[str, str]] = []  # the other fields, but the page's place and flash
        self._params: list[tuple[str, str]] = []
        for name, value in params:
            self._params.append((name, value))
            key = attribute_param_key(name)
            if key is not None:
                self.given.append((key, value))
            elif name not in ("offset", "done", "sig"):
                self._rest.append((name, value))

    def read(self) -> tuple[dict[str, list[str]], list[str]]:
        """The filters as `/v1/search` reads them (key -> values), and what it would refuse."""
        from fastapi import HTTPException

        from ..serving._http_lists import attribute_params

        try:
            return attribute_params(self._params), []
        except HTTPException as exc:
            return {}, [str(exc.detail)]

    @staticmethod
    def _same(a: tuple[str, str], b: tuple[str, str]) -> bool:
        from ..search._attributes import attribute_key, key_of

        return key_of(a[0]) == key_of(b[0]) and attribute_key(a[1]) == attribute_key(b[1])

    def href(self, pairs: Iterable[tuple[str, str]]) -> str:
        query = urlencode(self._rest + [(f"attr.{k}", v) for k, v in pairs])
        return f"{self.path}?{query}" if query else self.path

    def on(self, key: str, value: str) -> bool:
        return any(self._same(g, (key, value)) for g in self.given)

    def toggled(self, key: str, value: str) -> str:
        """The address with the value chosen (added to its key's, ORed), or no longer chosen."""
        if self.on(key, value):
            return self.href(g for g in self.given if not self._same(g, (key, value)))
        return self.href([*self.given, (key, value)])

    def chosen(self) -> list[dict[str, Any]]:
        """The filters in force, per key (as first typed) its values, each with the link that
        removes it; `clear`: the link without any."""
        from ..search._attributes import attribute_key, key_of

        keys: dict[str, dict[str, Any]] = {}
        for key, value in self.given:
            got = keys.setdefault(key_of(key), {"key": key, "values": []})
            if not any(attribute_key(v["value"]) == attribute_key(value) for v in got["values"]):
                got["values"].append({"value": value, "remove": self.toggled(key, value)})
        return list(keys.values())

    def clear(self) -> str:
        return self.href([])

    def facets(self, col: dict[str, Any]) -> list[dict[str, Any]]:
        """A result column's attribute facets (`facets.attributes`, as `/v1/search` answers
        them) with, per value, whether it is chosen and the link that toggles it; [] for a
        catalog without attributes."""
        out = []
        for key, values in ((col.get("facets") or {}).get("attributes") or {}).items():
            out.append(
                {
                    "key": key,
                    "values": [
                        {
                            "value": f["value"],
                            "count": f["count"],
                            "on": self.on(key, f["value"]),
                            "href": self.toggled(key, f["value"]),
                        }
                        for f in values
                    ],
                }
            )
        return out


def shopper(service: Any, user_id: str, k: int = 10, *, history: bool = True) -> dict[str, Any]:
    """A shopper's page: recent history (the bundle's and the events posted since), what
    `/v1/recommendations/{user_id}` answers with the reason per item, and what each variant
    of each recommendations experiment would show them (their own variant marked).

    `history=False` (a role that may not read a customer's history by their id): neither the
    history nor anything read from it, the items that explain the list among it ("because of:
    <title>" named a product of the shopper's history to an engineer whose audit entry said
    `history_shown: false`); `history` and `history_total` are None."""
    snap = service.snapshot
    pseudo = service.pseudonymize(user_id)
    u = snap.user_index.get(pseudo)
    _, recent = service.online.recent(pseudo)
    titles = snap.bundle.titles

    def item(p: str) -> dict[str, Any]:
        i = snap.item_index.get(p)
        cat, brand, stock = snap.info.get(p, ("", "", True))
        return {
            "product_id": p,
            "title": titles[i] if i is not None else p,
            "category": cat,
            "brand": brand,
            "in_stock": stock,
        }

    seq = snap.bundle.interactions.sequence(u).tolist() if u is not None and history else []
    steps = [item(snap.item_ids[i]) for i in seq] + [item(p) for p in recent] if history else []
    ans = service.recommend(user_id, k)
    reasons: dict[str, list[str]] = {}
    model = snap.bundle.models.get(ans.model)
    hist = snap.history(u, list(recent)) if history and (u is not None or recent) else None
    # (a list by popularity owes nothing to the shopper's history: no "because of")
    if hist is not None and ans.source != "cold_start" and ans.model != "popularity":
        expl = next(
            (snap.bundle.models[n] for n in ("transitions", "itemknn") if n in snap.bundle.models), None
        )
        top = {p: snap.item_index[p] for p in ans.items[:EXPLAINED] if p in snap.item_index}
        if expl is not None and top:  # the top few, their history re-scored once for all of them
            try:
                got = expl.explain_many(0, list(top.values()), history=hist)
            except Exception:  # an explanation is a courtesy, never a failed page
                got = {}
            for p, i in top.items():
                reasons[p] = [titles[c["item"]] for c in got.get(i, [])]
    variants = []
    now = datetime.now(UTC)
    # each variant's list as the server ranks it (`rank_user`, one function for the server, the
    # Spark batch job and this page), consent included: a shopper who withdrew it is a stranger
    personal = service.personalizes(pseudo, True)
    for e in service.experiments:
        if e.surface != "recommendations" or not e.active(now):
            continue
        mine = e.assign(user_id)
        for v in e.variants:
            vs = _snapshot(service, v.bundle)
            name = v.model if v.model in vs.bundle.models else vs.bundle.manifest["default_model"]
            vrecent = list(recent) if personal else []
            ranked = rank_user(
                vs,
                name,
                vs.bundle.models[name],
                vs.user_index.get(pseudo) if personal else None,
                k,
                min(k * service.settings.candidates_factor + 20, len(vs.item_ids)),
                service._rules_for(v),
                recent=vrecent,
                online_purchases=(lambda: service.online.purchases(pseudo)) if vrecent else None,
            )
            shown = ranked.items if ranked is not None else []
            variants.append(
                {"experiment": e.name, "variant": v.name, "model": name, "bundle": vs.version, "mine": v.name == mine.name,
                 "items": [item(p) for p in shown]}
            )  # fmt: skip
    return {
        "user_id": user_id,
        "known": u is not None,
        "history": steps[-30:][::-1] if history else None,
        "history_total": len(steps) if history else None,
        "recommendations": {
            "model": ans.model,
            "source": ans.source.split(":")[0],
            "experiment": {"name": ans.experiment, "variant": ans.variant.name if ans.variant else None}
            if ans.experiment
            else None,
            "items": [{**item(p), "because": reasons.get(p, [])} for p in ans.items],
        },
        "variants": variants,
        "model_known": model is not None,
    }


def rules_said(rules: dict[str, Any]) -> str:
    """A variant's rule overrides in words ("boost category Home > Kitchen x2 on search; hide
    brand Acme"), not the dict (the comparison's label printed "rules {'items': [{'action': ...}]}")."""
    parts = []
    for r in rules.get("items") or []:
        target = (
            f"product {r['product_id']}"
            if r.get("product_id")
            else f"category {r['category']}"
            if r.get("category")
            else f"brand {r['brand']}"
            if r.get("brand")
            else "every product"
        )
        words = [str(r.get("action", "?")), target]
        if r.get("factor") is not None:
            words.append(f"x{r['factor']:g}" if isinstance(r["factor"], int | float) else f"x{r['factor']}")
        if r.get("position") is not None:
            words.append(f"at {r['position']}")
        if r.get("query"):
            words.append(f"for {r['query']!r}")
        if r.get("context"):
            words.append(f"in {r['context']}")
        if r.get("surfaces"):
            words.append(f"on {', '.join(map(str, r['surfaces']))}")
        parts.append(" ".join(words))
    for key, value in rules.items():
        if key not in ("items", "version", "description"):
            parts.append(f"{key.replace('_', ' ')} {json.dumps(value, ensure_ascii=False)}")
    return "; ".join(parts) or "none"


def parse_synonyms(text: str) -> dict[str, list[str]]:
    """A draft synonyms list as saving it would install it (the same check and parser)."""
    from ..serving._synonyms import check_synonyms

    return check_synonyms(text, "the draft synonyms")


def rules_json(workdir: Any) -> str:
    from ..serving._rules import RULES_FILE

    path = workdir / RULES_FILE
    if path.exists():
        doc = json.loads(path.read_text())
        doc.pop("version", None)
        return json.dumps(doc, indent=2, ensure_ascii=False)
    return json.dumps({"filter_out_of_stock": True, "items": []}, indent=2)
