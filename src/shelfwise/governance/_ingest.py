"""Governed ingestion: source files -> raw -> checks -> curated + quarantine, with lineage.

For each canonical table present in the dataset directory (referenced tables first):

1. stage the file, or the parts of the table's folder, as one file (encoding and export repairs,
   line numbers; `storage._sources`), hash it; map its columns (`_load_columns`);
2. load it into `raw.<table>` as strings; lines the CSV reader cannot split land in quarantine
   as `malformed_row` with their line text (`_load_raw`);
3. row checks compiled from the contract (`_compile`), every failure collected (`_load_rows`);
   rows of erased users dated at or before their erasure are withheld here, before anything
   is stored (`_erasures`, `_load_publish.withhold_erased`);
4. set checks in the warehouse: exact duplicates, conflicting keys (stated keep rule), unknown
   references, robot traffic (event rate per user in a sliding window) (`_load_sets`);
5. privacy: user ids replaced by keyed HMAC pseudonyms, personal data in free text masked (in 3),
   personal profile columns left out;
6. the curated result is validated against the contract's pandera schema and published as a new
   table version; rejected rows go to `quarantine.rows` with reason, file and line (5 and 6:
   `_load_publish`).

The stages are functions over one `_load_state.LoadState`. The invariant `rows_in ==
rows_curated + rows_quarantined + rows_withheld` is checked for every table and stated in the
report.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import SourceError, WarehouseBusy, WorkdirUnwritable
from ..storage import DuckDBEngine, Engine, StagedFile, Warehouse, find_table_file, stage_file
from ..storage._faq_version import record_faq_version
from ..storage._product_ids import record_product_ids
from ..storage._warehouse import TableVersion
from ._audit import AuditLog
from ._compile import NORMALIZE_LINES_UDF, NORMALIZE_UDF, lit, q
from ._contracts import (
    CONTRACTS,
    LOAD_ORDER,
    TABLE_FILE_ALIASES,
    Classification,
    TableContract,
    classify_extra_column,
    holds_street_addresses,
    looks_like_consent,
)
from ._erasures import Erasures
from ._faq_conflicts import faq_conflicts
from ._ingest_report import IngestReport, IngestSettings, TableReport
from ._lineage import DatasetRef, LineageRun, warehouse_namespace
from ._load_anonymous import count_anonymous, spark_count_anonymous
from ._load_aside import set_aside
from ._load_columns import ORDER_KEYS, header_of, map_columns, samples_of
from ._load_publish import publish, validate_curated, withhold_erased
from ._load_raw import load_raw, store_raw
from ._load_rows import check_rows
from ._load_sales import count_sales_outcomes, spark_count_sales_outcomes
from ._load_sets import check_sets
from ._load_spark import spark_check_rows, spark_check_sets, spark_publish, spark_withhold_erased
from ._load_state import (
    QUARANTINE_DDL,
    REPROCESS_JOB,
    LoadState,
    column_key,
    match_headers,
    parquet_files,
    safe,
)
from ._mapping import ID_WORDS, MAP_FILE, ColumnMap, attribute_key, load_column_map
from ._orderlines import derive as derive_order_lines
from ._orderlines import record_as_of, unpack_orders
from ._privacy import ANONYMOUS_PSEUDONYM_PREFIX, Pseudonymizer
from ._retention import load_retention
from ._text import normalize_flat_array, normalize_lines_array


def _write_refused(exc: BaseException) -> bool:
    """Whether `exc` is DuckDB (or the lineage client) refused a write to the workdir's files."""
    text = str(exc)
    return ("IO Error" in text or "is not writeable" in text) and any(
        w in text
        for w in ("Permission denied", "Operation not permitted", "Read-only", "not writeable", "No space")
    )


def _where(exc: BaseException, workdir: Path) -> str:
    """The file an OS error names, else the workdir."""
    name = getattr(exc, "filename", None)
    if name:
        return str(name)
    m = re.search(r'(?:file|Log file) "?([^"\s]+)"?', str(exc))
    return m.group(1) if m else str(workdir)


def _open_warehouse(workdir: Path, memory_limit: Any) -> Warehouse:
    """The warehouse, opened for the run: another process holding it is `WarehouseBusy` (exit 3,
    naming who holds it); a file that cannot be written is `WorkdirUnwritable` (nothing published)."""
    try:
        return Warehouse(workdir, memory_limit=memory_limit)
    except Exception as exc:
        from ..storage._warehouse import busy_message

        busy = busy_message(exc)
        if busy is not None:
            raise WarehouseBusy(busy) from exc
        if isinstance(exc, OSError) or _write_refused(exc):
            raise WorkdirUnwritable(
                f"{_where(exc, workdir)}: the warehouse cannot be opened for writing "
                f"({str(exc).splitlines()[0][:300]}); nothing was published - make it writable "
                "(chmod u+w, chattr -i) and run the same command again"
            ) from exc
        raise


def recover_unaudited(workdir: Path, wh: Warehouse) -> list[str]:
    """Write the audit entry of each ingest run the warehouse says COMPLETE (`meta.runs`: it
    committed) that the audit log lacks - a process killed right after its commit, or an audit
    folder it could not write - from the run's recorded report, marked `recovered`. Only runs
    since the log's first entry (a workdir older than its audit log is not back-filled).
    Returns their run ids."""
    log = AuditLog(workdir)
    if not log.path.exists():
        return []
    text = log.path.read_text(encoding="utf-8", errors="replace")
    first = text[: text.find("\n")] if "\n" in text else text
    try:
        since = json.loads(first).get("at")
    except ValueError:
        return []
    if not since:
        return []
    rows = wh.sql(
        "SELECT run_id, report::VARCHAR FROM meta.runs WHERE job = 'shelfwise.ingest' AND status = 'COMPLETE' "
        "AND started_at >= ?::TIMESTAMPTZ::TIMESTAMP ORDER BY started_at",
        [since],
    ).fetchall()
    done: list[str] = []
    for run_id, raw in rows:
        if f'"{run_id}"' in text:
            continue
        try:
            rep = json.loads(raw or "{}")
        except ValueError:
            rep = {}
        tables = rep.get("tables") or {}
        log.append(
            "ingest",
            run_id=run_id,
            data_dir=rep.get("data_dir"),
            mode=rep.get("mode"),
            tables={
                t: {
                    k: r.get(k)
                    for k in ("rows_in", "rows_curated", "rows_quarantined", "rows_total")
                    if k in r
                }
                for t, r in tables.items()
            },
            recovered=True,
        )
        done.append(str(run_id))
    if done:
        _end_open_lineage(workdir, done)
    return done


def _end_open_lineage(workdir: Path, run_ids: list[str]) -> None:
    """Write a COMPLETE lineage event for each of `run_ids` (committed runs recovered into the
    audit) whose START the lineage file holds with no end: the run published its data. Best
    effort: a lineage file that cannot be read or written is left as it is."""
    path = workdir / "lineage" / "openlineage.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        states: dict[str, set[str]] = {}
        for line in lines:
            if not any(r in line for r in run_ids):
                continue
            e = json.loads(line)
            states.setdefault(e["run"]["runId"], set()).add(e["eventType"])
        for run_id in run_ids:
            seen = states.get(run_id, set())
            if "START" in seen and not seen & {"COMPLETE", "FAIL", "ABORT"}:
                run = LineageRun(workdir, "shelfwise.ingest")
                run.run_id = run_id
                run._emit("COMPLETE", [])
    except Exception:  # noqa: BLE001, S110 - the audit entry is the record; lineage is best effort
        pass


