"""HTTP: `POST /v1/ask` as an APIRouter the serving app includes.

The app passes its own access check (`guard(request, action)`, raising HTTPException when the
caller may not), so the router follows the server's keys and audit of denials:
    app.include_router(insights_router(workdir, guard=svc))
The FAQ is read from the warehouse and encoded on the first question, then kept for the life of
the process (an FAQ changed by a later ingestion is read by a restarted or reloaded server).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

MAX_QUESTION_CHARS = 2000


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The shopper's question.")


class AskResponse(BaseModel):
    faq_id: str | None = Field(description="The FAQ entry that answers it; null when none does.")
    answer: str | None
    score: float
    products: list[str] = Field(default_factory=list)


def insights_router(workdir: str | Path, guard: Callable[..., Any] | None = None) -> APIRouter:
    from ..serving._http_auth import REQUIREMENT  # the API key, as the app's other /v1 routes
    from ..serving._http_models import error_responses  # the API's one documented error shape

    router = APIRouter()
    lock = threading.Lock()
    cache: dict[str, Any] = {}

    def matcher() -> Any:
        with lock:
            if "m" not in cache:
                from ..errors import ShelfwiseError
                from ._faq import FaqMatcher
                from ._run import load_faq

                try:
                    cache["m"] = FaqMatcher(*load_faq(workdir))
                except ShelfwiseError as exc:
                    raise HTTPException(404, str(exc)) from None
            return cache["m"]

    @router.post(
        "/v1/ask",
        response_model=AskResponse,
        responses=error_responses(401, 403, 404, 422, 503),
        openapi_extra={"security": REQUIREMENT},
    )
    async def ask(body: AskRequest, request: Request) -> AskResponse:
        if guard is not None:
            guard(request, "ask")
        m = await asyncio.to_thread(matcher)
        a = (await asyncio.to_thread(m.match, [body.question]))[0]
        return AskResponse(faq_id=a.faq_id, answer=a.answer, score=round(a.score, 4), products=[])

    return router


__all__ = ["AskRequest", "AskResponse", "insights_router"]
