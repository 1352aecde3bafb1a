"""The state of one table's governed load, passed from stage to stage.

A load is four functions over one `LoadState`: `_load_raw.load_raw` (the file into the raw layer,
malformed lines quarantined), `_load_rows.check_rows` (the contract's row checks), `_load_sets.check_sets`
(duplicates, keys, references, robots) and `_load_publish.publish` (erased users withheld,
pseudonyms, re-deliveries, quarantine, the new curated version, the accounting). Each stage
reads what the earlier ones set and leaves its result in warehouse temp tables named here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..storage import StagedFile, Warehouse
from ._compile import lit, q
from ._contracts import Kind, TableContract
from ._erasures import ERASED_USER, Erasures
from ._ingest_report import IngestReport, IngestSettings, TableReport
from ._mapping import ATTRIBUTE_HEADERS
from ._reasons import Reason

# a withheld row's reason when it is dated before the retention policy's cutoff
PAST_RETENTION = "past_retention"

QUARANTINE_DDL = """CREATE TABLE IF NOT EXISTS quarantine.rows (
    quarantine_id BIGINT, run_id VARCHAR, table_name VARCHAR, source_file VARCHAR, source_line BIGINT,
    reason VARCHAR, reasons VARCHAR[], detail VARCHAR, raw JSON, status VARCHAR,
    quarantined_at TIMESTAMP, resolved_run_id VARCHAR)"""

# the temp table of checked rows: typed values, `_reasons` (failed checks), `_detail`, `_source_line`
CHECKED = "_checked"

# the temp tables a load's first stages leave for its later ones under one name for every table
# (the checked rows, `_load_aside`'s lines kept aside and variant parents): between the run's
# two passes each table's are kept under its own name (`LoadState.park`)
_SHARED_TEMPS = (CHECKED, "_aside_lines", "_variant_parents")

__all__ = [
    "CHECKED",
    "QUARANTINE_DDL",
    "LoadState",
    "column_key",
    "constant",
    "count_withheld",
    "attributes_sql",
    "with_attributes",
    "joined_sql",
    "match_headers",
    "parquet_files",
    "quarantine_lines",
    "safe",
]


REPROCESS_JOB = "shelfwise.quarantine.reprocess"  # the lineage job of re-processing quarantined rows


def still_the_quarantines(append: bool) -> str:
    """The condition that a quarantined row is still the quarantine's (a re-sent copy of it is
    `redelivered`): any but a superseded one. In an append (a day's delivery), a row a
    re-processing superseded lives on as the row its fix became (a first fix failed, the second
    was released: the re-sent original came back as a new open fault). Not in a full snapshot:
    it replaces the table, the fixed row with it, and supersedes the fix's open row (a bad row
    it sends again must be open, not a copy of nothing open)."""
    if not append:
        return "(status <> 'superseded')"
    by_fix = f"resolved_run_id IN (SELECT run_id FROM meta.runs WHERE job = '{REPROCESS_JOB}')"
    return f"(status <> 'superseded' OR {by_fix})"


@dataclass
class LoadState:
    """One table's load. Set up by `Ingestor`; `columns` onwards by the stages."""

    wh: Warehouse
    contract: TableContract
    staged: StagedFile
    run_id: str
    mode: str  # replace or append
    settings: IngestSettings
    report: IngestReport
    tr: TableReport
    workdir: Path
    # None: no one was ever erased (rows go to raw straight from the reader)
    erasures: Erasures | None
    # the retention policy's cutoff (`events_days`, the events table only): a row dated before
    # it is withheld as `past_retention`, as `retention enforce` would delete it (a re-sent
    # export never brings back what the policy took away); None: no policy
    expire_before: datetime | None = None
    # a re-processing of quarantined rows (`_reprocess`): its rows are the quarantine's own, so
    # a row failing again is the open row of the quarantine, not a re-sent copy of one
    reprocess: bool = False
    # the source lines withheld as an erased user's (`withhold_erased`; set when re-processing,
    # whose quarantined rows they were: such a row is resolved as withheld, not released)
    withheld_lines: list[int] = field(default_factory=list)
    # the file's columns: canonical -> source header, further headers joined to one, the
    # values implied by the file's name, the kept extra (profile) columns
    header: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    joined: dict[str, list[str]] = field(default_factory=dict)
    # attribute key -> the header kept as that key of the JSON `attributes` (`_load_columns`)
    attributes: dict[str, str] = field(default_factory=dict)
    implied: dict[str, str] = field(default_factory=dict)
    filled: list[str] = field(default_factory=list)  # read from the key's curated row (`Columns`)
    extra_kept: list[str] = field(default_factory=list)
    mapped_explicitly: frozenset[str] = frozenset()  # columns the column map names (JSON lines)
    # columns the column map names that are read, not curated (`_mapping.READ_COLUMNS`: an
    # order's status) -> the header
    read_columns: dict[str, str] = field(default_factory=dict)
    # a catalog's stock figure is 0 on every row, read as none (`_load_rows.untracked_stock`;
    # None: not judged yet)
    untracked_stock: bool | None = None
    # set by load_raw
    load_id: int = 0
    target: str = ""  # where this load's rows are written first: raw, or a temp table (staging)
    load: str = ""  # a view of this load's rows as loaded (strings)
    # where the stages after reading run (`storage.Engine`): DuckDB, or Spark (`_load_spark`),
    # whose stages keep their DataFrames in `frames`
    engine: Any = None
    frames: dict[str, Any] = field(default_factory=dict)
    # the lowest load id this load may take (`load_raw`): the run's earlier tables took theirs
    # before any was recorded in meta.raw_loads (`store_raw`, in the run's transaction)
    min_load_id: int = 1
    # the warehouse writes of the stages that run before the run's transaction (`Ingestor.run`
    # reads and checks every table's file first): quarantined lines, remembered date orders and
    # decimal marks, applied in order inside it (`apply_deferred`), never when the run fails
    deferred: list[Callable[[], None]] = field(default_factory=list)
    # the file (a folder's parts: each) ends without a final newline (`_load_raw.note_unterminated`):
    # its last line, and the column its last field is read into (None: a column the load does not keep)
    cut_lines: list[int] = field(default_factory=list)
    cut_column: str | None = None
    # this load's lines that complete an earlier load's cut last line (`_load_raw.find_completions`):
    # (line, earlier load, its line, the cut column); the complete row replaces the cut one
    completions: list[tuple[int, int, int, str]] = field(default_factory=list)
    # lines the CSV reader rejected (`_read_csv`)
    rejected_lines: list[int] = field(default_factory=list)

    def defer(self, write: Callable[[], None]) -> None:
        """A warehouse write of this load, made in the run's transaction (`apply_deferred`)."""
        self.deferred.append(write)

    def apply_deferred(self) -> None:
        while self.deferred:
            self.deferred.pop(0)()

    def park(self) -> None:
        """Keep this load's shared-name temp tables under its own names (`_checked` ->
        `_checked__events`) while the run prepares its other tables."""
        self._rename_temps(lambda t: t, lambda t: f"{t}__{self.name}")

    def unpark(self) -> None:
        self._rename_temps(lambda t: f"{t}__{self.name}", lambda t: t)

    def _rename_temps(self, old: Callable[[str], str], new: Callable[[str], str]) -> None:
        for t in _SHARED_TEMPS:
            self.wh.sql(f"DROP TABLE IF EXISTS {new(t)}")  # (an earlier table's, left behind)
            if self.wh_temp_exists(old(t)):
                self.wh.sql(f"ALTER TABLE {old(t)} RENAME TO {new(t)}")

    def wh_temp_exists(self, name: str) -> bool:
        row = self.wh.sql(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]
        ).fetchone()
        return bool(row and row[0])

    def drop_temps(self) -> None:
        """The load's temp tables and view, once it is published (or the run failed)."""
        self.wh.sql(f"DROP VIEW IF EXISTS {self.load or '_load_' + self.name}")
        self.wh.sql(f"DROP TABLE IF EXISTS {self.incoming}")
        self.wh.sql(f"DROP TABLE IF EXISTS _malformed_{self.name}")
        for t in _SHARED_TEMPS:
            self.wh.sql(f"DROP TABLE IF EXISTS {t}")
            self.wh.sql(f"DROP TABLE IF EXISTS {t}__{self.name}")

    @property
    def src(self) -> Path:
        return self.staged.source

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def incoming(self) -> str:
        """The temp table this load's rows are read into (raw gets them in `store_raw`)."""
        return f"_incoming_{self.contract.name}"

    @property
    def raw_table(self) -> str:
        return f"raw.{q(self.contract.name)}"

    @property
    def raw_cols(self) -> list[str]:
        return self.contract.column_names + [f"x_{safe(e)}" for e in self.extra_kept]

    @property
    def delivered(self) -> frozenset[str]:
        """The curated columns this file gives values for (named, joined, implied, kept extras):
        an appended row says nothing about the others (a partial re-send of a product keeps
        its curated brand; a re-sent event lacking an optional column is still the same event)."""
        given = [*self.mapping, *self.joined, *self.implied, *(f"x_{safe(e)}" for e in self.extra_kept)]
        if self.attributes and self.mode != "append":  # (kept from their own columns: `size`, `color`)
            # (appending, attributes made of a few such columns are no whole attributes value: a
            # price feed with a `size` column would have replaced a product's curated attributes
            # with its size alone; they are merged into the curated ones key by key, `merged`,
            # and a new product takes the delivered ones)
            given.append("attributes")
        # (`in_stock` derived from a stock figure where not given, `compile_contract`: an upsert
        # takes it where the curated row's own agreed with its figure, `upsert_select`)
        return frozenset(given)

    @property
    def merged(self) -> frozenset[str]:
        """The curated columns an appended row merges into its key's curated value key by key
        (`_load_publish.upsert_select`): the JSON attributes made of a few attribute columns
        (`size`, `color`) without an attributes column - a delivered key wins, the curated
        object's other keys stay, an empty cell deletes nothing."""
        if self.attributes and self.mode == "append" and "attributes" not in self.delivered:
            return frozenset({"attributes"})
        return frozenset()

    @property
    def extra_sel(self) -> list[str]:
        return [q("x_" + safe(e)) for e in self.extra_kept]

    @property
    def dated(self) -> bool:
        """Whether the table's rows carry a `timestamp` (events): what erasure and retention
        judge a withheld row by."""
        return any(c.name == "timestamp" and c.kind is Kind.TIMESTAMP for c in self.contract.columns)

    @property
    def pseudo_cols(self) -> list[str]:
        return [c.name for c in self.contract.columns if c.pseudonymize]

    @property
    def staging(self) -> bool:
        """Whether rows are held in a temp table until erased users' rows (and rows past the
        retention policy) are taken out."""
        return (self.erasures is not None or self.expire_before is not None) and bool(self.pseudo_cols)

    def note(self, text: str) -> None:
        self.report.notes.append(text)

    def warn(self, text: str) -> None:
        self.report.warnings.append(text)

    def drop_erased_lines(
        self, lines: Sequence[tuple[int | None, str, str]]
    ) -> list[tuple[int | None, str, str]]:
        """Lines that never became rows, less those naming an erased user (withheld, counted).
        Only tables with pseudonymized columns are looked at (a product line naming `42` is
        not a user's)."""
        if not self.staging or not lines or self.erasures is None:
            return list(lines)
        kept, n = self.erasures.split_lines(lines)
        count_withheld(self.tr, n)
        return kept


