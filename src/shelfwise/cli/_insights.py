"""Insights for the business (issue 18): `insights customers`, `ask`: thin layers over
`shelfwise.Shop.customers` / `.ask`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import AsJson, Workdir, app, print_report, shop
from ._governance import report_app

__all__ = [
    "ask",
    "customers",
    "demand",
    "insights_app",
    "replenishment",
    "report_ask",
    "report_audiences",
    "report_customers",
    "report_demand",
]

insights_app = typer.Typer(
    help="Insights for the business: customer profiles and churn, demand and replenishment.",
    no_args_is_help=True,
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
    """One profile per user, in the shop's own ids (pseudonyms for a role that may not see them,
    as `audiences export`): recency_days, frequency, monetary, expected_purchases and churn_risk
    in the horizon, expected_value, segment, top categories and brands, price level,
    marketing_consent. Not a contact list: users who withdrew marketing consent are in it.
    Needs only an ingested workdir; the model is fitted on the shop's own history up to --as-of."""
    rep = shop(workdir).customers(out, as_of=as_of, horizon_days=horizon_days)
    typer.echo(
        f"wrote {rep['users']:,} customer profiles to {out} (as of {rep['as_of']}, horizon {horizon_days} d, "
        f"model {rep['model']['model']}; lineage run {rep['lineage_run_id']})"
    )
    if rep["model"].get("note"):
        typer.echo(f"  model: {rep['model']['note']}")
    if rep.get("monetary_source"):
        typer.echo(f"  monetary (total paid) from: {rep['monetary_source']}")
    if rep.get("pseudonymized"):
        typer.echo(f"  users named by pseudonyms: your role may not see shop ids ({rep['pseudonymized']:,})")
    if rep["left_out"]:
        typer.echo(f"  {rep['left_out']:,} users left out: their shop ids are no longer held (retention)")
    if rep.get("marketing_opt_outs"):
        typer.echo(
            f"  {rep['marketing_opt_outs']:,} users without marketing consent (marketing_consent false: withdrawn, or never given under an opt-in default): "
            "not a contact list - contact through `shelfwise audiences export`"
        )


_AS_OF_HELP = (
    "Use only events up to this ISO date (the whole day) or date-time, UTC (default: the latest event; "
    "for demand and replenishment its whole day when the events carry dates without a time)."
)


@insights_app.command("demand")
def demand(
    workdir: Workdir,
    out: Annotated[
        Path,
        typer.Option("--out", help="FILE.jsonl or FILE.csv: one line per product (or category) and week."),
    ],
    as_of: Annotated[str | None, typer.Option("--as-of", help=_AS_OF_HELP)] = None,
    horizon_weeks: Annotated[
        int, typer.Option("--horizon-weeks", min=1, max=104, help="Weeks to forecast.")
    ] = 13,
    level: Annotated[
        str, typer.Option("--level", help="product or category: what each series sums.")
    ] = "product",
) -> None:
    """Weekly demand forecasts: units bought per week (Monday week_start) with an 80% interval
    (lo, hi), per product or category, after the last complete week up to --as-of. Models chosen
    per series by time-series cross-validation (statsforecast); stock-out weeks estimated from
    search and browsing demand. Needs only an ingested workdir."""
    rep = shop(workdir).demand(out, as_of=as_of, horizon_weeks=horizon_weeks, level=level)
    m = rep["model"]
    chosen = ", ".join(f"{k} {v}" for k, v in sorted(m["chosen"].items(), key=lambda kv: -kv[1]))
    typer.echo(
        f"wrote {rep['rows']:,} weekly forecasts for {rep['series']:,} {level} series to {out} "
        f"(as of {rep['as_of']}, history to the week of {m['last_week']}, "
        + (f"season {m['season_length']} weeks" if m["season_length"] > 1 else "no seasonal cycle")
        + f", {m['censored_weeks']} stock-out weeks estimated; lineage run {rep['lineage_run_id']})"
    )
    typer.echo(f"  models chosen by cross-validation: {chosen}")
    typer.echo(f"  {_catalog_line(m)}")
    if m.get("coherence"):
        typer.echo(f"  {m['coherence']}")
    if m.get("no_sale_days") or m.get("returned_units"):
        typer.echo(
            f"  {m.get('no_sale_days', 0):,} product-days recorded as no sale (read as observed zeros); "
            f"{m.get('returned_units', 0):g} units returned (not subtracted: the units bought are the demand)"
        )
    if m.get("free_text_searches"):
        typer.echo(f"  {_searches_line(m['free_text_searches'])}")
    for c in m.get("calibration", []):
        raw, after, oos = (
            c.get("held_out_coverage_raw"),
            c.get("held_out_coverage"),
            c.get("out_of_sample_coverage"),
        )
        held = (
            f"{raw:.0%} of {c['held_out_errors']:,} held-out weeks inside before"
            + (f", {after:.0%} after on the window the factor was learned from" if after is not None else "")
            + (
                f", {oos:.0%} with the factor learned one window earlier (out of sample)"
                if oos is not None
                else ""
            )
            + ("; the factor hit its bound" if c.get("capped") else "")
            if raw is not None
            else "no held-out window"
        )
        growth = c.get("horizon_growth") or 0.0
        wider = f"; width grows as h^{growth:g} with the week ahead h, as the CV errors did" if growth else ""
        typer.echo(
            f"  80% intervals ({c['group']}, {c['series']:,} series): x{c['factor']:g} ({held}){wider}"
        )
        mae = c.get("held_out_mae")
        if mae:  # the forecast as served against the baselines, on a window its choice never saw
            others = ", ".join(f"{k} {v:g}" for k, v in mae.items() if k != "served")
            worse = [k for k, v in mae.items() if k != "served" and v < mae["served"]]
            typer.echo(
                f"    held out (the last CV window, models chosen on the earlier ones): MAE {mae['served']:g} "
                f"as served vs {others}" + (f"; a baseline did better: {', '.join(worse)}" if worse else "")
            )
            if c.get("served_baseline"):  # (the MAE "as served" above is the models')
                typer.echo(
                    f"    served instead of the models for this group: {c['served_baseline']} "
                    "(each series' mean of its last 13 weeks, with its own interval)"
                )


