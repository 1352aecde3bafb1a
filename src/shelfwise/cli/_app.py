"""The Typer app and what every command group shares: the common options, JSON printing,
opening the workdir as a `Shop`, reading the id and query files commands take."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ShelfwiseError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._shop import Shop

__all__ = [
    "Append",
    "AsJson",
    "EngineName",
    "SparkMaster",
    "SparkRemote",
    "WarehouseDir",
    "MapFlags",
    "Workdir",
    "app",
    "json_lines",
    "leave_quickly",
    "mapped_headers",
    "print_json",
    "print_report",
    "find_columns",
    "header_names",
    "json_field",
    "read_ids",
    "sniff_table",
    "read_json",
    "say_pending",
    "shop",
]

_LEAVE_QUICKLY: list[bool] = [False]


def leave_quickly(on: bool = True) -> None:
    """Say that the command is done and holds nothing open (its files written and closed, no
    thread or child process of its own left): the process may then end without the
    interpreter's teardown (`exit_with`), which frees every object of the ~2,000 modules a
    load imports one by one: ~0.45 s of each `shelfwise ingest`."""
    _LEAVE_QUICKLY[0] = on


def leaving_quickly() -> bool:
    return _LEAVE_QUICKLY[0]


app = typer.Typer(
    help="shelfwise: a governed search and recommendation engine for online shops.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Workdir = Annotated[
    Path, typer.Option("--workdir", "-w", help="The shop's working directory (warehouse, models, reports).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON report.")]
Append = Annotated[
    bool,
    typer.Option(
        "--append",
        help="A delivery: add the rows to what is curated (rows an earlier load curated are recognised as "
        "duplicate_row; keyed tables are upserted) instead of replacing it with a full snapshot.",
    ),
]
EngineName = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where the checks, cleaning, dedup, pseudonyms and publishing run: duckdb (the workdir's "
        "warehouse) or spark (curated tables and quarantine as Parquet in --warehouse).",
    ),
]
SparkRemote = Annotated[
    str | None,
    typer.Option(
        "--spark-remote",
        help="--engine spark: a Spark Connect address, sc://HOST:PORT (default: $SHELFWISE_SPARK_REMOTE).",
    ),
]
SparkMaster = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="--engine spark: a Spark master for a session started here, e.g. local[4] "
        "(default: $SHELFWISE_SPARK_MASTER, else local[2]).",
    ),
]
WarehouseDir = Annotated[
    Path | None,
    typer.Option(
        "--warehouse",
        help="--engine spark: where the Parquet tables live, readable by every executor "
        "(default: WORKDIR/spark-warehouse).",
    ),
]
MapFlags = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="TABLE.COLUMN=HEADER: read a canonical column from the file's HEADER (repeatable; "
        "overrides the data directory's shelfwise.toml [map.TABLE] entries); "
        "events.order_status=HEADER names an order-lines export's status column (read, not curated); "
        "products.attributes.KEY=HEADER keeps HEADER as the product attribute KEY.",
    ),
]


def shop(workdir: Path) -> Shop:
    """The workdir as the Python API sees it, acting as `--as` / SHELFWISE_AS with
    SHELFWISE_API_KEY (the Shop checks the permission of every call and audits denials)."""
    from .._shop import Shop

    s = Shop(workdir)
    s._cli = True  # (its refusals say `--as NAME`, the flag)
    return s


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def print_report(doc: dict[str, Any], what: str, as_json: bool) -> None:
    """A written report's answer: its document (`--json`) or where its HTML and JSON files are."""
    page, js = doc.pop("html"), doc.pop("json")
    if as_json:
        print_json(doc)
    else:
        typer.echo(f"{what}: {page} (JSON: {js})")


def say_pending(workdir: Path, log: Any = None) -> int:
    """Tell (on stderr, or `log`) how many acknowledged events wait in the spool: served, not
    yet in the warehouse. An export does not absorb them itself: it reads, it does not load
    (and who may export may not be allowed to ingest)."""
    from ..serving._feedback import pending_in_open_segments

    n = shop(workdir).pending_events()
    if n:
        held = min(pending_in_open_segments(workdir), n)
        how = (
            f"a running server absorbs them every --absorb-seconds, or run `shelfwise events absorb "
            f"--workdir {workdir}`"
        )
        if held == n:  # a server's open segment: `events absorb` would find nothing to take
            how = "a running server still writes them and absorbs them itself every --absorb-seconds and when it stops"
        elif held:
            how += f" ({held:,} of them a running server still writes: it absorbs those itself)"
        msg = f"note: {n:,} acknowledged events are still waiting in the spool (not in the warehouse yet): {how}"
        (log or (lambda m: typer.echo(m, err=True)))(msg)
    return n


