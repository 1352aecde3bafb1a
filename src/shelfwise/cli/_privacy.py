"""Personal data and how long data is kept: `privacy erase|consent|export`, `retention enforce`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = [
    "privacy_app",
    "privacy_consent",
    "privacy_erase",
    "privacy_export",
    "retention_app",
    "retention_enforce",
]

privacy_app = typer.Typer(
    help="Personal data: erasure, consent and the right of access.", no_args_is_help=True
)
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
                unit = (
                    "files" if (group, name) in (("files", "reports"), ("files", "state/console")) else "rows"
                )
                typer.echo(f"  {group:<9} {name:<40} {n:>7,} {unit}")
    if rep.get("reports_removed"):
        typer.echo(f"note: removed {', '.join(rep['reports_removed'])}: {rep['remake']}")
    say_compacted(rep.get("warehouse_compacted"))
    if rep.get("nothing_held"):
        typer.echo(f"warning: {rep['nothing_held']}")
    typer.echo(f"note: {rep['not_covered']}")


def say_compacted(done: dict | None) -> None:
    """The warehouse's rewrite after rows left it (`storage._warehouse.compact_warehouse`)."""
    if not done:
        return
    if "skipped" in done:
        typer.echo(
            f"warning: the warehouse file was not rewritten: {done['skipped']}; the deleted rows' bytes may "
            "remain in its freed blocks until the next erasure or `shelfwise retention enforce` rewrites it "
            "(the rewrite is owed: governance/compact_owed.json)",
            err=True,
        )
    else:
        mb = 1024 * 1024
        typer.echo(
            f"  warehouse rewritten without the deleted rows' bytes ({done['before_bytes'] / mb:,.1f} MB -> "
            f"{done['after_bytes'] / mb:,.1f} MB)"
        )


class YesNo(StrEnum):
    yes = "yes"
    no = "no"


@privacy_app.command("consent")
def privacy_consent(
    workdir: Workdir,
    user: Annotated[str, typer.Option("--user", help="The shop's own id of the user.")],
    personalization: Annotated[
        YesNo | None, typer.Option(help="Personalized recommendations and search.")
    ] = None,
    marketing: Annotated[YesNo | None, typer.Option(help="Being in audience exports.")] = None,
    source: Annotated[str, typer.Option(help="Where the consent was given (recorded).")] = "cli",
    redis_url: Annotated[
        str | None, typer.Option(help="Also tell the servers sharing this Redis at once.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Record a user's consent (versioned in the consent register, audited); without a flag, show
    the current consent and its history. Servers obey it from the user's next request on."""
    s = shop(workdir)
    if personalization is None and marketing is None:
        rep = s.consent(user)
    else:
        rep = s.set_consent(
            user,
            personalization=None if personalization is None else personalization is YesNo.yes,
            marketing=None if marketing is None else marketing is YesNo.yes,
            source=source,
            redis_url=redis_url,
        )
    if as_json:
        print_json(rep)
        return
    typer.echo(", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in rep["consent"].items()))
    if rep.get("known") is False:
        like = rep.get("did_you_mean")
        hint = (
            f"; did you mean {' or '.join(repr(u) for u in like)}? (ids are case-sensitive)" if like else ""
        )
        typer.echo(
            f"warning: no user {user!r} in the warehouse (recorded anyway, for a customer yet to come){hint}",
            err=True,
        )
    if rep.get("note"):  # (an erased user: the flags are the shop's defaults)
        typer.echo(rep["note"])
    if rep.get("reports_removed"):
        typer.echo(
            f"removed {', '.join(rep['reports_removed'])}: they named the user "
            "(`shelfwise report customers` makes it again without them)"
        )
    for r in rep.get("history", []):
        if "erased" in r:
            typer.echo(f"  {r['erased']}  erased")
        else:
            typer.echo(
                f"  {r['at']}  {r['flag']:<16} {'yes' if r['value'] else 'no':<4} {r['source']} ({r['by']})"
            )


@privacy_app.command("export")
def privacy_export(
    workdir: Workdir,
    user: Annotated[str, typer.Option("--user", help="The shop's own id of the user.")],
    out: Annotated[Path, typer.Option("--out", help="The JSON file to write (owner-only).")],
    redis_url: Annotated[
        str | None,
        typer.Option(help="Also what this Redis holds (served events not yet absorbed, online state)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The right of access: everything held about a user, each part with its lineage, as JSON."""
    rep = shop(workdir).access_export(user, out, redis_url=redis_url)
    if as_json:
        print_json(rep)
        return
    typer.echo(f"wrote {rep['out']} ({rep['pseudonym']})")
    erased_at = rep["erased_at"]
    for name, n in rep["parts"].items():
        if name == "erasure":  # a register entry, no rows: whether and when the user was erased
            typer.echo(f"  {name:<48} " + (f"erased at {erased_at} UTC" if erased_at else "not erased"))
        else:
            typer.echo(f"  {name:<48} {n:>7,} rows")


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
    say_compacted(rep.get("warehouse_compacted"))
