"""A shopper's consent over HTTP: `PUT /v1/users/{user_id}/consent`.

The shop's systems (the service role; stewards and admins too) report consent as shoppers give or
withdraw it. A PUT appends to the consent register (versioned: time, source, who; audited with
the pseudonym, never the shop's id) and writes the online view (`_consent.ConsentView`: Redis when
the servers share one), so the shopper's next request, on any replica, is answered accordingly.

(No `from __future__ import annotations`: FastAPI reads the endpoint annotations.)
"""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..governance._compile import trim_id
from ..governance._consent import FLAGS, id_lookup, record_consent
from ..governance._privacy import looks_like_pseudonym
from ._http_auth import REQUIREMENT, authorize
from ._http_context import JSON, AppContext, clean_text, clean_user_id, on_invalid_request, text_pattern
from ._http_models import error_responses

__all__ = ["ConsentChange", "ConsentState", "consent_router"]


class ConsentChange(BaseModel):
    """A shopper's consent as the shop's systems report it; a flag left out stays as it is (at
    least one is given; null is not a value)."""

    model_config = {
        "extra": "forbid",
        "strict": True,  # true / false only: 0, 1, "yes" are not a consent
        "json_schema_extra": {"anyOf": [{"required": ["personalization"]}, {"required": ["marketing"]}]},
    }
    personalization: bool | SkipJsonSchema[None] = Field(
        None, description="personalized recommendations and search"
    )
    marketing: bool | SkipJsonSchema[None] = Field(None, description="being in audience exports")
    # the constraints on the text alone (on the union, a null would reach them: a 500)
    source: Annotated[str, Field(max_length=128, pattern=text_pattern())] | SkipJsonSchema[None] = Field(
        None, description="where it was given, e.g. `cookie-banner` (default `api`)"
    )

    @model_validator(mode="after")
    def _given(self) -> "ConsentChange":
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: null is not a value (leave the field out)")
        if self.personalization is None and self.marketing is None:
            raise ValueError(f"give at least one of {', '.join(FLAGS)}")
        return self


class ConsentState(BaseModel):
    user_id: str
    consent: dict[str, bool] = Field(description="the current flags (the shop's default where never given)")
    recorded: int = Field(0, description="records this request appended to the consent register")
    known: bool | None = Field(
        None,
        description="whether the shop has seen this user id (curated users or events, the consent "
        "register); false: recorded anyway, for a customer yet to come",
    )
    did_you_mean: list[str] | None = Field(
        None, description="when not known: the ids the shop has seen that differ in case only"
    )


def _caller(ctx: AppContext, request: Request) -> str | None:
    """The name behind the request's API key (None in single-user mode)."""
    s = ctx.service()
    key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if key is None and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return s.caller(key, "privacy.consent")[1]  # (None when nobody is registered)


_EXAMPLE = '{"personalization": false}'


def _not_json(exc: RequestValidationError, request: Request, example: str = _EXAMPLE) -> str | None:
    """Why the body is no JSON at all, as the 400's message (None when it is JSON that failed
    validation): it does not parse, it is empty, or it was sent as something else (a form,
    text: FastAPI hands those over as bytes)."""
    for e in exc.errors():
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            why = (e.get("ctx") or {}).get("error", "JSON decode error")
            return f"body is not valid JSON: {why}{at}; expected an object such as {example}"
        if loc == ("body",) and e.get("type") == "missing":
            return f"body is empty: expected a JSON object such as {example}"
        if loc == ("body",) and isinstance(e.get("input"), bytes | bytearray):
            sent = request.headers.get("content-type") or "no Content-Type"
            return f"body is not JSON ({sent}): send a JSON object such as {example} as application/json"
    return None


def _bad_body(request: Request, exc: RequestValidationError) -> Response:
    """A body that is not JSON is a 400, as `POST /v1/events` answers it (FastAPI's own answer
    is a 422, the status of well-formed JSON that fails validation, which stays a 422)."""
    why = _not_json(exc, request)
    if why is None:
        raise exc
    raise HTTPException(400, why) from None


def consent_router(ctx: AppContext) -> APIRouter:
    settings = ctx.settings
    router = APIRouter(tags=["privacy"], route_class=on_invalid_request(_bad_body))
    UserId = Annotated[
        str,
        PathParam(
            min_length=1,
            max_length=settings.max_id_chars,
            description="the shop's own user id",
            json_schema_extra={"pattern": text_pattern()},
        ),
    ]

    @router.put(
        "/v1/users/{user_id:path}/consent",
        response_model=ConsentState,
        responses=error_responses(400, 401, 403, 422, 503),
        openapi_extra={"security": REQUIREMENT},
        summary="Record a shopper's consent (personalization, marketing)",
    )
    async def put_consent(request: Request, user_id: UserId, change: ConsentChange) -> Any:
        s = authorize(ctx, request, "privacy.consent")
        clean_user_id(user_id, settings.max_id_chars)
        source = clean_text(change.source or "api", "source", 128)
        values = {f: getattr(change, f) for f in FLAGS if getattr(change, f) is not None}
        if not values:
            raise HTTPException(422, f"give at least one of {', '.join(FLAGS)}")
        if looks_like_pseudonym(trim_id(user_id)):  # consent of nobody the shop knows
            raise HTTPException(422, f"user {user_id!r} is a pseudonym: give the shop's own user id")
        pseudo = s.pseudonymize(trim_id(user_id))  # as curation and the Python API trim ids
        # (before recording: the record itself would make the id known)
        lookup = await asyncio.to_thread(id_lookup, ctx.workdir, trim_id(user_id), s.pseudonymize)
        # the register (fsync) and the audit entry first: acknowledged means recorded
        rec = await asyncio.to_thread(
            record_consent, ctx.workdir, pseudo, values, source=source, actor=_caller(ctx, request)
        )
        s.consent.set(pseudo, values)
        return JSON({"user_id": user_id, "consent": rec["consent"], "recorded": rec["recorded"], **lookup})

    return router