def note_withheld(st: LoadState) -> None:
    """The load's notes of its withheld rows, by reason: every one, the rows its checks withheld
    and the lines that never became rows (`drop_erased_lines`) alike (the note said the rows
    only: 40 where the report's `rows_withheld` said 41)."""
    erased = st.tr.withheld.get(ERASED_USER, 0)
    if erased:
        st.note(
            f"{st.name}: {erased:,} row(s) of erased users withheld (dated at or before their "
            "erasure, or undated): not stored in raw, curated or quarantine"
        )
    expired = st.tr.withheld.get(PAST_RETENTION, 0)
    if expired and st.expire_before is not None:
        st.note(
            f"{st.name}: {expired:,} row(s) dated before {st.expire_before:%Y-%m-%d %H:%M} withheld "
            "(the retention policy's events_days, config/retention.json): not stored in raw, curated "
            "or quarantine"
        )


def count_withheld(tr: TableReport, n: int, reason: str = ERASED_USER) -> None:
    if n:
        tr.rows_withheld += n
        tr.withheld[reason] = tr.withheld.get(reason, 0) + n


def quarantine_lines(
    wh: Warehouse,
    run_id: str,
    table: str,
    src: Path,
    lines: Sequence[tuple[int | None, str, str]],
    *,
    reprocess: bool = False,
    reason: Reason = Reason.MALFORMED_ROW,
    append: bool = False,
) -> None:
    """Quarantine source lines that never became rows: (line, its text, why) as `reason`
    (`malformed_row`; `invalid_type`: a JSON line giving a list where a column holds a value);
    a line an earlier load of the table quarantined as it is (a re-sent file) is `redelivered`,
    as a re-sent bad row is (`_load_publish.quarantined_before`): loading the same file twice
    left each malformed line open twice. Never in a re-processing (its row is the open one).
    One statement for all the lines (set-wise against the quarantine, not a scan per line)."""
    if not lines:
        return
    import pyarrow as pa

    # the ids first, in the lines' order (a sequence read in the INSERT's projection numbers the
    # rows in the join's order: `quarantine list` showed line 2 last)
    ids = sorted(
        int(r[0])
        for r in wh.db.execute(f"SELECT nextval('quarantine.qid_seq') FROM range({len(lines)})").fetchall()
    )
    batch = pa.table(
        {
            "qid": pa.array(ids, pa.int64()),
            "line": pa.array([n for n, _, _ in lines], pa.int64()),
            "raw": pa.array([json.dumps({"line": text}) for _, text, _ in lines], pa.string()),
            "why": pa.array([why for _, _, why in lines], pa.string()),
            "pos": pa.array(range(len(lines)), pa.int64()),
        }
    )
    before = (
        "SELECT DISTINCT raw::VARCHAR AS raw FROM quarantine.rows WHERE false"
        if reprocess
        else "SELECT DISTINCT raw::VARCHAR AS raw FROM quarantine.rows WHERE table_name = $table "
        f"AND run_id <> $run AND {still_the_quarantines(append)}"
    )
    wh.db.register("_malformed_lines", batch)
    try:
        wh.db.execute(
            f"""INSERT INTO quarantine.rows
                SELECT b.qid, $run, $table, $src, b.line, $reason, [$reason], b.why,
                       b.raw::JSON, CASE WHEN e.raw IS NOT NULL THEN 'redelivered' ELSE 'open' END,
                       now()::TIMESTAMP, NULL
                FROM _malformed_lines b LEFT JOIN ({before}) e ON e.raw = b.raw ORDER BY b.pos""",
            {"run": run_id, "table": table, "src": str(src), "reason": reason.value},
        )
    finally:
        wh.db.unregister("_malformed_lines")


