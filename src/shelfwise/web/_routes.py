"""The console's pages and actions (an APIRouter under `/console`, mounted by `mount_console`).

Pages are server-rendered (Jinja2) and readable without JavaScript; forms post normally and,
with htmx loaded, the few interactive parts (the rules preview, the quarantine filter) swap
fragments instead of reloading. Every action checks the person's role with
`governance.PERMISSIONS` (a refusal is a 403 page and an `access.denied` audit entry) and calls
the same function the CLI calls, which writes the same audit entry, with the person as actor.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ..errors import AccessDenied, ShelfwiseError
from ..governance._quarantine import STATUSES, unknown_filters
from ..serving import _exit
from ..serving._http_auth import route_path
from ..serving._http_context import on_invalid_request
from . import _auth, _data, _playground
from ._auth import Denied, User

__all__ = ["console_router", "mount_console"]

HERE = Path(__file__).parent
log = logging.getLogger("uvicorn.error")  # configured by uvicorn: shows with its own messages
PREFIX = "/console"
NAV = [
    ("overview", "Overview", "/console/"),
    ("models", "Models", "/console/models"),
    ("data", "Data", "/console/data"),
    ("search", "Search", "/console/search"),
    ("users", "Shoppers", "/console/users"),
    ("analytics", "Analytics", "/console/analytics"),
    ("insights", "Insights", "/console/insights"),
    ("ask", "Ask", "/console/ask"),
    ("privacy", "Privacy", "/console/privacy"),
    ("lineage", "Lineage", "/console/lineage"),
    ("audit", "Audit", "/console/audit"),
]
# the permission each page needs (its `ctx.need`): the nav links only the pages a person may
# open (a steward was offered Search and Shoppers, each a refusal)
NAV_NEEDS = {
    "overview": "catalog.read",
    "models": "models.read",
    "data": "catalog.read",
    "search": "search",
    "users": "recommend",
    "analytics": "catalog.read",
    "insights": "catalog.read",
    "ask": "ask",
    "privacy": "privacy.consent",
    "lineage": "lineage.read",
    "audit": "audit.read",
}


def _nav_of(link: str) -> str:
    """The nav page a console link opens (its permission: `NAV_NEEDS`)."""
    path = link.split("?", 1)[0].removeprefix(PREFIX).strip("/")
    first = path.split("/", 1)[0]
    return first if first in NAV_NEEDS else "overview"


def _invalid_request(request: Request, exc: RequestValidationError) -> dict[str, Any]:
    """The error page's values for an address FastAPI refused (`?limit=abc`, `/quarantine/x`):
    what was wrong with which parameter, and a link to the same page without the bad ones."""
    names, problems, bad_query, bad_path = [], [], set(), False
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ())]
        where, name = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("", ".".join(loc))
        got = e.get("input")
        shown = f" (got {got!r})" if isinstance(got, str) else ""
        problems.append(f"{name or 'the request'}: {e.get('msg', 'invalid')}{shown}")
        names.append(name or "request")
        bad_query |= {name} if where == "query" else set()
        bad_path = bad_path or where == "path"
    back = None
    if request.method == "GET" and not bad_path:
        keep = [(k, v) for k, v in request.query_params.multi_items() if k not in bad_query]
        back = request.url.path + (f"?{urlencode(keep)}" if keep else "")
    return {
        "title": f"Bad request: invalid {', '.join(dict.fromkeys(names))}",
        "message": "; ".join(problems),
        "back": back,
    }


def _flash_sig(ctx: Any, message: str) -> str:
    """The signature of a "done" message for the session that did it (keyed by its CSRF token,
    a secret the session holds whichever worker answers)."""
    import hashlib
    import hmac

    key = (ctx.session.csrf if ctx.session else "").encode()
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]


def _flash_ok(ctx: Any, message: str, sig: str | None) -> bool:
    import hmac

    return bool(sig) and bool(ctx.session) and hmac.compare_digest(_flash_sig(ctx, message), str(sig))


def _refusal_title(status: int) -> str:
    """A refused page's heading by its status (a 404 was titled "Not allowed")."""
    return {404: "Not found", 400: "Bad request", 422: "Bad request", 409: "Conflict"}.get(
        status, "Not allowed"
    )


def mount_console(app: FastAPI, workdir: str | Path, service: Callable[[], Any]) -> None:
    """Add the console to a serving app: `service()` gives the loaded `Service` (None while
    the bundle loads); the pages read everything else from `workdir`."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    templates = _templates()
    app.include_router(console_router(Path(workdir), service, templates))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:  # the service is loaded: the server is ready
            stop = threading.Event()
            threading.Thread(
                target=_warm, args=(Path(workdir), service, templates, stop), name="console-warm", daemon=True
            ).start()
            try:
                yield state
            finally:  # the warm-up stops before its next part
                stop.set()
                if _exit.finalizes():  # (a server process leaves without finalizing: no wait)
                    # its background threads out of the warehouse before the interpreter ends
                    left = await asyncio.to_thread(_data.settle, _data.SETTLE_S)
                    if left:
                        log.warning("console: %s still running at shutdown", ", ".join(left))

    app.router.lifespan_context = lifespan


def _warm(
    workdir: Path, service: Callable[[], Any], templates: Jinja2Templates, stop: threading.Event | None = None
) -> None:
    """The first page of each kind in a fresh server: its figures computed and its template
    compiled in the background, after readiness (see `_data.warm_up`)."""
    t0 = time.perf_counter()
    for name in templates.env.list_templates(extensions=["html"]):
        templates.env.get_template(name)  # Jinja compiles a template on its first use
    s, lexical = service(), None
    if s is not None and s.snapshot.search is not None and s.snapshot.version == _current(workdir):
        lexical = s.snapshot.search.lexical_
    failed = _data.warm_up(workdir, lexical, stop)
    if stop is not None and stop.is_set():
        return
    try:  # the insights page's modules (scipy.stats among them: seconds of CPU on its first read)
        import importlib

        for mod in ("_reports", "_audiences"):
            importlib.import_module(f"..insights.{mod}", __package__)
    except Exception as exc:  # a courtesy, as below
        failed.append(f"insights ({type(exc).__name__})")
    if s is not None:  # the playground's and the shopper view's first use of the engine's paths
        try:
            if s.snapshot.search is not None:
                side = _playground.Side(None, s.rules, "warm-up")
                _playground.search_side(s, "a", 10, side)  # the ranker's contributions, the facets
            _playground.shopper(s, "console-warm-up", 10)  # nothing of either is logged or audited
        except Exception as exc:  # a courtesy: the first real page does it instead
            failed.append(f"playground ({type(exc).__name__})")
    log.info(
        "console warm-up: %.1f s%s",
        time.perf_counter() - t0,
        f" ({', '.join(failed)} not ready)" if failed else "",
    )


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["tojson_compact"] = lambda v: json.dumps(v, default=str, ensure_ascii=False)
    templates.env.filters["pretty_json"] = lambda v: json.dumps(v, default=str, ensure_ascii=False, indent=1)
    templates.env.filters["pct"] = lambda v: "–" if v is None else f"{100 * float(v):.1f}%"
    templates.env.filters["num"] = lambda v, d=4: "–" if v is None else f"{float(v):.{d}f}"
    templates.env.filters["rules_said"] = _playground.rules_said
    return templates


def _stale_notes(notes: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The page's figures shown from an older data state (see `_data.STALE`), each with the
    UTC time they were computed ("as of") and their age, once per kind."""
    out: dict[str, dict[str, Any]] = {}
    for n in notes or []:
        at = n.get("as_of")
        out.setdefault(n["what"], {
            "what": n["what"],
            "as_of": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at else None,
            "age_s": max(0, round(time.time() - at)) if at else None,
        })  # fmt: skip
    return list(out.values())