def ingest_audit_fields(report: IngestReport, data_dir: str) -> dict[str, Any]:
    """The audit entry of a published ingest run (counts only: the audit log never holds a raw id)."""
    return {
        "run_id": report.run_id,
        "data_dir": data_dir,
        "mode": report.mode,
        "tables": {
            t: {
                "rows_in": r.rows_in,
                "curated": r.rows_curated,
                "quarantined": r.rows_quarantined,
                # the load's quality verdict, as the summary and the catalog say it
                "contract_check": r.check().verdict,
                **({"withheld": r.withheld} if r.rows_withheld else {}),
                **(
                    {
                        "inserted": r.rows_inserted,
                        "updated": r.rows_updated,
                        "unchanged": r.rows_unchanged,
                        "rows_total": r.rows_total,
                    }
                    if r.mode == "append"
                    else {}
                ),
            }
            for t, r in report.tables.items()
        },
    }


# a table's load, stage by stage, per engine: the one place the engine changes what runs
STAGES = {
    "duckdb": (
        ("raw", load_raw),  # 1. the file into raw (or, with erased users on record, a temp table)
        ("raw", set_aside),  # order lines that are no purchase: kept aside (`_load_aside`)
        ("rows", check_rows),  # 2. the contract's row checks
        ("erased", withhold_erased),  # erased users' rows leave the load before anything is stored
        ("raw", store_raw),
        ("sets", check_sets),  # 3. duplicates, keys, references, robots
        ("sets", count_anonymous),  # the valid rows of anonymous sessions, for the report
        ("sets", count_sales_outcomes),  # the no-sale rows and returns, for the report
        ("publish", publish),  # 4. pseudonyms, re-deliveries, quarantine, the new curated version
    ),
    # reading stays with the DuckDB reader (`_load_raw`); the rest runs in Spark (`_load_spark`)
    "spark": (
        ("raw", load_raw),
        ("raw", set_aside),
        ("rows", spark_check_rows),
        ("erased", spark_withhold_erased),
        ("raw", store_raw),
        ("sets", spark_check_sets),
        ("sets", spark_count_anonymous),
        ("sets", spark_count_sales_outcomes),
        ("publish", spark_publish),
    ),
}

__all__ = [
    "ORDER_KEYS",
    "QUARANTINE_DDL",
    "IngestReport",
    "IngestSettings",
    "Ingestor",
    "TableReport",
    "ingest",
]


_DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet")


_DELIMITERS = (",", ";", "\t", "|")


# a column whose yes is a refusal (`Unsubscribed`, `Email Opt-Out`, `Opted Out`)
_OPT_OUT = re.compile(r"un-?subscri|opt(?:ed)?[\s_-]*out", re.IGNORECASE)


def _looks_tabular(path: Path) -> bool:
    """Whether a text file starts like a table, so that a README or notes file is not offered as
    one: a first line split by a delimiter into at least two fields. A `.csv`/`.tsv` says it is a
    table (and may hold its header alone); a `.txt` must show it: its first line column names
    (short, no space after a delimiter as prose has: "Hello, world" opening a README is no
    header) and a second line with as many fields. JSON, Parquet and gzipped files are taken as
    they are."""
    import csv
    import io

    name = path.name.lower()
    if not name.endswith((".csv", ".tsv", ".txt")):
        return True
    with open(path, "rb") as fh:
        head = fh.read(65536).replace(b"\x00", b"").decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [line for line in head.splitlines() if line.strip()]
    if not lines:
        return False
    # the delimiter that splits the first line into the most fields (quotes respected)
    delim = max(_DELIMITERS, key=lambda d: len(next(csv.reader([lines[0]], delimiter=d))))
    records = csv.reader(io.StringIO("\n".join(lines[:50])), delimiter=delim)
    fields = next(records)
    names = [f.strip() for f in fields if f.strip()]
    if len(names) < 2:
        return False
    if not name.endswith(".txt"):
        return True
    # prose, not column names: a field after a space ("Hello, world"), or a sentence
    if any(f[:1].isspace() for f in fields[1:]) or any(len(f) > 80 or len(f.split()) > 8 for f in names):
        return False
    second = next(records, None)
    return second is not None and len(second) == len(fields)


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """`text` as a TOML basic string: `"`, `\\` and control characters escaped, every other
    character as it is (JSON's escapes are no TOML beyond the BMP: `json.dumps` writes 📦 as a
    surrogate pair, which TOML rejects)."""
    out = (
        _TOML_ESCAPES.get(ch) or (f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch)
        for ch in text
    )
    return '"' + "".join(out) + '"'


def _utf8(name: str) -> bool:
    """Whether a file name is text (not bytes that are no UTF-8, which Python holds as lone
    surrogates and TOML cannot spell)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _table_by_header(path: Path) -> str | None:
    """The table a file's header says it holds when it is no behaviour log: an FAQ (question and
    answer), judgments (a query and a relevance) or queries (a query alone): an FAQ export was
    offered as `events = "flipkart_helpcentre.csv"`. A header naming a shopper, a session, a
    time or an event is a behaviour log whatever else it holds (`User ID,Query,Date`). None:
    events or products, by the file's name."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except (OSError, EOFError):
        return None
    first = head.lstrip("\ufeff").splitlines()[0].lower() if head.strip() else ""
    words = set(re.findall(r"[a-z]+", first))
    if {"question", "answer"} <= words or {"question", "answers"} <= words:
        return "faq"
    behaviour = words & {"user", "userid", "customer", "client", "session", "sessionid", "visitor",
                         "time", "timestamp", "date", "ts", "created", "event", "click", "clicked"}  # fmt: skip
    if behaviour or not words & {"query", "search", "term", "searchterm"}:
        return None
    if words & {"relevance", "label", "grade", "judgment", "rating"}:
        return "judgments"
    return None if words & {"product", "item", "sku", "asin", "uid"} else "queries"


