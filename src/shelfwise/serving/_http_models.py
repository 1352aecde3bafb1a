"""The HTTP API's request and answer shapes, for `/openapi.json` (client generators, API testers).

The endpoints answer with orjson-serialised dicts (`_http_context.JSON`) and return that response
directly, so FastAPI documents these models but does not validate or re-serialise the answers on
the request path; the Schemathesis test (tests/serving/test_openapi.py) checks that real answers
match them. Field names are the API's contract: they do not change.

One error shape: every 4xx/5xx body is an object with `error` (a message naming the field and
the reason); a request that fails validation adds `details` (one message per problem), and the
events intake adds its per-event verdicts (`EventsRejected`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..governance._contracts import EVENTS, Kind

__all__ = [
    "ErrorBody",
    "EventsAccepted",
    "EventsRejected",
    "Health",
    "Ready",
    "Recommendations",
    "Reloaded",
    "SearchPage",
    "Similar",
    "Suggestions",
    "error_responses",
    "events_request_body",
]


class ErrorBody(BaseModel):
    """Every error answer: a message naming the field and the reason."""

    error: str = Field(description="what was wrong, e.g. `k: Input should be less than or equal to 100`")
    details: list[str] | None = Field(None, description="request validation: one `field: reason` per problem")


_ERROR_TEXT = {
    400: "The body is not valid JSON.",
    401: "An API key is required (header `X-API-Key` or `Authorization: Bearer`): people are "
    "registered in this shop.",
    403: "The API key's role may not do this.",
    404: "Unknown product; for search, a bundle trained without a search index (no catalog text).",
    409: "The shop's current data cannot give it (the message says why; new data is tried again).",
    413: "The body or the event list is larger than the server's limit.",
    422: "A parameter or the body is invalid (the message names it).",
    503: "Not ready (the bundle is loading), or overloaded (retry after `Retry-After` seconds).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an endpoint: these error statuses, each with the one error shape."""
    return {code: {"model": ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}


class Health(BaseModel):
    status: Literal["ok"]


class SearchQueueStatus(BaseModel):
    depth: int
    limit: int
    budget_ms: float
    max_wait_ms: float
    cost_ms: dict[str, float] = Field(description="estimated milliseconds per query at each level")


class RecommendQueueStatus(BaseModel):
    depth: int
    limit: int
    max_wait_ms: float
    cost_ms: float = Field(description="estimated milliseconds per list computed by the model")


class AbsorbStatus(BaseModel):
    last_success: str | None = Field(
        None, description="when this worker's last absorb ended without failing (ISO 8601, UTC)"
    )
    failures_in_a_row: int = Field(0, description="this worker's absorbs failed since its last success")
    last_error: str | None = Field(None, description="the last failure's first line")
    oldest_pending_age_s: float | None = Field(
        None, description="how long the oldest acknowledged event not yet in the warehouse has waited"
    )


class Ready(BaseModel):
    status: Literal["ready", "degraded", "loading"] = Field(
        description="`degraded`: serving, but acknowledged events are not reaching the warehouse "
        "(`degraded_because`); still 200: the lists are served as before"
    )
    degraded_because: list[str] | None = None
    absorb: AbsorbStatus | None = Field(None, description="the event pipeline (absorbs into the warehouse)")
    bundle_version: str | None = None
    swaps: int | None = Field(None, description="bundles hot-swapped in since the start")
    search_cache_warmed: int | None = Field(None, description="queries pre-searched; null while warming")
    events_pending: int | None = Field(None, description="acknowledged events not yet in the warehouse")
    search_queue: SearchQueueStatus | None = None
    recommend_queue: RecommendQueueStatus | None = None
    similar_queue: RecommendQueueStatus | None = Field(None, description="similar-item lists not cached")


class Reloaded(BaseModel):
    changed: bool
    bundle_version: str


class ExperimentAssignment(BaseModel):
    name: str
    variant: str | None


class Recommendations(BaseModel):
    recommendation_id: str = Field(description="post it with events to attribute them to this list")
    bundle_version: str
    user_id: str
    model: str
    source: str = Field(description="the model name, `precomputed`, `cached` or `cold_start`")
    personalized: bool = Field(
        description="whether the shopper's own data (history, recent events) shaped it: some item "
        "is the model's for them; false for a list the popular fill made whole (`filled` = every "
        "item: the model had no evidence for this shopper) and for the `popularity` model's list, "
        "whatever `source` says"
    )
    items: list[str] = Field(description="product ids, best first")
    fallback: str | None = Field(
        None,
        description="`popular` when the shop's best sellers fill some of the places (see `filled`), "
        "as similar items and search say theirs",
    )
    filled: int = Field(
        0,
        description="how many of the items the popular list filled: every item of a cold-start list; "
        "for a known shopper, the places the model had no evidence for or the business rules thinned",
    )
    warnings: list[str] = Field(
        [],
        description="what the client should know of its request: a `context` that starts no category "
        "path of the bundle and no rule's context steered nothing (a misspelled context)",
    )
    experiment: ExperimentAssignment | None = Field(None, description="present when an experiment runs")


class Similar(BaseModel):
    recommendation_id: str
    bundle_version: str
    product_id: str
    model: str
    personalized: bool = Field(description="always false: similar items use no shopper's data")
    items: list[str]
    related: int = Field(
        description="how many of the items the model relates to the product (shared sessions, steps, "
        "or text when the bundle has it): before the business rules, they come first"
    )
    fallback: str | None = Field(
        None, description="`popular` when the shop's best sellers fill the list after the related items"
    )


class SearchItem(BaseModel):
    product_id: str
    title: str | None


class FacetValue(BaseModel):
    value: str
    count: int


class PriceBand(BaseModel):
    min: float
    max: float
    count: int


class Facets(BaseModel):
    category: list[FacetValue] = []
    brand: list[FacetValue] = []
    price: list[PriceBand] = []
    in_stock: dict[str, int] = Field(
        {},
        description="`true` / `false` counts of the products whose stock is known; `unknown`, "
        "when some are not (no `in_stock` in the catalog): those pass neither `in_stock` filter",
    )
    attributes: dict[str, list[FacetValue]] = Field(
        {},
        description="per attribute key (the catalog's most common ones, and any the search filters "
        "on), counts per value (the most frequent first): the matching products (styles in a catalog "
        "of variants, one under each of its variants' values), each key counted with every filter "
        "but its own `attr.` one (choosing `attr.color=red` still counts the other colours)",
    )


class SearchPage(BaseModel):
    search_id: str = Field(description="post it with events to attribute them to this page")
    bundle_version: str
    query: str
    corrected_query: str | None
    total: int = Field(
        description="retrieved products that match: those holding a query word (`match` keyword; the "
        "nearest products without them rank among and after them, after them in a price or popularity "
        "sort), the semantic candidates (`semantic_only`), 0 (`none`)"
    )
    match: str | None = Field(description="`keyword`, `semantic_only` or `none`")
    fallback: str | None = Field(description="`popular` when nothing matched and popular items are shown")
    stages: list[str]
    degraded: bool = Field(description="answered below the full pipeline to stay within the budget")
    personalized: bool = Field(
        description="whether the shopper's own data (history, recent events) shaped it"
    )
    items: list[SearchItem]
    facets: Facets
    warnings: list[str] = Field(
        [],
        description="what the client should know of its request: attribute filters (`attr.`) asked of a "
        "bundle trained before attribute filters existed, which match nothing until the next training",
    )
    experiment: ExperimentAssignment | None = None


class Suggestions(BaseModel):
    query: str
    suggestions: list[str]


class EventFailure(BaseModel):
    field: str
    reason: str = Field(description="e.g. `unknown_field`, `missing_required`, `unknown_reference`")
    detail: str


class EventError(EventFailure):
    index: int = Field(description="the event's position in the posted list")
    all: list[EventFailure]


class EventResult(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected", "withheld"] = Field(
        description="`withheld`: an erased user's event dated at or before their erasure, not kept"
    )
    event_id: str | None
    errors: list[EventFailure] | None = None
    detail: str | None = Field(None, description="why an event was withheld")


class EventsAccepted(BaseModel):
    """202: every event accepted (or a duplicate of one accepted before: not stored twice)."""

    accepted: int
    rejected: int
    duplicates: int
    withheld: int = Field(0, description="events of erased users dated at or before their erasure: not kept")
    results: list[EventResult]


class EventsRejected(EventsAccepted):
    """207 (some events rejected, the others accepted: do not send them again) or 422 (none
    acceptable). The rejected events are quarantined with their reasons."""

    error: str
    errors: list[EventError]
    note: str


# The event fields as the intake reads them (it is lenient the way a CSV load is: numbers are
# read as text where text is expected and text as numbers where numbers are; null is "absent").
# What a schema cannot say — the event-type vocabulary and its synonyms, the timestamp formats,
# that product_id names a product of the catalog — is checked per event and answered per event.
_SCALAR: dict[Kind, list[dict[str, Any]]] = {
    Kind.FLOAT: [{"type": "number"}, {"type": "string"}],
    Kind.TIMESTAMP: [{"type": "string"}, {"type": "number"}],
}


def _event_schema() -> dict[str, Any]:
    props: dict[str, Any] = {}
    for col in EVENTS.columns:
        options = _SCALAR.get(col.kind, [{"type": "string"}, {"type": "number"}])
        if not col.required:
            options = [*options, {"type": "null"}]
        doc = col.kind.value
        if col.allowed and len(col.allowed) > 20:  # (currency: ISO 4217's codes)
            doc += ": an ISO 4217 code (EUR, GBP, USD, ...)"
        elif col.allowed:
            doc += ": one of " + ", ".join(col.allowed) + " (or a synonym)"
        props[col.name] = {"anyOf": options, "description": doc}
    return {
        "type": "object",
        "title": "Event",
        "properties": props,
        "required": [c.name for c in EVENTS.columns if c.required],
        "additionalProperties": False,
    }


def events_request_body(max_events: int) -> dict[str, Any]:
    """The POST /v1/events body (read by hand for the size limits, so documented by hand): a
    list of events, or `{"events": [...]}`."""
    events = {"type": "array", "items": _event_schema(), "minItems": 1, "maxItems": max_events}
    envelope = {
        "type": "object",
        "properties": {"events": events},
        "required": ["events"],
        "additionalProperties": False,
    }
    return {
        "required": True,
        "content": {"application/json": {"schema": {"anyOf": [events, envelope]}}},
    }
