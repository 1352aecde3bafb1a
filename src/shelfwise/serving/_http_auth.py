"""Who may call the API: the API-key dependency of every `/v1` endpoint.

A shop with no people registered serves everyone (single-user mode). Once people are registered
(`shelfwise users add`), each call needs the API key of someone whose role may do the action
(header `X-API-Key`, or `Authorization: Bearer <key>`): 401 without a known key, 403 when the
role may not; both are written to the audit log. The two headers are declared as security
schemes, so `/openapi.json` and `/docs` show them.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ._http_context import AppContext
from ._service import Service

__all__ = ["authorize"]

_KEY_DOC = "a person's or service's API key (`shelfwise users add`); needed once people are registered"
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description=_KEY_DOC)
bearer = HTTPBearer(auto_error=False, description=_KEY_DOC + " (the same key as a bearer token)")


def authorize(ctx: AppContext, action: str) -> Callable[..., Awaitable[Service]]:
    """A dependency giving the service when the caller may do `action` (serve.call, serve.admin)."""

    async def caller(
        request: Request,
        key: Annotated[str | None, Depends(api_key_header)],
        token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Service:
        s = ctx.service()  # 503 while the bundle loads
        if not s.keys:  # nobody registered: single-user mode
            return s
        if key is None and token is not None:
            key = token.credentials.strip()
        allowed, name = s.caller(key, action)
        if allowed:
            return s
        from ..governance import AuditLog

        AuditLog(ctx.workdir).append(
            "access.denied",
            actor=name or "anonymous",
            outcome="denied",
            denied_action=action,
            path=request.url.path,
        )
        if name is None:
            raise HTTPException(401, "an API key is required (header X-API-Key)")
        raise HTTPException(403, f"{name} may not {action}")

    return caller