def _searches_line(f: dict) -> str:
    """How many free-text searches (no product_id) were resolved to the product they name."""
    if not f["searches"]:
        return "free-text searches: none (every search event names a product, or there is none)"
    n = f["products"]
    by = f["resolved_by"] or "nothing (no catalog names)"
    if f.get("bundle"):
        by += f" of bundle {f['bundle']}"
    return (
        f"free-text searches: {f['resolved_searches']:,} of {f['searches']:,} resolved to {n:,} "
        f"product{'' if n == 1 else 's'} ({f['resolved_queries']:,} of {f['distinct_queries']:,} distinct "
        f"queries name one; {f.get('in_censored_weeks', 0):,} in stock-out weeks; by {by}, {f['seconds']:g} s)"
    )


def _catalog_line(m: dict) -> str:
    """Which catalog version gave the stock figures (read as of --as-of, never carried back)."""
    if not m.get("stock_known", True):
        return f"stock figures: none ({m.get('stock_reason') or 'no products version ingested by as-of'})"
    if m.get("catalog_version") is None:
        return "stock figures: the current catalog"
    return f"stock figures: products version {m['catalog_version']} (ingested {m['catalog_ingested_at']})"


@insights_app.command("replenishment")
def replenishment(
    workdir: Workdir,
    out: Annotated[Path, typer.Option("--out", help="FILE.jsonl or FILE.csv: one suggestion per product.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help=_AS_OF_HELP)] = None,
    service_level: Annotated[
        float,
        typer.Option(
            "--service-level",
            min=0.5,
            max=0.999,
            help="Probability of no stock-out before the next delivery.",
        ),
    ] = 0.95,
    review_days: Annotated[
        float, typer.Option("--review-days", min=0, max=365, help="Days between two stock reviews.")
    ] = 7.0,
) -> None:
    """Reorder suggestions per product from the demand forecast, the catalog's stock and
    lead_time_days: demand over lead time + review period, safety stock for the service level,
    reorder point, order quantity and the reason."""
    rep = shop(workdir).replenishment(out, as_of=as_of, service_level=service_level, review_days=review_days)
    typer.echo(
        f"wrote {rep['products']:,} reorder suggestions to {out} ({rep['to_order']:,} to order; as of "
        f"{rep['as_of']}, service level {service_level:.1%}; lineage run {rep['lineage_run_id']})"
    )
    typer.echo(f"  {_catalog_line(rep['model'])}")
    if rep.get("protection_from") and rep["protection_from"] != rep["as_of"]:
        typer.echo(
            f"  protection periods start at {rep['protection_from']}, when the stock figures were "
            "delivered (after as-of: the days between are over)"
        )
    for c in rep["model"].get("calibration", []):
        after = c.get("held_out_coverage")
        if c.get("capped") or (after is not None and after < 0.8):
            typer.echo(
                f"  warning: 80% intervals ({c['group']}, {c['series']:,} series): x{c['factor']:g}"
                + ("; the factor hit its bound" if c.get("capped") else "")
                + (f", {after:.0%} of held-out weeks inside" if after is not None else "")
                + ": those products' safety stocks rest on a band under 80% (interval_warning)"
            )
    if rep.get("interval_warnings"):
        typer.echo(f"  {rep['interval_warnings']:,} suggestions carry an interval_warning")
    if rep["left_out"].get("reason"):
        typer.echo(f"  warning: {rep['left_out']['reason']}", err=True)


@report_app.command("demand")
def report_demand(
    workdir: Workdir,
    as_of: Annotated[str | None, typer.Option("--as-of", help=_AS_OF_HELP)] = None,
    horizon_weeks: Annotated[
        int, typer.Option("--horizon-weeks", min=1, max=104, help="Weeks of forecast shown.")
    ] = 13,
    service_level: Annotated[
        float, typer.Option("--service-level", min=0.5, max=0.999, help="For the reorder suggestions.")
    ] = 0.95,
    review_days: Annotated[
        float, typer.Option("--review-days", min=0, max=365, help="Days between two stock reviews.")
    ] = 7.0,
    level: Annotated[
        str,
        typer.Option(
            "--level", help="product or category: what each series sums (reorders are per product)."
        ),
    ] = "product",
    as_json: AsJson = False,
) -> None:
    """Demand and replenishment: weekly units and forecasts with 80% intervals (all products and
    the largest sellers), stock-out weeks, reorder suggestions: reports/demand.html and .json;
    --level category: the largest categories, no reorders, reports/demand-category.html and .json."""
    doc = shop(workdir).demand_report(
        as_of=as_of,
        horizon_weeks=horizon_weeks,
        service_level=service_level,
        review_days=review_days,
        level=level,
    )
    print_report(doc, "demand report", as_json)


@report_app.command("customers")
def report_customers(
    workdir: Workdir,
    as_of: Annotated[str | None, typer.Option("--as-of", help=_AS_OF_HELP)] = None,
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, max=3650, help="The churn / expected-purchases horizon.")
    ] = 90,
    as_json: AsJson = False,
) -> None:
    """Customers: segments, churn risk distribution, the customers most at risk (pseudonyms
    only; no profiling without consent), audiences, and the churn model's held-out evaluation
    beside BG/NBD: reports/customers.html and .json."""
    doc = shop(workdir).customers_report(as_of=as_of, horizon_days=horizon_days)
    e = doc.get("evaluation") or {}
    print_report(doc, "customers report", as_json)
    if not as_json and e.get("computable"):
        sw, base = e["shelfwise"], e.get("baselines") or {}
        ci = sw.get("churn_auc_ci95")
        typer.echo(
            f"  churn model held out: AUC {sw['churn_auc']}"
            + (f" (95% {ci[0]}-{ci[1]})" if ci else "")
            + (f", recency alone {base['recency']['churn_auc']}" if base else "")
            + (
                f"; skill: {e['skill']}: do not act on its churn risks"
                if e.get("skill", "ok") != "ok"
                else ""
            )
        )


