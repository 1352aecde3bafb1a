"""The console's insights page (`/console/insights`, issue 18.5): customers (segments, churn
risk, the churn model's held-out evaluation), demand, reorder suggestions and marketing audiences.

Customers and demand are read from reports/customers.json and reports/demand.json as `shelfwise
report customers` / `report demand` last wrote them (fitting takes tens of seconds: not inside a
request); audiences are listed live (their summaries are small files). Each part needs its own
permission: a role that may not see one sees why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["add_insights_routes"]


def add_insights_routes(router: APIRouter, workdir: Path, guard: Callable[..., Any]) -> None:
    """Register the page on the console's router (`guard`: the console's page wrapper)."""

    @router.get("/insights", response_class=HTMLResponse)
    @guard
    def insights(ctx: Any) -> Any:
        from ..insights._reports import DEMAND_REPORT, read_report

        ctx.need("catalog.read")
        customers: dict[str, Any] | None = None
        customers_reason = ""
        if ctx.user.may("insights.customers"):  # the CLI's permission for customer insights
            from ..insights._customers_report import CUSTOMERS_REPORT

            customers = read_report(workdir, CUSTOMERS_REPORT)
            if customers is None:
                customers_reason = "no customers report yet: run `shelfwise report customers`"
        else:
            customers_reason = f"the role {ctx.user.role} may not read customer insights"
        demand: dict[str, Any] | None = None
        demand_reason = ""
        if ctx.user.may("insights.demand"):
            demand = read_report(workdir, DEMAND_REPORT)
            if demand is None:
                demand_reason = "no demand report yet: run `shelfwise report demand`"
        else:
            demand_reason = f"the role {ctx.user.role} may not read demand forecasts"
        audiences: list[dict[str, Any]] | None = None
        if ctx.user.may("audiences.read"):
            from ..insights._audiences import list_audiences

            audiences = list_audiences(workdir)
        return ctx.render(
            "insights.html",
            customers=customers,
            customers_reason=customers_reason,
            demand=demand,
            demand_reason=demand_reason,
            audiences=audiences,
        )

    @router.get("/insights/demand-report", response_class=HTMLResponse)
    @guard
    def demand_report(ctx: Any) -> Any:
        """The demand report as `shelfwise report demand` wrote it (reports/demand.html: every
        series with its history, forecast and interval; the page shows the largest sellers)."""
        from ..insights._reports import DEMAND_REPORT, REPORTS_DIR
        from ._auth import Denied

        ctx.need("insights.demand")
        page = workdir / REPORTS_DIR / f"{DEMAND_REPORT}.html"
        if not page.is_file():
            raise Denied(404, "no demand report yet: run `shelfwise report demand`")
        return ctx.finish(HTMLResponse(page.read_text(encoding="utf-8")))