def _current(workdir: Path) -> str | None:
    from ..serving._bundle import BUNDLES_DIR, CURRENT

    try:
        return (workdir / BUNDLES_DIR / CURRENT).read_text().strip()
    except OSError:
        return None


def console_router(
    workdir: Path, service: Callable[[], Any], templates: Jinja2Templates | None = None
) -> APIRouter:
    tpl = templates or _templates()

    def bad_address(request: Request, exc: RequestValidationError) -> Response:
        """A console address that fails FastAPI's validation (a query or path parameter of the
        wrong type) answers the console's error page, not the API's JSON error (`_app`'s
        handler, for /v1): a person reads it, in the console's layout, with a way back."""
        page: Response = Ctx(request).render("error.html", 400, page="", **_invalid_request(request, exc))
        return page

    router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=on_invalid_request(bad_address))

    class Ctx:
        """One request: the session (made on first visit: it carries the CSRF token) and the user."""

        def __init__(self, request: Request):
            self.request = request
            self.t0 = time.perf_counter()
            self.session = _auth.read_session(request, workdir)
            self.fresh = self.session is None
            if self.session is None:
                self.session = _auth.new_session()
            self.user: User | None = _auth.current_user(request, workdir, self.session)

        def need(self, action: str) -> User:
            return _auth.permit(workdir, self.user, action, route_path(self.request))

        def render(self, name: str, code: int = 200, **values: Any) -> HTMLResponse:
            page = values.pop("page", name.split(".")[0])
            if values.get("done") and not _flash_ok(
                self, values["done"], self.request.query_params.get("sig")
            ):
                values["done"] = None  # a link that says "done" of what this session did not do
            resp = tpl.TemplateResponse(
                self.request,
                name,
                {
                    "user": self.user,
                    "csrf": self.session.csrf if self.session else "",
                    # (no link to a page the person may not open: it only led to a refusal)
                    "nav": [n for n in NAV if self.user is None or self.user.may(NAV_NEEDS[n[0]])],
                    "page": page,
                    "may": (lambda a: self.user is not None and self.user.may(a)),
                    "started": self.t0,
                    "now": time.perf_counter,
                    "stale": _stale_notes(_data.STALE.get()),
                    **values,
                },
                status_code=code,
            )
            return self.finish(resp)

        def finish(self, resp: Response) -> Any:
            if self.fresh and self.session is not None:
                _auth.write_session(resp, workdir, self.session, self.request.url.scheme == "https")
            ms = (time.perf_counter() - self.t0) * 1000
            resp.headers["Server-Timing"] = f"app;dur={ms:.1f}"
            return resp

    def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Denials and a busy warehouse become pages (401 sends a browser to the login form)."""
        import functools

        @functools.wraps(fn)
        def run(request: Request, *args: Any, **kwargs: Any) -> Any:
            ctx = Ctx(request)
            _data.PAGE_DEADLINE.set(time.monotonic() + _data.REFRESH_WAIT_S)  # this page's wait, all parts
            stale = _data.STALE.set([])  # the figures it shows from an older data state
            try:
                return fn(ctx, *args, **kwargs)
            except Denied as exc:
                if exc.status == 401 and request.method == "GET" and not request.headers.get("hx-request"):
                    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    if not _auth.People(workdir).governed:
                        return ctx.render(
                            "error.html", 403, title="Loopback only", message=single_user_msg, page=""
                        )
                    return ctx.finish(RedirectResponse(f"{PREFIX}/login?next={quote(nxt)}", 303))
                return ctx.render(
                    "error.html", exc.status, title=_refusal_title(exc.status), message=exc.message, page=""
                )
            except _data.WarehouseBusy as exc:
                return ctx.render(
                    "error.html", 503, title="Warehouse busy",
                    message=f"another process holds the warehouse (a training run or an absorb); retry in a moment ({exc})",
                    page="",
                )  # fmt: skip
            except ShelfwiseError as exc:
                return ctx.render("error.html", 409, title="Not done", message=str(exc), page="")
            finally:
                _data.STALE.reset(stale)

        # FastAPI reads the parameters from the signature: the request, then the page's own
        sig = inspect.signature(fn)
        first = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
        run.__signature__ = sig.replace(parameters=[first, *list(sig.parameters.values())[1:]])  # type: ignore[attr-defined]
        return run

    single_user_msg = (
        "Nobody is registered in this workdir (single-user mode): the console answers only on the "
        "loopback interface. Register people with `shelfwise users add` to use it from elsewhere."
    )

    def svc() -> Any:
        s = service()
        if s is None:
            raise Denied(503, "the bundle is still loading; retry in a moment")
        return s

    async def posted(request: Request, ctx: Any) -> dict[str, str]:
        fields = await _auth.form(request)
        _auth.check_csrf(ctx.session if not ctx.fresh else None, fields, request)
        return fields

    def back(ctx: Any, url: str, message: str) -> Any:
        """To `url`, saying `message` there: signed for this session (`_flash_sig`), so that a
        crafted link cannot show "version 3 is production" while v1 serves."""
        sep = "&" if "?" in url else "?"
        query = urlencode({"done": message, "sig": _flash_sig(ctx, message)})
        return ctx.finish(RedirectResponse(f"{url}{sep}{query}", 303))

    # -- login ---------------------------------------------------------------------------------
    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/console/") -> Any:
        ctx = Ctx(request)
        return ctx.render(
            "login.html", next=next if next.startswith(PREFIX) else "/console/", error=None, page=""
        )

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Any:
        ctx = Ctx(request)
        try:
            fields = await posted(request, ctx)
        except Denied as exc:
            return ctx.render("login.html", exc.status, next="/console/", error=exc.message, page="")
        nxt = fields.get("next") or "/console/"
        nxt = nxt if nxt.startswith(PREFIX) else "/console/"
        try:
            user, key_hash = _auth.login(
                workdir, fields.get("name", "").strip(), fields.get("api_key", "").strip()
            )
        except Denied as exc:
            return ctx.render("login.html", exc.status, next=nxt, error=exc.message, page="")
        resp = RedirectResponse(nxt, 303)
        ctx.session = _auth.new_session(user.name, key_hash)  # a new token at login
        ctx.fresh = True
        return ctx.finish(resp)

    @router.post("/logout")
    async def logout(request: Request) -> Any:
        ctx = Ctx(request)
        try:
            await posted(request, ctx)
        except _auth.Denied as exc:
            # a session the server refuses already (expired, logged out, or the logout list
            # unreadable: fail closed) has nothing to end; its form's token cannot match the
            # fresh session. Clearing the cookie is all there is to do (it answered 500); a live
            # session's form without its token is refused as any other form
            if not ctx.fresh:
                return ctx.render("login.html", exc.status, next="/console/", error=exc.message, page="")
        else:
            _auth.end_session(
                workdir, None if ctx.fresh else ctx.session
            )  # (a copied cookie opened it still)
        resp = RedirectResponse(f"{PREFIX}/login", 303)
        resp.delete_cookie(_auth.COOKIE, path=PREFIX)
        return resp

    # -- overview ------------------------------------------------------------------------------
    @router.get("/", response_class=HTMLResponse)
    @guard
    def overview(ctx: Any) -> Any:
        ctx.need("catalog.read")
        data = _data.overview(workdir)
        # an alert links to its page only for who may open it (a broken audit chain linked an
        # analyst to the audit page: a refusal, audited as a denial)
        alerts = [
            a if ctx.user.may(NAV_NEEDS[_nav_of(a["link"])]) else {**a, "link": None} for a in data["alerts"]
        ]
        return ctx.render("overview.html", o={**data, "alerts": alerts})

    # -- models --------------------------------------------------------------------------------
    @router.get("/models", response_class=HTMLResponse)
    @guard
    def models(ctx: Any, done: str | None = None) -> Any:
        ctx.need("models.read")
        versions = _data.models(workdir)[::-1]
        # "Roll back" only where there is something to go back to (it was offered with one version)
        prod = next((v for v in versions if "production" in v["aliases"]), None)
        running = _data.running_experiments(workdir)  # (an arm may serve another model)
        return ctx.render("models.html", versions=versions, prod=prod, done=done, running=running)

    async def model_action(request: Request, version: str | None, action: str) -> Any:
        from ..lifecycle._registry import Registry

        ctx = Ctx(request)
        try:
            await posted(request, ctx)
            user = ctx.need(action)
            actor = None if user.single_user else user.name
            reg = Registry(workdir)
            if action == "models.approve":
                assert version is not None
                reg.approve(version, actor or "single-user")
                msg = f"version {version} approved by {user.name}"
            elif action == "models.promote":
                assert version is not None
                reg.promote(version, actor)
                msg = f"version {version} is production; servers follow bundles/CURRENT"
            else:
                msg = f"version {reg.rollback(actor)} is production again"
        except Denied as exc:
            return ctx.render(
                "error.html", exc.status, title=_refusal_title(exc.status), message=exc.message, page=""
            )
        except ShelfwiseError as exc:  # AccessDenied (four eyes) is one too
            denied = isinstance(exc, AccessDenied)  # four eyes: audited by the registry
            return ctx.render(
                "error.html", 403 if denied else 409, title="Not done", message=str(exc), page=""
            )
        s = service()
        if s is not None:
            s.refresh()  # this process serves the new bundle now, not at its next poll
        return back(ctx, f"{PREFIX}/models", msg)

    @router.post("/models/{version}/approve")
    async def approve(request: Request, version: str) -> Any:
        return await model_action(request, version, "models.approve")

    @router.post("/models/{version}/promote")
    async def promote(request: Request, version: str) -> Any:
        return await model_action(request, version, "models.promote")

    @router.post("/models/rollback")
    async def rollback(request: Request) -> Any:
        return await model_action(request, None, "models.rollback")

    # -- data ----------------------------------------------------------------------------------
    @router.get("/data", response_class=HTMLResponse)
    @guard
    def data(ctx: Any) -> Any:
        ctx.need("catalog.read")
        return ctx.render("data.html", cat=_data.datasets(workdir))

    @router.get("/data/quarantine", response_class=HTMLResponse)
    @guard
    def quarantine(
        ctx: Any,
        table: str = "",
        reason: str = "",
        status: str = "open",
        limit: int = 50,
        after: int | None = None,
        done: str | None = None,
    ) -> Any:
        ctx.need("catalog.read")  # the counts by table and reason; the rows hold raw fields:
        raw = ctx.user.may("quarantine.read_raw")  # those only for the roles the CLI allows
        st = None if status == "all" else status
        limit = min(max(limit, 1), 500)
        # an unknown filter is said, not an empty list as if nothing were quarantined (the
        # whole summary is read only for a value neither the contracts nor the codes know)
        problems: list[str] = []
        if unknown_filters(table or None, reason or None, status or None, []):
            summary = _data.quarantine(workdir, "", "", None, limit, rows=False)["summary"]
            problems = [
                f"unknown {name} {value!r}: choose one of {', '.join(known)}"
                for name, value, known in unknown_filters(
                    table or None, reason or None, status or None, summary
                )
            ]
        if problems:
            q: dict[str, Any] = {"summary": summary, "rows": [], "more": False}
        else:
            q = _data.quarantine(workdir, table, reason, st, limit, rows=raw, after=after)
        tables = sorted({s["table"] for s in q["summary"]})
        reasons = sorted({s["reason"] for s in q["summary"] if not table or s["table"] == table})
        name = "_quarantine_rows.html" if ctx.request.headers.get("hx-request") else "quarantine.html"
        return ctx.render(name, 400 if problems else 200, q=q, table=table, reason=reason, status=status,
                          statuses=STATUSES, tables=tables, reasons=reasons, problems=problems,
                          done=done, page="data", raw=raw, limit=limit, after=after,
                          reprocess=ctx.user.may("quarantine.reprocess"))  # fmt: skip

    def open_rows(qids: set[int]) -> list[dict[str, Any]]:
        from ..governance import Quarantine

        with _data.warehouse():
            listed = Quarantine(workdir).list(None, None, "open", max(qids) - min(qids) + 1, min(qids) - 1)
        return [r for r in listed if r["quarantine_id"] in qids]

    def reprocessed(ctx: Any, user: User, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`shelfwise quarantine reprocess --fixed FILE` per table: the same governed path and
        audit entry, with the person as actor. Each table is its own run that commits, so what
        happened is told per table: {"table", "rows", "released", "still_quarantined"}, or
        {"table", "rows", "error"} for a table that failed (a busy warehouse, a refusal) after
        the tables before it were re-processed; the tables after it are still tried."""
        from ..governance import Quarantine

        out: list[dict[str, Any]] = []
        for tbl in sorted({r["_table"] for r in records}):
            mine = [rec for rec in records if rec["_table"] == tbl]
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    fixed = Path(tmp) / "fixed.jsonl"
                    with fixed.open("w", encoding="utf-8") as fh:
                        for rec in mine:
                            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    with _data.warehouse():
                        res = Quarantine(workdir).reprocess(
                            tbl, fixed, actor=None if user.single_user else user.name
                        )
            except (ShelfwiseError, _data.WarehouseBusy) as exc:
                out.append({"table": tbl, "rows": len(mine), "error": exc})
                continue
            out.append({"table": tbl, "rows": len(mine), "released": res["released"],
                        "still_quarantined": res["still_quarantined"],
                        "withheld": res.get("withheld", 0), "skipped": res.get("skipped", 0),
                        "skipped_reason": res.get("skipped_reason"), "run_id": res.get("run_id")})  # fmt: skip
        return out

    def reprocess_error(ctx: Any, exc: Exception) -> Any:
        """The page of a re-process that was refused (Denied), found the warehouse busy (503) or
        could not be done (409)."""
        if isinstance(exc, Denied):
            return ctx.render(
                "error.html", exc.status, title=_refusal_title(exc.status), message=exc.message, page=""
            )
        if isinstance(exc, _data.WarehouseBusy):
            return ctx.render("error.html", 503, title="Warehouse busy", message=str(exc), page="")
        return ctx.render("error.html", 409, title="Not done", message=str(exc), page="")

    def reprocess_failed(ctx: Any, results: list[dict[str, Any]]) -> Any:
        """The error page when no table was re-processed (None when one was: its page says so)."""
        if any("error" not in r for r in results):
            return None
        return reprocess_error(ctx, results[0]["error"])

    def reprocess_message(results: list[dict[str, Any]]) -> str:
        def n_rows(n: int) -> str:
            return f"{n} row{'s' if n != 1 else ''}"

        def skipped(r: dict[str, Any]) -> str:
            """The rows left open as they were, not re-processed, and why."""
            if not r.get("skipped"):
                return ""
            return f"; {n_rows(r['skipped'])} NOT re-processed, left open ({r['skipped_reason']})"

        if len(results) == 1 and "error" not in results[0]:
            r = results[0]
            done = r["rows"] - r.get("skipped", 0)
            if not done:  # nothing was run (and nothing audited): never "re-processed"
                return skipped(r)[2:]
            return (
                f"{n_rows(done)} re-processed: {r['released']} released into curated, "
                f"{r['still_quarantined']} still quarantined (see their new reasons)"
                + (f", {r['withheld']} withheld (an erased user's)" if r.get("withheld") else "")
                + skipped(r)
            )
        parts = []
        for r in results:
            if "error" in r:
                why = "warehouse busy" if isinstance(r["error"], _data.WarehouseBusy) else "not done"
                parts.append(
                    f"{r['table']}: {n_rows(r['rows'])} NOT re-processed, still open ({why}: {r['error']})"
                )
            elif r["rows"] == r.get("skipped", 0):  # nothing of this table was run
                parts.append(f"{r['table']}: {skipped(r)[2:]}")
            else:
                parts.append(
                    f"{r['table']}: {n_rows(r['rows'] - r.get('skipped', 0))} re-processed, "
                    f"{r['released']} released into curated, {r['still_quarantined']} still quarantined"
                    + (f", {r['withheld']} withheld (an erased user's)" if r.get("withheld") else "")
                    + skipped(r)
                )
        return "; ".join(parts)

    @router.get("/data/quarantine/{qid}", response_class=HTMLResponse)
    @guard
    def quarantine_row(ctx: Any, qid: int, done: str | None = None) -> Any:
        """One quarantined row: its raw fields (the roles that may read them), editable when it
        is open and the person may re-process."""
        ctx.need("quarantine.read_raw")
        with _data.warehouse():
            from ..governance import Quarantine

            rows = Quarantine(workdir).list(None, None, None, limit=1, after=qid - 1)
        if not rows or rows[0]["quarantine_id"] != qid:
            raise Denied(404, f"no quarantined row #{qid}")
        from ..governance._contracts import CONTRACTS

        r = rows[0]
        raw = r["raw"] or {}
        # the fields to edit: the row's own; a line that could not be read as a row has only its
        # text, so the table's contract columns are offered (empty) beside it to type the row in
        contract = CONTRACTS.get(r["table"])
        unread = set(raw) <= {"line"}
        fields = (
            {c: "" for c in contract.column_names}
            if unread and contract is not None
            else {k: v for k, v in raw.items() if k != "line"}
        )
        return ctx.render("quarantine_row.html", r=r, fields=fields, unread=unread and bool(raw), page="data",
                          reprocess=ctx.user.may("quarantine.reprocess"), done=done)  # fmt: skip

    @router.post("/data/quarantine/reprocess")
    async def reprocess_selected(request: Request) -> Any:
        """The rows ticked in the list, re-processed as they are (after a contract or catalog
        change, e.g. the product an event named has arrived since)."""
        ctx = Ctx(request)
        try:
            fields = await posted(request, ctx)
            user = ctx.need("quarantine.reprocess")
            qids = {int(k[2:]) for k in fields if k.startswith("q.") and k[2:].isdigit()}
            if not qids:
                raise ShelfwiseError("no row ticked: tick the rows to re-process")
            rows = open_rows(qids)
            if not rows:
                raise ShelfwiseError("none of the ticked rows is open (released or superseded already?)")
            records = [
                {**(r["raw"] or {}), "_quarantine_id": r["quarantine_id"], "_table": r["table"]} for r in rows
            ]
            results = reprocessed(ctx, user, records)
        except (Denied, ShelfwiseError, _data.WarehouseBusy) as exc:
            return reprocess_error(ctx, exc)
        failed = reprocess_failed(ctx, results)
        if failed is not None:
            return failed
        back_to = fields.get("back") or f"{PREFIX}/data/quarantine"
        back_to = back_to if back_to.startswith(f"{PREFIX}/data/quarantine") else f"{PREFIX}/data/quarantine"
        return back(ctx, back_to, reprocess_message(results))

    @router.post("/data/quarantine/{qid}/reprocess")
    async def reprocess_row(request: Request, qid: int) -> Any:
        """One quarantined row, its raw fields as edited in the form, through the governed path."""
        ctx = Ctx(request)
        try:
            fields = await posted(request, ctx)
            user = ctx.need("quarantine.reprocess")
            rows = open_rows({qid})
            if not rows:
                raise ShelfwiseError(f"quarantined row #{qid} is not open (released or superseded already?)")
            row = rows[0]
            rec: dict[str, Any] = {k[2:]: v for k, v in fields.items() if k.startswith("f.")}
            rec.update({"_quarantine_id": qid, "_table": row["table"]})
            results = reprocessed(ctx, user, [rec])
        except (Denied, ShelfwiseError, _data.WarehouseBusy) as exc:
            return reprocess_error(ctx, exc)
        failed = reprocess_failed(ctx, results)  # one row, one table: it failed or it was done
        if failed is not None:
            return failed
        res = results[0]
        verdict = (
            f"NOT re-processed, left open: {res['skipped_reason']}"
            if res.get("skipped")
            else "released into curated"
            if res["released"]
            else "withheld: it names an erased user"
            if res.get("withheld")
            else None
        )
        # each outcome opens the row it is about: this one, or the row that now holds it (the
        # list at status=all opened at its top, oldest first: the new row was ~24 pages later,
        # and "see its new reason" named neither it nor its reason)
        where = f"{PREFIX}/data/quarantine/{qid}"
        if verdict is None:
            new = (
                _data.quarantined_by(workdir, row["table"], str(res.get("run_id")))
                if res.get("run_id")
                else []
            )
            if new:
                n = new[0]
                why = f"{n['reason']}" + (f" ({n['detail']})" if n["detail"] else "")
                verdict = f"still quarantined, now as row #{n['quarantine_id']}: {why}"
                where = f"{PREFIX}/data/quarantine/{n['quarantine_id']}"
            else:  # (not found: the open rows of the table past this one hold it)
                verdict = "still quarantined, as a new row (below)"
                where = f"{PREFIX}/data/quarantine?{urlencode({'table': row['table'], 'after': qid})}"
        return back(ctx, where, f"row #{qid}: {verdict}")

    # -- search playground ---------------------------------------------------------------------
    def search_variants(s: Any) -> dict[str, Any]:
        """ "experiment:variant" -> variant, for every search experiment configured."""
        return {f"{e.name}:{v.name}": v for e in s.experiments if e.surface == "search" for v in e.variants}

    def sides(
        s: Any, b_bundle: str, b_rules: str, draft: Any = None, b_variant: str = ""
    ) -> list[_playground.Side]:
        if b_bundle and b_bundle not in bundles():  # a bundle of this shop, never a path
            raise Denied(404, f"no bundle {b_bundle!r} in this shop")
        a = _playground.Side(None, s.rules, f"serving: bundle {s.snapshot.version}, rules v{s.rules.version}")
        if b_variant and draft is None:
            # what a search experiment's variant shows: its bundle and its rules over those in force
            v = search_variants(s).get(b_variant)
            if v is None:
                raise Denied(404, f"no search experiment variant {b_variant!r} in this shop")
            if v.bundle and v.bundle not in bundles():
                raise Denied(404, f"variant {b_variant!r} names bundle {v.bundle!r}, not in this shop")
            what = f"bundle {v.bundle or s.snapshot.version}" + (
                f", rules: {_playground.rules_said(v.rules)}" if v.rules else ""
            )
            return [a, _playground.Side(v.bundle or None, s._rules_for(v), f"variant {b_variant}: {what}")]
        if draft is not None:
            b = _playground.Side(b_bundle or None, draft, "draft rules (not saved)")
        else:
            rules = {"none": None, "force": s.rules}.get(b_rules or "force", s.rules)
            what = "no rules" if rules is None else f"rules v{s.rules.version}"
            b = _playground.Side(b_bundle or None, rules, f"bundle {b_bundle or s.snapshot.version}, {what}")
        return [a, b]

    def bundles() -> list[str]:
        from ..serving._bundle import BUNDLES_DIR

        root = workdir / BUNDLES_DIR
        return sorted((p.name for p in root.glob("[0-9]*") if (p / "manifest.json").exists()), reverse=True)

    @router.get("/search", response_class=HTMLResponse)
    @guard
    def search(
        ctx: Any, q: str = "", k: int = 10, user_id: str = "", compare: str = "", b_bundle: str = "",
        b_rules: str = "force", b_variant: str = "", done: str | None = None, category: str = "",
        brand: str = "", price_min: str = "", price_max: str = "", in_stock: str = "",
        sort: str = "relevance", offset: int = 0,
    ) -> Any:  # fmt: skip
        from ..search import Filters

        ctx.need("search")
        s = svc()
        # read as /v1/search reads them: what cannot be is said (a 422, as the API answers), the
        # inputs kept as typed and no page searched (`$20` was ignored: every price shown)
        # (`k=many` is not an int at all: the error page, as for every console address)
        got, problems = _playground.search_args(str(k), str(offset), price_min, price_max, in_stock, sort)
        # the attribute filters (`attr.color=red`), read by `/v1/search`'s own reader
        attr = _playground.AttributeFilters(ctx.request.url.path, ctx.request.query_params.multi_items())
        attributes, attr_problems = attr.read()
        problems += attr_problems
        filters = Filters(
            category.strip() or None,
            brand.strip() or None,
            got["price_min"],
            got["price_max"],
            got["in_stock"],
            attributes,
        )
        how: dict[str, Any] = {"filters": filters, "sort": got["sort"], "offset": got["offset"]}
        cols = []
        if problems:
            return search_page(
                ctx, status=422, q=q, k=k, user_id=user_id, compare=compare, b_bundle=b_bundle,
                b_rules=b_rules, b_variant=b_variant, category=category, brand=brand,
                price_min=price_min, price_max=price_max, in_stock=in_stock, sort=sort, offset=offset,
                problems=problems, attr=attr,
            )  # fmt: skip
        k, stock = got["k"], got["in_stock"]
        if q.strip():
            chosen = sides(s, b_bundle, b_rules, b_variant=b_variant if compare else "")
            cols = [_playground.search_side(s, q[:512], k, chosen[0], user_id=user_id or None, **how)]
            if compare:
                cols.append(_playground.search_side(s, q[:512], k, chosen[1], user_id=user_id or None, **how))
        return search_page(
            ctx, q=q, k=k, user_id=user_id, compare=compare, b_bundle=b_bundle, b_rules=b_rules,
            b_variant=b_variant, cols=cols, done=done, category=category, brand=brand,
            price_min=price_min, price_max=price_max, in_stock="" if stock is None else str(stock).lower(),
            sort=got["sort"], offset=got["offset"], attr=attr,
        )  # fmt: skip

    def search_page(
        ctx: Any, *, status: int = 200, drafts: dict[str, str] | None = None, **values: Any
    ) -> Any:
        """The search playground with the rules and synonyms in force in its editors, or the
        `drafts` a refused save posted (kept, with the reason above them: a refusal on a page of
        its own lost the edit)."""
        from ..serving._synonyms import synonyms_text

        s = svc()
        s.sync_synonyms(s.snapshot)
        engine = s.snapshot.search
        bundle_syn = s.synonyms.bundle_synonyms(engine) if engine is not None else None
        syn_text, syn_version = synonyms_text(workdir, bundle_syn)
        drafts = drafts or {}
        page = {
            "q": "",
            "k": 10,
            "user_id": "",
            "compare": "",
            "b_bundle": "",
            "b_rules": "force",
            "b_variant": "",
            "category": "",
            "brand": "",
            "price_min": "",
            "price_max": "",
            "in_stock": "",
            "sort": "relevance",
            "offset": 0,
            "attr": None,  # the attribute filters of the address (`_playground.AttributeFilters`)
        }
        page.update(cols=[], done=None, refused=None, problems=[])
        page.update(values)
        return ctx.render(
            "search.html", status, variants=sorted(search_variants(s)), bundles=bundles(),
            rules_text=drafts.get("rules", _playground.rules_json(workdir)), rules_version=s.rules.version,
            rules_installed=_rules_installed(workdir, s.rules.version),
            synonyms_text=drafts.get("synonyms", syn_text), synonyms_version=syn_version, **page,
        )  # fmt: skip

    @router.post("/search/preview", response_class=HTMLResponse)
    async def preview(request: Request) -> Any:
        """The query's page under the rules in force and under the draft, side by side."""
        from ..serving._rules import Rules

        ctx = Ctx(request)
        try:
            fields = await posted(request, ctx)
            ctx.need("search")
            s = svc()
            q, k = fields.get("q", "")[:512], min(max(int(fields.get("k") or 10), 1), 50)
            error = None
            cols: list[dict[str, Any]] = []
            try:
                draft = Rules.from_dict(json.loads(fields.get("rules") or "{}"), "draft")
            except (ValueError, ShelfwiseError) as exc:
                draft, error = None, f"the draft is not a valid rules file: {exc}"
            synonyms = None
            if fields.get("synonyms") is not None and fields.get("what") == "synonyms":
                try:  # what saving would install, or why it would refuse
                    synonyms = _playground.parse_synonyms(fields["synonyms"])
                except ShelfwiseError as exc:
                    error = str(exc)
            if q.strip() and not error and (draft is not None or synonyms is not None):
                a = _playground.Side(
                    None, s.rules, f"in force (rules v{s.rules.version}, synonyms v{s.synonyms.version})"
                )
                cols = [_playground.search_side(s, q, k, a, explain=False)]
                if synonyms is not None:
                    b = _playground.Side(None, s.rules, "draft synonyms (not saved)")
                    cols.append(_playground.search_side(s, q, k, b, explain=False, synonyms=synonyms))
                else:
                    b = _playground.Side(None, draft, "draft rules (not saved)")
                    cols.append(_playground.search_side(s, q, k, b, explain=False))
            # htmx swaps the fragment in; without JavaScript the form posts here: a whole page
            name = "_preview.html" if request.headers.get("hx-request") else "preview_page.html"
            return ctx.render(name, cols=cols, error=error, q=q, page="search")
        except Denied as exc:
            return ctx.render(
                "error.html", exc.status, title=_refusal_title(exc.status), message=exc.message, page=""
            )

    async def refused_save(ctx: Any, fields: dict[str, str], what: str, message: str) -> Any:
        """A save the checks refused: the playground again, the draft kept in its editor (when
        the form was read) and the reason above it; the error page when the playground cannot
        be shown (the bundle still loading)."""
        drafts = {what: fields[what]} if what in fields else None
        try:
            return await asyncio.to_thread(
                search_page, ctx, status=422, drafts=drafts, q=fields.get("q", ""), refused=message
            )
        except Denied:
            return ctx.render("error.html", 422, title=message.split(":")[0], message=message, page="")

    @router.post("/rules")
    async def save_rules(request: Request) -> Any:
        """`shelfwise rules set`: validated, versioned, the previous version kept, audited."""
        from ..serving._rules import Rules
        from ..serving._rules import save_rules as save

        ctx = Ctx(request)
        fields: dict[str, str] = {}
        try:
            fields = await posted(request, ctx)
            user = ctx.need("rules.change")
            try:
                doc = json.loads(fields.get("rules") or "")
            except ValueError as exc:
                raise ShelfwiseError(f"the rules are not valid JSON: {exc}") from None
            said: list[str] = []  # (its warnings, shown with the saved version)
            before = Rules.load(workdir).version
            # (the text in force saved again: no new version, said "unchanged")
            rules = await asyncio.to_thread(
                save,
                workdir,
                doc,
                "single-user" if user.single_user else user.name,
                said=said,
                if_changed=True,
            )
        except Denied as exc:
            return ctx.render(
                "error.html", exc.status, title=_refusal_title(exc.status), message=exc.message, page=""
            )
        except ShelfwiseError as exc:
            return await refused_save(ctx, fields, "rules", f"Rules not saved: {exc}")
        s = service()
        if s is not None:
            s.refresh()  # this process applies them now; other workers within --reload-seconds
        q = fields.get("q", "")
        notes = "".join(f"; warning: {w}" for w in said)
        done = (
            f"rules unchanged (version {rules.version} in force)"
            if rules.version == before
            else (f"rules version {rules.version} saved{notes}")
        )
        return back(ctx, f"{PREFIX}/search?{urlencode({'q': q})}", done)

    @router.post("/synonyms")
    async def save_synonyms(request: Request) -> Any:
        """`shelfwise rules synonyms`: checked, versioned, the previous file kept, audited; every
        serving process uses them on its next search."""
        from ..serving._synonyms import save_synonyms as save

        ctx = Ctx(request)
        fields: dict[str, str] = {}
        try:
            fields = await posted(request, ctx)
            user = ctx.need("rules.change")
            got = await asyncio.to_thread(  # (under the synonyms' lock: off the event loop)
                save, workdir, fields.get("synonyms") or "", "single-user" if user.single_user else user.name
            )
        except Denied as exc:
            return ctx.render(
                "error.html", exc.status, title=_refusal_title(exc.status), message=exc.message, page=""
            )
        except ShelfwiseError as exc:
            return await refused_save(ctx, fields, "synonyms", f"Synonyms not saved: {exc}")
        q = fields.get("q", "")
        return back(ctx, f"{PREFIX}/search?{urlencode({'q': q})}", f"synonyms version {got['version']} saved")

    # -- shoppers ------------------------------------------------------------------------------
    @router.get("/users", response_class=HTMLResponse)
    @guard
    def users_index(ctx: Any, user_id: str = "") -> Any:
        ctx.need("recommend")
        if user_id.strip():
            return ctx.finish(RedirectResponse(f"{PREFIX}/users/{quote(user_id.strip(), safe='')}", 303))
        return ctx.render("shopper.html", shop=None, user_id="")

    @router.get("/users/{user_id:path}", response_class=HTMLResponse)  # (an id may hold a "/")
    @guard
    def user_page(ctx: Any, user_id: str, k: int = 10) -> Any:
        ctx.need("recommend")
        s = svc()
        given = user_id[:256]
        # a warehouse pseudonym (the Insights report lists customers by them) names nobody the
        # shop knows: it was shown as "a new visitor" with a cold-start list. A role that may name
        # customers by shop id (`audiences.shop_ids`, as `insights customers` does) has it
        # looked up in the raw layer; the others, or one not held, are told what to enter.
        from ..governance._privacy import looks_like_pseudonym

        looked_up = looks_like_pseudonym(given.strip())
        if looked_up:
            found, why = shop_id_of(ctx, given.strip())
            if found is None:
                return ctx.render(
                    "shopper.html", 422, shop=None, user_id=given, page="users", pseudonym_note=why
                )
            user_id = found
        # a profile, and the whole history, by the shop's own id: `Shop.profile`'s and
        # /v1/users/{id}/profile's permission (`insights.customers` lets a scientist see profiles
        # by pseudonym only; `recommend` gives the lists, not the steps a customer took nor the
        # items of them that explain the lists: "because of: <title>" is a step of their history)
        may_read = ctx.user.may("insights.profile")
        shop = _playground.shopper(s, user_id[:256], min(max(k, 1), 50), history=may_read)
        pseudo = s.pseudonymize(user_id[:256])
        if may_read:
            profile = _data.customer_profile(workdir, pseudo)
        else:
            profile = {
                "status": "unavailable",
                "reason": f"the role {ctx.user.role} may not read a customer's profile by their id",
            }
        # a customer looked up by their id: who, whom (pseudonym), what they were shown
        from ..governance import AuditLog

        AuditLog(workdir).append(
            "console.shopper",
            actor=None if ctx.user.single_user else ctx.user.name,
            pseudonym=pseudo,
            history_shown=may_read,
            **({"looked_up_by": "pseudonym"} if looked_up else {}),
            via="console",
        )
        return ctx.render("shopper.html", shop=shop, profile=profile, user_id=user_id, page="users",
                          from_pseudonym=given.strip() if looked_up else None)  # fmt: skip

    def shop_id_of(ctx: Any, pseudo: str) -> tuple[str | None, str]:
        """(the shop's own id of a warehouse pseudonym, "") or (None, why there is none to show):
        the role may not name customers by shop id, or the raw layer holds no customer under it
        (erased, aged out by retention, another shop's)."""
        said = (
            f"{pseudo!r} is a pseudonym (curated tables and the Insights report show those), not the "
            "shop's own user id"
        )
        if not ctx.user.may("audiences.shop_ids"):
            why = f"the role {ctx.user.role} may not look a customer's shop id up from it"
            return None, f"{said}; {why}: give the shop's own user id"
        from ..insights._data import shop_ids

        with _data.warehouse():
            got = shop_ids(workdir, [pseudo]) if _data._has_warehouse(workdir) else {}
        if pseudo not in got:
            why = "no customer the shop still holds has it (erased, aged out, or not this shop's)"
            return None, f"{said}, and {why}: give the shop's own user id"
        return got[pseudo], ""

    # -- audit, lineage, analytics -------------------------------------------------------------
    @router.get("/audit", response_class=HTMLResponse)
    @guard
    def audit(ctx: Any, action: str = "", actor: str = "", outcome: str = "") -> Any:
        ctx.need("audit.read")
        a = _data.audit_entries(workdir, action or None, actor or None, outcome or None)
        return ctx.render("audit.html", a=a, action=action, actor=actor, outcome=outcome)

    @router.get("/audit/{seq}", response_class=HTMLResponse)
    @guard
    def audit_entry(ctx: Any, seq: int) -> Any:
        """One entry whole: the list cuts its details to a line."""
        ctx.need("audit.read")
        entry = _data.audit_entry(workdir, seq)
        if entry is None:
            raise Denied(404, f"no audit entry #{seq}")
        return ctx.render("audit_entry.html", e=entry, page="audit")

    @router.get("/lineage", response_class=HTMLResponse)
    @guard
    def lineage(ctx: Any, bundle: str = "", served: str = "", version: str = "") -> Any:
        """From a bundle, a registry version (its bundle) or a served list (the bundle that
        answered it, by the id the answer carried) back to the runs and data versions."""
        ctx.need("lineage.read")
        origin = None
        if served.strip():
            got = _data.served_list(workdir, served.strip())
            if got is None:
                raise Denied(404, f"no served list {served.strip()!r} in the exposure log (spool/exposures/)")
            bundle, origin = got[1], (served.strip(), got[0])
        elif version.strip():
            v = next((m for m in _data.models(workdir, False) if str(m["version"]) == version.strip()), None)
            if v is None or not v.get("bundle"):
                raise Denied(404, f"no registry version {version.strip()!r} with a bundle")
            bundle = Path(str(v["bundle"])).name
        if bundle and bundle not in bundles():
            raise Denied(404, f"no bundle {bundle!r} in this shop")
        g = _data.lineage_graph(workdir, bundle or None, served=origin)
        return ctx.render("lineage.html", g=g, svg=_data.lineage_svg(g), version=version.strip())

    @router.get("/analytics", response_class=HTMLResponse)
    @guard
    def analytics(ctx: Any, done: str | None = None) -> Any:
        return analytics_page(ctx, done=done)

    def analytics_page(
        ctx: Any,
        *,
        status: int = 200,
        draft: str | None = None,
        refused: str | None = None,
        done: str | None = None,
    ) -> Any:
        """The analytics page; for a person who may change the experiments, their editor with
        the installed configuration, or the `draft` a refused save posted (kept, the reason
        above it)."""
        ctx.need("catalog.read")
        exps, unreadable = None, None
        if ctx.user.may("evaluate"):
            try:
                exps = _data.experiments(workdir)
            except ShelfwiseError as exc:  # (an experiments file that cannot be read: said, and
                unreadable = str(exc)  # the editor below shows it as it is, to mend it)
        s, lexical = service(), None
        if s is not None and s.snapshot.search is not None and s.snapshot.version == _current(workdir):
            lexical = s.snapshot.search.lexical_  # the index serving uses: nothing to load
        editor = None
        if ctx.user.may("experiments.change"):
            editor = {
                "text": draft if draft is not None else _data.experiments_text(workdir),
                "running": _data.running_experiment_names(workdir),
                "stamp": _data.experiments_stamp(workdir),  # (what the person saw: `change_experiments`)
            }
        sr = _data.search_report(workdir, lexical)
        return ctx.render(
            "analytics.html",
            status,
            sr=sr,
            exps=exps,
            editor=editor,
            refused=refused,
            done=done,
            unreadable=unreadable,
        )

    @router.post("/experiments")
    async def change_experiments(request: Request) -> Any:
        """`shelfwise experiments set` from the console: the whole configuration as the editor
        posts it (`end_missing` ticked: the running experiments it leaves out end), or one
        running experiment ended now (`end_experiment`: its `end` set to this instant, the
        experiment kept in the file, its report readable). Checked as `Shop.set_experiments`
        checks it (a variant's rules, or one without the shop's rules, need `rules.change`, but
        to end an experiment; a variant serves only what the registry lets serve), audited with
        the person as actor; this process follows at once, other servers within
        --reload-seconds. Refused when the file changed since the page was opened (`stamp`:
        another person's save, or an "End now", would be lost), checked and written under the
        console's lock of the file."""
        from ..lifecycle._variant_gates import changes_shop_rules, variants_may_serve
        from ..serving._experiments import parse_experiments, save_experiments

        ctx = Ctx(request)
        fields: dict[str, str] = {}
        said: list[str] = []
        ended: list[dict[str, Any]] = []
        one = ""
        try:
            fields = await posted(request, ctx)
            user = ctx.need("experiments.change")
            one = (fields.get("end_experiment") or "").strip()
            if one:
                doc = _data.experiments_ended_now(workdir, one)
            else:
                try:
                    doc = json.loads(fields.get("experiments") or "")
                except ValueError as exc:
                    raise ShelfwiseError(f"the experiments are not valid JSON: {exc}") from None
            exps = parse_experiments(doc)
            if not one and changes_shop_rules(exps):
                # (a variant's rules are the shop's rules for its shoppers; ending one changes none)
                ctx.need("rules.change")
            actor = None if user.single_user else user.name

            def install() -> list[Any]:
                with _data.experiments_lock(workdir):
                    if fields.get("stamp", "") != _data.experiments_stamp(workdir):
                        raise ShelfwiseError(
                            "the experiments were changed since this page was opened (another person's "
                            'save, an "End now" or `shelfwise experiments set`): nothing was saved; '
                            "the configuration in force is on the page again"
                            + (", your draft below it" if not one else "")
                        )
                    variants_may_serve(workdir, exps)
                    return save_experiments(
                        workdir,
                        doc,
                        actor,
                        end_missing=fields.get("end_missing") == "on",
                        said=said,
                        ended=ended,
                    )

            installed = await asyncio.to_thread(install)
        except Denied as exc:
            return ctx.render(
                "error.html", exc.status, title=_refusal_title(exc.status), message=exc.message, page=""
            )
        except ShelfwiseError as exc:
            message = str(exc).replace(
                "`experiments set --end-missing` (`Shop.set_experiments(..., end_missing=True)`)",
                'tick "end the running experiments it leaves out"',
            )
            draft = fields.get("experiments") if "experiments" in fields and not one else None
            refused = f"Experiments not saved: {message}"
            try:
                return await asyncio.to_thread(analytics_page, ctx, status=422, draft=draft, refused=refused)
            except (Denied, ShelfwiseError, _data.WarehouseBusy):  # (the page itself cannot be shown)
                return ctx.render("error.html", 422, title="Experiments not saved", message=refused, page="")
        s = service()
        if s is not None:
            s.refresh()  # this process serves them now; other workers within --reload-seconds
        names = ", ".join(e.name for e in installed) or "none"
        msg = f"experiment {one} ended now" if one else f"experiments saved ({names})"
        if ended:
            msg += f"; ended: {', '.join(e['name'] for e in ended)}"
        msg += "".join(f"; warning: {w}" for w in said)
        return back(ctx, f"{PREFIX}/analytics", msg)

    from ._insights_page import add_insights_routes  # (the insights stream's page, own module)

    add_insights_routes(router, workdir, guard)
    from ._ask_page import add_ask_routes  # (the insights stream's ask page, own module)

    add_ask_routes(router, workdir, guard)
    from ._privacy_page import add_privacy_routes  # (consent and erasure requests, own module)

    add_privacy_routes(router, workdir, guard, Ctx, posted, back, service)

    @router.get("/{rest:path}", response_class=HTMLResponse)  # last: what no page above is
    @guard
    def not_a_page(ctx: Any, rest: str) -> Any:
        """An unknown console address: the console's own page (it answered the API's raw JSON)."""
        raise Denied(404, f"no console page {PREFIX}/{rest}")

    return router


def _rules_installed(workdir: Path, version: int) -> dict[str, Any]:
    """Who installed the rules in force, and when (the audit trail's entry of their version)."""
    from ..serving._rules import rules_installed

    return rules_installed(workdir, version)
