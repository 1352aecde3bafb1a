"""Insights for the business (issue 18): `insights customers`, `ask`. The commands live in
`shelfwise.insights._cli`; this module registers them on the app."""

from __future__ import annotations

from ..insights._cli import ask, insights_app
from ._app import app

__all__ = ["ask", "insights_app"]

app.add_typer(insights_app, name="insights")
app.command("ask")(ask)