def _declare_hint(data_dir: Path, taken: frozenset[str] = frozenset()) -> str:
    """For a directory whose files are named after no table (an export as downloaded, e.g.
    "Sample - Superstore.csv"): the `shelfwise.toml` lines that read its first data file as the
    events table (a file named like a catalog: as products), to copy as they are."""
    files = sorted(
        p.name
        for p in data_dir.iterdir()
        if p.is_file()
        and p.name not in taken  # (read as a table already: the faq, the queries, ...)
        and not p.name.startswith(".")
        and _utf8(p.name)  # a name TOML can spell
        and p.name.lower().removesuffix(".gz").endswith(_DATA_SUFFIXES)
        and _looks_tabular(p)
    )
    if not files:
        return ""

    def table_of(name: str) -> str:
        low = name.lower()
        if any(w in low for w in ("customer", "client", "member", "user")) and not any(
            w in low for w in ("order", "event", "transaction", "purchase", "click", "view")
        ):  # (a customers export is the users table: it was offered as `events = "customers_export.csv"`)
            return "users"
        return _table_by_header(data_dir / name) or (
            "products" if any(w in low for w in ("product", "catalog", "item", "article")) else "events"
        )

    # each table its first file (a catalog export and a web-events file: both lines, not the
    # catalog's alone)
    declared: dict[str, str] = {}
    for name in files:
        declared.setdefault(table_of(name), name)
    lines = "".join(f"    {t} = {_toml_string(n)}\n" for t, n in declared.items())
    shop = {"events", "products"} & set(declared)
    if shop == {"events", "products"}:
        after = "(the files as their headers and names read)"
    elif shop:
        other = "products" if shop == {"events"} else "events"
        after = (
            f'({other} = "..." for its other file, if any; an order-lines export also yields its products)'
        )
    else:
        after = (
            "(its header reads as such; a shop also needs its catalog or its events: products = "
            '"..." and events = "..." for those files)'
        )
    return (
        "a table is read from a file named after it (events, orders, products, ...: the README's data "
        f"format) or from the file {data_dir / MAP_FILE} declares for it:\n"
        f"    [files]\n{lines}" + after
    )


def _names_customers(wh: Warehouse) -> bool:
    """Whether the curated events name a customer (not only anonymous sessions)."""
    if "events" not in wh.curated_tables():
        return False
    row = wh.sql(
        f"SELECT 1 FROM curated.events WHERE NOT starts_with(user_id, '{ANONYMOUS_PSEUDONYM_PREFIX}') LIMIT 1"
    ).fetchone()
    return row is not None


def _known_products(wh: Warehouse) -> Callable[[list[str]], int]:
    """How many of some values are product ids of the catalog: this delivery's products (read
    and checked already, `_checked__products`), else the curated products; none: 0."""

    def count(values: list[str]) -> int:
        for table in ("_checked__products", "curated.products"):
            try:
                row = wh.sql(
                    f"SELECT count(*) FROM (SELECT unnest(?::VARCHAR[]) AS v) "
                    f"WHERE v IN (SELECT CAST(product_id AS VARCHAR) FROM {table})",
                    [values],
                ).fetchone()
            except Exception:  # noqa: BLE001 - no such table (yet): the next, else none
                continue
            if row and row[0]:
                return int(row[0])
        return 0

    return count


