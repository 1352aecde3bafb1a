"""Governed ingestion: source files -> raw -> checks -> curated + quarantine, with lineage.

For each canonical table present in the dataset directory (referenced tables first):

1. stage the file, or the parts of the table's folder, as one file (encoding and export repairs,
   line numbers; `storage._sources`), hash it;
2. load it into `raw.<table>` as strings; lines the CSV reader cannot split land in quarantine
   as `malformed_row` with their line text;
3. row checks compiled from the contract (`_compile`), every failure collected;
4. set checks in the warehouse: exact duplicates, conflicting keys (stated keep rule), unknown
   references, robot traffic (event rate per user in a sliding window);
5. privacy: user ids replaced by keyed HMAC pseudonyms, personal data in free text masked (in 3),
   personal profile columns left out;
6. the curated result is validated against the contract's pandera schema and published as a new
   table version; rejected rows go to `quarantine.rows` with reason, file and line.

The invariant `rows_in == rows_curated + rows_quarantined` is checked for every table and stated
in the report.
"""

from __future__ import annotations

import difflib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ContractViolation, SourceError
from ..storage import StagedFile, Warehouse, find_table_file, stage_file
from ..storage._sources import JSON_DELIMITER, LINE_COLUMN, PART_LINES
from ._audit import AuditLog
from ._compile import NORMALIZE_UDF, compile_contract, lit, q
from ._contracts import (
    BOT_EVENT_TYPES,
    CONTRACTS,
    IMPLIED_EVENT_TYPES,
    LOAD_ORDER,
    ORDER_ID_ALIASES,
    TABLE_FILE_ALIASES,
    Classification,
    Kind,
    TableContract,
    classify_extra_column,
)
from ._erasures import ERASED_USER, erased_users, names_erased_user
from ._lineage import DatasetRef, LineageRun, warehouse_namespace
from ._mapping import MAP_FILE, ColumnMap, load_column_map, mapping_advice, suggest_columns
from ._orderlines import derive as derive_order_lines
from ._privacy import Pseudonymizer, SecretStore
from ._reasons import Reason
from ._text import normalize_text_array

# header names of an order id: an events file with one and no event type holds purchases
ORDER_KEYS = frozenset("".join(ch for ch in a if ch.isalnum()) for a in ORDER_ID_ALIASES)

