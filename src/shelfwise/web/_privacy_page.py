"""The console's privacy page (`/console/privacy?user_id=...`): a steward handling a shopper's
request looks them up by the shop's own id and sees their consent (current flags, each record
with when, from where and by whom) and whether they were erased; records a consent change,
downloads everything held about them (the right of access) or erases them (the right to
erasure), each through the same governed path as `shelfwise privacy consent|export|erase` and
with the person as actor in the audit log.

The consent change is the one `PUT /v1/users/{id}/consent` makes (register, audit, then the
serving state at once); an erasure takes the console's turn at the warehouse and is typed twice
(the id must be typed again to confirm): it cannot be undone."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

__all__ = ["add_privacy_routes"]

MAX_ID_CHARS = 256  # as the serving API's ids
CHOICES = {"": None, "given": True, "withdrawn": False}


def add_privacy_routes(
    router: APIRouter,
    workdir: Path,
    guard: Callable[..., Any],
    new_ctx: Callable[[Request], Any],
    posted: Callable[[Request, Any], Awaitable[dict[str, str]]],
    finish: Callable[[Any, str, str], Any],
    service: Callable[[], Any],
) -> None:
    """Register the page on the console's router. `guard`: the console's page wrapper;
    `new_ctx(request)`: a request's context; `posted(request, ctx)`: its form fields, CSRF
    checked; `finish(ctx, url, message)`: back to a page saying what was done; `service()`:
    the serving Service of this process (None while loading)."""
    from ..errors import ShelfwiseError
    from . import _data
    from ._auth import Denied

    failures = (Denied, ShelfwiseError, _data.WarehouseBusy)

    def page_url(user_id: str) -> str:
        return "/console/privacy?" + urlencode({"user_id": user_id})

    def checked(raw: str) -> str:
        """The shop's id as typed, trimmed as curation trims ids; refused when empty, longer
        than the API's ids (cut, it would be another shopper) or a warehouse pseudonym."""
        from ..governance._compile import trim_id
        from ..governance._privacy import refuse_pseudonym

        user_id = trim_id(raw)
        if not user_id:
            raise ShelfwiseError("no user id: type the shop's id of the shopper")
        if len(user_id) > MAX_ID_CHARS or "\x00" in user_id:
            raise ShelfwiseError(f"not a user id: longer than {MAX_ID_CHARS} characters or holding a NUL")
        refuse_pseudonym(user_id)
        return user_id

    def refused(ctx: Any, exc: Exception, user_id: str) -> Any:
        """The page of a refusal (its status), a busy warehouse (503) or a request that could not
        be done (409), leading back to the shopper's privacy page."""
        back = page_url(user_id) if user_id else "/console/privacy"
        from ._routes import _refusal_title

        if isinstance(exc, Denied):
            code, title = exc.status, _refusal_title(exc.status)
        elif isinstance(exc, _data.WarehouseBusy):
            code, title = 503, "Warehouse busy"
        else:
            code, title = 409, "Not done"
        return ctx.render("error.html", code, title=title, message=getattr(exc, "message", str(exc)),
                          back=back, back_label="Back to the privacy request", page="")  # fmt: skip

    async def begin(request: Request, action: str) -> tuple[Any, str | None, str, dict[str, str], Any]:
        """A privacy request's start: (its context, the acting person's name for the audit, None
        in single-user mode; the shopper's id; the form's fields; None, or the refusal's page)."""
        ctx = new_ctx(request)
        try:
            fields = await posted(request, ctx)
            user = ctx.need(action)
            user_id = checked(fields.get("user_id", ""))
        except failures as exc:
            return ctx, None, "", {}, refused(ctx, exc, "")
        return ctx, None if user.single_user else user.name, user_id, fields, None

    def redis_client() -> Any:
        """The shared Redis this server keeps its online state in (None: this process's memory)."""
        s = service()
        return getattr(getattr(s, "online", None), "client", None)

    def pseudonym(user_id: str) -> str:
        from ..governance import Pseudonymizer

        return Pseudonymizer.of(workdir)(user_id)

    def held(pseudo: str) -> dict[str, int]:
        """The shopper's rows in the curated tables that name users (a mistyped id holds none:
        the page says so rather than showing a stranger's empty record as theirs)."""
        from ..storage import read_only

        if not (workdir / "warehouse.duckdb").exists():
            return {}
        with _data.warehouse(), read_only(workdir) as (con, tables):
            return {
                t: int(
                    con.execute(f'SELECT count(*) FROM curated."{t}" WHERE user_id = ?', [pseudo]).fetchone()[
                        0
                    ]
                )
                for t in ("events", "users")
                if t in tables
            }

    @router.get("/privacy", response_class=HTMLResponse)
    @guard
    def privacy(ctx: Any, user_id: str = "", done: str | None = None) -> Any:
        from ..governance._consent import Consents, consent_history
        from ..governance._erasures import Erasures
        from ..governance._privacy import is_anonymous_raw

        ctx.need("privacy.consent")
        who: dict[str, Any] | None = None
        problem = ""
        if user_id.strip():
            try:
                user_id = checked(user_id)
            except ShelfwiseError as exc:
                problem = str(exc)
        if user_id.strip() and not problem:
            pseudo = pseudonym(user_id)
            erasures = Erasures.of(workdir)
            erased = erasures.erased.get(pseudo) if erasures is not None else None
            history = consent_history(workdir, pseudo)
            # a person's consent history read: audited as in the CLI and the Python API
            from ..governance import AuditLog

            AuditLog(workdir).append(
                "privacy.consent.read",
                actor=None if ctx.user.single_user else ctx.user.name,
                pseudonym=pseudo,
                via="console",
            )
            rows = held(pseudo)
            who = {
                "pseudonym": pseudo,
                "consent": Consents.of(workdir).current(pseudo),
                "recorded": {r["flag"] for r in history if "flag" in r},
                "history": history[::-1],
                "erased_at": erased.isoformat(timespec="seconds") + "Z" if erased else None,
                "held": rows,
                "held_rows": sum(rows.values()),
                # a session's rows name nobody: nobody can ask for them (retention removes them)
                "anonymous": is_anonymous_raw(user_id),
            }
        return ctx.render("privacy.html", user_id=user_id.strip(), who=who, problem=problem, done=done)

    @router.post("/privacy/consent")
    async def set_consent(request: Request) -> Any:
        """The consent change a shopper asked for (flags left "as it is" stay)."""
        from ..governance._consent import FLAGS, record_consent

        ctx, actor, user_id, fields, page = await begin(request, "privacy.consent")
        if page is not None:
            return page
        try:
            bad = [f for f in FLAGS if fields.get(f, "") not in CHOICES]
            if bad:
                raise ShelfwiseError(f"{', '.join(bad)}: given, withdrawn or left as it is")
            values = {f: CHOICES[fields.get(f, "")] for f in FLAGS}
            if all(v is None for v in values.values()):
                raise ShelfwiseError("nothing to record: choose given or withdrawn for a flag")
            pseudo = pseudonym(user_id)
            rec = record_consent(workdir, pseudo, values, source="console", actor=actor)
            s = service()
            if s is not None:  # this process's answers follow at once (other processes: next request)
                s.consent.set(pseudo, {f: v for f, v in values.items() if v is not None})
        except failures as exc:
            return refused(ctx, exc, user_id)
        now = ", ".join(f"{f} {'given' if v else 'withdrawn'}" for f, v in rec["consent"].items())
        return finish(ctx, page_url(user_id), f"consent of {user_id} recorded: now {now}")

    @router.post("/privacy/export")
    async def access_export(request: Request) -> Any:
        """Everything held about the shopper (`shelfwise privacy export`), as a JSON download."""
        from ..governance._subject_access import write_subject_access
        from ..insights._run import profile_part

        ctx, actor, user_id, _, page = await begin(request, "privacy.export")
        if page is not None:
            return page
        try:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "access.json"
                write_subject_access(
                    workdir, user_id, out, actor=actor,
                    extra={"profile": profile_part(workdir, user_id)}, redis_client=redis_client(),
                )  # fmt: skip
                body = out.read_bytes()
        except failures as exc:
            return refused(ctx, exc, user_id)
        # (an ASCII file name: a header holds Latin-1 only, and the id may be anyone's script)
        safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in user_id)[:64]
        return ctx.finish(
            Response(
                body,
                media_type="application/json",
                headers={
                    "Content-Disposition": f'attachment; filename="access-{safe}.json"',
                    "Cache-Control": "no-store",
                },
            )
        )

    @router.post("/privacy/erase")
    async def erase(request: Request) -> Any:
        """The right to erasure (`shelfwise privacy erase`): confirmed by typing the id again."""
        from ..governance._erase import erase_user

        ctx, actor, user_id, fields, page = await begin(request, "privacy.erase")
        if page is not None:
            return page
        try:
            if fields.get("confirm", "").strip() != user_id:
                raise ShelfwiseError(
                    f"not erased: type the id {user_id!r} again to confirm (it cannot be undone)"
                )
            with _data.warehouse():
                report = erase_user(
                    workdir,
                    user_id,
                    actor=actor,
                    redis_client=redis_client(),
                )
            s = service()
            if s is not None:
                s.refresh()  # this process forgets them now (others at their next refresh)
        except failures as exc:
            return refused(ctx, exc, user_id)
        rows = sum(report["warehouse"].values())
        bundles = sum(1 for n in report["bundles"].values() if n)
        if rows or bundles:
            msg = f"{user_id} erased: {rows} warehouse rows, {bundles} bundle(s) rewritten; audited"
        else:  # a mistyped id holds nothing: said so, not "erased" as if someone's data went
            msg = (
                f"nothing was held under {user_id!r} (check the id); the erasure is registered and "
                "audited: later loads withhold rows of that id dated up to now"
            )
        if report.get("remake"):
            msg += f"; reports removed ({report['remake']})"
        return finish(ctx, page_url(user_id), msg)
