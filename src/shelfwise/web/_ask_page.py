"""The console's ask page (`/console/ask?q=...`, issue 18.4-5): a shopper's question answered as
`shelfwise ask` and `POST /v1/ask` answer it, with the FAQ entries that came closest and their
scores, the abstention threshold, the products attached, and the matcher's evaluation as
`shelfwise report ask --questions FILE` last measured it (reports/ask.json; evaluating takes
seconds to minutes: not inside a request).

Through the public API (`shelfwise.insights.answer_question`): the `ask` permission checked
(a refusal audited), the answer audited with the person as actor. A plain GET form: the page
works without JavaScript and an answer has an address (`?q=`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["add_ask_routes"]


def add_ask_routes(router: APIRouter, workdir: Path, guard: Callable[..., Any]) -> None:
    """Register the page on the console's router (`guard`: the console's page wrapper)."""

    @router.get("/ask", response_class=HTMLResponse)
    @guard
    def ask(ctx: Any, q: str = "") -> Any:
        from ..errors import ShelfwiseError
        from ..insights import answer_question
        from ..insights._ask import ASK_REPORT
        from ..insights._reports import read_report

        user = ctx.need("ask")
        got: dict[str, Any] | None = None
        problem = ""
        # (not cut to a length: a question too long is refused, saying why, as every door does)
        question = q.strip()
        if question:
            try:
                got = answer_question(
                    workdir, question, actor=None if user.single_user else user.name, via="console"
                )
            except ShelfwiseError as exc:  # no FAQ yet: the page says so
                problem = str(exc)
        report = read_report(workdir, ASK_REPORT)
        return ctx.render("ask.html", q=question, got=got, problem=problem, report=report)