def constant(implied: dict[str, str], column: str) -> str:
    """SQL for a column the file does not have: its implied value, or NULL."""
    return f"{lit(implied[column])}::VARCHAR" if column in implied else "NULL::VARCHAR"


def joined_sql(first: str, rest: list[str]) -> str:
    """A column read from several source columns (a category path from `Category` and
    `Sub-Category`): their non-empty values joined with ' > '."""
    if not rest:
        return first
    parts = ", ".join(f"nullif(trim({e}), '')" for e in (first, *rest))
    return f"nullif(concat_ws(' > ', {parts}), '')"


def attributes_sql(base: str | None, pairs: Sequence[tuple[str, str]]) -> str:
    """The JSON `attributes` of a row: the object its attributes column holds (`base`, when the
    file has one), each of `pairs` (key, SQL of a header's value) set on it where the header has
    a value (trimmed text; an empty one adds nothing). A base that is no JSON object is left as it
    is (the contract's check says so). NULL where nothing is set."""
    if not pairs:  # (the object's own keys spelled one way, `fold_attribute_keys`)
        return fold_attribute_keys(base) if base is not None else "NULL::VARCHAR"
    obj = "json_object(" + ", ".join(f"{lit(k)}, nullif(trim({e}), '')" for k, e in pairs) + ")"
    # (a merge patch drops the keys whose value is null: the empty headers add nothing)
    patch = f"json_merge_patch('{{}}', {obj})"
    added = f"nullif({patch}::VARCHAR, '{{}}')"
    if base is None:
        return fold_attribute_keys(added)
    b = f"nullif(trim({base}), '')"
    return fold_attribute_keys(
        f"CASE WHEN {b} IS NULL THEN {added} "
        f"WHEN json_valid({b}) AND json_type({b}) = 'OBJECT' THEN json_merge_patch({b}, {patch})::VARCHAR "
        f"ELSE {base} END"
    )


