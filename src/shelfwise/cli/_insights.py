"""Insights for the business (issue 18): `insights customers`, `ask`: thin layers over
`shelfwise.Shop.customers` / `.ask`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import Workdir, app, shop

__all__ = ["ask", "customers", "insights_app"]

insights_app = typer.Typer(
    help="Insights for the business: customer profiles and churn.", no_args_is_help=True
)


@insights_app.command("customers")
def customers(
    workdir: Workdir,
    out: Annotated[Path, typer.Option("--out", help="FILE.jsonl or FILE.csv: one profile per user.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Use only events up to this ISO date (the whole day) or date-time, UTC "
            "(default: the latest event).",
        ),
    ] = None,
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, max=3650, help="The churn / expected-purchases horizon.")
    ] = 90,
) -> None:
    """One profile per user, in the shop's own ids: recency_days, frequency, monetary,
    expected_purchases and churn_risk in the horizon, expected_value, segment, top categories and
    brands, price level. Needs only an ingested workdir; the model is fitted on the shop's own
    history up to --as-of."""
    rep = shop(workdir).customers(out, as_of=as_of, horizon_days=horizon_days)
    typer.echo(
        f"wrote {rep['users']:,} customer profiles to {out} (as of {rep['as_of']}, horizon {horizon_days} d, "
        f"model {rep['model']['model']}; lineage run {rep['lineage_run_id']})"
    )
    if rep["left_out"]:
        typer.echo(f"  {rep['left_out']:,} users left out: their shop ids are no longer held (retention)")


def ask(
    workdir: Workdir,
    questions: Annotated[
        Path, typer.Option("--questions", help="CSV with question_id,question (or JSON lines).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help='FILE.jsonl: {"question_id", "faq_id"|null, "answer", "score", "products"}.'
        ),
    ],
) -> None:
    """Answer shoppers' questions from the shop's FAQ (the faq table): semantic + lexical,
    multilingual; no answer (faq_id null) when no entry answers the question."""
    rep = shop(workdir).ask(questions, out)
    typer.echo(
        f"wrote {rep['questions']:,} answers to {out} ({rep['answered']:,} answered from the FAQ, "
        f"{rep['questions'] - rep['answered']:,} left unanswered; lineage run {rep['lineage_run_id']})"
    )


app.add_typer(insights_app, name="insights")
app.command("ask")(ask)