class Ingestor:
    """Runs governed ingestion of one dataset directory into a workdir."""

    def __init__(
        self,
        workdir: str | Path,
        settings: IngestSettings | None = None,
        *,
        mode: str = "replace",
        job: str = "shelfwise.ingest",
        column_map: ColumnMap | None = None,
        engine: Engine | None = None,
        lineage_inputs: list[DatasetRef] | None = None,
        recorded_as: dict[Path, Path] | None = None,
    ):
        if mode not in ("replace", "append"):
            raise ValueError(f"mode must be 'replace' or 'append', not {mode!r}")
        self.workdir = Path(workdir)
        self.settings = settings or IngestSettings()
        # replace: the dataset directory is the whole truth (a full load, a new version of each table)
        # append: its rows are added to the current curated tables (re-processing, incremental loads)
        self.mode = mode
        self.job = job
        # the shop's headers -> canonical columns (`shelfwise.toml`, `--map`); None: the data
        # directory's shelfwise.toml when it has one
        self.column_map = column_map
        # where the checks, sets and publishing run (`storage.engine_from`): DuckDB by default
        self.engine: Engine = engine or DuckDBEngine()
        # what the lineage names as the run's inputs when not the data directory's files (a
        # re-processing reads quarantined rows through a temporary file deleted afterwards)
        self.lineage_inputs = lineage_inputs
        # a file read here under a name that does not last -> the name its rows are recorded
        # under (lineage, raw loads, quarantine): an absorb reads the served events from a
        # temporary file that then becomes its archive, line for line
        self.recorded_as = {Path(k).resolve(): Path(v).resolve() for k, v in (recorded_as or {}).items()}
        # per table, the source lines withheld as erased users' (filled when re-processing)
        self.withheld_lines: dict[str, list[int]] = {}

    def _recorded(self, path: Path) -> Path:
        """The name `path`'s rows are recorded under (`recorded_as`; else its own, resolved)."""
        here = path.resolve()
        return self.recorded_as.get(here, here)

    def _declared_file(self, data_dir: Path, table: str) -> Path | None:
        """The file `shelfwise.toml` names for `table` (`[files]`): it must be there. A name
        with `*` or `?` is a pattern (`orders_*.csv`: a nightly export named after its day) that
        must match one file of the directory. None (a note says so: `_undelivered`) where an
        appended delivery has no such file: the shop's one shelfwise.toml serves a day's orders
        alone too (a full load missing it is refused: a typo, or a folder not the shop's)."""
        name = self._map.files[table]
        path = data_dir / name
        if any(ch in name for ch in "*?["):
            # (a file, or a folder of the table's parts)
            hits = sorted(p for p in data_dir.glob(name) if p.name != MAP_FILE and not p.name.startswith("."))
            if len(hits) > 1:
                raise SourceError(
                    str(data_dir),
                    None,
                    f"{MAP_FILE} [files] reads the {table} table from {name!r}, which matches "
                    f"{len(hits)} files ({', '.join(p.name for p in hits[:5])}): a delivery is one file a "
                    "table (or a folder of its parts)",
                )
            if hits:
                return hits[0]
        if not path.exists() and self.mode == "append":
            self._undelivered.append(
                f"{MAP_FILE} [files] reads the {table} table from {name!r}: no such file in this "
                f"delivery, so no {table} were delivered (its curated rows stay as they are)"
            )
            return None
        if not path.exists():
            present = ", ".join(sorted(p.name for p in data_dir.iterdir() if p.name != MAP_FILE)[:20])
            raise SourceError(
                str(path),
                None,
                f"not found: {MAP_FILE} [files] says the {table} table is read from {name!r}, and "
                f"{data_dir} has no such file (found: {present or 'nothing'})",
            )
        return path

    def _holds_a_shop(self) -> bool:
        """Whether the workdir's warehouse already holds a shop (curated products or events): a
        snapshot without them then leaves them as they are."""
        from ..storage import read_only
        from ..storage._warehouse import WAREHOUSE_FILE

        if not (self.workdir / WAREHOUSE_FILE).exists():
            return False
        with read_only(self.workdir) as (_, curated):
            return bool({"products", "events"} & curated)

    def run(self, data_dir: str | Path) -> IngestReport:
        data_dir = Path(data_dir)
        if data_dir.is_file():  # (the Python API's ingest(path) as the CLI's --data: one wording)
            raise SourceError(
                str(data_dir),
                None,
                f"a file, not a dataset folder: give the folder holding the shop's files (here {data_dir.parent})",
            )
        if not data_dir.is_dir():
            raise SourceError(str(data_dir), None, "dataset directory not found")
        # the files named wherever the command ran (cron, another shell): the raw loads, the
        # quarantine and the re-delivery details name them as lineage does, whole
        data_dir = data_dir.absolute()
        self._map = self.column_map if self.column_map is not None else load_column_map(data_dir)
        # the erasure register, read once per load: rows of these users must not come back
        self._erasures = Erasures.of(self.workdir)
        # nor events the retention policy took away (a re-sent export of last year)
        days = load_retention(self.workdir)["events_days"]
        self._expire_before = (
            None if days is None else datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days)
        )
        self._derived: set[str] = set()
        self._next_load_id = 1  # (the run's tables each take a load id before any is recorded)
        self._headers: dict[str, list[str]] = {}  # each table's file header, as read this run
        self._undelivered: list[str] = []  # `[files]` tables this delivery has no file of
        self._events_file: Path | None = None  # (its user ids rank the users' key advice)
        files = {
            t: self._declared_file(data_dir, t)
            if t in self._map.files
            else find_table_file(data_dir, t, TABLE_FILE_ALIASES.get(t, ()))
            for t in LOAD_ORDER
        }
        # (an existing shop's snapshot of some tables replaces those alone, as a catalog
        # snapshot with no events file leaves the curated events: a snapshot of faq.csv alone
        # replaces the FAQ - it was refused with the new shop's message)
        if (
            self.mode == "replace"
            and files["events"] is None
            and files["products"] is None
            # (a folder of no table at all, a typo'd or empty one, is refused as before: it
            # loaded nothing, COMPLETE, and `train --data wrongdir` trained on the old data)
            and (all(f is None for f in files.values()) or not self._holds_a_shop())
        ):
            present = ", ".join(sorted(p.name for p in data_dir.iterdir())[:20]) or "nothing"
            read = {t: p.name for t, p in files.items() if p is not None}
            # a folder with only the FAQ or the queries: say what they were read as, and that a
            # shop starts from its catalog or its events (never offer the FAQ as the events)
            tables = "".join(f"{n} is the {t} table; " for t, n in read.items())
            declare = _declare_hint(data_dir, frozenset(read.values()))
            raise SourceError(
                str(data_dir),
                None,
                f"no events.{{parquet,csv,jsonl}} or products.{{...}} file (found: {present}); {tables}"
                + ("a shop starts from its catalog (products) or its behaviour (events); " if read else "")
                + (declare + "; " if declare else "")
                + "other formats: convert them first with `shelfwise convert` (in Python `shelfwise.datasets.convert`)",
            )
        if self.mode == "append" and all(f is None for f in files.values()):
            present = ", ".join(sorted(p.name for p in data_dir.iterdir())[:20]) or "nothing"
            raise SourceError(
                str(data_dir),
                None,
                f"a delivery with no table file (found: {present}); "
                + (
                    _declare_hint(data_dir)
                    or f"a table is read from a file named after it: {', '.join(LOAD_ORDER)} "
                    "(.csv, .tsv, .jsonl, .json or .parquet)"
                ),
            )
        used = {p.name for p in files.values() if p is not None}
        unread = [
            p.name
            for p in sorted(data_dir.iterdir())
            if p.name not in used and not p.name.startswith(".") and p.name != MAP_FILE
        ]
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        staged_dir = self.workdir / "tmp" / "staged"
        inputs = [DatasetRef("file", str(self._recorded(p))) for p in files.values() if p is not None]
        if self.lineage_inputs is not None:
            inputs = list(self.lineage_inputs)
        # (its START written from a thread: the OpenLineage client is imported meanwhile)
        lineage = LineageRun(self.workdir, self.job, inputs, background=True)
        report = IngestReport(
            run_id=lineage.run_id,
            workdir=str(self.workdir),
            data_dir=str(data_dir),
            started_at=started.isoformat(),
            settings=asdict(self.settings),
            mode=self.mode,
            column_map=self._map.describe(),
            engine=self.engine.name,
        )
        if self.engine.name != "duckdb":
            report.notes.append(f"engine: {self.engine.describe()}")
        report.notes.extend(self._undelivered)
        wh = _open_warehouse(self.workdir, self.settings.memory_limit)
        if self.job == "shelfwise.ingest":
            try:
                recovered = recover_unaudited(self.workdir, wh)
            except Exception as exc:  # noqa: BLE001 - the run itself goes on; said
                report.warnings.append(f"earlier runs without an audit entry could not be recovered: {exc}")
            else:
                if recovered:
                    report.notes.append(
                        f"audit: {len(recovered)} earlier published run(s) had no audit entry (the "
                        f"process ended, or the audit folder was not writable, after the commit): "
                        f"written now, marked recovered ({', '.join(recovered)})"
                    )
        # (START once the run holds the warehouse: a run refused as busy leaves no open run)
        lineage.start()
        committed = False
        try:
            self._prepare(wh)
            outputs: list[DatasetRef] = []
            input_refs: list[DatasetRef] = []
            self._events_file = files["events"]
            staged_now: dict[str, StagedFile] = {}
            staging_secs: dict[str, float] = {}  # a file staged early (order lines): its seconds
            derived: dict[str, str] = {}
            need = {t for t in ("products", "users") if files[t] is None}
            events_path = files["events"]
            header: list[str] = []
            if events_path is not None and need:  # an order-lines export carries products and users
                t0_stage = time.perf_counter()
                ev = staged_now["events"] = self._stage_events(events_path, staged_dir, report)
                staging_secs["events"] = time.perf_counter() - t0_stage
                header = header_of(wh, ev)
            if header:  # (an empty JSON lines file: nothing to derive)
                ev_map = map_columns(
                    CONTRACTS["events"],
                    header,
                    ev.source,
                    self._map,
                    samples=lambda: samples_of(wh, ev, header),
                    known_products=_known_products(wh),
                ).mapping
                lines = derive_order_lines(
                    wh,
                    ev,
                    header,
                    ev_map,
                    self._map.for_table("products"),
                    need,
                    staged_dir,
                    parquet_files(ev),
                    # a delivery's older lines never overwrite what later orders said
                    after_curated=self.mode == "append" and "events" in wh.curated_tables(),
                    appending=self.mode == "append",
                    pseudonym_sql=Pseudonymizer.of(self.workdir).sql,
                )
                staged_now.update(lines.tables)
                derived.update(lines.descriptions)
                self._derived = set(lines.tables)
                report.notes.extend(lines.notes)
                for t in lines.tables:
                    files[t] = events_path
            # Pass 1: every table's file read into temp tables and its rows checked, no warehouse
            # write (those wait for the transaction: `LoadState.defer`). DuckDB reads rows written
            # inside an open transaction on one thread (duckdb/duckdb#18074): read and checked
            # inside it, a 2M-row events file took 1.5x as long.
            prepared: list[tuple[str, Path, StagedFile, float, TableVersion | None, _Prepared]] = []
            self._next_load_id = 1
            for table in LOAD_ORDER:
                path = files[table]
                if path is None:
                    continue
                t0_stage = time.perf_counter()
                staged = staged_now.pop(table, None) or (
                    self._stage_events(path, staged_dir, report)
                    if table == "events"
                    else stage_file(path, staged_dir, in_place=True)
                )
                staging_s = staging_secs.get(table, 0.0) + time.perf_counter() - t0_stage
                if staged.format == "jsonl" and not staged.records and not staged.bad_lines:
                    # JSON lines with no line: no row, and no key to read columns from (a CSV
                    # file has its header): nothing to load, said (the read crashed instead)
                    held = (
                        f"curated.{table} is unchanged"
                        if table in wh.curated_tables()
                        else f"no curated.{table} yet"
                    )
                    report.notes.append(f"{path.name}: no rows (an empty JSON lines file): {held}")
                    if staged.staged is not None and staged.numbered:
                        staged.staged.unlink(missing_ok=True)
                    continue
                # an append's table is the earlier version and the delivery: both are its inputs
                before = wh.latest_version(table) if self.mode == "append" else None
                ready = self._prepare_table(wh, CONTRACTS[table], staged, lineage.run_id, report)
                prepared.append((table, path, staged, staging_s, before, ready))
            # Pass 2, one transaction for the whole run: a load that fails at any table publishes
            # nothing (its earlier tables' versions, quarantine rows and raw rows went with it;
            # the next load counted the failed run's quarantined rows as re-sent, "check passed")
            wh.begin()
            for table, path, staged, staging_s, before, ready in prepared:
                tr = self._finish_table(ready, report)
                # (the order lines' dates behind derived rows; a reprocess of quarantined rows
                # is no delivery of the table: its dates stay)
                # (a snapshot not published, `curated_nothing`, leaves the kept table's dates)
                if table in ("products", "users") and self.job != REPROCESS_JOB and tr.published:
                    record_as_of(wh, table, derived=table in self._derived, replace=tr.mode != "append")
                tr.stage_seconds = {"stage": round(staging_s, 3), **tr.stage_seconds}
                tr.derived = derived.get(table, "")
                report.tables[table] = tr
                input_refs.append(
                    DatasetRef(
                        "file",
                        str(self._recorded(path)),
                        rows=tr.rows_in,
                        content_hash=staged.sha256,
                        size_bytes=staged.size_bytes,
                    )
                )
                if before is not None:
                    input_refs.append(
                        DatasetRef(
                            warehouse_namespace(self.workdir),
                            f"curated.{table}",
                            rows=before.row_count,
                            content_hash=before.content_hash,
                        )
                    )
                # a delivery that changed nothing (a re-send) made no version, nor one that was
                # not published (`curated_nothing`: the earlier version stays): none is claimed
                if tr.published and (before is None or before.content_hash != tr.content_hash):
                    outputs.append(
                        DatasetRef(
                            warehouse_namespace(self.workdir),
                            f"curated.{table}",
                            rows=tr.rows_total,
                            content_hash=tr.content_hash,
                            columns=tuple(wh.columns(table)),
                            lifecycle="ALTER" if self.mode == "append" else "OVERWRITE",
                        )
                    )
                if staged.staged is not None and staged.numbered:  # (never the source read in place)
                    staged.staged.unlink(missing_ok=True)
            _say_unmatched_users(wh, report, self._headers)
            _say_currencies(wh, report)
            if unread:
                shown = ", ".join(unread[:10]) + (f" and {len(unread) - 10} more" if len(unread) > 10 else "")
                # (the shelfwise.toml lines that would read them: `products = "wc-export 7-12.csv"`)
                hint = _declare_hint(data_dir, frozenset(used)).split("[files]\n", 1)[-1]
                declare = "; ".join(
                    x.strip() for x in hint.splitlines() if x.startswith("    ") and " = " in x
                )
                report.notes.append(
                    f"not read: {shown} (a table is read from a file named after it: "
                    f"{', '.join(LOAD_ORDER)} with .csv, .tsv, .jsonl, .json or .parquet, optionally .gz; "
                    "or from a folder of such files named after it"
                    + (
                        f"; or from the file {MAP_FILE} names for it, e.g. [files] {declare}"
                        if declare
                        else ""
                    )
                    + ")"
                )
            if (
                "products" not in report.tables
                and self.mode == "replace"
                and "products" not in wh.curated_tables()
            ):
                report.notes.append("no products file: the catalog is the set of products seen in events")
            q_rows = sum(t.rows_quarantined for t in report.tables.values())
            outputs.append(DatasetRef(warehouse_namespace(self.workdir), "quarantine.rows", rows=q_rows))
            # (a replay's or a re-process's own inputs, and the earlier versions an append read)
            lineage.inputs = (
                input_refs
                if self.lineage_inputs is None
                else [*self.lineage_inputs, *(r for r in input_refs if r.namespace != "file")]
            )
            report.seconds = round(time.perf_counter() - t0, 3)
            wh.record_run(lineage.run_id, self.job, started, "COMPLETE", report.to_dict())
            wh.commit()
            committed = True
            # the run has succeeded: its records follow, the audit entry first; one that cannot
            # be written is said (`IngestReport.unrecorded`), never turned into a failed run
            if self.job == "shelfwise.ingest":  # re-processing audits itself, with its own details
                audit_dir = self.workdir / "audit"
                try:
                    AuditLog(self.workdir).append("ingest", **ingest_audit_fields(report, str(data_dir)))
                except Exception as exc:  # noqa: BLE001 - the data is published: said, not raised
                    report.after_commit(
                        "audit entry",
                        audit_dir,
                        exc,
                        "make the audit folder writable; the next `shelfwise ingest` writes the "
                        "missing entry, marked recovered",
                    )
            try:
                lineage.complete(outputs)
            except Exception as exc:  # noqa: BLE001
                report.after_commit(
                    "lineage COMPLETE event",
                    self.workdir / "lineage" / "openlineage.jsonl",
                    exc,
                    "make the file writable (chattr -i / chmod u+w); this run's lineage events stay "
                    "missing or without an end (its audit entry and meta.runs record it)",
                )
            try:
                # the servers check posted events against the curated catalog, as ingestion does
                record_product_ids(self.workdir, wh)
                # and `POST /v1/ask` answers from the curated FAQ (a server kept the bundle's old one)
                record_faq_version(self.workdir, wh)
            except Exception as exc:  # noqa: BLE001
                report.after_commit(
                    "servers' catalog state",
                    self.workdir / "state",
                    exc,
                    "make the folder writable and run `shelfwise ingest` again (re-sent rows are recognised)",
                )
        except Exception as exc:
            if committed:  # (the records after the commit are caught above: never reached)
                raise
            report.status = "FAIL"
            if not committed:
                _roll_back(wh, self.engine, lineage.run_id)
                report.notes.append("the run failed: nothing it loaded was published")
            unrecorded: list[str] = []
            said = f"{type(exc).__name__}: {exc}"
            for record in (
                lambda: lineage.fail(said),
                lambda: AuditLog(self.workdir).append(
                    "ingest",
                    outcome="failed",
                    run_id=lineage.run_id,
                    data_dir=str(data_dir),
                    error=said.split(": ", 1)[1][:500],
                ),
                lambda: wh.record_run(lineage.run_id, self.job, started, "FAIL", report.to_dict()),
            ):
                try:
                    record()
                except Exception as also:  # noqa: BLE001 - recording must not hide the real error
                    unrecorded.append(f"{type(also).__name__}: {also}".splitlines()[0][:200])
            if isinstance(exc, OSError) or _write_refused(exc):
                raise WorkdirUnwritable(
                    f"{_where(exc, self.workdir)}: cannot be written ({str(exc).splitlines()[0][:300]}); "
                    "nothing was published (the run rolled back) - make it writable and run the "
                    "same command again"
                    + (f" (nor could the failure be recorded: {'; '.join(unrecorded)})" if unrecorded else "")
                ) from exc
            raise
        finally:
            wh.close()
            shutil.rmtree(staged_dir, ignore_errors=True)
        return report

    # ------------------------------------------------------------------------------------------
    def _stage_events(self, path: Path, staged_dir: Path, report: IngestReport) -> StagedFile:
        """The events file staged; an orders export packing each order's products in one cell
        (BigCommerce's `Product Details`) as one record per product (`_orderlines.unpack_orders`)."""
        staged, note = unpack_orders(stage_file(path, staged_dir, in_place=True), staged_dir)
        if note:
            report.notes.append(note)
        return staged

    def _prepare(self, wh: Warehouse) -> None:
        wh.sql(QUARANTINE_DDL)
        wh.sql("CREATE SEQUENCE IF NOT EXISTS quarantine.qid_seq START 1")
        from duckdb.func import ARROW, SPECIAL

        for name, fn in ((NORMALIZE_UDF, normalize_flat_array), (NORMALIZE_LINES_UDF, normalize_lines_array)):
            wh.db.create_function(
                name, fn, ["VARCHAR"], "VARCHAR", type=ARROW, null_handling=SPECIAL, side_effects=False
            )

    def _event_user_ids(self, wh: Warehouse) -> Callable[[list[str]], int] | None:
        """How many of some values are user ids of this delivery's events file (the sampled
        values of its columns named like a customer's id, `id_customer`, `Customer ID`): a users
        file without a user_id column is advised to key on the column the events name customers
        by (it was advised its e-mail column, and no customer of the events had a profile)."""
        path = self._events_file
        if path is None:
            return None

        def count(values: list[str]) -> int:
            try:
                staged = stage_file(path, self.workdir / "tmp" / "staged", in_place=True)
                header = header_of(wh, staged)
                samples = samples_of(wh, staged, header)
            except Exception:  # noqa: BLE001 - an unreadable events file is said at its own load
                return 0
            ids = {
                v.strip()
                for h, vs in samples.items()
                if any(w in column_key(h) for w in ID_WORDS["user_id"])
                for v in vs
                if v and v.strip()
            }
            return sum(1 for v in values if v.strip() in ids)

        return count

    def _validate(self, wh: Warehouse, contract: TableContract, *, empty: bool = False) -> None:
        """The curated table must satisfy the contract's pandera schema."""
        validate_curated(wh, contract, empty=empty)

    def _prepare_table(
        self, wh: Warehouse, contract: TableContract, staged: StagedFile, run_id: str, report: IngestReport
    ) -> _Prepared:
        """One table's first part, before the run's transaction: its columns mapped, its file
        read into temp tables and its rows checked (`STAGES`' stages up to the first that
        writes: `BEFORE_TRANSACTION`); its notes held until `_finish_table` (the report says
        each table's in turn)."""
        held = report.notes, report.warnings
        report.notes, report.warnings = [], []
        try:
            st = self._read_table(wh, contract, staged, run_id, report)
        except BaseException:  # (a failure: its notes are the report's now)
            notes, warnings = report.notes, report.warnings
            report.notes, report.warnings = held
            report.notes.extend(notes)
            report.warnings.extend(warnings)
            raise
        notes, warnings = report.notes, report.warnings
        report.notes, report.warnings = held
        return _Prepared(st, notes, warnings)

    def _read_table(
        self, wh: Warehouse, contract: TableContract, staged: StagedFile, run_id: str, report: IngestReport
    ) -> LoadState:
        t0 = time.perf_counter()
        if (to := self.recorded_as.get(staged.source.resolve())) is not None:
            # the names its rows are recorded under; a folder's parts named by what they link
            # to (a replay reads the archives through links); Parquet parts are read by name
            named = staged.parts if staged.format == "parquet" else [self._recorded(p) for p in staged.parts]
            staged = replace(staged, source=to, parts=named)
        src = staged.source
        tr = TableReport(
            table=contract.name,
            source_file=str(src),
            source_sha256=staged.sha256,
            contract_version=contract.version,
            blank_lines=staged.blank_lines,
            transcoded_lines=staged.transcoded_lines,
            source_files={str(p): h for p, h in zip(staged.parts, staged.part_sha256, strict=True)},
        )
        header = header_of(wh, staged)
        reads = _read_columns(contract.name, header, src, self._map)
        cols = map_columns(
            contract,
            header,
            src,
            self._map,
            derived=contract.name in self._derived,
            samples=lambda: samples_of(wh, staged, header),
            keyed_update=self.mode == "append"
            and bool(contract.key)
            and contract.name in wh.curated_tables(),
            nothing_to_update=self.mode == "append" and contract.name not in wh.curated_tables(),
            had_customers=(lambda: _names_customers(wh)) if self.mode == "append" else None,
            known_products=_known_products(wh) if contract.name == "events" else None,
            known_users=self._event_user_ids(wh) if contract.name == "users" else None,
        )
        report.notes.extend(cols.notes)
        report.warnings.extend(cols.warnings)
        tr.column_mapping = {v: k for k, v in cols.mapping.items()}
        tr.column_mapping.update({h: c for c, hs in cols.joined.items() for h in hs})
        tr.column_mapping.update({h: f"attributes.{attribute_key(k)}" for k, h in cols.attributes.items()})
        for column, value in cols.implied.items():
            report.notes.append(f"{src.name}: no {column} column: every row is {column} = {value}")
        extra_kept: list[str] = []
        if contract.keep_extra_columns:
            for e in cols.extra:
                if classify_extra_column(e) is Classification.PERSONAL:
                    tr.personal_columns_dropped.append(e)
                else:
                    extra_kept.append(e)
            _drop_street_addresses(extra_kept, lambda: samples_of(wh, staged, header), src.name, tr, report)
        else:
            tr.ignored_columns = cols.extra
        self._headers[contract.name] = header
        if contract.name == "users":
            _say_consent_columns(src.name, cols.mapping, extra_kept, report)
        if staged.transcoded_lines:
            report.notes.append(
                f"{src.name}: {staged.transcoded_lines} line(s) were not valid UTF-8 and were read as cp1252/latin-1"
            )
        report.notes.extend(f"{src.name}: {note}" for note in staged.notes)
        st = LoadState(
            wh=wh,
            contract=contract,
            staged=staged,
            run_id=run_id,
            mode=self.mode,
            settings=self.settings,
            report=report,
            tr=tr,
            workdir=self.workdir,
            erasures=self._erasures,
            expire_before=self._expire_before if contract.name == "events" else None,
            reprocess=self.job == REPROCESS_JOB,
            header=header,
            mapping=cols.mapping,
            joined=cols.joined,
            attributes=cols.attributes,
            implied=cols.implied,
            filled=cols.filled,
            extra_kept=extra_kept,
            mapped_explicitly=frozenset(self._map.for_table(contract.name)),
            read_columns=reads,
            engine=self.engine,
            min_load_id=self._next_load_id,
        )
        tr.stage_seconds["columns"] = round(time.perf_counter() - t0, 3)
        stages = STAGES[self.engine.name]
        try:
            for name, stage in stages[: _before_transaction(self.engine.name)]:
                self._run_stage(st, name, stage)
            self._next_load_id = st.load_id + 1
            st.park()
        except BaseException:
            self._discard(st)
            raise
        return st

    def _finish_table(self, ready: _Prepared, report: IngestReport) -> TableReport:
        """One table's remaining stages, in the run's transaction: the writes its first part
        deferred, then erased users' rows withheld, raw, the set checks, the publish."""
        st, tr, wh, contract = ready.st, ready.st.tr, ready.st.wh, ready.st.contract
        report.notes.extend(ready.notes)
        report.warnings.extend(ready.warnings)
        try:
            st.unpark()
            st.apply_deferred()
            for name, stage in STAGES[self.engine.name][_before_transaction(self.engine.name) :]:
                self._run_stage(st, name, stage)
                st.apply_deferred()  # (Spark's row checks run here: what they remember)
            if st.withheld_lines:
                self.withheld_lines[contract.name] = st.withheld_lines
            if contract.name == "faq" and "faq" in wh.curated_tables():
                _say_faq_conflicts(wh, tr, report)
            _say_markup(st)
            st.drop_temps()
        except BaseException:
            self._discard(st)
            raise
        return tr

    def _run_stage(self, st: LoadState, name: str, stage: Callable[[LoadState], None]) -> None:
        t0 = time.perf_counter()
        stage(st)
        if stage is load_raw:
            _keep_when_empty(st)
        spent = st.tr.stage_seconds.get(name, 0.0) + time.perf_counter() - t0
        st.tr.stage_seconds[name] = round(spent, 3)

    def _discard(self, st: LoadState) -> None:
        if self.engine.name == "spark":  # the load's staged Parquet holds raw ids: never left behind
            from ._load_spark import discard_staged

            discard_staged(st)


