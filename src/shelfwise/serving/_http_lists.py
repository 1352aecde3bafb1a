"""The served lists: recommendations, similar items, search and suggestions (`/v1`).

(No `from __future__ import annotations` here: FastAPI reads the endpoint annotations, which
name limits from the settings, at definition time.)

Every list carries the bundle version and a `recommendation_id` / `search_id`, and is written to
the exposure log under that id, so that a later event posted with the id is attributed to the
list, the model and the experiment variant that produced it.
"""

import re
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam

from ..governance._compile import trim_id
from ..search._shopper import SORTS
from ._http_auth import REQUIREMENT, authorize
from ._http_context import JSON, AppContext, clean_text, clean_user_id, text_pattern, with_experiment
from ._http_models import Recommendations, SearchPage, Similar, Suggestions, error_responses
from ._queue import Overloaded
from ._service import SearchArgs, recommendation_fields, similar_fields

__all__ = ["lists_router"]

_SORTS = f"^({'|'.join(SORTS)})$"
MAX_ATTRIBUTE_FILTERS = 20  # attribute values one search may filter on
_ATTR = re.compile(r"^attr(?:\.(?P<dot>.+)|\[(?P<bracket>[^\]]+)\])$", re.DOTALL)


def attribute_param_key(name: str) -> str | None:
    """The attribute key a query parameter filters on (`attr.color`, `attr[color]`: `color`),
    None for a parameter of another kind (the console's search playground reads its URL so)."""
    m = _ATTR.match(name)
    return None if m is None else (m.group("dot") or m.group("bracket") or "")


