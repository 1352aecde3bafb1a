"""The API documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with their scripts and
styles served from the package instead of FastAPI's CDN defaults, so that they work offline.

The assets are taken from the npm registry at install time (`scripts/docs-assets.sh`, run by
`make install`) into `_docs_assets/`; without them the pages say how to get them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "ASSETS_URL", "docs_router", "mount_assets"]

ASSETS = Path(__file__).with_name("_docs_assets")
ASSETS_URL = "/docs-assets"
_MISSING = (
    "<!doctype html><title>API docs not installed</title><p>The documentation's assets are not "
    "installed: run <code>make install</code> (or <code>scripts/docs-assets.sh</code>). "
    "The schema itself is at <a href='/openapi.json'>/openapi.json</a>.</p>"
)


def mount_assets(app: object) -> None:
    """Serve the assets under ASSETS_URL (when installed)."""
    if ASSETS.is_dir():
        app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")  # type: ignore[attr-defined]


def docs_router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    router = APIRouter(include_in_schema=False)
    favicon = f"{ASSETS_URL}/favicon-32x32.png"

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        if not (ASSETS / "swagger-ui-bundle.js").is_file():
            return HTMLResponse(_MISSING, status_code=503)
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url="/docs/oauth2-redirect",
            # no badge fetched from the public validator service
            swagger_ui_parameters={"validatorUrl": None},
        )

    @router.get("/docs/oauth2-redirect")
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        if not (ASSETS / "redoc.standalone.js").is_file():
            return HTMLResponse(_MISSING, status_code=503)
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - API reference",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    return router
