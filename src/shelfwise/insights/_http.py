"""HTTP: `POST /v1/ask` and `GET /v1/users/{user_id}/profile` as an APIRouter the serving app
includes.

The app passes its own access check (`guard(request, action)`, raising HTTPException when the
caller may not), so the router follows the server's keys and audit of denials:
    app.include_router(insights_router(workdir, guard=svc))
The FAQ is the served bundle's (encoded by `train`) when it matches the warehouse's, else
encoded on the first question; either is kept until the served bundle or the curated FAQ's
version changes (the service's `faq_version`, noticed at its refresh; without a service, the
version file read per question): keyed on the bundle alone, a running server answered with an
FAQ delivery's old answers until a restart. Products come from the served bundle's search engine.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from ._faq import MAX_QUESTION_CHARS, question_refused


class AskRequest(BaseModel):
    # (no max_length here: pydantic counts the spaces at the ends, `question_refused` does
    # not, and a question the other doors answer got a 422: the review's)
    question: str = Field(
        min_length=1,
        description=f"The shopper's question: not blank, at most {MAX_QUESTION_CHARS:,} characters without "
        "the spaces at its ends (the check every door shares; 422 otherwise).",
    )


class ProfileResponse(BaseModel):
    """One customer's profile (see `shelfwise insights customers`), as of the latest curated event."""

    user_id: str = Field(description="The shop's own user id, as asked.")
    as_of: str = Field(description="The profile uses events up to this time (UTC).")
    horizon_days: int = Field(description="The horizon of expected_purchases and churn_risk.")
    recency_days: float | None = Field(description="Days since the last order; null without one.")
    frequency: int = Field(description="Orders up to as_of.")
    monetary: float = Field(description="Total paid.")
    expected_purchases: float = Field(description="Orders expected in the horizon.")
    churn_risk: float = Field(ge=0, le=1, description="Probability of no order in the horizon.")
    expected_value: float
    segment: str = Field(description="RFM-style segment (prospect: no order yet).")
    top_categories: list[str]
    top_brands: list[str]
    price_level: str | None = Field(description="budget, mid or premium; null without priced products.")
    data_version: str = Field(description="The curated events/products versions the profile is fitted on.")


class AskResponse(BaseModel):
    faq_id: str | None = Field(description="The FAQ entry that answers it; null when none does.")
    answer: str | None
    score: float
    products: list[str] = Field(default_factory=list)