def _canonical_key(k: str) -> str:
    """SQL: the canonical attribute key of the text `k` (`ATTRIBUTE_HEADERS`, matched as a
    `column_key`: `Colour`, `Farbe` -> `color`, `Age Group` -> `age_group`), else `k`."""
    # (a position in two constant lists: a CASE of a dozen WHENs, or a MAP, cost ten times more
    # inside the lambda that reads each key of each row)
    spellings = "[" + ", ".join(lit(h) for h in ATTRIBUTE_HEADERS) + "]"
    keys = "[" + ", ".join(lit(key) for key in ATTRIBUTE_HEADERS.values()) + "]"
    ck = f"regexp_replace(lower({k}), '[^\\p{{L}}\\p{{N}}]', '', 'g')"
    return f"coalesce({keys}[list_position({spellings}, {ck})], {k})"


def _json_path(k: str) -> str:
    """SQL: the JSON path of the object key that the text `k` holds (quoted: `$."größe"`)."""
    return f"""('$."' || replace({k}, '"', '\\"') || '"')"""


def fold_attribute_keys(obj: str) -> str:
    """SQL: the attributes `obj` (JSON text) with each key spelled another way than its canonical
    one (`colour`, `Farbe`, `Colour` -> `color`; `ATTRIBUTE_HEADERS`) folded into the canonical
    key, whether it came from a header or from the shop's own attributes object: facets and
    similar items see one key. Where one object holds several spellings, the canonical key's
    value wins, else the first spelling's in the object's order; the others are dropped (the
    quarantine's raw row and the raw layer keep what was sent). Not an object: as it is."""
    # (each other spelling in turn: its value moved to the canonical key unless that one holds
    # a value already, then the spelling removed; `k` is a JSON string, to type the fold)
    k = "json_extract_string(k, '$')"
    c = _canonical_key(k)
    step = (
        f"json_merge_patch(acc, json_object({k}, NULL, {c}, "
        f"coalesce(json_extract(acc, {_json_path(c)}), json_extract(acc, {_json_path(k)}))))"
    )
    others = (
        f"list_transform(list_filter(json_keys({obj}), k -> {_canonical_key('k')} <> k), k -> to_json(k))"
    )
    # (reading every key of every row costs tens of times the text itself: only an object whose
    # text may hold a key to fold, `_MAY_FOLD`, is read key by key)
    spelled = f"regexp_matches({obj}, {lit(_MAY_FOLD)})"
    return (
        f"CASE WHEN {spelled} AND json_valid({obj}) AND json_type({obj}) = 'OBJECT' "
        f"THEN list_reduce({others}, (acc, k) -> {step}, {obj}::JSON)::VARCHAR ELSE {obj} END"
    )