# the stages a table's load runs before the run's transaction: they read its file into temp
# tables and check its rows, and write nothing to the warehouse (`LoadState.defer`)
BEFORE_TRANSACTION = frozenset({load_raw, set_aside, check_rows})


def _before_transaction(engine: str) -> int:
    """How many of the engine's first stages run before the run's transaction."""
    n = 0
    for _, stage in STAGES[engine]:
        if stage not in BEFORE_TRANSACTION:
            break
        n += 1
    return n


@dataclass
class _Prepared:
    """A table read and checked before the run's transaction, and the notes it made meanwhile."""

    st: LoadState
    notes: list[str]
    warnings: list[str]


USER_CONSENTS = ("consent_marketing", "consent_personalization")


def _drop_street_addresses(
    kept: list[str],
    samples: Callable[[], dict[str, list[str]]],
    file: str,
    tr: TableReport,
    report: IngestReport,
) -> None:
    """A kept profile column whose name says nothing but whose values are street addresses
    (`1 Main St Providence`, `Hauptstr. 5`: `holds_street_addresses`) is personal: moved from
    `kept` to the dropped personal columns, and said in a note (the column, never a value)."""
    if not kept:
        return
    values = samples()
    for e in [e for e in kept if holds_street_addresses(values.get(e, []))]:
        kept.remove(e)
        tr.personal_columns_dropped.append(e)
        report.notes.append(
            f"{file}: {e!r} holds street addresses: left out of the curated layer as personal data"
        )