def insights_router(workdir: str | pathlib.Path, guard: Callable[..., Any] | None = None) -> APIRouter:
    from ..serving._http_auth import REQUIREMENT  # the API key, as the app's other /v1 routes
    from ..serving._http_consent import _not_json
    from ..serving._http_context import on_invalid_request
    from ..serving._http_models import error_responses  # the API's one documented error shape

    def bad_body(request: Request, exc: Any) -> Any:
        """A body that is not JSON is a 400, as on POST /v1/events and PUT .../consent (it was
        FastAPI's 422, the status of JSON that fails validation, which stays a 422)."""
        why = _not_json(exc, request, '{"question": "..."}')
        if why is None:
            raise exc
        raise HTTPException(400, why) from None

    router = APIRouter(route_class=on_invalid_request(bad_body))
    lock = threading.Lock()
    cache: dict[str, Any] = {}

    def matcher(svc: Any) -> tuple[Any, Any]:
        """The FAQ matcher and search engine of the bundle being served (the service's, when the
        guard hands one over; else the workdir's live bundle), rebuilt when the bundle or the
        curated FAQ changes."""
        from ..storage._faq_version import faq_version

        snapshot = getattr(svc, "snapshot", None)
        bundle = snapshot.bundle.path if snapshot is not None else None
        # the FAQ version the service noticed at its last refresh (as it notices the catalog)
        faq = svc.faq_version if hasattr(svc, "faq_version") else faq_version(workdir)
        with lock:
            from ._faq_stage import live_bundle

            bundle = bundle or live_bundle(workdir)
            if cache.get("bundle", "-") != bundle or cache.get("faq", "-") != faq:
                from ..errors import ShelfwiseError
                from ._faq_stage import faq_matcher, search_engine

                try:
                    m, _ = faq_matcher(workdir, bundle)
                except ShelfwiseError as exc:
                    raise HTTPException(404, str(exc)) from None
                engine = snapshot.search if snapshot is not None else search_engine(bundle)
                cache.update(bundle=bundle, faq=faq, m=m, engine=engine)
            return cache["m"], cache["engine"]

    @router.post(
        "/v1/ask",
        response_model=AskResponse,
        responses=error_responses(400, 401, 403, 404, 422, 503),
        openapi_extra={"security": REQUIREMENT},
    )
    async def ask(body: AskRequest, request: Request) -> AskResponse:
        """The FAQ entry that answers the question (or none: `faq_id` null), and the products
        it is about when no entry answers it but the shop's search finds products for it."""
        svc = guard(request, "ask") if guard is not None else None
        if (why := question_refused(body.question)) is not None:  # (a blank one was answered)
            raise HTTPException(422, f"question: {why}")
        m, engine = await asyncio.to_thread(matcher, svc)
        a = (await asyncio.to_thread(m.match, [body.question]))[0]
        from ._faq_stage import attach_products

        (products,) = await asyncio.to_thread(
            attach_products, engine, [body.question], [a.faq_id is not None], workdir=workdir
        )
        return AskResponse(faq_id=a.faq_id, answer=a.answer, score=round(a.score, 4), products=products)

    profiles: dict[str, Any] = {}

    @router.get(
        "/v1/users/{user_id:path}/profile",
        response_model=ProfileResponse,
        responses=error_responses(401, 403, 404, 409, 422, 503),
        openapi_extra={"security": REQUIREMENT},
        summary="A customer's profile",
    )
    async def profile(
        user_id: Annotated[str, Path(min_length=1, max_length=256, description="The shop's own user id.")],
        request: Request,
    ) -> ProfileResponse:
        """RFM, expected purchases and churn risk in the next 90 days, expected value, segment,
        tastes and price level of one customer. Fitted once per data version and kept in the
        workdir: the first request with no profiles at all waits for the fit (503 with
        Retry-After when it takes longer than a few minutes); after new data, the previous
        profiles answer while the new ones are fitted."""
        if guard is not None:
            guard(request, "insights.profile")
        with lock:
            if "store" not in profiles:
                from ..governance import Pseudonymizer
                from ._profiles import ProfileStore

                profiles["store"] = ProfileStore(workdir)
                profiles["pseudo"] = Pseudonymizer.of(workdir)
        store = profiles["store"]
        from ..governance._compile import trim_id
        from ..governance._privacy import looks_like_pseudonym

        if looks_like_pseudonym(trim_id(user_id)):  # it names nobody: "unknown user" would mislead
            raise HTTPException(422, f"user {user_id!r} is a pseudonym: give the shop's own user id")
        pseudo = profiles["pseudo"](trim_id(user_id))
        ready, rec = await asyncio.to_thread(store.get, pseudo)
        if not ready:
            if store.error and not store.fitting:
                # failed on the data as it is: fitted again when new data arrives, not by a retry
                # (a 503 with Retry-After had clients retrying for ever)
                raise HTTPException(
                    409, f"customer profiles cannot be fitted on the current data ({store.error}); "
                    "they are fitted again when new data arrives",
                )  # fmt: skip
            raise HTTPException(
                503, "customer profiles are being fitted on the current data; retry shortly",
                headers={"Retry-After": "10"},
            )  # fmt: skip
        if rec is None:
            # one status for every user without a profile (README); the message says which case
            raise HTTPException(404, store.none_said(pseudo, user_id))
        return ProfileResponse(user_id=user_id, data_version=store.key or "", **rec)

    return router


__all__ = ["AskRequest", "AskResponse", "ProfileResponse", "insights_router"]
