"""`models list|gates|approve|promote|rollback`: the gated model registry."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = ["models_app", "models_approve", "models_gates", "models_list", "models_promote", "models_rollback"]

models_app = typer.Typer(
    help="The gated model registry (MLflow aliases candidate / production).", no_args_is_help=True
)
app.add_typer(models_app, name="models")
Version = Annotated[str | None, typer.Option(help="Registry version (default: the candidate).")]


@models_app.command("list")
def models_list(workdir: Workdir, as_json: AsJson = False) -> None:
    """Every registered bundle version with its aliases, headline metric, gates and approvals."""
    rows = shop(workdir).versions()
    if as_json:
        print_json(rows)
        return
    for r in rows:
        review = [g["name"] for g in r["gates"] if g.get("review")]
        if not all(g["passed"] for g in r["gates"]):
            gates = "gates failing: " + ", ".join(g["name"] for g in r["gates"] if not g["passed"])
        else:
            gates = "all gates pass" if not review else "gates pass"
        if review:  # (production's number is of another protocol: nothing measured it)
            gates += "; for the approver (not comparable): " + ", ".join(review)
        if r.get("bundle_gone"):  # (retention removed its folder: it can never go live)
            gates += "; bundle removed"
        ndcg = "ndcg@10 -" if r["ndcg@10"] is None else f"ndcg@10 {r['ndcg@10']:.4f}"
        if r.get("gate_metric") and r["gate_metric"] != "ndcg@10":  # (a catalog with product groups)
            got = r.get("gate_score")
            ndcg += f", {r['gate_metric']} {'-' if got is None else f'{got:.4f}'} (gated on)"
        withdrawn = r.get("approval_withdrawn")  # (a version rolled back: its approver, withdrawn)
        approved = r["approved_by"] or (f"- (withdrawn: {withdrawn})" if withdrawn else "-")
        typer.echo(
            f"v{r['version']:<4} {r['bundle']} {','.join(r['aliases']) or r['status']:<12} {r['default_model']:<12} "
            f"{ndcg} [{r.get('measured_as') or 'protocol unknown'}]  {gates}  approved by {approved}"
        )


@models_app.command("gates")
def models_gates(workdir: Workdir, version: Version = None, as_json: AsJson = False) -> None:
    """Evaluate the promotion gates of a version (default: the candidate, else production)."""
    res = shop(workdir).gates(version)
    if as_json:
        print_json(res)
        return
    if res.get("metric") and res["metric"] != "ndcg@10":  # (a catalog with product groups)
        typer.echo(f"gated on {res['metric']}: the test metric that chose the default model")
    for g in res["gates"]:
        typer.echo(f"{'PASS' if g['passed'] else 'FAIL'}  {g['name']:<28} {g['detail']}")


@models_app.command("approve")
def models_approve(workdir: Workdir, version: Version = None) -> None:
    """Sign off a version for production (an approving role; not the person who trained it)."""
    res = shop(workdir).approve(version)
    typer.echo(f"version {res['version']} approved by {res['approved_by']}")


@models_app.command("promote")
def models_promote(workdir: Workdir, version: Version = None, as_json: AsJson = False) -> None:
    """Put a version live: its gates must pass and it must be approved; serving follows."""
    res = shop(workdir).promote(version)
    if as_json:
        print_json(res)
    else:
        typer.echo(f"version {res['version']} is production; bundles/CURRENT moved, servers follow")


@models_app.command("rollback")
def models_rollback(workdir: Workdir) -> None:
    """Production goes back to the version it replaced."""
    v = shop(workdir).rollback()
    typer.echo(f"version {v} is production again")
