"""What serving applies on top of the models: `rules set|show`, `experiments set|report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = [
    "experiments_app",
    "experiments_report",
    "experiments_set",
    "rules_app",
    "rules_set",
    "rules_show",
    "rules_synonyms",
]

rules_app = typer.Typer(
    help="Business rules applied at serve time (versioned, audited).", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")


@rules_app.command("set")
def rules_set(
    workdir: Workdir,
    file: Annotated[Path, typer.Option("--file", help="A rules JSON file (README: business rules).")],
    as_json: AsJson = False,
) -> None:
    """Validate and install a rules file as the next version (a running server picks it up)."""
    rules = shop(workdir).set_rules(file)
    if as_json:
        print_json(rules)
    else:
        typer.echo(f"rules version {rules['version']} installed ({rules['rules']} merchandising rules)")


@rules_app.command("show")
def rules_show(workdir: Workdir) -> None:
    """Print the rules in force."""
    print_json(shop(workdir).rules())


@rules_app.command("synonyms")
def rules_synonyms(
    workdir: Workdir,
    file: Annotated[
        Path,
        typer.Option("--file", help="A synonyms file: one group per line, `a, b, c` or `a => b, c`."),
    ],
    as_json: AsJson = False,
) -> None:
    """Validate and install search synonyms as the next version of config/synonyms.txt (a
    running server uses them on its next search; no retraining)."""
    got = shop(workdir).set_synonyms(file)
    if as_json:
        print_json(got)
    else:
        typer.echo(f"synonyms version {got['version']} installed ({got['synonyms']} words with synonyms)")


experiments_app = typer.Typer(
    help="A/B experiments: configuration and the online report.", no_args_is_help=True
)
app.add_typer(experiments_app, name="experiments")


@experiments_app.command("set")
def experiments_set(
    workdir: Workdir,
    file: Annotated[Path, typer.Option("--file", help="An experiments JSON file.")],
    end_missing: Annotated[
        bool,
        typer.Option(
            "--end-missing",
            help="End the running experiments the file leaves out (refused without it, naming them).",
        ),
    ] = False,
) -> None:
    """Install the experiments configuration (a running server picks it up; audited). The file
    is the whole configuration: one that leaves out a running experiment needs --end-missing."""
    import warnings

    from ..errors import ShelfwiseError
    from ..serving._experiments import ExperimentsWarning, ended_said, load_experiments

    try:
        before = {e.name: {v.name: v.weight for v in e.variants} for e in load_experiments(workdir)}
    except ShelfwiseError:  # (the file this replaces could not be read: nothing to compare)
        before = {}
    with warnings.catch_warnings():  # (said below, once, as `warning:` lines)
        warnings.simplefilter("ignore", ExperimentsWarning)
        got = shop(workdir).set_experiments(file, end_missing=end_missing, detail=True)
    names = got["experiments"]
    typer.echo(f"{len(names)} experiment(s) installed: {', '.join(names)}")
    if got["ended"]:
        typer.echo(
            f"ended (left out of the file): {ended_said(got['ended'])}; their reports stay readable "
            "(`experiments report --experiment NAME`)"
        )
    for w in got["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    for e in load_experiments(workdir):
        was = before.get(e.name)
        if was is not None and was != {v.name: v.weight for v in e.variants}:
            typer.echo(
                f"warning: experiment {e.name}'s weights changed: the users whose bucket the new split "
                "gives another variant move to it, and the report leaves everyone served by two variants "
                "out (`crossed_users`); a new experiment name compares the new split cleanly",
                err=True,
            )


def _fallback_said(m: dict[str, Any]) -> str:
    """How much of a variant's lists was the popular list, as the text readout says it: the
    lists served by the fallback (`fallback_share`) and the slots the popular fill supplied
    (`filled_slot_share`: a list the model made 2 of 10 slots of is the model's list)."""
    said = "lists served by: " + ", ".join(f"{k} {n:,}" for k, n in m["served_by"].items())
    if m.get("fallback_lists"):
        said += f" ({m['fallback_share']:.1%} the popular fallback: new shoppers, no personalization consent)"
    if m.get("filled_slots"):
        said += (
            f"; {m['filled_slots']:,} of their {m['served_slots']:,} slots ({m['filled_slot_share']:.1%}) "
            "the popular fill (the model had too few products for its shoppers, or the rules thinned them)"
        )
        if m.get("filled_unrecorded_lists"):
            said += f" ({m['filled_unrecorded_lists']:,} list(s) logged before the fill was recorded left out of it)"
    return said + "; counted in the arm all the same"


@experiments_app.command("report")
def experiments_report(
    workdir: Workdir,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    as_json: AsJson = False,
) -> None:
    """Per variant: users, exposures, CTR, add-to-cart rate, conversion, revenue per user (95% CI;
    both net of returns, gross and returns beside the revenue);
    each variant against the control: difference, relative lift, its 95% interval, a verdict."""
    rep = shop(workdir).experiment_report(experiment)
    if as_json:
        print_json(rep)
        return
    typer.echo(rep["protocol"])
    for name, e in rep["experiments"].items():
        typer.echo(f"\nexperiment {name}")
        if e.get("warning"):
            typer.echo(f"  warning: {e['warning']}")
        if e.get("revenue_warning"):
            typer.echo(f"  warning: {e['revenue_warning']}")
        if e.get("robot_users_left_out"):
            typer.echo(
                f"  {e['robot_users_left_out']:,} shopper(s) whose events were quarantined as robot traffic "
                "left out with their lists"
            )
        srm = e.get("sample_ratio")
        if srm and srm["mismatch"]:
            typer.echo(
                f"  warning: sample ratio mismatch (p = {srm['p_value']:.2g}): users per variant "
                + ", ".join(f"{v} {s:.1%}" for v, s in srm["observed_share"].items())
                + " against the configured "
                + ", ".join(f"{v} {s:.1%}" for v, s in srm["expected_share"].items())
                + ": the split is broken; do not compare the variants until it is found"
            )
        for var, m in e["variants"].items():
            typer.echo(
                f"  {var:12s} users {m['users']:6d} exposures {m['exposures']:7d} "
                f"ctr {m['ctr']:.4f} [{m['ctr_ci95'][0]:.4f}, {m['ctr_ci95'][1]:.4f}] "
                # (the protocol line says these intervals are given: only --json gave them)
                f"cart {m['add_to_cart_rate']:.4f} {_ci4(m.get('add_to_cart_ci95'))} "
                f"conv {m['conversion']:.4f} {_ci4(m.get('conversion_ci95'))} "
                + (
                    f"rev/user {m['revenue_per_user']:.2f} "
                    + (
                        f"[{ci[0]:.2f}, {ci[1]:.2f}]"
                        if (ci := m["revenue_per_user_ci95"]) is not None
                        else "[no interval: needs a purchase and two users]"
                    )
                    if m["revenue_per_user"] is not None
                    # (purchases in several currencies: per currency, never one sum)
                    else "rev/user "
                    + ", ".join(
                        f"{c} {x:.2f}" for c, x in (m.get("revenue_per_user_by_currency") or {}).items()
                    )
                )
                + _gross_and_returns(m)
            )
            skipped = m.get("events_not_counted") or {}
            if any(skipped.values()):
                typer.echo(
                    f"  {'':12s} not counted: {skipped['another_user']:,} event(s) of another user, "
                    f"{skipped['before_the_list']:,} dated before the list was served"
                )
            if m.get("fallback_lists") or m.get("filled_slots"):
                # (intent to treat: the arm's users count whatever they got; this says how diluted)
                typer.echo(f"  {'':12s} " + _fallback_said(m))
        _echo_comparisons(e)
    if rep.get("unknown_list_events"):
        typer.echo(
            f"\n{rep['unknown_list_events']:,} event(s) name a list id the exposure log does not hold "
            "(mistyped, or older than the log's retention): counted for no variant"
        )
    if rep.get("pending_events"):
        typer.echo(
            f"\nwarning: {rep['pending_events']:,} acknowledged event(s) are still in the spool, not in "
            "these numbers (`shelfwise events absorb`, or a running server's next absorb)"
        )


def _gross_and_returns(m: dict[str, Any]) -> str:
    """What the net revenue per user was made of, labelled: " net (gross 10.00, returns 6.00)"
    (per currency where the purchases mix currencies); "" for a report without them."""
    if m.get("gross_revenue_per_user") is not None and m.get("returns_per_user") is not None:
        return f" net (gross {m['gross_revenue_per_user']:.2f}, returns {m['returns_per_user']:.2f})"
    gross, back = m.get("gross_revenue_per_user_by_currency"), m.get("returns_per_user_by_currency")
    if not gross:
        return ""
    return (
        " net (gross "
        + ", ".join(f"{c} {x:.2f}" for c, x in gross.items())
        + "; returns "
        + ", ".join(f"{c} {x:.2f}" for c, x in (back or {}).items())
        + ")"
    )


def _ci4(ci: Any) -> str:
    """A rate's 95% interval as the readout prints it, "[lo, hi]"; "[no interval]" without one."""
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci is not None else "[no interval]"


_VERDICT_WORD = {
    "higher": "higher",
    "lower": "lower",
    "inconclusive": "no difference shown (the interval covers 0)",
    "too_little_data": "too little data",
    "no_interval": "no interval",
    "split_broken": "no verdict (split broken)",
}


def _echo_comparisons(e: dict[str, Any]) -> None:
    """Each variant against the control: difference, relative lift, 95% interval, verdict."""
    for var, metrics in (e.get("comparisons") or {}).items():
        typer.echo(f"  {var} vs {e['control']} (difference, 95% interval of the difference, relative lift):")
        for metric, c in metrics.items():
            money = metric == "revenue_per_user"
            fmt = "{:+.2f}" if money else "{:+.4f}"
            ci = c["difference_ci95"]
            typer.echo(
                f"    {metric:18s} {fmt.format(c['difference'])} "
                + (f"[{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci is not None else "[no interval]")
                + (f" lift {c['relative_lift']:+.1%}" if c["relative_lift"] is not None else " lift -")
                + f"  {_VERDICT_WORD.get(c['verdict'], c['verdict'])}"
            )
        said = {
            c["verdict_said"] for c in metrics.values() if c["verdict"] in ("too_little_data", "split_broken")
        }
        for line in sorted(said):
            typer.echo(f"    {line}")