def _read_columns(table: str, header: list[str], src: Path, column_map: ColumnMap) -> dict[str, str]:
    """The columns the map names that the load reads but does not curate (`READ_COLUMNS`: an
    order's status) -> their header in this file (matched as a mapped column is); one the file
    lacks is a clear error before anything is loaded."""
    out: dict[str, str] = {}
    for column, wanted in column_map.reads.get(table, {}).items():
        hit = wanted if wanted in header else match_headers(header, {column: [wanted]}).get(column)
        if hit is None:
            origin = column_map.origin.get((table, column), MAP_FILE)
            raise SourceError(
                str(src),
                1,
                f"{origin} maps {table}.{column} to {wanted!r}, which is not a column of this file; "
                f"the header has: {', '.join(header) or 'no columns'}",
            )
        out[column] = hit
    return out


# what a second consent-like column of a known export means (by `column_key`)
_CONSENT_MEANINGS = {
    "optin": "PrestaShop's consent to offers from the shop's partners (its `newsletter` is the shop's own "
    "newsletter)",
}


def _say_consent_columns(file: str, mapping: dict[str, str], kept: list[str], report: IngestReport) -> None:
    """A users file's column that looks like a consent (`Accepts SMS Marketing`, `Email Opt-In`)
    and is read as none: kept as a profile column, and said: a warning when no consent is read
    at all (every user then has the shop's default, and a marketing audience holds those who
    said no), else a note naming the column consent is read from."""
    read = [f"{c} is read from {mapping[c]!r}" for c in USER_CONSENTS if c in mapping]
    for e in (e for e in kept if looks_like_consent(e)):
        if read:
            means = _CONSENT_MEANINGS.get(column_key(e))
            report.notes.append(
                f"{file}: {e!r} looks like a consent too: kept as the profile column x_{safe(e)}, not "
                f"read as one ({', '.join(read)}; an audience export asks that one alone)"
                + (f"; {e!r} is {means}" if means else "")
                + f". To read it as the consent instead: --map 'users.consent_marketing={e}' (or "
                f'users.consent_personalization), or [map.users] consent_marketing = "{e}" in {MAP_FILE}'
            )
            continue
        said = (
            f"{file}: {e!r} looks like a consent, but no consent is read from this file: every user "
            "has the shop's default consent, and an audience export includes those who said no. "
        )
        if _OPT_OUT.search(e):  # its "yes" is a refusal: mapped as it is, it would read as consent
            said += (
                "It reads as an opt-out (yes = no consent): write it as a consent column (yes = "
                "consent) and map that (users.consent_marketing or users.consent_personalization)"
            )
        else:
            said += (
                f"To read it: --map 'users.consent_marketing={e}' (or users.consent_personalization), "
                f'or [map.users] consent_marketing = "{e}" in {MAP_FILE}'
            )
        report.warnings.append(said)


