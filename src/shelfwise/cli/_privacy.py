"""Personal data and how long data is kept: `privacy erase`, `retention enforce`."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = ["privacy_app", "privacy_erase", "retention_app", "retention_enforce"]

privacy_app = typer.Typer(help="Personal data: the right to erasure.", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")


@privacy_app.command("erase")
def privacy_erase(
    workdir: Workdir,
    user: Annotated[str, typer.Option("--user", help="The shop's own id of the user to erase.")],
    redis_url: Annotated[
        str | None, typer.Option(help="Also forget the user's online state in this Redis.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Remove a user from raw, curated, quarantine, spool and every bundle (no retrain); audited."""
    rep = shop(workdir).erase(user, redis_url=redis_url)
    if as_json:
        print_json(rep)
        return
    typer.echo(f"erased {rep['pseudonym']} (lineage run {rep['lineage_run_id']})")
    for group in ("warehouse", "files", "bundles"):
        for name, n in rep[group].items():
            if n:
                typer.echo(f"  {group:<9} {name:<40} {n:>7,} rows")
    typer.echo(f"note: {rep['not_covered']}")


retention_app = typer.Typer(help="How long data is kept (config/retention.json).", no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@retention_app.command("enforce")
def retention_enforce(workdir: Workdir, as_json: AsJson = False) -> None:
    """Delete what is older than the retention periods (events, quarantine, served log, bundles)."""
    rep = shop(workdir).enforce_retention()
    if as_json:
        print_json(rep)
        return
    typer.echo("policy: " + ", ".join(f"{k}={v}" for k, v in rep["policy"].items()))
    for name, n in rep["deleted"].items():
        typer.echo(f"  {name:<32} {n:>9,} deleted")