def attribute_params(params: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The attribute filters of a query string (`attr.color=red`, `attr[color]=red`): key ->
    values (a key given twice: both values, ORed). 422 for more than `MAX_ATTRIBUTE_FILTERS`
    values, a key or a value that is not text, too long, or blank."""
    out: dict[str, list[str]] = {}
    n = 0
    for name, value in params:
        key = attribute_param_key(name)
        if key is None:
            continue
        clean_text(key, name, 64)
        clean_text(value, name, 256)
        if not key.strip() or not value.strip():
            raise HTTPException(422, f"{name}: empty (give attr.KEY=VALUE, e.g. attr.color=red)")
        n += 1
        if n > MAX_ATTRIBUTE_FILTERS:
            raise HTTPException(422, f"attr: more than {MAX_ATTRIBUTE_FILTERS} attribute filter values")
        out.setdefault(key, []).append(value)
    return out


def lists_router(ctx: AppContext) -> APIRouter:
    settings = ctx.settings
    metrics = ctx.metrics
    # the key is checked in each endpoint, after parameter validation (see `_http_auth`)
    router = APIRouter(tags=["lists"])
    secured = {"security": REQUIREMENT}
    text = {"pattern": text_pattern()}  # documented; `clean_text` answers it with its own message
    K = Annotated[int, Query(ge=1, le=settings.max_k, description=f"1..{settings.max_k}")]
    # the non-profiling option (DSA Art. 38): the answer uses nothing of the shopper's own data
    Personalized = Annotated[
        bool,
        Query(
            description="false: an answer not based on the shopper's profile (the list a never-seen "
            "shopper gets); the answer's `personalized` says whether the shopper's data shaped it"
        ),
    ]

    def ident(description: str) -> Any:
        return PathParam(
            min_length=1, max_length=settings.max_id_chars, description=description, json_schema_extra=text
        )

    @router.get(
        "/v1/recommendations/{user_id:path}",
        response_model=Recommendations,
        responses=error_responses(401, 403, 422, 503),
        openapi_extra=secured,
        summary="Recommendations for a shopper",
    )
    async def recommendations(
        request: Request,
        user_id: Annotated[str, ident("the shop's own user id")],
        k: K = 10,
        context: Annotated[
            str | None,
            Query(
                max_length=settings.max_query_chars,
                # a category path prefix is what the cold-start list and the rules read (an id
                # or a query here would change nothing: the description says what works)
                description="a category path prefix of what the shopper is browsing, e.g. "
                "`Sports > Cycling`: a shopper with no history gets that category's popular "
                "products first, and business rules limited to a `context` apply where this "
                "starts with theirs",
                json_schema_extra=text,
            ),
        ] = None,
        personalized: Personalized = True,
    ) -> Any:
        s = authorize(ctx, request)
        clean_user_id(user_id, settings.max_id_chars)
        if context is not None:
            clean_text(context, "context", settings.max_query_chars)
        # a lookup is answered on the event loop; a list that needs the model goes to the
        # recommendation queue, which answers it within its time or refuses it (503)
        ans = s.recommend_cached(user_id, k, context or None, personalized=personalized)
        if ans is None:
            try:
                ans = await ctx.state["recommend_queue"].submit(
                    (user_id, k, context or None, None, personalized)
                )
            except Overloaded as exc:
                metrics.recommend_shed.labels(exc.kind).inc()
                raise HTTPException(
                    503, f"overloaded: {exc}; retry later", headers={"Retry-After": exc.retry_after}
                ) from None
        assert ans is not None
        rid = s.new_id("rec")
        ctx.count_cache("recommendations", ans)
        ctx.expose("recommendations", rid, ans, ans.user, {"context": context})
        out: dict[str, Any] = {
            "recommendation_id": rid,
            "bundle_version": ans.bundle,
            "user_id": user_id,
            "model": ans.model,
            "source": ans.source.split(":")[0],
            "items": ans.items,
            **recommendation_fields(ans),  # personalized, fallback, filled
            # a context that steers nothing (misspelled) is said, not answered in silence
            "warnings": [w] if (w := s.context_warning(context, ans.variant)) else [],
        }
        with_experiment(out, ans)
        return JSON(out)

    @router.get(
        "/v1/items/{product_id:path}/similar",
        response_model=Similar,
        responses=error_responses(401, 403, 404, 422, 503),
        openapi_extra=secured,
        summary="Items similar to a product",
    )
    async def similar(
        request: Request,
        product_id: Annotated[str, ident("a product id of the catalog")],
        k: K = 10,
        personalized: Personalized = True,  # accepted everywhere; similar items never use a profile
    ) -> Any:
        s = authorize(ctx, request)
        clean_text(product_id, "product_id", settings.max_id_chars)
        if not s.knows_product(product_id):
            raise HTTPException(404, _unknown_product(s, product_id))
        # a cached list is answered on the event loop; one that needs the model goes to the
        # similar-items queue, which answers it within its time or refuses it (503)
        ans = s.similar(product_id, k, cached_only=True)
        if ans is None:
            try:
                ans = await ctx.state["similar_queue"].submit((product_id, k))
            except Overloaded as exc:
                metrics.similar_shed.labels(exc.kind).inc()
                raise HTTPException(
                    503, f"overloaded: {exc}; retry later", headers={"Retry-After": exc.retry_after}
                ) from None
        if ans is None:  # a new bundle without the product came in meanwhile
            raise HTTPException(404, _unknown_product(s, product_id))
        rid = s.new_id("rec")
        ctx.count_cache("similar", ans)
        ctx.expose("similar", rid, ans, None, {"product_id": product_id})
        return JSON(
            {
                "recommendation_id": rid,
                "bundle_version": ans.bundle,
                "product_id": product_id,
                "personalized": False,
                **similar_fields(ans),
            }
        )

    Facet = Annotated[str | None, Query(max_length=256, json_schema_extra=text)]

    # the attribute filters: `attr.color=red&attr.size=M` (or, as OpenAPI's deepObject spells
    # it, `attr[color]=red`); a key given twice ORs its values, different keys AND
    non_blank = text_pattern(non_blank=True)
    attribute_filters = {
        **secured,
        "parameters": [
            {
                "name": "attr",
                "in": "query",
                "style": "deepObject",
                "explode": True,
                "required": False,
                "description": "attribute filters, key -> value: `attr.color=red&attr.size=M` "
                "(`attr[color]=red` alike); the values of one key given several times are ORed "
                f"(`attr.color=red&attr.color=blue`), different keys ANDed; at most {MAX_ATTRIBUTE_FILTERS} "
                "values; keys and values compare case-insensitively. In a catalog of variants, a "
                "style matches when one of its variants does, and the page shows that variant. "
                "`facets.attributes` counts each key's values without its own filter",
                # (a blank key or value is refused: documented so, as a fuzzer reads it)
                "schema": {
                    "type": "object",
                    "maxProperties": MAX_ATTRIBUTE_FILTERS,
                    "propertyNames": {"minLength": 1, "maxLength": 64, "pattern": non_blank},
                    "additionalProperties": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 256,
                        "pattern": non_blank,
                    },
                },
            }
        ],
    }

    @router.get(
        "/v1/search",
        response_model=SearchPage,
        responses=error_responses(401, 403, 404, 422, 503),
        openapi_extra=attribute_filters,
        summary="Search the catalog",
    )
    async def search(
        request: Request,
        q: Annotated[
            str,
            Query(
                description="the query text (not blank)",
                json_schema_extra={
                    "pattern": text_pattern(non_blank=True),
                    "maxLength": settings.max_query_chars,
                },
            ),
        ],
        k: K = 10,
        offset: Annotated[int, Query(ge=0, le=1000)] = 0,
        category: Facet = None,
        brand: Facet = None,
        price_min: Annotated[float | None, Query(ge=0, le=1e9)] = None,
        price_max: Annotated[float | None, Query(ge=0, le=1e9)] = None,
        in_stock: bool | None = None,
        sort: Annotated[str, Query(pattern=_SORTS)] = "relevance",
        user_id: Annotated[
            str | None,
            Query(
                max_length=settings.max_id_chars,
                description="personalizes the page by the shopper's history",
                json_schema_extra=text,
            ),
        ] = None,
        personalized: Personalized = True,
    ) -> Any:
        from ..search import Filters

        s = authorize(ctx, request)
        q = clean_text(q, "q", settings.max_query_chars)
        if not q.strip():
            raise HTTPException(422, "q: empty")
        for name, v in (("category", category), ("brand", brand), ("user_id", user_id)):
            if v is not None:
                clean_text(v, name, 256)
        if user_id is not None and user_id.strip():
            clean_user_id(user_id, settings.max_id_chars)  # (a pseudonym names nobody: refused)
        attrs = attribute_params(request.query_params.multi_items())
        filters = Filters(category, brand, price_min, price_max, in_stock, attrs)
        # a cache hit is answered on the event loop; a miss goes to the search queue, which
        # answers it within the latency budget (skipping stages when it is deep) or refuses it
        ans = s.search(
            q,
            k,
            filters=filters,
            sort=sort,
            offset=offset,
            raw_user=user_id,
            cached_only=True,
            personalized=personalized,
        )
        if ans is None:
            args = SearchArgs(q, k, filters, sort, offset, user_id, personalized)
            try:
                ans = await ctx.state["search_queue"].submit(args)
            except Overloaded as exc:
                metrics.search_shed.labels(exc.kind).inc()
                raise HTTPException(
                    503, f"overloaded: {exc}; retry later", headers={"Retry-After": exc.retry_after}
                ) from None
        assert ans is not None
        if ans.source == "no_search_index":  # as `shelfwise search` says it, not an empty page
            raise HTTPException(
                404, f"bundle {ans.bundle} has no search index (the catalog had no text when it was trained)"
            )
        level = ans.extra.get("level")
        if level is not None:  # computed for this request (not a cache hit)
            metrics.search_level.labels(level).inc()
            if ans.extra.get("degraded"):
                metrics.search_degraded.inc()
            for stage in ans.extra.get("skipped", ()):
                metrics.search_skipped.labels(stage).inc()
        sid = s.new_id("srch")
        ctx.count_cache("search", ans)
        ctx.expose(
            "search",
            sid,
            ans,
            # (the id as the search was assigned and answered for: trimmed, as curation trims it)
            s.pseudonymize(who) if (who := trim_id(user_id or "")) else None,
            # how the page was found: a fallback list shown for a query that matched nothing
            # is a no-result search (`search._analytics.add_served_search`)
            # (its query masked before it is written: `_http_tasks.exposure_lines`)
            {"query": q, "offset": offset, "sort": sort, "filtered": filters.active(),
             "words_found": ans.extra.get("words_found"),
             "match": ans.extra.get("match"), "fallback": ans.extra.get("fallback")},
        )  # fmt: skip
        snap = s.snapshot
        titles = snap.bundle.titles
        out = {
            "search_id": sid,
            "bundle_version": ans.bundle,
            "query": q,
            "corrected_query": ans.extra.get("corrected_query"),
            "total": ans.extra.get("total", 0),
            "match": ans.extra.get("match"),
            "fallback": ans.extra.get("fallback"),
            "stages": ans.extra.get("stages", []),
            "degraded": bool(ans.extra.get("degraded")),
            "personalized": bool(ans.extra.get("personalized")),
            "items": [
                {"product_id": p, "title": titles[snap.item_index[p]] if p in snap.item_index else None}
                for p in ans.items
            ],
            "facets": ans.extra.get("facets", {}),
            "warnings": ans.extra.get("warnings", []),
        }
        with_experiment(out, ans)
        return JSON(out)

    @router.get(
        "/v1/suggest",
        response_model=Suggestions,
        responses=error_responses(401, 403, 422, 503),
        openapi_extra=secured,
        summary="Query suggestions for a prefix",
    )
    async def suggest(
        request: Request,
        q: Annotated[str, Query(max_length=settings.max_query_chars, json_schema_extra=text)],
        k: Annotated[int, Query(ge=1, le=20)] = 8,
    ) -> Any:
        s = authorize(ctx, request)
        q = clean_text(q, "q", settings.max_query_chars)
        engine = s.snapshot.search
        return JSON(
            {"query": q, "suggestions": engine.suggest(q, k) if engine is not None and q.strip() else []}
        )

    return router


def _unknown_product(s: Any, product_id: str) -> str:
    """The 404 body's error of a product with no similar items: one the bundle does not hold is
    an unknown product, as ever; one it holds says why no list shows it, in the words the CLI
    and the Python API give (`Service.unlisted_reason`: not published, no longer in the
    catalog, not in the catalog)."""
    if product_id not in s.snapshot.item_index:
        return f"product_id: unknown product {product_id!r}"
    return f"product_id: {s.unlisted_reason(product_id)}"