@report_app.command("ask")
def report_ask(
    workdir: Workdir,
    questions: Annotated[
        Path | None,
        typer.Option(
            "--questions",
            help="Labeled questions to evaluate on: CSV question_id,question,faq_id (an empty faq_id "
            "where no entry answers).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Customer-service answers: the FAQ, and with --questions the matcher's accuracy (abstentions
    included) beside bm25s's with its best threshold: reports/ask.html and .json."""
    doc = shop(workdir).ask_report(questions)
    warning = (doc.get("evaluation") or {}).get("warning")
    print_report(doc, "ask report", as_json)
    if warning and not as_json:
        typer.echo(f"warning: {warning}", err=True)


@report_app.command("audiences")
def report_audiences(workdir: Workdir, as_json: AsJson = False) -> None:
    """Marketing audiences: size now, offline lift with its interval, lineage:
    reports/audiences.html and .json."""
    doc = shop(workdir).audiences_report()
    print_report(doc, "audiences report", as_json)


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
    the_shop = shop(workdir)
    the_shop.authorize("ask")  # who may not ask is refused before the file is read
    _check_questions(questions)
    rep = the_shop.ask(questions, out)
    refused = rep.get("refused", [])
    # each refused row said with its reason (the file is answered; its line has "refused")
    for r in refused:
        typer.echo(f"warning: {questions}: question_id {r['question_id']!r} refused: {r['reason']}", err=True)
    if rep.get("duplicate_question_ids"):
        dup = rep["duplicate_question_ids"]
        shown = ", ".join(repr(d) for d in dup[:10]) + (f" and {len(dup) - 10} more" if len(dup) > 10 else "")
        typer.echo(
            f"warning: {questions}: question_id given more than once: {shown} (their answers share the id)",
            err=True,
        )
    typer.echo(
        f"wrote {rep['questions']:,} answers to {out} ({rep['answered']:,} answered from the FAQ, "
        f"{rep['questions'] - rep['answered'] - len(refused):,} left unanswered"
        + (f", {len(refused):,} refused" if refused else "")
        + f"; lineage run {rep['lineage_run_id']})"
    )


def _check_questions(path: Path) -> None:
    """A questions file with no question (empty, blank lines, or a header alone) is an error
    naming the file, as an empty file of users or queries is: there is nothing to answer (the
    reader's own checks, read before the workdir's)."""
    from ..insights._run import read_questions

    read_questions(path)


app.add_typer(insights_app, name="insights")
app.command("ask")(ask)
