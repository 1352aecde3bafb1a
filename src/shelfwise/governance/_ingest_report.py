"""What a governed load reports (`IngestReport`, one `TableReport` per table) and its settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "FAILING_SHARE",
    "SET_ASIDE_WARN_SHARE",
    "IngestReport",
    "IngestSettings",
    "QualityCheck",
    "TableReport",
    "quality_check",
]

# a load whose quarantined share of its new, judged rows is above this fails its check
FAILING_SHARE = 0.05
# more than this share of a load's rows set aside is said with its verdict (`QualityCheck`)
SET_ASIDE_WARN_SHARE = 0.5


@dataclass(frozen=True)
class QualityCheck:
    """The quality verdict of one load of a table: the share of the rows it sent for the first
    time and judged that failed a check. Re-delivered rows (curated or quarantined by an earlier
    load: an at-least-once export's overlap) are neither failures nor new; withheld rows (erased
    users') were never judged. The ingest summary, its JSON (`contract_check`), the catalog, the
    governance report and the registry's `data_contracts` gate all say this one verdict."""

    judged: int  # the load's new rows that were checked
    failed: int  # of them, quarantined
    share: float
    set_aside: int = 0  # the load's rows kept aside as no purchase (not judged)
    rows_in: int = 0

    @property
    def mostly_set_aside(self) -> bool:
        """Over `SET_ASIDE_WARN_SHARE` of the load set aside: said with the verdict (a status
        column read wrongly sets whole files aside, and those rows are not judged)."""
        return self.rows_in > 0 and self.set_aside > SET_ASIDE_WARN_SHARE * self.rows_in

    @property
    def passed(self) -> bool:
        return self.share <= FAILING_SHARE

    @property
    def verdict(self) -> str:
        """`passed` or `failed` (the ingest report's `contract_check`)."""
        return "passed" if self.passed else "failed"

    def describe(self) -> str:
        """E.g. "FAILING: 1 of 10 new rows quarantined (10.0%, over 5%)"."""
        head = "passed" if self.passed else "FAILING"
        limit = f"{'over' if not self.passed else 'limit'} {100 * FAILING_SHARE:g}%"
        said = f"{head}: {self.failed:,} of {self.judged:,} new rows quarantined ({100 * self.share:.1f}%, {limit})"
        if self.mostly_set_aside:
            said += (
                f"; WARNING: {self.set_aside:,} of {self.rows_in:,} rows set aside, not judged (over "
                f"{100 * SET_ASIDE_WARN_SHARE:g}%)"
            )
        return said


def quality_check(
    rows_in: int,
    rows_quarantined: int,
    rows_redelivered: int = 0,
    rows_withheld: int = 0,
    rows_set_aside: int = 0,
    rows_set_aside_resent: int = 0,
    rows_stale: int = 0,
) -> QualityCheck:
    """The one rule that judges a load (`QualityCheck`): re-sent, withheld and set-aside rows
    (order lines that are no purchase, `_load_aside`) are not judged; a set-aside row sent again
    is counted in both, and not judged twice (`rows_set_aside_resent`); nor are the keyed rows
    older than their curated version (`rows_stale`: a re-send out of order, not a fault)."""
    again = (
        int(rows_redelivered or 0)
        + int(rows_set_aside or 0)
        - int(rows_set_aside_resent or 0)
        + int(rows_stale or 0)
    )
    judged = int(rows_in or 0) - again - int(rows_withheld or 0)
    failed = max(int(rows_quarantined or 0) - again, 0)
    share = failed / judged if judged > 0 else 0.0
    return QualityCheck(max(judged, 0), failed, share, int(rows_set_aside or 0), int(rows_in or 0))


@dataclass(frozen=True)
class IngestSettings:
    bot_window_seconds: int = 60  # sliding window for the robot-traffic rule
    bot_max_events: int = 120  # more behavioural events than this in one window: not a human
    min_year: int = 1990  # timestamps before this are implausible
    max_future_days: int = 2  # timestamps further in the future are implausible
    # the warehouse spills to disk beyond this: peak RSS 673 MB at 1M rows, 818 MB at 10M (with
    # 2GB: 679 MB / 2.27 GB; 512MB costs ~8% of the throughput at 10M rows)
    memory_limit: str = "512MB"


@dataclass
class TableReport:
    table: str
    source_file: str  # the table's file, or its folder of parts
    source_sha256: str
    contract_version: str
    rows_in: int = 0
    rows_curated: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    balanced: bool = True  # rows_in == rows_curated + rows_quarantined + rows_withheld
    blank_lines: int = 0
    transcoded_lines: int = 0
    column_mapping: dict[str, str] = field(default_factory=dict)  # source column -> canonical
    ignored_columns: list[str] = field(default_factory=list)
    personal_columns_dropped: list[str] = field(default_factory=list)
    curated_version: int | None = None
    content_hash: str = ""
    # the load's quality verdict, `passed` or `failed` (`quality_check`; set by `check`)
    contract_check: str = "passed"
    # the files read (one, or a folder's parts) -> the sha256 of each, taken while staging
    source_files: dict[str, str] = field(default_factory=dict)
    # how a table without a file of its own was derived (the products of an order-lines export)
    derived: str = ""
    # replace: the load is the table (rows_curated = its rows); append (a delivery): rows_curated
    # are the rows this load added (inserted + updated), rows_unchanged the re-delivered ones
    # (quarantined as duplicate_row, status 'redelivered'), rows_total the table after the load
    mode: str = "replace"
    rows_total: int = 0
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_unchanged: int | None = None
    # this load's quarantined rows that were sent before: curated rows (`rows_unchanged`) and bad
    # rows an earlier load quarantined (status redelivered); not failures of this delivery
    rows_redelivered: int = 0
    # rows of erased users dated at or before their erasure (`_erasures`): never stored, counted
    # here by reason so that rows_in == rows_curated + rows_quarantined + rows_withheld
    rows_withheld: int = 0
    withheld: dict[str, int] = field(default_factory=dict)
    # quarantined rows kept aside as the shop's data says them (`_load_aside`: the lines of a
    # cancelled or refunded order, order lines without a product): counted, not judged
    rows_set_aside: int = 0
    # of them, lines an earlier load set aside too, sent again (also among rows_redelivered)
    rows_set_aside_resent: int = 0
    # appending to a keyed table (products, users): delivered rows whose `updated_at` is older than
    # their key's curated row's (a re-send arriving out of order); the newer curated row is kept,
    # they are quarantined as `stale_row` (status superseded) and not judged
    rows_stale: int = 0
    # appending order lines: purchase lines an earlier load curated, of orders this delivery sets
    # aside for their status (refunded, cancelled, unpaid: the order's latest status wins), taken
    # out of the curated table (`_load_retract`); not among this load's rows in (rows_total is
    # the table after the load), quarantined as superseded, by reason in `retracted`
    rows_retracted: int = 0
    retracted: dict[str, int] = field(default_factory=dict)
    # a full snapshot whose file had rows (not all withheld) and that curated none: not published
    # over an earlier version (`published` false: the table stays as it was); `ingest` exits 1
    curated_nothing: bool = False
    published: bool = True
    # valid events rows with no user id but a session id: anonymous browsing, attributed to the
    # session (a user id `~anonymous:<session_id>`, pseudonymized `a_…`; never a customer)
    anonymous_rows: int = 0
    # events rows curated as no sale (a purchase line of 0 units: a product-day without a sale,
    # not a purchase and not a fault) and as returns (a purchase line of fewer than 0 units, or
    # the `return` type): among rows_curated, counted apart (`_load_sales`)
    no_sale_rows: int = 0
    return_rows: int = 0
    # faq only: questions asked by entries that answer them differently (`_faq_conflicts`):
    # how many, and the first few (the question, the entries' faq ids)
    faq_conflicts: int = 0
    faq_conflict_examples: list[dict[str, Any]] = field(default_factory=list)
    # wall seconds of each stage of the load (stage, columns, raw, rows, sets, publish): where
    # the time goes (`benchmarks/ingest_speed.py`)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def check(self) -> QualityCheck:
        """This load's verdict (`quality_check`); `contract_check` is set to it."""
        got = quality_check(
            self.rows_in,
            self.rows_quarantined,
            self.rows_redelivered,
            self.rows_withheld,
            self.rows_set_aside,
            self.rows_set_aside_resent,
            self.rows_stale,
        )
        self.contract_check = got.verdict
        return got


@dataclass
class IngestReport:
    run_id: str
    workdir: str
    data_dir: str
    started_at: str
    seconds: float = 0.0
    status: str = "COMPLETE"
    tables: dict[str, TableReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # what a person must read (printed by `ingest` and `train --data`, first in the report):
    # a full snapshot that curated fewer rows than its table held
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    html_report: str | None = None
    mode: str = "replace"  # replace (a full snapshot) or append (a delivery added to what is curated)
    column_map: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> canonical -> header(s)
    engine: str = "duckdb"  # where the checks and publishing ran: duckdb or spark
    # what could not be written after the run committed (the data IS published): one line each,
    # naming the record, where, why and how to repair it (`shelfwise ingest` then exits 5)
    unrecorded: list[str] = field(default_factory=list)

    def after_commit(self, what: str, where: object, exc: BaseException, repair: str) -> None:
        """Say that `what` (at `where`) could not be written after the commit (`unrecorded`)."""
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        self.unrecorded.append(
            f"published, but the {what} could not be written ({where}: {why}); the data of run "
            f"{self.run_id} is in the warehouse - to repair: {repair}"
        )

    @property
    def lineage_run_id(self) -> str:
        return self.run_id

    def to_dict(self) -> dict[str, Any]:
        checks = {name: t.check() for name, t in self.tables.items()}  # (sets contract_check)
        d = asdict(self)
        d["lineage_run_id"] = self.run_id
        for name, got in checks.items():  # the share the verdict is of (the catalog's too)
            d["tables"][name]["quarantined_share"] = round(got.share, 4)
        return d
