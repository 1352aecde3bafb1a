"""What the team reads about the shop: `audit`, `lineage`, `catalog`, `report governance|search`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._app import AsJson, Workdir, app, print_json, print_report, shop

__all__ = ["audit", "catalog_cmd", "lineage", "report_app", "report_governance", "report_search"]


@app.command()
def audit(
    workdir: Workdir,
    as_json: AsJson = False,
    limit: Annotated[int, typer.Option(help="Entries to list (newest).")] = 50,
    anchor: Annotated[
        str | None,
        typer.Option(
            help="SEQ:HASH of an entry recorded outside the workdir before (the `head` this command "
            "prints): the log must still hold it (a log rewritten whole passes its chain, not this)."
        ),
    ] = None,
) -> None:
    """List the audit trail and verify its hash chain (exit status 1 when it was tampered with)."""
    from ..errors import ShelfwiseError
    from ..governance._audit import AUDIT_FILE

    anchored: tuple[int, str] | None = None
    if anchor is not None:
        seq, _, want = anchor.partition(":")
        if not seq.strip().isdigit() or len(want.strip()) != 64:
            raise ShelfwiseError(f"--anchor {anchor!r}: SEQ:HASH, as `shelfwise audit` prints the head")
        anchored = (int(seq), want.strip())
    sh = shop(workdir)
    # an ingest run committed without its audit entry (killed right after its commit) gets it now
    recovery = sh.recover_audit()
    if recovery["recovered"]:
        typer.echo(
            f"audit: {len(recovery['recovered'])} published ingest run(s) had no audit entry (the process "
            f"ended, or the audit folder was not writable, after the commit): written now, marked recovered "
            f"({', '.join(recovery['recovered'])})",
            err=True,
        )
    if recovery["pending"]:
        typer.echo(f"audit: {recovery['pending']}", err=True)
    check = sh.verify_audit(anchored)
    entries = sh.audit()
    head = sh.audit_head()
    path = workdir / AUDIT_FILE
    if as_json:
        print_json(
            {
                "verification": check.as_dict(),
                "head": head,
                "entries": entries[-limit:],
                "recovered": recovery["recovered"],
                "recovery_pending": recovery["pending"],
            }
        )
    else:
        for e in entries[-limit:]:
            if "unparseable" in e:
                typer.echo(f"?  {e['unparseable'][:100]}")
                continue
            typer.echo(
                f"{e['seq']:>5} {e['at'][:19]} {e['actor']:<12} {e['action']:<22} {e['outcome']:<7} {json.dumps(e['details'], default=str)[:90]}"
            )
        if check.ok:
            typer.echo(f"audit log verified: {check.entries} entries, hash chain intact ({path})")
            if head is not None:
                typer.echo(
                    f"head: {head['seq']}:{head['hash']} (kept outside the workdir, it is the "
                    "`--anchor` that tells later whether the log was rewritten since)"
                )
        else:
            # (a log cut short has no bad line: its end is what is wrong)
            where = f"line {check.first_bad_line}: " if check.first_bad_line is not None else ""
            typer.echo(f"AUDIT LOG TAMPERED: {where}{check.reason} ({path})")
    if not check.ok:
        raise typer.Exit(1)


@app.command()
def lineage(workdir: Workdir, as_json: AsJson = False) -> None:
    """The OpenLineage run events of the workdir."""
    events = shop(workdir).lineage()
    if as_json:
        print_json(events)
        return
    for e in events:
        outs = ", ".join(f"{o['name']}" for o in e.get("outputs", []))
        typer.echo(f"{e['eventTime']} {e['eventType']:<8} {e['job']['name']} run {e['run']['runId']} {outs}")


@app.command("catalog")
def catalog_cmd(workdir: Workdir, as_json: AsJson = False) -> None:
    """Datasets, contracts, models and rules with owner, steward, classification, rows,
    freshness, latest quality result and lineage (upstream / downstream)."""
    cat = shop(workdir).catalog()
    if as_json:
        print_json(cat)
        return
    for d in cat["datasets"]:
        q = d["quality"]
        typer.echo(
            f"{d['name']:<20} owner {d['owner']:<14} steward {d['steward']:<14} rows {d['rows']:>9,} "
            f"v{d['latest_version']:<3} fresh {d['freshness_hours']:>7.1f}h  "
            f"{'passed' if q['passed'] else 'FAILING'} ({100 * q['quarantined_share']:.1f}% quarantined"
            + (f", {q['rows_redelivered']:,} re-sent" if q.get("rows_redelivered") else "")
            + ")  "
            f"downstream bundles {len(d['lineage']['downstream'])}"
        )
        personal = [c for c, k in d["classification"].items() if k == "personal"]
        if personal:
            typer.echo(f"{'':<20} personal columns (pseudonymized): {', '.join(personal)}")
    for m in cat["models"]:
        typer.echo(
            f"model v{m['version']:<4} {m['bundle']} {','.join(m['aliases']) or m['status']:<12} owner {m['owner']}"
        )
    if cat["rules"]:
        typer.echo(f"rules v{cat['rules']['version']} owner {cat['rules']['owner']}")


report_app = typer.Typer(help="Reports for the business.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("governance")
def report_governance(workdir: Workdir, as_json: AsJson = False) -> None:
    """Quality trend, quarantine by reason, owners with failing checks, models in production and
    their gates: reports/governance.html (charts) and reports/governance.json."""
    doc = shop(workdir).governance_report()
    print_report(doc, "governance report", as_json)


@report_app.command("search")
def report_search(workdir: Workdir, as_json: AsJson = False) -> None:
    """Search analytics: top queries, zero-result queries; click-through, add-to-cart rate,
    conversion and engaged share per query (logged and served): reports/search-analytics.html
    and .json."""
    doc = shop(workdir).search_report()
    print_report(doc, "search analytics", as_json)