def json_lines(path: Path, fields: str, pick: Any) -> list[Any]:
    """`pick(obj)` for each JSON object in a JSON-lines file; a bad line is a SourceError naming
    the file, its line number (blank lines count) and the fields it must have."""
    from ..errors import SourceError

    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                out.append(pick(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(str(path), n, f"not a JSON object with {fields}: {exc}") from exc
    return out


def header_names(column: str, table: str | None = None) -> list[str]:
    """The header names ingestion accepts for a canonical `column`: the column itself, then its
    contract aliases (those of `table`'s contract, or of every contract that has the column),
    in the order ingestion tries them."""
    from ..governance._contracts import CONTRACTS

    names = [column]
    for contract in CONTRACTS.values():
        if table is not None and contract.name != table:
            continue
        for spec in contract.columns:
            if spec.name == column:
                names.extend(a for a in spec.aliases if a not in names)
    return names


def find_columns(header: list[str], wanted: dict[str, list[str]]) -> dict[str, int]:
    """canonical column -> its index in `header`, matched as ingestion matches a file's columns
    (`column_key`: case, spaces, dashes and underscores do not count; the name first, then its
    aliases; a header column serves one canonical column). Columns not found are left out."""
    from ..governance._load_state import match_headers

    first: dict[str, int] = {}
    for i, h in enumerate(header):
        first.setdefault(h, i)
    return {c: first[h] for c, h in match_headers(header, wanted).items()}


def sniff_table(path: Path, text: str) -> tuple[str, list[str]]:
    """A delimited file's delimiter (`,`, tab, `;` or `|`, as ingestion detects it from the first
    line) and its first line split by it, trimmed."""
    from ..storage import sniff_header

    return sniff_header(next((ln for ln in text.splitlines() if ln.strip()), ""), path.suffix.lower())


def _field_or_none(obj: Any, names: list[str]) -> Any:
    """`json_field`, None when the object has none of `names`."""
    try:
        return json_field(obj, names)
    except (KeyError, TypeError):
        return None


def json_field(obj: Any, names: list[str]) -> Any:
    """The value of the first of `names` (matched as headers are) that a JSON object has."""
    from ..governance._load_state import column_key

    if not isinstance(obj, dict):
        raise TypeError(f"a JSON {type(obj).__name__}, not an object")
    keys = {column_key(k): k for k in obj}
    for name in names:
        if column_key(name) in keys:
            return obj[keys[column_key(name)]]
    raise KeyError(names[0])


def mapped_headers(workdir: Path, column: str) -> list[str]:
    """The headers the shop's column map read `column` from in its ingests (`[map.events]
    user_id = "Email"`), newest first, from the runs' reports (`meta.runs`): a file of ids with
    the shop's own header is read by it. Nothing when the workdir has no warehouse yet."""
    from ..storage import read_only

    found: list[str] = []
    try:
        with read_only(workdir) as (con, _):
            rows = con.sql(
                "SELECT report FROM meta.runs WHERE job LIKE '%ingest' AND status = 'COMPLETE' "
                "ORDER BY ended_at DESC LIMIT 20"
            ).fetchall()
    except Exception:  # noqa: BLE001 - a help for reading the header only: the aliases still serve
        return found
    for (report,) in rows:
        try:
            maps = json.loads(report).get("column_map") or {}
        except (TypeError, ValueError, AttributeError):
            continue
        for table in ("events", "users", "products"):
            header = (maps.get(table) or {}).get(column)
            if isinstance(header, str) and header and header not in found:
                found.append(header)
    return found


def _looks_like_header(first: str, rest: list[str]) -> bool:
    """Whether the first line of a one-column file of ids is a header: the ids below it are
    e-mail addresses (a shop keyed on `Email`) and it is none."""
    below = [v.strip() for v in rest[:200] if v.strip()]
    mails = sum("@" in v for v in below)
    return bool(below) and "@" not in first and mails >= 0.9 * len(below)


def read_ids(
    path: Path, column: str, skipped: list[int] | None = None, mapped: Sequence[str] = ()
) -> list[str]:
    """Ids from a delimited file (CSV, TSV, `;` or `|`) whose header names `column` or one of
    its aliases (`User ID`, `customer_id`, ...: as ingestion reads headers), a JSON-lines file,
    or one id per line; ids are trimmed, as ingestion trims them. A file of several columns
    none of which is `column` is a SourceError naming the file and its header, and so is a file
    with no id at all (empty, blank lines only, a header alone, or blank ids only): there is
    nothing to answer, as an empty file of queries or questions is an error.

    For `user_id`, a `session_id` column (or alias) names anonymous shoppers as ingestion does:
    a row whose user id is blank is its session's (`~anonymous:<session_id>`), and a file of
    sessions alone is read as such (its header was an id, and session "2" got user 2's list).
    The lines (the file's, 1-based) of rows with no id at all are appended to `skipped`.
    `mapped`: the shop's own headers for `column` (its column map, `mapped_headers`), read as
    its aliases are; a one-column file whose first line is no e-mail above e-mail addresses
    has that line as its header (`Email`: it was served as a customer called "Email")."""
    import csv

    from ..errors import SourceError
    from ..governance._compile import MISSING_VALUES
    from ..governance._privacy import anonymous_user_id

    missing = set(MISSING_VALUES)  # ("NA", "null", "-", ...: a missing id, as ingestion reads it)

    if not path.exists():
        raise SourceError(str(path), None, "file not found")
    if path.is_dir():
        raise SourceError(str(path), None, "a folder, not a file of ids")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    numbered = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    lines = [ln for _, ln in numbered]
    names = [*header_names(column), *(m for m in mapped if m not in header_names(column))]
    sessions = header_names("session_id", "events") if column == "user_id" else []
    ids: list[str] = []
    blank: list[int] = []

    def take(line: int, user: str, session: str) -> None:
        """A row's id: its user's, else its session's anonymous one; a row with neither (blank or a
        missing-value marker) is a skipped line."""
        got, sess = user.strip(), session.strip()
        got, sess = ("" if got in missing else got), ("" if sess in missing else sess)
        if got or sess:
            ids.append(got or anonymous_user_id(sess))
        else:
            blank.append(line)

    if not lines:
        raise SourceError(
            str(path),
            None,
            f"the file is empty: give a CSV with a {column} column, JSON lines, or one id per line",
        )
    if path.suffix.lower() in (".jsonl", ".ndjson"):

        def pick(obj: Any) -> tuple[Any, Any]:
            try:  # a user id, else a session (a line with neither field is an error)
                return json_field(obj, names), _field_or_none(obj, sessions) if sessions else None
            except KeyError:
                if not sessions:
                    raise
                return None, json_field(obj, sessions)

        found = json_lines(path, " or ".join(repr(n) for n in [*names[:3], *sessions[:1]]) + " ...", pick)
        for n, (v, session) in zip((k for k, _ in numbered), found, strict=False):
            take(n, "" if v is None else str(v), "" if session is None else str(session))
        empty = f"no {column} in the file: every line's {column} is blank"
    else:
        delimiter, header = sniff_table(path, text)
        cols = find_columns(header, {column: names, **({"session_id": sessions} if sessions else {})})
        col, scol = cols.get(column), cols.get("session_id")
        if col is None and scol is None:
            if len(header) > 1:
                raise SourceError(
                    str(path),
                    1,
                    f"no {column} column: the header has {', '.join(repr(h) for h in header)}; name the "
                    f"ids' column {column} (or {', '.join(names[1:6])}, ...), or give one id per line",
                )
            if not _looks_like_header(lines[0].strip(), lines[1:]):
                return [ln.strip() for ln in lines]  # one id per line, no header
            col = 0  # a header of the shop's own naming above one id per line
        for (n, _), row in zip(numbered[1:], csv.reader(lines[1:], delimiter=delimiter), strict=False):
            take(
                n,
                row[col] if col is not None and len(row) > col else "",
                row[scol] if scol is not None and len(row) > scol else "",
            )
        shown = header[col] if col is not None else header[scol]  # type: ignore[index]
        empty = f"no {column} in the file: its header ({shown!r}) and no id below it"
    if not ids:
        raise SourceError(str(path), None, empty)
    if skipped is not None:
        skipped.extend(blank)
    return ids


def read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ShelfwiseError(f"{file}: cannot read a JSON {what} file: {exc}") from None