# a JSON object's text that may hold an attribute key to fold (`fold_attribute_keys`, which
# decides key by key; more here costs time only): a key with a capital letter (`Colour`, `Size`,
# `Größe`), another spelling in any case (`colour`, `taille`, `gr\u00f6\u00dfe`, `age group`) or
# a canonical one with a space, an underscore or a dash around it
_KNOWN = "colou?r|farbe|couleur|size|taille|gr(?:ö|oe|\\\\u00f6)(?:ß|ss|\\\\u00df)e|material|gender|age[ _-]*group|pattern"
_MAY_FOLD = (
    r'"[^"]*\p{Lu}[^"]*"\s*:'
    r'|"(?:colour|farbe|couleur|taille|gr(?:ö|oe|\\u00f6)(?:ß|ss|\\u00df)e|age[ -]*group|agegroup)"\s*:'
    f'|"(?i:[ _-]+(?:{_KNOWN})[ _-]*|(?:{_KNOWN})[ _-]+)"'
)


def with_attributes(select: list[str], st: LoadState, pairs: Sequence[tuple[str, str]]) -> None:
    """A reader's select list (one `EXPR AS "column"` per contract column) with its `attributes`
    made of the file's attributes column (where the file has one) and `pairs` (`attributes_sql`):
    the same for a CSV, a JSON lines and a Parquet file, each reading its headers its own way.
    Without either (or without an attributes column in the table): the select list as it is."""
    if "attributes" not in st.contract.column_names:
        return
    i = st.contract.column_names.index("attributes")
    base = select[i].rpartition(" AS ")[0] if "attributes" in st.mapping else None
    if base is None and not pairs:
        return
    select[i] = attributes_sql(base, pairs) + f" AS {q('attributes')}"


def parquet_files(staged: StagedFile) -> str:
    return "[" + ", ".join(lit(p.as_posix()) for p in staged.parts) + "]"


def column_key(name: str) -> str:
    """A column name as it is matched: case, spaces, dashes and underscores do not count
    (`User ID`, `userId`, `user-id` and `user_id` are one name)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def match_headers(
    header: Sequence[str], wanted: Mapping[str, Sequence[str]], taken: set[str] | None = None
) -> dict[str, str]:
    """canonical column -> the header column that holds it: its names in order (the canonical
    name, then its aliases), matched by `column_key`, the first header column of a repeated
    name; a header column serves one canonical column (`taken`: those serving one already).
    Columns not found are left out. Ingestion and the CLI's input files match alike."""
    by_key: dict[str, str] = {}
    for h in header:
        by_key.setdefault(column_key(h), h)
    used = set(taken or ())
    out: dict[str, str] = {}
    for canonical, names in wanted.items():
        for name in names:
            hit = by_key.get(column_key(name))
            if hit is not None and hit not in used:
                out[canonical] = hit
                used.add(hit)
                break
    return out


def safe(name: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in name).strip("_")
    return out or "column"