QUARANTINE_DDL = """CREATE TABLE IF NOT EXISTS quarantine.rows (
    quarantine_id BIGINT, run_id VARCHAR, table_name VARCHAR, source_file VARCHAR, source_line BIGINT,
    reason VARCHAR, reasons VARCHAR[], detail VARCHAR, raw JSON, status VARCHAR,
    quarantined_at TIMESTAMP, resolved_run_id VARCHAR)"""


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
    # rows of erased users dated at or before their erasure (`_erasures`): never stored, counted
    # here by reason so that rows_in == rows_curated + rows_quarantined + rows_withheld
    rows_withheld: int = 0
    withheld: dict[str, int] = field(default_factory=dict)


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
    settings: dict[str, Any] = field(default_factory=dict)
    html_report: str | None = None
    mode: str = "replace"  # replace (a full snapshot) or append (a delivery added to what is curated)
    column_map: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> canonical -> header(s)

    @property
    def lineage_run_id(self) -> str:
        return self.run_id

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lineage_run_id"] = self.run_id
        return d


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
        self._joined: dict[str, dict[str, list[str]]] = {}  # table -> column -> further headers

    def run(self, data_dir: str | Path) -> IngestReport:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise SourceError(str(data_dir), None, "dataset directory not found")
        self._map = self.column_map if self.column_map is not None else load_column_map(data_dir)
        # the erasure register, read once per load: rows of these users must not come back
        self._erased = erased_users(self.workdir)
        self._pseudonymizer = (
            Pseudonymizer(SecretStore(self.workdir).pseudonym_key()) if self._erased else None
        )
        self._derived: set[str] = set()
        files = {t: find_table_file(data_dir, t, TABLE_FILE_ALIASES.get(t, ())) for t in LOAD_ORDER}
        if self.mode == "replace" and files["events"] is None and files["products"] is None:
            present = ", ".join(sorted(p.name for p in data_dir.iterdir())[:20]) or "nothing"
            raise SourceError(
                str(data_dir),
                None,
                f"no events.{{parquet,csv,jsonl}} or products.{{...}} file (found: {present}); "
                "convert other formats first with `shelfwise convert`",
            )
        if self.mode == "append" and all(f is None for f in files.values()):
            present = ", ".join(sorted(p.name for p in data_dir.iterdir())[:20]) or "nothing"
            raise SourceError(
                str(data_dir),
                None,
                f"a delivery with no table file (found: {present}); a table is read from a file named "
                f"after it: {', '.join(LOAD_ORDER)} (.csv, .tsv, .jsonl, .json or .parquet)",
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
        inputs = [DatasetRef("file", str(p.resolve())) for p in files.values() if p is not None]
        lineage = LineageRun(self.workdir, self.job, inputs).start()
        report = IngestReport(
            run_id=lineage.run_id,
            workdir=str(self.workdir),
            data_dir=str(data_dir),
            started_at=started.isoformat(),
            settings=asdict(self.settings),
            mode=self.mode,
            column_map=self._map.describe(),
        )
        wh = Warehouse(self.workdir, memory_limit=self.settings.memory_limit)
        try:
            self._prepare(wh)
            outputs: list[DatasetRef] = []
            input_refs: list[DatasetRef] = []
            staged_now: dict[str, StagedFile] = {}
            derived: dict[str, str] = {}
            need = {t for t in ("products", "users") if files[t] is None}
            events_path = files["events"]
            if events_path is not None and need:  # an order-lines export carries products and users
                ev = staged_now["events"] = stage_file(events_path, staged_dir)
                header = self._header(wh, ev)
                ev_map, _, _ = self._map_columns(
                    CONTRACTS["events"], header, ev.source, lambda: self._samples(wh, ev, header)
                )
                lines = derive_order_lines(
                    wh,
                    ev,
                    header,
                    ev_map,
                    self._map.for_table("products"),
                    need,
                    staged_dir,
                    _parquet_files(ev),
                )
                staged_now.update(lines.tables)
                derived.update(lines.descriptions)
                self._derived = set(lines.tables)
                report.notes.extend(lines.notes)
                for t in lines.tables:
                    files[t] = events_path
            for table in LOAD_ORDER:
                path = files[table]
                if path is None:
                    continue
                staged = staged_now.pop(table, None) or stage_file(path, staged_dir)
                tr = self._ingest_table(wh, CONTRACTS[table], staged, lineage.run_id, report)
                tr.derived = derived.get(table, "")
                report.tables[table] = tr
                input_refs.append(
                    DatasetRef(
                        "file",
                        str(path.resolve()),
                        rows=tr.rows_in,
                        content_hash=staged.sha256,
                        size_bytes=staged.size_bytes,
                    )
                )
                outputs.append(
                    DatasetRef(
                        warehouse_namespace(self.workdir),
                        f"curated.{table}",
                        rows=tr.rows_total,
                        content_hash=tr.content_hash,
                        columns=tuple(wh.table(table).columns),
                        lifecycle="ALTER" if self.mode == "append" else "OVERWRITE",
                    )
                )
                if staged.staged is not None:
                    staged.staged.unlink(missing_ok=True)
            if unread:
                shown = ", ".join(unread[:10]) + (f" and {len(unread) - 10} more" if len(unread) > 10 else "")
                report.notes.append(
                    f"not read: {shown} (a table is read from a file named after it: "
                    f"{', '.join(LOAD_ORDER)} with .csv, .tsv, .jsonl, .json or .parquet, optionally .gz; "
                    "or from a folder of such files named after it)"
                )
            if "products" not in report.tables and self.mode == "replace":
                report.notes.append("no products file: the catalog is the set of products seen in events")
            q_rows = sum(t.rows_quarantined for t in report.tables.values())
            outputs.append(DatasetRef(warehouse_namespace(self.workdir), "quarantine.rows", rows=q_rows))
            lineage.inputs = input_refs
            report.seconds = round(time.perf_counter() - t0, 3)
            wh.record_run(lineage.run_id, self.job, started, "COMPLETE", report.to_dict())
            lineage.complete(outputs)
            if self.job == "shelfwise.ingest":  # re-processing audits itself, with its own details
                AuditLog(self.workdir).append(
                    "ingest",
                    run_id=lineage.run_id,
                    data_dir=str(data_dir),
                    mode=self.mode,
                    tables={
                        t: {
                            "rows_in": r.rows_in,
                            "curated": r.rows_curated,
                            "quarantined": r.rows_quarantined,
                            # counts only: the audit log never holds a raw id
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
                )
        except Exception as exc:
            report.status = "FAIL"
            lineage.fail(f"{type(exc).__name__}: {exc}")
            AuditLog(self.workdir).append(
                "ingest",
                outcome="failed",
                run_id=lineage.run_id,
                data_dir=str(data_dir),
                error=str(exc)[:500],
            )
            try:
                wh.record_run(lineage.run_id, self.job, started, "FAIL", report.to_dict())
            except Exception:  # pragma: no cover - recording must not hide the real error
                pass
            raise
        finally:
            wh.close()
            shutil.rmtree(staged_dir, ignore_errors=True)
        return report

    # ------------------------------------------------------------------------------------------
    def _prepare(self, wh: Warehouse) -> None:
        wh.sql(QUARANTINE_DDL)
        wh.sql("CREATE SEQUENCE IF NOT EXISTS quarantine.qid_seq START 1")
        wh.con.con.create_function(
            NORMALIZE_UDF,
            normalize_text_array,
            ["VARCHAR"],
            "VARCHAR",
            type="arrow",
            null_handling="special",
            side_effects=False,
        )

    def _map_columns(
        self,
        contract: TableContract,
        header: list[str],
        path: Path,
        samples: Callable[[], dict[str, list[str]]] | None = None,
    ) -> tuple[dict[str, str], list[str], dict[str, str]]:
        """canonical -> source column; the source columns outside the contract; and canonical
        columns the file implies without naming them (the event type of `ratings.csv`). The
        column map (`shelfwise.toml`, `--map`) is applied first; the rest is matched by name.
        A canonical column mapped to several headers (a category path) reads the first here,
        the others are joined to it (`self._joined`)."""
        by_key: dict[str, str] = {}
        for h in header:
            by_key.setdefault(_column_key(h), h)
        mapping: dict[str, str] = {}
        self._joined[contract.name] = {}
        explicit = {} if contract.name in self._derived else self._map.for_table(contract.name)
        for c, headers in explicit.items():
            found = []
            for h in headers:
                hit = h if h in header else by_key.get(_column_key(h))
                if hit is None:
                    origin = self._map.origin.get((contract.name, c), MAP_FILE)
                    close = difflib.get_close_matches(h, header, n=1, cutoff=0.5)
                    raise SourceError(
                        str(path),
                        1,
                        f"{origin} maps {contract.name}.{c} to {h!r}, which is not a column of this file"
                        + (f" (is {close[0]!r} meant?)" if close else "")
                        + f"; the header has: {', '.join(header) or 'no columns'}",
                    )
                found.append(hit)
            mapping[c] = found[0]
            if len(found) > 1:
                self._joined[contract.name][c] = found[1:]
        taken = {h for hs in [mapping.values(), *self._joined[contract.name].values()] for h in hs}
        for spec in contract.columns:
            if spec.name in mapping:
                continue
            for cand in (spec.name, *spec.aliases):
                found_h = by_key.get(_column_key(cand))
                if found_h is not None and found_h not in taken:
                    mapping[spec.name] = found_h
                    taken.add(found_h)
                    break
        implied: dict[str, str] = {}
        if contract.name == "events" and "event_type" not in mapping:
            kind = IMPLIED_EVENT_TYPES.get(path.name.lower().split(".")[0])
            if kind is None and "value" in mapping and _column_key(mapping["value"]) == "rating":
                kind = "rating"  # a rating per row and no event type: rating events
            if kind is None and _column_key(mapping.get("session_id", "")) in ORDER_KEYS:
                kind = "purchase"  # order lines: every row is a purchase
            if kind is not None:
                implied["event_type"] = kind
        missing = [c for c in contract.required_columns if c not in mapping and c not in implied]
        if contract.name == "events" and "product_id" not in mapping:
            missing.append("product_id")
        if missing:
            sample = samples() if samples is not None else {}
            hints, picks = [], {}
            for m in missing:
                found_s = suggest_columns(contract, m, header, sample, used=taken)
                if found_s:
                    picks[m] = found_s[0][0]
                    likely = "; ".join(f"{h!r} ({why})" for h, why in found_s)
                    hints.append(f"{m!r} (likely: {likely})")
                else:
                    hints.append(f"{m!r}")
            advice = (
                " (an events file without one is read as one kind of event when its name says which -"
                f" {', '.join(f'{k} = {v}' for k, v in IMPLIED_EVENT_TYPES.items())} - or when it has a"
                " rating column or an order id)"
                if "event_type" in missing
                else ""
            )
            raise SourceError(
                str(path),
                1,
                f"missing required column(s) {', '.join(hints)}; the header has: "
                f"{', '.join(header) or 'no columns'}{advice}"
                + (f"\n  {mapping_advice(contract.name, picks)}" if picks else ""),
            )
        extra = [h for h in header if h not in taken and h != LINE_COLUMN]
        return mapping, extra, implied

    def _samples(self, wh: Warehouse, staged: StagedFile, header: list[str]) -> dict[str, list[str]]:
        """Up to 200 values of each column of a staged file (for the missing-column advice)."""
        try:
            if staged.format == "csv":
                assert staged.staged is not None
                names = [LINE_COLUMN] + [f"c{i}" for i in range(len(header))]
                spec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
                rows = wh.sql(
                    f"SELECT * EXCLUDE ({q(LINE_COLUMN)}) FROM read_csv({lit(staged.staged.as_posix())}, "
                    f"header=true, delim={lit(staged.delimiter)}, quote='\"', escape='\"', columns={spec}, "
                    "auto_detect=false, ignore_errors=true, null_padding=true) LIMIT 200"
                ).fetchall()
                return {h: [r[i] for r in rows if r[i] is not None] for i, h in enumerate(header)}
            if staged.format == "parquet":
                cols = ", ".join(f"CAST({q(h)} AS VARCHAR)" for h in header)
                rows = wh.sql(
                    f"SELECT {cols} FROM read_parquet({_parquet_files(staged)}, union_by_name=true) LIMIT 200"
                ).fetchall()
                return {h: [r[i] for r in rows if r[i] is not None] for i, h in enumerate(header)}
            assert staged.staged is not None
            out: dict[str, list[str]] = {h: [] for h in header}
            with open(staged.staged, encoding="utf-8", errors="replace") as fh:
                for n, line in enumerate(fh):
                    if n >= 200:
                        break
                    try:
                        rec = json.loads(line.partition(JSON_DELIMITER)[2])
                    except ValueError:
                        continue
                    if isinstance(rec, dict):
                        for k, v in rec.items():
                            if k in out and v is not None:
                                out[k].append(str(v))
            return out
        except Exception:  # noqa: BLE001 - advice only: without samples, names alone are suggested
            return {}

    def _header(self, wh: Warehouse, staged: StagedFile) -> list[str]:
        if staged.format == "csv":
            return staged.header
        if staged.format == "parquet":
            rows = wh.sql(
                f"DESCRIBE SELECT * FROM read_parquet({_parquet_files(staged)}, union_by_name=true)"
            ).fetchall()
            return [r[0] for r in rows]
        assert staged.staged is not None
        rows = wh.sql(
            f"""SELECT DISTINCT unnest(json_keys(CASE WHEN json_valid(j) AND json_type(j) = 'OBJECT' THEN j ELSE '{{}}' END)) FROM (
                  SELECT column1 AS j FROM read_csv({lit(staged.staged.as_posix())}, header=false, delim={lit(JSON_DELIMITER)},
                  quote='', escape='', columns={{'column0': 'BIGINT', 'column1': 'VARCHAR'}}, ignore_errors=true) LIMIT 10000)
                WHERE json_valid(j) AND json_type(j) = 'OBJECT'"""
        ).fetchall()
        return sorted(r[0] for r in rows)

    def _ingest_table(
        self, wh: Warehouse, contract: TableContract, staged: StagedFile, run_id: str, report: IngestReport
    ) -> TableReport:
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
        header = self._header(wh, staged)
        mapping, extra, implied = self._map_columns(
            contract, header, src, lambda: self._samples(wh, staged, header)
        )
        joined = self._joined.get(contract.name, {})
        tr.column_mapping = {v: k for k, v in mapping.items()}
        tr.column_mapping.update({h: c for c, hs in joined.items() for h in hs})
        for column, value in implied.items():
            report.notes.append(f"{src.name}: no {column} column: every row is {column} = {value}")
        extra_kept: list[str] = []
        if contract.keep_extra_columns:
            for e in extra:
                if classify_extra_column(e) is Classification.PERSONAL:
                    tr.personal_columns_dropped.append(e)
                else:
                    extra_kept.append(e)
        else:
            tr.ignored_columns = extra
        if staged.transcoded_lines:
            report.notes.append(
                f"{src.name}: {staged.transcoded_lines} line(s) were not valid UTF-8 and were read as cp1252/latin-1"
            )
        report.notes.extend(f"{src.name}: {note}" for note in staged.notes)
        raw_cols = contract.column_names + [f"x_{_safe(e)}" for e in extra_kept]
        raw_table = f"raw.{q(contract.name)}"
        src_name = lit(str(src))
        # raw layer: the history of everything received (strings), steward-only. Rows are written
        # there once, straight from the reader, with the id of this load (meta.raw_loads: run,
        # file, hash); this load's rows are then read back by that id. Raw tables written before
        # the load id keep their `_run_id` and `_source_file` columns (NULL in newer rows).
        if not wh.exists("raw", contract.name):
            cols = ", ".join(f"{q(c)} VARCHAR" for c in raw_cols)
            wh.sql(f"CREATE TABLE {raw_table} ({cols}, _source_line BIGINT, _load INTEGER)")
        raw_existing = {r[0] for r in wh.sql(f"DESCRIBE {raw_table}").fetchall()}
        for col, typ in [(c, "VARCHAR") for c in raw_cols] + [("_load", "INTEGER")]:
            if col not in raw_existing:
                wh.sql(f"ALTER TABLE {raw_table} ADD COLUMN {q(col)} {typ}")
        load_row = wh.sql("SELECT coalesce(max(load_id), 0) + 1 FROM meta.raw_loads").fetchone()
        load_id = int(load_row[0]) if load_row else 1
        wh.sql(
            "INSERT INTO meta.raw_loads VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [load_id, run_id, contract.name, str(src), staged.sha256],
        )
        pseudo_cols = [c.name for c in contract.columns if c.pseudonymize]
        # with erased users on record, this load's rows are read into a temporary table first and
        # reach raw only after the erased users' rows are taken out: those are never stored
        staging = bool(self._erased) and bool(pseudo_cols)
        target = f"_incoming_{contract.name}" if staging else raw_table
        if staging:
            wh.sql(f"CREATE OR REPLACE TEMP TABLE {target} AS SELECT * FROM {raw_table} LIMIT 0")
        into_raw = f"INSERT INTO {target} BY NAME SELECT *, {load_id}::INTEGER AS _load FROM"

        # -- 2. load into raw --------------------------------------------------------------------
        if staged.format == "csv":
            assert staged.staged is not None
            names = [LINE_COLUMN] + [f"c{i}" for i in range(len(header))]
            pos = {h: f"c{i}" for i, h in enumerate(header)}
            cols_spec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
            select = [
                f"{_joined_sql(q(pos[mapping[c]]), [q(pos[h]) for h in joined.get(c, [])])} AS {q(c)}"
                if c in mapping
                else f"{_constant(implied, c)} AS {q(c)}"
                for c in contract.column_names
            ]
            select += [f"{q(pos[e])} AS {q('x_' + _safe(e))}" for e in extra_kept]
            rej = f"rej_{contract.name}"
            wh.sql(f"DROP TABLE IF EXISTS {rej}; DROP TABLE IF EXISTS {rej}_scan")
            reader = (
                f"read_csv({lit(staged.staged.as_posix())}, header=true, "
                f"delim={lit(staged.delimiter)}, quote='\"', escape='\"', columns={cols_spec}, "
                f"store_rejects=true, rejects_table='{rej}', rejects_scan='{rej}_scan', strict_mode=true, "
                f"null_padding=false, auto_detect=false, max_line_size=10000000)"
            )
            try:
                wh.sql(
                    f"{into_raw} (SELECT {', '.join(select)}, "
                    f"TRY_CAST({q(LINE_COLUMN)} AS BIGINT) AS _source_line FROM {reader})"
                )
            except Exception as exc:  # noqa: BLE001 - the reader's own words are the clearest reason
                raise SourceError(str(src), None, f"unreadable CSV: {exc}") from exc
            rejects = wh.sql(
                f"SELECT min(csv_line), string_agg(DISTINCT error_type, ', ') FROM {rej} GROUP BY line ORDER BY line"
            ).fetchall()
            bad = []
            for csv_line, error_type in rejects:
                line_text = csv_line or ""
                sep = line_text.find(staged.delimiter)
                line_no = int(line_text[:sep]) if sep > 0 and line_text[:sep].isdigit() else None
                body = line_text[sep + 1 :] if sep > 0 else line_text
                bad.append((line_no, body, f"{error_type.lower()}: expected {len(header)} fields"))
            _quarantine_lines(wh, run_id, contract.name, src, self._drop_erased_lines(bad, tr, staging))
            wh.sql(f"DROP TABLE IF EXISTS {rej}; DROP TABLE IF EXISTS {rej}_scan")
            tr.rows_in = staged.records
        elif staged.format == "jsonl":
            assert staged.staged is not None
            lines = (
                f"read_csv({lit(staged.staged.as_posix())}, header=false, delim={lit(JSON_DELIMITER)}, quote='', "
                f"escape='', columns={{'_source_line': 'BIGINT', 'j': 'VARCHAR'}}, auto_detect=false, "
                f"max_line_size=10000000)"
            )
            ok = "json_valid(j) AND json_type(j) = 'OBJECT'"

            def field_sql(key: str) -> str:
                path = "$." + '"' + key.replace('"', '\\"') + '"'
                return (
                    f"CASE WHEN json_type(j, {lit(path)}) IN ('ARRAY', 'OBJECT') THEN json_extract(j, {lit(path)})::VARCHAR "
                    f"ELSE json_extract_string(j, {lit(path)}) END"
                )

            def col_sql(spec_name: str) -> str:
                # JSON lines may name a column differently from one line to the next (item_id / product_id)
                spec = contract.column(spec_name)
                if spec_name in self._map.for_table(contract.name):  # mapped: that key only
                    used.update([mapping[spec_name], *joined.get(spec_name, [])])
                    return _joined_sql(
                        field_sql(mapping[spec_name]), [field_sql(h) for h in joined.get(spec_name, [])]
                    )
                names = {_column_key(n) for n in (spec.name, *spec.aliases)}
                keys = [h for h in header if _column_key(h) in names]
                used.update(keys)
                return f"coalesce({', '.join(field_sql(k) for k in keys)})"

            used: set[str] = set()
            select = [
                f"{col_sql(c)} AS {q(c)}" if c in mapping else f"{_constant(implied, c)} AS {q(c)}"
                for c in contract.column_names
            ]
            select += [f"{field_sql(e)} AS {q('x_' + _safe(e))}" for e in extra_kept if e not in used]
            tr.ignored_columns = [e for e in tr.ignored_columns if e not in used]
            wh.sql(f"CREATE TEMP TABLE _lines AS SELECT * FROM {lines}")
            safe_lines = f"(SELECT _source_line, CASE WHEN {ok} THEN j END AS j FROM _lines)"
            wh.sql(
                f"{into_raw} (SELECT {', '.join(select)}, _source_line FROM {safe_lines} WHERE j IS NOT NULL)"
            )
            malformed = "NOT coalesce(CASE WHEN json_valid(j) THEN json_type(j) = 'OBJECT' END, false)"
            withheld_lines: list[int] = []
            if staging:  # a line that is no JSON object but names an erased user is withheld too
                bad_json = wh.sql(f"SELECT _source_line, j FROM _lines WHERE {malformed}").fetchall()
                kept = {n for n, _, _ in self._drop_erased_lines([(n, j, "") for n, j in bad_json], tr, True)}
                withheld_lines = [n for n, _ in bad_json if n not in kept]
            wh.sql(
                f"""INSERT INTO quarantine.rows SELECT nextval('quarantine.qid_seq'), ?, ?, ?, _source_line, ?, [?],
                    CASE WHEN json_valid(j) THEN 'not a JSON object' ELSE 'not valid JSON' END,
                    json_object('line', left(j, 10000)), 'open', now()::TIMESTAMP, NULL FROM _lines
                    WHERE {malformed} AND NOT list_contains(?::BIGINT[], _source_line)""",
                [
                    run_id,
                    contract.name,
                    str(src),
                    Reason.MALFORMED_ROW.value,
                    Reason.MALFORMED_ROW.value,
                    withheld_lines,
                ],
            )
            wh.sql("DROP TABLE _lines")
            tr.rows_in = staged.records
        else:  # parquet: typed columns are read as text so that one set of checks serves every format
            select = [
                _joined_sql(
                    f"CAST({q(mapping[c])} AS VARCHAR)",
                    [f"CAST({q(h)} AS VARCHAR)" for h in joined.get(c, [])],
                )
                + f" AS {q(c)}"
                if c in mapping
                else f"{_constant(implied, c)} AS {q(c)}"
                for c in contract.column_names
            ]
            select += [f"CAST({q(e)} AS VARCHAR) AS {q('x_' + _safe(e))}" for e in extra_kept]
            files = _parquet_files(staged)
            line = "file_row_number + 1"
            options = "union_by_name=true, file_row_number=true"
            if len(staged.parts) > 1:  # numbered as the parts of a staged folder are
                line = f"(list_position({files}, filename) - 1) * {PART_LINES} + {line}"
                options += ", filename=true"
            try:
                row = wh.sql(
                    f"{into_raw} (SELECT {', '.join(select)}, "
                    f"{line} AS _source_line FROM read_parquet({files}, {options}))"
                ).fetchone()
            except Exception as exc:  # noqa: BLE001
                raise SourceError(str(src), None, f"unreadable Parquet file: {exc}") from exc
            tr.rows_in = int(row[0]) if row else 0

        # lines staging rejected itself (a quote that never closes): quarantined as they are
        _quarantine_lines(
            wh, run_id, contract.name, src, self._drop_erased_lines(staged.bad_lines, tr, staging)
        )
        tr.rows_in += len(staged.bad_lines)

        # this run's rows, as loaded
        load = f"_load_{contract.name}"
        cols = ", ".join([q(c) for c in raw_cols] + ["_source_line"])
        wh.sql(f"CREATE OR REPLACE TEMP VIEW {load} AS SELECT {cols} FROM {target} WHERE _load = {load_id}")

        # -- 3. row checks -------------------------------------------------------------------------
        day_first = self._day_first(wh, contract, load)
        if day_first:
            report.notes.append(
                f"{src.name}: dates like 05/01/2024 read as day/month/year (a first field above 12 occurs, "
                "a second one never does)"
            )
        compiled = compile_contract(
            contract,
            min_year=self.settings.min_year,
            max_future_days=self.settings.max_future_days,
            day_first=day_first,
        )
        extra_sel = [f"{q('x_' + _safe(e))}" for e in extra_kept]
        # the raw row as JSON is built only for quarantined rows (at the end), not for every row
        raw_json = "json_object(" + ", ".join(f"{lit(c)}, l.{q(c)}" for c in raw_cols) + ")"
        empty_text = lit("")
        extra_clean = [f"nullif(trim({c}), {empty_text}) AS {c}" for c in extra_sel]
        source = (
            f"(SELECT * EXCLUDE ({', '.join(extra_sel)}), {', '.join(extra_clean)} FROM {load})"
            if extra_sel
            else load
        )
        wh.sql(f"CREATE OR REPLACE TEMP TABLE _checked AS {compiled.query(source, extra_sel)}")
        if staging:  # the erased users' rows leave the load; the rest is written to raw
            self._withhold_erased(wh, contract, pseudo_cols, target, tr)
            wh.sql(f"INSERT INTO {raw_table} BY NAME SELECT * FROM {target}")
            wh.sql(
                f"CREATE OR REPLACE TEMP VIEW {load} AS SELECT {cols} FROM {raw_table} WHERE _load = {load_id}"
            )
            wh.sql(f"DROP TABLE {target}")
            if tr.rows_withheld:
                report.notes.append(
                    f"{contract.name}: {tr.rows_withheld:,} row(s) of erased users withheld (dated at or before "
                    "their erasure, or undated): not stored in raw, curated or quarantine"
                )

        # -- 4. set checks ---------------------------------------------------------------------------
        content = [q(c) for c in contract.column_names] + extra_sel
        if contract.dedupe_exact:
            self._flag_repeats(
                wh,
                Reason.DUPLICATE_ROW,
                content,
                last_wins=False,
                detail="'exact duplicate of an earlier row'",
            )
        if "event_id" in contract.column_names:
            self._flag_event_ids(wh, contract.name)
        if contract.key:
            keys = [q(k) for k in contract.key]
            # an exact copy of a kept row is a duplicate row; a different row with the same key is a conflict
            self._flag_repeats(
                wh, Reason.DUPLICATE_ROW, content, last_wins=True, detail="'exact duplicate of a later row'"
            )
            key_text = " || ',' || ".join(keys)
            self._flag_repeats(
                wh,
                Reason.DUPLICATE_KEY,
                keys,
                last_wins=True,
                detail=f"'conflicting duplicate of key ' || {key_text} || ' (the last row wins)'",
            )
        for col, ref_table, ref_col in contract.references:
            if ref_table not in report.tables and not (
                self.mode == "append" and ref_table in wh.curated_tables()
            ):
                continue
            # a product whose catalog row was quarantined (e.g. its title was broken HTML) is still a
            # known product: its events are valid, only its catalog row needs a fix.
            known = (
                f"SELECT {q(ref_col)} FROM curated.{q(ref_table)} UNION "
                f"SELECT nullif(trim(json_extract_string(raw, '$.{ref_col}')), '') FROM quarantine.rows "
                f"WHERE table_name = {lit(ref_table)} AND reason <> 'malformed_row' AND (run_id = {lit(run_id)}"
                + (" OR status = 'open')" if self.mode == "append" else ")")
            )
            wh.sql(f"CREATE OR REPLACE TEMP TABLE _known AS {known}")
            wh.sql(
                f"""UPDATE _checked SET _reasons = list_append(_reasons, '{Reason.UNKNOWN_REFERENCE.value}'),
                    _detail = coalesce(_detail, '{col}: unknown {ref_table[:-1]} ' || {q(col)})
                    WHERE {q(col)} IS NOT NULL AND {q(col)} NOT IN (SELECT * FROM _known WHERE {q(ref_col)} IS NOT NULL)"""
            )
            wh.sql("DROP TABLE _known")
        if contract.name == "events":
            self._flag_bots(wh)

        # -- 5./6. privacy, publish, quarantine -----------------------------------------------------
        select_out = []
        for c in contract.column_names:
            select_out.append(f"p_{c}.pseudonym AS {q(c)}" if c in pseudo_cols else f"t.{q(c)}")
        select_out += [f"t.{c}" for c in extra_sel]
        joins = ""
        for c in pseudo_cols:
            if not staging:  # (staging built it already, for every id of the load)
                self._pseudonym_table(wh, c)
            joins += f" LEFT JOIN _pseudo_{c} p_{c} ON p_{c}.raw_id = t.{q(c)}"
        appending = self.mode == "append" and contract.name in wh.curated_tables()
        order = (
            'ORDER BY t."timestamp", t._source_line'
            if contract.name == "events"
            else "ORDER BY t._source_line"
        )
        source_sql = (
            f"SELECT {', '.join(select_out)} FROM _checked t{joins} WHERE len(t._reasons) = 0 {order}"
        )
        added = None
        if appending:  # rows an earlier load curated already: recognised, never added twice
            # the valid rows as they will be curated, kept with their line while they are compared
            wh.sql(
                f"CREATE OR REPLACE TEMP TABLE _new AS SELECT t._source_line, {', '.join(select_out)} "
                f"FROM _checked t{joins} WHERE len(t._reasons) = 0 {order}"
            )
            names = contract.column_names + [f"x_{_safe(e)}" for e in extra_kept]
            self._flag_redelivered(wh, contract, names, load_id, tr)
            wh.sql("DELETE FROM _new WHERE _source_line IN (SELECT line FROM _redelivered)")
            row = wh.sql("SELECT count(*) FROM _new").fetchone()
            added = int(row[0]) if row else 0
            keep = f"SELECT * FROM curated.{q(contract.name)}"
            if contract.key:  # the newer version of a key replaces the curated one (an upsert)
                keep += f" ANTI JOIN _new USING ({', '.join(q(k) for k in contract.key)})"
            source_sql = f"{keep} UNION ALL BY NAME SELECT * EXCLUDE (_source_line) FROM _new"
        wh.sql(
            f"""INSERT INTO quarantine.rows SELECT nextval('quarantine.qid_seq'), {lit(run_id)}, {lit(contract.name)},
                {src_name}, c._source_line, c._reasons[1], c._reasons, c._detail, {raw_json},
                CASE WHEN c._redelivered THEN 'redelivered' ELSE 'open' END, now()::TIMESTAMP, NULL
                FROM (SELECT *, {"_source_line IN (SELECT line FROM _redelivered)" if appending else "false"} AS _redelivered
                      FROM _checked) c JOIN {load} l ON l._source_line = c._source_line
                WHERE len(c._reasons) > 0 ORDER BY c._source_line"""
        )
        if self.mode == "append" and not appending:  # the table's first load: every valid row is new
            tr.rows_updated, tr.rows_unchanged = 0, 0
        tv = wh.publish(contract.name, source_sql, run_id, contract.version)
        for c in pseudo_cols:
            wh.sql(f"DROP TABLE _pseudo_{c}")  # the raw -> pseudonym map never persists
        wh.sql("DROP TABLE IF EXISTS _redelivered")
        tr.curated_version, tr.content_hash, tr.rows_total = tv.version, tv.content_hash, tv.row_count
        # a full load's curated rows are the table; an appended load's are the rows it added
        tr.rows_curated = tv.row_count if added is None else added
        if self.mode == "append":
            tr.mode = "append"
            if tr.rows_inserted is None:
                tr.rows_inserted = tr.rows_curated - (tr.rows_updated or 0)
        if staged.source.is_dir():  # a folder's rows are numbered part * PART_LINES + line: name both
            parts = "[" + ", ".join(lit(str(p)) for p in staged.parts) + "]"
            wh.sql(
                f"""UPDATE quarantine.rows SET source_file = {parts}[source_line // {PART_LINES} + 1],
                    source_line = source_line % {PART_LINES}
                    WHERE run_id = ? AND table_name = ? AND source_line IS NOT NULL""",
                [run_id, contract.name],
            )
        rows = wh.sql(
            "SELECT reason, count(*) FROM quarantine.rows WHERE run_id = ? AND table_name = ? GROUP BY 1 ORDER BY 2 DESC",
            [run_id, contract.name],
        ).fetchall()
        tr.reasons = {r[0]: int(r[1]) for r in rows}
        tr.rows_quarantined = sum(tr.reasons.values())
        tr.balanced = tr.rows_in == tr.rows_curated + tr.rows_quarantined + tr.rows_withheld
        if not tr.balanced:
            report.notes.append(
                f"{contract.name}: rows_in {tr.rows_in} != curated {tr.rows_curated} + quarantined "
                f"{tr.rows_quarantined} + withheld {tr.rows_withheld}"
            )
        wh.sql("DROP TABLE _checked")
        wh.sql("DROP TABLE IF EXISTS _new")
        wh.sql(f"DROP VIEW {load}")
        self._validate(wh, contract, empty=tr.rows_total == 0)
        return tr

    def _drop_erased_lines(
        self, lines: Sequence[tuple[int | None, str, str]], tr: TableReport, staging: bool
    ) -> list[tuple[int | None, str, str]]:
        """Lines that never became rows, less those naming an erased user (withheld, counted)."""
        if not staging or not lines:
            return list(lines)
        assert self._pseudonymizer is not None
        hits = names_erased_user((text for _, text, _ in lines), self._pseudonymizer, self._erased)
        kept = [line for line, hit in zip(lines, hits, strict=True) if not hit]
        _count_withheld(tr, len(lines) - len(kept))
        return kept

    def _withhold_erased(
        self, wh: Warehouse, contract: TableContract, pseudo_cols: list[str], target: str, tr: TableReport
    ) -> None:
        """Take the rows of erased users dated at or before their erasure out of this load
        (`_checked` and the not yet stored `target`). Every id of the load is pseudonymized
        here (`_pseudo_<col>`, used again when the valid rows are curated) and looked up in
        the erasure register. A row is kept only when its timestamp is valid and later than
        the erasure (a returning shopper's new data); undated tables (`users`) keep none."""
        assert self._pseudonymizer is not None
        hits: list[tuple[str, str, Any]] = []
        for c in pseudo_cols:
            ids = [
                r[0]
                for r in wh.sql(f"SELECT DISTINCT {q(c)} FROM _checked WHERE {q(c)} IS NOT NULL").fetchall()
            ]
            pseudos = self._pseudonymizer.many(ids)
            arrow = pa.table(
                {"raw_id": pa.array(ids, pa.string()), "pseudonym": pa.array(pseudos, pa.string())}
            )
            wh.con.con.register("_pseudo_src", arrow)
            wh.sql(f"CREATE OR REPLACE TEMP TABLE _pseudo_{c} AS SELECT * FROM _pseudo_src")
            wh.con.con.unregister("_pseudo_src")
            hits += [
                (c, raw, self._erased[p]) for raw, p in zip(ids, pseudos, strict=True) if p in self._erased
            ]
        if not hits:
            return
        erased = pa.table(
            {
                "col": pa.array([h[0] for h in hits], pa.string()),
                "raw_id": pa.array([h[1] for h in hits], pa.string()),
                "at": pa.array([h[2] for h in hits], pa.timestamp("us")),
            }
        )
        on = " OR ".join(f"(e.col = {lit(c)} AND c.{q(c)} = e.raw_id)" for c in pseudo_cols)
        later = "false"
        if any(c.name == "timestamp" and c.kind is Kind.TIMESTAMP for c in contract.columns):
            later = (
                'c."timestamp" > e.at AND c."timestamp" <= now()::TIMESTAMP + '
                f"INTERVAL {int(self.settings.max_future_days)} DAY"
            )
        wh.con.con.register("_erased_src", erased)
        wh.sql(
            f"""CREATE OR REPLACE TEMP TABLE _withheld AS SELECT DISTINCT c._source_line AS line
                FROM _checked c JOIN _erased_src e ON {on} WHERE NOT coalesce({later}, false)"""
        )
        wh.con.con.unregister("_erased_src")
        row = wh.sql("SELECT count(*) FROM _withheld").fetchone()
        n = int(row[0]) if row else 0
        if n:
            wh.sql("DELETE FROM _checked WHERE _source_line IN (SELECT line FROM _withheld)")
            wh.sql(f"DELETE FROM {target} WHERE _source_line IN (SELECT line FROM _withheld)")
            _count_withheld(tr, n)
        wh.sql("DROP TABLE _withheld")

    def _flag_redelivered(
        self,
        wh: Warehouse,
        contract: TableContract,
        names: list[str],
        load_id: int,
        tr: TableReport,
    ) -> None:
        """Append mode: flag the valid rows of this load that an earlier load curated already
        (an at-least-once export re-sends part of yesterday) as `duplicate_row`, and count what
        the load does to the table. A row is identified by every curated column as it would be
        curated (cleaned, the user pseudonymized): an events row equal to a curated one is a
        re-delivery; a keyed row is an insert (new key), an update (its key's curated row
        differs) or unchanged (equal: a re-delivery). The comparison is a hash join in the
        warehouse; events are compared only with the curated events of the delivery's time
        range (the curated table is in time order, so its row groups outside are skipped).

        Compares `_new` (this load's valid rows as they will be curated, with `_source_line`);
        leaves `_redelivered(line)`: the source lines flagged."""
        cur = f"curated.{q(contract.name)}"
        cur_cols = [r[0] for r in wh.sql(f"DESCRIBE {cur}").fetchall()]
        # required columns are never NULL in a valid row: compared with `=`, which lets the
        # warehouse push the join's key range down to the scan; the others NULL-safely
        required = set(contract.required_columns)

        def equal(left: str, right: str, col: str) -> str:
            return f"{left} {'=' if col in required else 'IS NOT DISTINCT FROM'} {right}"

        same = " AND ".join(
            equal(
                "c." + q(col) if col in names else "NULL",
                "e." + q(col) if col in cur_cols else "NULL",
                col if col in names and col in cur_cols else "",
            )
            for col in dict.fromkeys([*names, *cur_cols])
        )
        version = wh.latest_version(contract.name)
        holder = f"{contract.name} v{version.version}" if version else contract.name
        if contract.key:
            on = " AND ".join(f"c.{q(k)} = e.{q(k)}" for k in contract.key)
            wh.sql(
                f"""CREATE OR REPLACE TEMP TABLE _upsert AS
                    SELECT c._source_line AS line, e._present IS NOT NULL AS present,
                           coalesce(e._present AND {same}, false) AS same
                    FROM _new c LEFT JOIN (SELECT *, true AS _present FROM {cur}) e ON {on}"""
            )
            row = wh.sql(
                "SELECT count(*) FILTER (WHERE NOT present), count(*) FILTER (WHERE present AND NOT same), "
                "count(*) FILTER (WHERE same) FROM _upsert"
            ).fetchone()
            assert row is not None
            tr.rows_inserted, tr.rows_updated, tr.rows_unchanged = (int(v) for v in row)
            wh.sql("CREATE OR REPLACE TEMP TABLE _redelivered AS SELECT line FROM _upsert WHERE same")
            wh.sql("DROP TABLE _upsert")
            # (a pseudonymized key - a user id - is not written out: the detail is shown in reports)
            shown = not any(contract.column(k).pseudonymize for k in contract.key)
            key_text = " || ',' || ".join(f"l.{q(k)}" for k in contract.key) if shown else "'(pseudonymized)'"
            what = (
                f"{lit('re-delivered unchanged: the curated row of ' + '/'.join(contract.key) + ' ')} || "
                f"{key_text} || {lit(f' in {holder} is identical')}"
            )
        else:
            where = ""
            if "timestamp" in names and "timestamp" in cur_cols:
                lo, hi = wh.sql('SELECT min("timestamp"), max("timestamp") FROM _new').fetchone() or (
                    None,
                    None,
                )
                if lo is not None:
                    where = f"WHERE \"timestamp\" BETWEEN TIMESTAMP '{lo}' AND TIMESTAMP '{hi}'"
            wh.sql(
                f"""CREATE OR REPLACE TEMP TABLE _redelivered AS SELECT DISTINCT c._source_line AS line
                    FROM _new c JOIN (SELECT * FROM {cur} {where}) e ON {same}"""
            )
            row = wh.sql("SELECT count(*) FROM _redelivered").fetchone()
            tr.rows_unchanged, tr.rows_updated = (int(row[0]) if row else 0), 0
            what = lit(f"re-delivered: an identical row is already curated ({holder})")
        if not tr.rows_unchanged:
            return
        # which load delivered it first: the raw layer keeps every load's rows as received, and a
        # re-sent row is usually the same text (when it is not, the curated version is named alone)
        load = f"_load_{contract.name}"
        raw_cols = [r[0] for r in wh.sql(f"DESCRIBE {load}").fetchall() if r[0] != "_source_line"]
        raw_same = " AND ".join(equal(f"r.{q(c)}", f"d.{q(c)}", c) for c in raw_cols)
        wh.sql(
            f"""CREATE OR REPLACE TEMP TABLE _first AS
                SELECT d._source_line AS line, min(r._load) AS first_load
                FROM (SELECT * FROM {load} WHERE _source_line IN (SELECT line FROM _redelivered)) d
                JOIN raw.{q(contract.name)} r ON r._load <> {int(load_id)} AND {raw_same} GROUP BY 1"""
        )
        wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{Reason.DUPLICATE_ROW.value}'),
                _detail = coalesce(_detail, {what} || coalesce('; first delivered by load ' || f.first_load || ' ('
                    || m.source_file || ', ' || strftime(m.loaded_at, '%Y-%m-%d %H:%M:%S') || ' UTC, run ' || m.run_id || ')', ''))
                FROM {load} l LEFT JOIN _first f ON f.line = l._source_line
                LEFT JOIN meta.raw_loads m ON m.load_id = f.first_load
                WHERE l._source_line = _checked._source_line
                  AND _checked._source_line IN (SELECT line FROM _redelivered)"""
        )
        wh.sql("DROP TABLE _first")

    def _day_first(self, wh: Warehouse, contract: TableContract, load: str) -> bool:
        """Whether the file writes slash dates day first (`25/01/2024`): some first field is
        above 12 and no second one is. Month first otherwise (a sample of 200,000 such values)."""
        columns = [c.name for c in contract.columns if c.kind is Kind.TIMESTAMP]
        if not columns:
            return False
        ts = q(columns[0])

        def part(group: int) -> str:
            return f"TRY_CAST(regexp_extract(v, '^\\s*([0-9]{{1,2}})/([0-9]{{1,2}})/', {group}) AS INTEGER)"

        row = wh.sql(
            f"""SELECT count(*) FILTER (WHERE a > 12), count(*) FILTER (WHERE b > 12) FROM (
                  SELECT {part(1)} AS a, {part(2)} AS b FROM (
                    SELECT {ts} AS v FROM {load} WHERE contains({ts}, '/') LIMIT 200000))"""
        ).fetchone()
        return bool(row and row[0] and not row[1])

    def _flag_repeats(
        self, wh: Warehouse, reason: Reason, columns: list[str], *, last_wins: bool, detail: str
    ) -> None:
        """Add `reason` to the still-valid rows that repeat `columns` (NULLs equal) of another
        still-valid row: all but the first (or, `last_wins`, the last) by source line. The
        window runs only over the rows whose hash of `columns` occurs more than once (a
        superset of the repeats: equal values hash equally), not over every row: about 0.3 s
        less per million mostly distinct events."""
        cols = ", ".join(columns)
        order = "_source_line DESC" if last_wins else "_source_line"
        valid = "len(_reasons) = 0"
        wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{reason.value}'), _detail = coalesce(_detail, f.detail)
                FROM (SELECT _source_line AS line, {detail} AS detail,
                             row_number() OVER (PARTITION BY {cols} ORDER BY {order}) > 1 AS hit
                      FROM _checked WHERE {valid} AND hash({cols}) IN (
                        SELECT h FROM (SELECT hash({cols}) AS h FROM _checked WHERE {valid})
                        GROUP BY h HAVING count(*) > 1)) f
                WHERE f.hit AND _checked._source_line = f.line AND len(_checked._reasons) = 0"""
        )

    def _flag_event_ids(self, wh: Warehouse, table: str) -> None:
        """An event_id (an idempotency key) is curated once: a row repeating one of an earlier
        row of this load or, appending, one already curated is a `duplicate_row` (a client's
        retry, a served event absorbed twice)."""
        dup = Reason.DUPLICATE_ROW.value
        wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{dup}'),
                    _detail = coalesce(_detail, 'event_id ' || event_id || ': repeats an earlier event')
                FROM (SELECT _source_line AS line,
                             row_number() OVER (PARTITION BY event_id ORDER BY _source_line) > 1 AS hit
                      FROM _checked WHERE len(_reasons) = 0 AND event_id IS NOT NULL) f
                WHERE f.hit AND _checked._source_line = f.line"""
        )
        has_ids = wh.sql(
            "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'curated' AND table_name = ? "
            "AND column_name = 'event_id'",
            [table],
        ).fetchone()
        if self.mode == "append" and has_ids and has_ids[0]:
            wh.sql(
                f"""UPDATE _checked SET _reasons = list_append(_reasons, '{dup}'),
                        _detail = coalesce(_detail, 'event_id ' || event_id || ': already curated')
                    WHERE len(_reasons) = 0 AND event_id IN (
                        SELECT c.event_id FROM curated.{q(table)} c SEMI JOIN _checked n USING (event_id))"""
            )

    def _flag_bots(self, wh: Warehouse) -> None:
        s = self.settings
        types = ", ".join(lit(t) for t in BOT_EVENT_TYPES)
        behaviour = f"len(_reasons) = 0 AND event_type IN ({types})"
        # the sliding window runs only over users with more events in all than one window may
        # hold (no one else can exceed it): a few users instead of every one (~0.2 s per 1M events)
        wh.sql(
            f"""CREATE OR REPLACE TEMP TABLE _bots AS
                SELECT user_id, max(n) AS peak FROM (
                  SELECT user_id, count(*) OVER (PARTITION BY user_id ORDER BY "timestamp"
                         RANGE BETWEEN INTERVAL {int(s.bot_window_seconds)} SECOND PRECEDING AND CURRENT ROW) AS n
                  FROM _checked WHERE {behaviour} AND user_id IN (
                    SELECT user_id FROM _checked WHERE {behaviour}
                    GROUP BY user_id HAVING count(*) > {int(s.bot_max_events)}))
                GROUP BY user_id HAVING max(n) > {int(s.bot_max_events)}"""
        )
        wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{Reason.BOT_TRAFFIC.value}'),
                _detail = coalesce(_detail, 'user made ' || b.peak || ' events within {int(s.bot_window_seconds)} s')
                FROM _bots b WHERE _checked.user_id = b.user_id AND len(_checked._reasons) = 0"""
        )
        wh.sql("DROP TABLE _bots")

    def _pseudonym_table(self, wh: Warehouse, column: str) -> None:
        key = SecretStore(self.workdir).pseudonym_key()
        pseudo = Pseudonymizer(key)
        raw_ids = [
            r[0]
            for r in wh.sql(
                f"SELECT DISTINCT {q(column)} FROM _checked WHERE len(_reasons) = 0 AND {q(column)} IS NOT NULL"
            ).fetchall()
        ]
        arrow = pa.table(
            {
                "raw_id": pa.array(raw_ids, pa.string()),
                "pseudonym": pa.array(pseudo.many(raw_ids), pa.string()),
            }
        )
        wh.con.con.register("_pseudo_src", arrow)
        wh.sql(f"CREATE OR REPLACE TEMP TABLE _pseudo_{column} AS SELECT * FROM _pseudo_src")
        wh.con.con.unregister("_pseudo_src")

    def _validate(self, wh: Warehouse, contract: TableContract, *, empty: bool = False) -> None:
        """The curated table must satisfy the contract's pandera schema (checks run in the warehouse)."""
        import pandera.errors

        schema = contract.to_pandera(values=not empty)
        try:
            schema.validate(wh.table(contract.name), lazy=True)
        except pandera.errors.SchemaErrors as exc:
            raise ContractViolation(
                f"curated {contract.name} breaks its contract {schema.name}: {exc}"
            ) from exc


def _count_withheld(tr: TableReport, n: int) -> None:
    if n:
        tr.rows_withheld += n
        tr.withheld[ERASED_USER] = tr.withheld.get(ERASED_USER, 0) + n


def _quarantine_lines(
    wh: Warehouse, run_id: str, table: str, src: Path, lines: Sequence[tuple[int | None, str, str]]
) -> None:
    """Quarantine source lines that never became rows: (line, its text, why) as `malformed_row`."""
    if lines:
        wh.con.con.executemany(
            "INSERT INTO quarantine.rows VALUES (nextval('quarantine.qid_seq'), ?, ?, ?, ?, ?, ?, ?, ?, "
            "'open', now()::TIMESTAMP, NULL)",
            [
                [
                    run_id,
                    table,
                    str(src),
                    line_no,
                    Reason.MALFORMED_ROW.value,
                    [Reason.MALFORMED_ROW.value],
                    why,
                    json.dumps({"line": text}),
                ]
                for line_no, text, why in lines
            ],
        )


def _constant(implied: dict[str, str], column: str) -> str:
    """SQL for a column the file does not have: its implied value, or NULL."""
    return f"{lit(implied[column])}::VARCHAR" if column in implied else "NULL::VARCHAR"


def _joined_sql(first: str, rest: list[str]) -> str:
    """A column read from several source columns (a category path from `Category` and
    `Sub-Category`): their non-empty values joined with ' > '."""
    if not rest:
        return first
    parts = ", ".join(f"nullif(trim({e}), '')" for e in (first, *rest))
    return f"nullif(concat_ws(' > ', {parts}), '')"


def _parquet_files(staged: StagedFile) -> str:
    return "[" + ", ".join(lit(p.as_posix()) for p in staged.parts) + "]"


def _column_key(name: str) -> str:
    """A column name as it is matched: case, spaces, dashes and underscores do not count
    (`User ID`, `userId`, `user-id` and `user_id` are one name)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _safe(name: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in name).strip("_")
    return out or "column"


def ingest(
    data_dir: str | Path,
    workdir: str | Path,
    settings: IngestSettings | None = None,
    *,
    append: bool = False,
    column_map: ColumnMap | None = None,
) -> IngestReport:
    """Governed ingestion of `data_dir` (a canonical dataset directory) into `workdir`: a full
    snapshot, or with `append` a delivery added to what is curated (re-delivered rows are
    recognised, keyed tables upserted). `column_map`: the shop's headers -> canonical columns
    (default: the directory's shelfwise.toml, when it has one)."""
    mode = "append" if append else "replace"
    return Ingestor(workdir, settings, mode=mode, column_map=column_map).run(data_dir)
