"""Marketing audiences (issue 18): `audiences build | list | export`, thin layers over
`shelfwise.Shop.build_audience` / `.audiences` / `.export_audience`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = ["audiences_app", "build", "export", "list_"]

audiences_app = typer.Typer(
    help="Marketing audiences from rules over customer profiles or from the trained models.",
    no_args_is_help=True,
)


@audiences_app.command("build")
def build(
    workdir: Workdir,
    name: Annotated[
        str | None, typer.Option("--name", help="The audience's name (letters, digits, . _ -).")
    ] = None,
    rule: Annotated[
        str | None,
        typer.Option(
            "--rule",
            help="A rule over the customer profile, e.g. \"churn_risk > 0.6 and segment == 'loyal'\" "
            "(fields: recency_days, frequency, monetary, expected_purchases, churn_risk, expected_value, "
            "segment, price_level, and 'X' in top_categories / top_brands / viewed_categories (viewed, "
            "clicked or carted in the last 30 days) / bought_categories; e.g. \"'Bikes' in "
            "viewed_categories and 'Bikes' not in bought_categories\").",
        ),
    ] = None,
    products: Annotated[
        list[str] | None,
        typer.Option(
            "--product",
            help="Users most likely to buy this product (repeatable, or comma-separated): needs a trained bundle.",
        ),
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(
            "--category",
            help="Users most likely to buy in this category (or below it): needs a trained bundle.",
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="A TOML or JSON audience spec (flags given here override it)."),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option("--days", min=1, max=3650, help="The horizon: 'in the next N days' (default 30)."),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            min=1,
            help="How many users: a model audience's top ranked (default: the top 10%), a rule "
            "audience's best by expected value (default: every match).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model audiences: the bundle's model (default: its default model)."),
    ] = None,
    min_size: Annotated[
        int | None,
        typer.Option("--min-size", min=1, help="Refuse an audience smaller than this (default 50)."),
    ] = None,
    horizon_days: Annotated[
        int | None,
        typer.Option(
            "--horizon-days", min=1, max=3650, help="Rule audiences: the profile's horizon (default 90)."
        ),
    ] = None,
    no_lift: Annotated[bool, typer.Option("--no-lift", help="Skip the offline lift estimate.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Rebuild an audience that exists.")] = False,
    as_json: AsJson = False,
) -> None:
    """Build and store an audience (with lineage to the data and model versions) and estimate its
    lift offline: the same audience built --days before the latest event, its conversion in the
    --days after, against the base rate."""
    fields: dict[str, Any] = {
        "name": name,
        "rule": rule,
        "products": [p.strip() for v in products or [] for p in v.split(",") if p.strip()] or None,
        "category": category,
        "days": days,
        "size": size,
        "model": model,
        "min_size": min_size,
        "horizon_days": horizon_days,
        "lift": False if no_lift else None,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if spec is None and "name" not in given:
        raise typer.BadParameter("give --name (or a --spec file with a name)", param_hint="--name")
    rep = shop(workdir).build_audience(spec, replace=replace, **given)
    if as_json:
        print_json(rep)
        return
    lift = rep.get("lift") or {}
    typer.echo(
        f"audience {rep['name']}: {rep['size']:,} users ({rep['kind']}; lineage run {rep['lineage_run_id']})"
    )
    if lift.get("lift") is not None:
        typer.echo(
            f"  lift {lift['lift']} (95% {lift['lift_ci95'][0]}-{lift['lift_ci95'][1]}): conversion "
            f"{lift['audience_rate']:.1%} vs base {lift['base_rate']:.1%} in the {lift['days']} days after "
            f"{lift['as_of'][:10]} ({lift['converts_on']})"
        )
        if lift.get("note"):
            typer.echo(f"  ({lift['note']})")
        if lift.get("churn_auc") is not None:
            lo, hi = lift["churn_auc_ci95"]
            typer.echo(f"  churn_risk's held-out AUC {lift['churn_auc']} (95% {lo}-{hi}) over the same days")
        if lift.get("churn_note"):
            typer.echo(f"  warning: {lift['churn_note']}", err=True)
    elif lift:
        typer.echo(f"  lift: {lift.get('note', 'not measured')}")
    if rep.get("note"):  # (a model that cannot tell the users at the cut apart)
        typer.echo(f"  note: {rep['note']}")


@audiences_app.command("list")
def list_(workdir: Workdir, as_json: AsJson = False) -> None:
    """The stored audiences: kind, definition, size (now, after any erasure), lift, versions."""
    rows = shop(workdir).audiences()
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no audiences yet (shelfwise audiences build)")
    for a in rows:
        what = a["rule"] or (
            f"products {','.join(a['products'])}" if a["products"] else f"category {a['category']}"
        )
        lift = f", lift {a['lift']} {a['lift_ci95']}" if a["lift"] is not None else ""
        model = f", model {a['model']} of bundle {a['bundle_version']}" if a["bundle_version"] else ""
        typer.echo(
            f"{a['name']}: {a['size']:,} users, {a['kind']} ({what}){lift}{model}, built {a['created_at'][:19]}"
        )


@audiences_app.command("export")
def export(
    workdir: Workdir,
    name: Annotated[str, typer.Option("--name", help="The audience to export.")],
    out: Annotated[Path, typer.Option("--out", help="FILE.csv or FILE.jsonl: user_id, score.")],
    pseudonyms: Annotated[
        bool,
        typer.Option("--pseudonyms", help="Write the warehouse's pseudonyms even when you may see shop ids."),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Export an audience for a campaign: the shop's own user ids for roles allowed to see them,
    the warehouse's pseudonyms otherwise; refused below the audience's minimum size. Audited."""
    rep = shop(workdir).export_audience(name, out, pseudonyms=pseudonyms)
    if as_json:
        print_json(rep)
        return
    typer.echo(
        f"wrote {rep['rows']:,} users of audience {name} to {out} ({rep['ids']} ids; lineage run {rep['lineage_run_id']})"
    )


app.add_typer(audiences_app, name="audiences")
