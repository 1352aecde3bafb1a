"""`quarantine list|export|reprocess`: the rows governance held back, and fixing them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ShelfwiseError
from ._app import AsJson, Workdir, app, print_json, shop

__all__ = ["quarantine_app", "quarantine_export", "quarantine_list", "quarantine_reprocess"]

quarantine_app = typer.Typer(help="List, export and re-process quarantined rows.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


def _check_filters(
    table: str | None, reason: str | None, summary: list[dict], status: str | None = None
) -> None:
    """An unknown `--table`, `--reason` or `--status` is refused, naming the valid ones (it
    listed nothing and exited 0, as if nothing were quarantined): `unknown_filters`."""
    from ..governance._quarantine import UnknownFilter, refuse_unknown_filters

    try:
        refuse_unknown_filters(table, reason, status, summary)
    except UnknownFilter as exc:
        raise _as_flag(exc) from None


def _as_flag(exc: Any) -> ShelfwiseError:
    """An `UnknownFilter` (the Shop's) said of the command line's flag (`--table 'x'`)."""
    return ShelfwiseError(exc.said("--"))


def _matching(summary: list[dict], table: str | None, reason: str | None, status: str) -> list[dict]:
    """The summary lines of the rows the filters select."""
    return [
        s
        for s in summary
        if (table is None or s["table"] == table)
        and (reason is None or s["reason"] == reason)
        and (status == "all" or s["status"] == status)
    ]


def _nothing(summary: list[dict], table: str | None, reason: str | None, status: str) -> str:
    """What a listing that selects no row says: nothing at all is quarantined (for the table or
    reason asked), or how many rows are in the statuses not asked for."""
    scope = "".join(f" --{k} {v}" for k, v in (("table", table), ("reason", reason)) if v is not None)
    others = sum(s["rows"] for s in _matching(summary, table, reason, "all"))
    if status == "all" or not others:
        return "nothing quarantined" + (f" for{scope}" if scope else "")
    return f"0 {status} rows{f' for{scope}' if scope else ''} ({others:,} in other statuses: --status all)"


@quarantine_app.command("list")
def quarantine_list(
    workdir: Workdir,
    table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    status: Annotated[
        str, typer.Option(help="open | released | superseded | redelivered | withheld | all")
    ] = "open",
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 20,
    as_json: AsJson = False,
) -> None:
    """Summary by reason, and the first rows with their file, line and detail (both of the
    rows --table, --reason and --status select; `--json`'s `summary` is the whole quarantine's,
    `filtered_summary` the selected rows')."""
    from ..governance._quarantine import UnknownFilter

    _check_filters(None, None, [], status)  # (before the workdir is opened)
    try:  # the Shop refuses an unknown filter: said of the flag
        res = shop(workdir).quarantine(table, reason, status=status, limit=limit)
    except UnknownFilter as exc:
        raise _as_flag(exc) from None
    res["filtered_summary"] = _matching(res["summary"], table, reason, status)
    if as_json:
        print_json(res)
        return
    if not res["filtered_summary"]:  # (it printed one blank line)
        typer.echo(_nothing(res["summary"], table, reason, status))
        return
    for s in res["filtered_summary"]:
        typer.echo(f"{s['table']:<10} {s['reason']:<22} {s['status']:<10} {s['rows']:>8,}")
    typer.echo("")
    for r in res["rows"]:
        # (a detail quoting a field holds it whole: 5 KB of a page's CSS in a price filled the
        # screen; --json and `quarantine export` keep it whole)
        detail = r["detail"] if len(r["detail"] or "") <= 200 else r["detail"][:197] + "..."
        # the file with its folder: two days' deliveries are often both `events.jsonl`
        where = "/".join(Path(r["source_file"]).parts[-2:]).lstrip("/") if r["source_file"] else "?"
        # (a curated line a later delivery took out has no line of a file: `_load_retract`)
        line = f":{r['source_line']}" if r["source_line"] is not None else ""
        typer.echo(f"#{r['quarantine_id']} {r['table']} {where}{line} [{r['reason']}] {detail}")


@quarantine_app.command("export")
def quarantine_export(
    workdir: Workdir,
    out: Annotated[Path, typer.Option("--out", help="JSON lines file to write (fix it, then reprocess it).")],
    table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
) -> None:
    """Export open quarantined rows (raw fields + _quarantine_id) for fixing."""
    from ..governance._quarantine import UnknownFilter

    try:  # (an unknown filter exported nothing, exit 0): the Shop refuses it, said of the flag
        n = shop(workdir).export_quarantine(out, table, reason)
    except UnknownFilter as exc:
        raise _as_flag(exc) from None
    typer.echo(f"wrote {n:,} quarantined rows to {out}")


@quarantine_app.command("reprocess")
def quarantine_reprocess(
    workdir: Workdir,
    table: Annotated[str, typer.Option(help="The table whose rows to re-process.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="Fixed rows (from `quarantine export`).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Re-run quarantined rows through the governed path; rows that now pass are released into curated."""
    res = shop(workdir).reprocess(table, file)
    if as_json:
        print_json(res)
    else:
        typer.echo(
            f"{table}: retried {res['retried']:,}, released {res['released']:,}, "
            f"still quarantined {res['still_quarantined']:,}"
            + (f", withheld {res['withheld']:,} (they name erased users)" if res.get("withheld") else "")
        )
        if res.get("skipped"):
            typer.echo(f"  left open: {res['skipped']:,} ({res['skipped_reason']})")
        for why, n in (res.get("not_taken") or {}).items():
            typer.echo(f"  not re-processed: {n:,} row(s) of {file.name if file else 'the file'}: {why}")