def currency_counts(wh: Warehouse, table: str) -> list[tuple[str, int]]:
    """(ISO 4217 code, rows) of a curated table's `currency` column, most rows first (empty
    without the column or a value in it)."""
    if table not in wh.curated_tables() or "currency" not in wh.columns(table):
        return []
    rows = wh.sql(
        f"SELECT currency, count(*) FROM curated.{table} WHERE currency IS NOT NULL "
        "GROUP BY currency ORDER BY count(*) DESC, currency"
    ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def currencies_said(counts: list[tuple[str, int]]) -> str:
    from ._contracts import UNKNOWN_CURRENCY

    return ", ".join(
        f"{c} (a code shelfwise cannot read) {n:,} rows" if c == UNKNOWN_CURRENCY else f"{c} {n:,} rows"
        for c, n in counts
    )


def _say_currencies(wh: Warehouse, report: IngestReport) -> None:
    """A curated table whose `currency` column holds more than one currency (a combined
    delivery of several stores): said in one line. shelfwise does not convert: money summed
    over the rows (a customer's monetary value, revenue) is per currency."""
    for table in ("events", "products"):
        if table not in report.tables:
            continue
        counts = currency_counts(wh, table)
        if len(counts) > 1:
            report.warnings.append(
                f"curated.{table}: money in {len(counts)} currencies: {currencies_said(counts)} - shelfwise "
                "does not convert; revenue figures are per currency (or use one workdir per currency)"
            )


def _say_unmatched_users(wh: Warehouse, report: IngestReport, headers: dict[str, list[str]]) -> None:
    """A warning when the users table and the events name their shoppers by different keys
    (Shopify: the customers export's `Customer ID`, the orders' `Email`): under one in ten of
    the events' (non-anonymous) users has a users row, so consent and profiles reach almost
    nobody. Said with the counts, the two columns read and, where the users file has a column
    named as the events' user column, the map that keys both on it."""
    if not {"users", "events"} & set(report.tables) or not {"users", "events"} <= set(wh.curated_tables()):
        return
    row = wh.sql(
        f"""WITH u AS (SELECT DISTINCT user_id FROM curated.users WHERE user_id IS NOT NULL),
                 e AS (SELECT DISTINCT user_id FROM curated.events WHERE user_id IS NOT NULL
                       AND NOT starts_with(user_id, {lit(ANONYMOUS_PSEUDONYM_PREFIX)}))
            SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM e),
                   (SELECT count(*) FROM u JOIN e USING (user_id))"""
    ).fetchone()
    users, shoppers, matched = (int(x) for x in row) if row else (0, 0, 0)
    if not users or not shoppers or matched * 10 >= shoppers:
        return

    def read_from(table: str) -> str | None:
        t = report.tables.get(table)
        return next((h for h, c in t.column_mapping.items() if c == "user_id"), None) if t else None

    on_users, on_events = read_from("users"), read_from("events")
    said = ""
    if on_users and on_events:
        said = f" (users keyed on {on_users!r}, events on {on_events!r})"
    fix = "map users.user_id and events.user_id to columns holding the same id: --map 'users.user_id=HEADER'"
    same = [h for h in headers.get("users", []) if on_events and column_key(h) == column_key(on_events)]
    if same and same[0] != on_users:
        fix = f"--map 'users.user_id={same[0]}' (or [map.users] user_id = \"{same[0]}\" in {MAP_FILE})"
    report.warnings.append(
        f"only {matched:,} of the {shoppers:,} users of curated.events have a row among the {users:,} "
        f"of curated.users: the two name their shoppers by different ids{said}, so consent and "
        "profiles reach almost none of them, and the shop's default consent applies to the rest "
        f"(an audience export holds them). Key both on one id: {fix}"
    )


def _roll_back(wh: Warehouse, engine: Engine, run_id: str) -> None:
    """Undo a failed run: its transaction (versions, quarantine rows, raw rows, every `meta`
    row), and on Spark the Parquet it wrote for them (files the catalog no longer names)."""
    written: list[Path] = []
    if engine.name == "spark":
        try:
            rows = wh.sql(
                "SELECT physical_name FROM meta.table_versions WHERE run_id = ?", [run_id]
            ).fetchall()
        except Exception:  # noqa: BLE001 - an aborted transaction: the versions are unknown
            rows = []
        written = [Path(r[0]).parent for r in rows if "/" in r[0]]
        location = getattr(engine, "location", None)
        if isinstance(location, Path):
            written += location.glob(f"quarantine/*/run={run_id}")
    wh.rollback()
    for folder in written:
        shutil.rmtree(folder, ignore_errors=True)


def _say_faq_conflicts(wh: Warehouse, tr: TableReport, report: IngestReport) -> None:
    tr.faq_conflicts, tr.faq_conflict_examples = faq_conflicts(wh)
    if tr.faq_conflicts:
        first = tr.faq_conflict_examples[0]
        report.notes.append(
            f"faq: {tr.faq_conflicts} question(s) are asked by entries that answer them differently "
            f"(e.g. {first['question']!r}: {', '.join(first['faq_ids'])}); `ask` answers with whichever "
            "fits the shopper's words best: keep one answer per question (faq_conflicts in the report)"
        )


def _say_markup(st: LoadState) -> None:
    """For text shown to shoppers as written (`keep_lines`: an FAQ answer), the notes of the
    load: how many of its values were HTML, converted to plain text (`_text.html_to_text`), and
    which curated values read as markup once their entities are decoded (`&lt;script&gt;` is
    the text "<script>"): they are served as plain text, and a shop whose pages insert them as
    HTML should know. Both went unsaid: an answer's markup was stripped or decoded silently."""
    from ._text import HAS_MARKUP, LOOKS_LIKE_MARKUP

    shown = [c for c in st.contract.columns if c.keep_lines and c.name in st.mapping]
    if not shown or st.name not in st.wh.curated_tables():
        return
    key = q(st.contract.key[0]) if st.contract.key else "NULL"
    for c in shown:
        col = q(c.name)
        row = st.wh.sql(  # (this load's rows as delivered: raw keeps them after the load)
            f"SELECT count(*) FROM {st.raw_table} WHERE _load = ? AND regexp_matches({col}, ?)",
            [st.load_id, HAS_MARKUP],
        ).fetchone()
        if row and row[0]:
            st.note(
                f"{st.src.name}: {row[0]:,} {c.name}(s) given as HTML were converted to plain text (tags and "
                f'scripts removed, entities decoded, a link kept as "text (url)"): {c.name}s are served as '
                "plain text"
            )
        marked = st.wh.sql(
            f"SELECT {key}, {col} FROM curated.{q(st.name)} WHERE regexp_matches({col}, ?) ORDER BY 1",
            [LOOKS_LIKE_MARKUP],
        ).fetchall()
        if marked:
            shown_ids = ", ".join(str(k) for k, _ in marked[:3]) + (" ..." if len(marked) > 3 else "")
            example = str(marked[0][1])
            st.note(
                f"{st.name}: {len(marked):,} {c.name}(s) read as markup once decoded ({shown_ids}; e.g. "
                f"{example[:80]!r}): served as plain text, as written; a page that inserts {c.name}s as HTML "
                "must escape them, or write the text without the tags"
            )


def _keep_when_empty(st: LoadState) -> None:
    """A full load whose file for a table holds no row (a nightly export that failed, leaving
    its header) keeps the table's curated rows: it is read as a delivery of nothing, said in
    the notes, instead of a new, empty version of the table."""
    if st.mode != "replace" or st.tr.rows_in or st.name not in st.wh.curated_tables():
        return
    row = st.wh.sql(f"SELECT count(*) FROM curated.{q(st.name)}").fetchone()
    held = int(row[0]) if row else 0
    if held:
        st.mode = "append"
        st.note(
            f"{st.src.name}: no rows: curated.{st.name} keeps its {held:,} rows (a full load never empties a "
            "table from a file with no rows: an export that failed leaves its header alone)"
        )


def ingest(
    data_dir: str | Path,
    workdir: str | Path,
    settings: IngestSettings | None = None,
    *,
    append: bool = False,
    column_map: ColumnMap | None = None,
    engine: Engine | None = None,
) -> IngestReport:
    """Governed ingestion of `data_dir` (a canonical dataset directory) into `workdir`: a full
    snapshot, or with `append` a delivery added to what is curated (re-delivered rows are
    recognised, keyed tables upserted). `column_map`: the shop's headers -> canonical columns
    (default: the directory's shelfwise.toml, when it has one)."""
    mode = "append" if append else "replace"
    return Ingestor(workdir, settings, mode=mode, column_map=column_map, engine=engine).run(data_dir)
