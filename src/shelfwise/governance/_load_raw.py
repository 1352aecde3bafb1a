"""Stage 1 of a table's load: the staged file into the raw layer (strings, with its line numbers);
lines the reader cannot split go to quarantine as `malformed_row` with their text.

The raw layer is the history of everything received, steward-only, each load's rows under its id
(`meta.raw_loads`: run, file, hash). `load_raw` reads the file into a temp table of this load's
rows (`LoadState.target`) before the run's transaction and writes nothing to the warehouse (its
quarantined lines wait for the transaction: `LoadState.defer`); `store_raw`, in the transaction
and once erased users' rows are out (`_load_publish.withhold_erased`), records the load and copies
its rows into raw. The load's later stages read the temp table (`LoadState.load`): DuckDB reads
rows written inside an open transaction on one thread. Raw tables written before the load id keep
their `_run_id` and `_source_file` columns (NULL in newer rows)."""

from __future__ import annotations

from pathlib import Path

from ..errors import SourceError
from ..storage import StagedFile
from ..storage._sources import JSON_DELIMITER, LINE_COLUMN, PART_LINES
from ._compile import DUCKDB, SPARK, Dialect, lit, q
from ._contracts import Kind
from ._load_state import (
    LoadState,
    column_key,
    constant,
    joined_sql,
    parquet_files,
    quarantine_lines,
    safe,
    with_attributes,
)
from ._reasons import Reason

__all__ = ["load_raw", "new_key_detail", "store_raw", "tell_new_keys"]


def load_raw(st: LoadState) -> None:
    """Read the file into the temp table `st.target` (`LoadState.incoming`) and define `st.load`;
    sets `rows_in`. Nothing is written to the warehouse here (a run reads and checks its files
    before its transaction): raw gets the rows in `store_raw`, the quarantine its lines through
    `LoadState.defer`."""
    wh, contract, staged, tr = st.wh, st.contract, st.staged, st.tr
    raw_cols = st.raw_cols
    # (an earlier load's lines kept aside and variants: `_load_aside` makes this one's)
    wh.sql("DROP TABLE IF EXISTS _aside_lines; DROP TABLE IF EXISTS _variant_parents")
    load_row = wh.sql("SELECT coalesce(max(load_id), 0) + 1 FROM meta.raw_loads").fetchone()
    st.load_id = max(int(load_row[0]) if load_row else 1, st.min_load_id)
    # this load's rows are read into a temporary table first and reach raw only after the
    # erased users' rows are taken out (those are never stored), in the run's transaction; the
    # later stages read them there (DuckDB reads rows written in an open transaction on one thread)
    st.target = st.incoming
    cols = ", ".join(f"{q(c)} VARCHAR" for c in raw_cols)
    wh.sql(f"CREATE OR REPLACE TEMP TABLE {st.target} ({cols}, _source_line BIGINT, _load INTEGER)")
    into = f"INSERT INTO {st.target} BY NAME SELECT *, {st.load_id}::INTEGER AS _load FROM"
    if staged.format == "csv":
        _read_csv(st, into)
    elif staged.format == "jsonl":
        _read_json_lines(st, into)
    else:
        _read_parquet(st, into)
    # lines staging rejected itself (a quote that never closes): quarantined as they are
    defer_quarantine_lines(st, st.drop_erased_lines(staged.bad_lines))
    tr.rows_in += len(staged.bad_lines)
    note_unterminated(st)
    find_completions(st)
    st.load = f"_load_{contract.name}"
    _define_load(st, st.target)


CUT_LINES = "meta.cut_lines"
# how many of a table's latest cut last lines a delivery is compared with (`find_completions`)
CUT_LINES_KEPT = 30


def ends_without_newline(path: Path) -> bool:
    """Whether a plain (uncompressed) text file's last byte is no line end (UTF-16 included:
    its NUL halves are skipped); an empty file or a compressed one is not judged."""
    if path.suffix.lower() in {".gz", ".parquet", ".zip", ".bz2", ".xz", ".zst"}:
        return False
    try:
        size = path.stat().st_size
        if not size:
            return False
        with path.open("rb") as fh:
            fh.seek(max(size - 4, 0))
            tail = fh.read().rstrip(b"\x00")
    except OSError:
        return False
    return bool(tail) and not tail.endswith((b"\n", b"\r"))


def unterminated_parts(staged: StagedFile) -> list[int]:
    """The parts of `staged` (their index in `parts`) whose text ends without a final newline: a
    numbered staged copy says so itself (`StagedFile.unterminated`); a plain CSV read in place was
    never staged, so its own last bytes tell. A copy derived from it (an unpacked orders export,
    numbered) carries the list on: left empty, a cut last line went unsaid and unremembered."""
    if staged.numbered:
        return sorted(set(staged.unterminated))
    return [0] if ends_without_newline(staged.source) else []


def note_unterminated(st: LoadState) -> None:
    """A file that ends without a final newline may have been cut off while it was copied: its
    last line may be a partial row (a review's text or a purchase's value cut short, which still
    reads as a valid row). Many exports simply lack the final newline, so the row is loaded, but
    the load says so in its warnings, naming the file and line, and remembers the line
    (`st.cut_lines`, recorded in `meta.cut_lines` by `store_raw`): when a later delivery brings the
    complete line, it replaces this one (`find_completions`) instead of adding a second event.
    A compressed file is judged by its decompressed text, a folder's parts each (staging tells:
    `StagedFile.unterminated`)."""
    staged = st.staged
    if staged.format not in {"csv", "jsonl"}:
        return
    cut_parts = unterminated_parts(staged)
    if not cut_parts:
        return
    scale = max(staged.line_scale, 1)  # (a packed order's product: its row's line * scale + k)
    span = PART_LINES * scale
    rows = st.wh.sql(
        f"SELECT _source_line // {span}, max(_source_line) FROM {st.target} WHERE _load = {int(st.load_id)} "
        "AND _source_line IS NOT NULL GROUP BY 1"
    ).fetchall()
    read_in = {int(k): int(n) for k, n in rows}
    rejected = [int(n) for n, _, _ in staged.bad_lines if n is not None] + st.rejected_lines
    cut_column = None
    if staged.format == "csv" and st.header:
        final = st.header[-1]
        if staged.line_scale > 1:  # (a packed orders export, unpacked: `_orderlines.unpack_orders`)
            from ._orderlines import PACKED_FIELDS

            # the file's last column packs the products; a cut shortens the last product's
            # last field (its ids, appended after, are no column of the file)
            final = PACKED_FIELDS[-1] if PACKED_FIELDS[-1] in st.header else final
        cut_column = next((c for c, h in st.mapping.items() if h == final), None)
        if cut_column is None and final in st.extra_kept:
            cut_column = f"x_{safe(final)}"
    for k in cut_parts:
        read = read_in.get(k)
        last = max([n for n in [read, *rejected] if n is not None and n // span == k], default=None)
        if last is None:
            continue
        if read is not None and last == read:  # (a rejected last line is quarantined as it is)
            st.cut_lines.append(last)
            st.cut_column = cut_column
        row = (last // scale) % PART_LINES
        where = (
            f"{staged.parts[k]}:{row}"
            if staged.source.is_dir() and k < len(staged.parts)
            else f"{st.src}:{row}"
        )
        st.warn(
            f"{where}: the file ends without a final newline, so its last line may have been "
            "cut off in transit (a value or text cut short still reads as a valid row); it was loaded "
            "as it is - if the file was cut, deliver it again complete: the complete line replaces "
            "this one (counted updated), it is not added as a second event"
        )


def find_completions(st: LoadState) -> None:
    """Appending to a table without a key (events): this load's rows that complete an earlier
    load's cut last line (`note_unterminated`): every other field equal and the cut field
    extended (the earlier value a proper prefix of this one). Sets `st.completions`; the
    publish stages (both engines) take the curated row the cut line became out of the new
    version, so the complete row replaces it (`completed_condition`)."""
    wh, contract = st.wh, st.contract
    if st.mode != "append" or contract.key or st.reprocess or not wh.exists("raw", contract.name):
        return
    if not wh.exists("meta", "cut_lines"):
        return
    raw_have = {r[0] for r in wh.sql(f"DESCRIBE {st.raw_table}").fetchall()}
    found: list[tuple[int, int, int, str]] = []
    cuts = wh.sql(
        # (the latest loads' only: a cut file is re-sent within days, and many exports lack the
        # final newline every night)
        f"SELECT load_id, source_line, last_column FROM {CUT_LINES} WHERE table_name = ? "
        f"AND last_column IS NOT NULL ORDER BY load_id DESC LIMIT {CUT_LINES_KEPT}",
        [contract.name],
    ).fetchall()
    for load_id, cut_line, column in cuts:
        if column not in st.raw_cols or column not in raw_have:
            continue
        others = [c for c in st.raw_cols if c != column and c in raw_have]
        same = " AND ".join([f"d.{q(c)} IS NOT DISTINCT FROM r.{q(c)}" for c in others] or ["true"])
        c = q(column)
        rows = wh.sql(
            f"""SELECT min(d._source_line) FROM {st.target} d JOIN {st.raw_table} r
                ON r._load = ? AND r._source_line = ? AND {same}
                WHERE d._load = {int(st.load_id)} AND d.{c} IS NOT NULL
                  AND starts_with(d.{c}, coalesce(r.{c}, '')) AND d.{c} IS DISTINCT FROM r.{c}""",
            [int(load_id), int(cut_line)],
        ).fetchone()
        if rows and rows[0] is not None:
            found.append((int(rows[0]), int(load_id), int(cut_line), str(column)))
    st.completions = found


def completed_condition(st: LoadState, column: str, cur_cols: list[str], dialect: Dialect = DUCKDB) -> str:
    """The condition that the curated row `e` is the one an earlier load's cut line became,
    which this load's completing row `c` replaces: equal but for the cut `column`, which differs
    (where it is equal the complete row is a plain re-delivery and the curated row stays)."""
    from ._load_publish import same_row

    names = [n for n in st.raw_cols if n != column]
    delivered = st.delivered - {column}
    same = same_row(st.contract, names, cur_cols, dialect, delivered)
    col = dialect.q(column)
    return f"({same}) AND NOT (c.{col} {dialect.null_safe_eq} e.{col})"


def defer_quarantine_lines(
    st: LoadState, lines: list[tuple[int | None, str, str]], reason: Reason = Reason.MALFORMED_ROW
) -> None:
    """`quarantine_lines` for this load, in the run's transaction."""
    if lines:
        st.defer(
            lambda: quarantine_lines(
                st.wh,
                st.run_id,
                st.name,
                st.src,
                lines,
                reprocess=st.reprocess,
                reason=reason,
                append=st.mode == "append",
            )  # fmt: skip
        )


def store_raw(st: LoadState) -> None:
    """This load's remaining rows into raw (the table made, or given the columns it lacks) and
    the load into `meta.raw_loads`; `st.load` keeps reading the temp table."""
    wh, raw_table, raw_cols = st.wh, st.raw_table, st.raw_cols
    if not wh.exists("raw", st.name):
        cols = ", ".join(f"{q(c)} VARCHAR" for c in raw_cols)
        wh.sql(f"CREATE TABLE {raw_table} ({cols}, _source_line BIGINT, _load INTEGER)")
    raw_existing = {r[0] for r in wh.sql(f"DESCRIBE {raw_table}").fetchall()}
    for col, typ in [(c, "VARCHAR") for c in raw_cols] + [("_load", "INTEGER")]:
        if col not in raw_existing:
            wh.sql(f"ALTER TABLE {raw_table} ADD COLUMN {q(col)} {typ}")
    wh.sql(
        "INSERT INTO meta.raw_loads VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [st.load_id, st.run_id, st.name, str(st.src), st.staged.sha256],
    )
    wh.sql(f"INSERT INTO {raw_table} BY NAME SELECT * FROM {st.target}")
    if st.cut_lines or st.completions:
        wh.sql(
            f"CREATE TABLE IF NOT EXISTS {CUT_LINES} (load_id INTEGER, table_name VARCHAR, "
            "source_line BIGINT, last_column VARCHAR)"
        )
    for _, load_id, line, _ in st.completions:  # completed: no longer a cut line
        wh.sql(
            f"DELETE FROM {CUT_LINES} WHERE load_id = ? AND table_name = ? AND source_line = ?",
            [load_id, st.name, line],
        )
    for line in st.cut_lines:
        wh.sql(f"INSERT INTO {CUT_LINES} VALUES (?, ?, ?, ?)", [st.load_id, st.name, line, st.cut_column])


def _temp_exists(st: LoadState, name: str) -> bool:
    row = st.wh.sql(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def _define_load(st: LoadState, table: str) -> None:
    """The load view over `table`'s rows of this load: less the lines kept aside (`_load_aside`),
    a variant row's empty product fields read from its parent's row (`_load_aside.VARIANTS`), a
    filled column from its key's curated row."""
    from ._load_aside import ASIDE, INHERITED, NOT_VISIBLE, VARIANTS

    where = f"l._load = {st.load_id}"
    if _temp_exists(st, ASIDE):
        where += f" AND l._source_line NOT IN (SELECT _source_line FROM {ASIDE})"
    joins = ""
    inherit: set[str] = set()
    if st.name == "products" and _temp_exists(st, VARIANTS):
        inherit = {c for c in INHERITED if c in st.raw_cols}
        joins += (
            f" LEFT JOIN {VARIANTS} v ON v._source_line = l._source_line"
            f" LEFT JOIN {table} p ON p._load = {st.load_id} AND p._source_line = v.parent_line"
        )

    hidden = (
        st.name == "products"
        and not st.reprocess
        and "published" in st.raw_cols
        and _temp_exists(st, NOT_VISIBLE)
    )

    def col(c: str) -> str:
        if hidden and c == "published":  # (`_load_aside._not_visible`: either column's no is a no)
            return (
                f"CASE WHEN l._source_line IN (SELECT _source_line FROM {NOT_VISIBLE}) THEN 'false' "
                f"ELSE l.{q(c)} END AS {q(c)}"
            )
        if c in inherit:
            return f"coalesce(nullif(trim(l.{q(c)}), ''), p.{q(c)}) AS {q(c)}"
        return f"l.{q(c)}"

    if not st.filled:
        cols = ", ".join([col(c) for c in st.raw_cols] + ["l._source_line"])
        st.wh.sql(
            f"CREATE OR REPLACE TEMP VIEW {st.load} AS SELECT {cols} FROM {table} l{joins} WHERE {where}"
        )
        return
    # a required column the delivery leaves out: its key's curated value (raw keeps the file's
    # rows as delivered); the key read as the row check reads it (trimmed, `123.0` as `123`)
    from ._compile import _clean, _id_value
    from ._contracts import Kind

    def key(k: str) -> str:
        return _id_value(_clean(f"nullif(trim(l.{q(k)}), '')", Kind.ID), DUCKDB)

    cols = ", ".join(
        [f"CAST(f.{q(c)} AS VARCHAR) AS {q(c)}" if c in st.filled else col(c) for c in st.raw_cols]
        + ["l._source_line"]
    )
    on = " AND ".join(f"f.{q(k)} = {key(k)}" for k in st.contract.key)
    st.wh.sql(
        f"CREATE OR REPLACE TEMP VIEW {st.load} AS SELECT {cols} FROM {table} l{joins} "
        f"LEFT JOIN curated.{q(st.name)} f ON {on} WHERE {where}"
    )


def _entity(table: str) -> str:
    """One row of a table, in words: products -> product, queries -> query."""
    return table[:-3] + "y" if table.endswith("ies") else table[:-1] if table.endswith("s") else table


def new_key_detail(st: LoadState, d: Dialect = DUCKDB) -> str | None:
    """The checked rows' `_detail`, as SQL, with a filled column's "<column>: empty" said for
    what it is: the file has no such column and the row's key has no curated row to take it
    from ("title: not in this file, and P888888 is not a curated product (a new product needs
    its title)"); None when the load fills no column. A filled column is empty only so: a
    curated row has every required value."""
    if not st.filled:
        return None
    keys = [d.q(k) for k in st.contract.key]
    sep = " || ', ' || "
    shown = keys[0] if len(keys) == 1 else f"'(' || {sep.join(keys)} || ')'"
    one = _entity(st.name)
    needs = ", ".join(st.filled)
    known = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    whens = " ".join(
        f"WHEN _detail = {d.lit(c + ': empty')} AND {known} THEN "
        f"{d.lit(c + ': not in this file, and ')} || {shown} || "
        f"{d.lit(f' is not a curated {one} (a new {one} needs its {needs})')}"
        for c in st.filled
    )
    return f"CASE {whens} ELSE _detail END"


def tell_new_keys(st: LoadState) -> None:
    """Say why a row of a new key in a delivery without some required column is quarantined
    (`new_key_detail`), in the checked rows of either engine: DuckDB's `_checked`, Spark's
    `checked` frame (both read the load view `_define_load` fills)."""
    if st.engine is not None and st.engine.name == "spark":
        detail = new_key_detail(st, SPARK)
        if detail is not None:
            from pyspark.sql import functions as F

            st.frames["checked"] = st.frames["checked"].withColumn("_detail", F.expr(detail))
        return
    detail = new_key_detail(st)
    if detail is not None:
        from ._load_state import CHECKED

        empty = ", ".join(lit(c + ": empty") for c in st.filled)
        st.wh.sql(f"UPDATE {CHECKED} SET _detail = {detail} WHERE _detail IN ({empty})")


def _read_csv(st: LoadState, into: str) -> None:
    wh, contract, staged, header = st.wh, st.contract, st.staged, st.header
    mapping, joined = st.mapping, st.joined
    assert staged.staged is not None
    numbered = staged.numbered
    names = ([LINE_COLUMN] if numbered else []) + [f"c{i}" for i in range(len(header))]
    pos: dict[str, str] = {}
    for i, h in enumerate(header):  # a repeated name is read at its first column (`map_columns`)
        pos.setdefault(h, f"c{i}")
    cols_spec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    select = [
        f"{joined_sql(q(pos[mapping[c]]), [q(pos[h]) for h in joined.get(c, [])])} AS {q(c)}"
        if c in mapping
        else f"{constant(st.implied, c)} AS {q(c)}"
        for c in contract.column_names
    ]
    with_attributes(select, st, [(k, q(pos[h])) for k, h in st.attributes.items()])
    select += [f"{q(pos[e])} AS {q('x_' + safe(e))}" for e in st.extra_kept]
    rej = f"rej_{contract.name}"
    wh.sql(f"DROP TABLE IF EXISTS {rej}; DROP TABLE IF EXISTS {rej}_scan")
    reader = (
        f"read_csv({lit(staged.staged.as_posix())}, header=true, "
        f"delim={lit(staged.delimiter)}, quote='\"', escape='\"', columns={cols_spec}, "
        f"store_rejects=true, rejects_table='{rej}', rejects_scan='{rej}_scan', strict_mode=true, "
        f"null_padding=false, auto_detect=false, max_line_size=10000000)"
    )
    # a copy carries each record's line; a plain file read in place is one record a line, so
    # the n-th row read is line n + 1 (the header is line 1) until a rejected line (below).
    read = f"_read_{contract.name}"
    try:
        if numbered:
            line = f"TRY_CAST({q(LINE_COLUMN)} AS BIGINT)"
            wh.sql(f"{into} (SELECT {', '.join(select)}, {line} AS _source_line FROM {reader})")
        else:
            # Numbered by the rowid of a fresh temp table, not `row_number() OVER ()`: DuckDB runs
            # that window as an order-preserving stream, so read -> number -> compressed insert
            # would all run on one thread. The read into a new table is parallel and keeps the
            # file's order (preserve_insertion_order, set by the warehouse), so its rowid is the
            # row's place in the file; the copy into raw is parallel too. Measured on 3M rows
            # (benchmarks/ingest_speed.py's file, 2 cores, quiet): 5.7 s wall (9.6 CPU-s) with the
            # window, 3.6 s (5.9 CPU-s) this way, 3.2 s for an unnumbered insert.
            # (inside the run's transaction a new table's rowids start at DuckDB's MAX_ROW_ID,
            # not 0: counted from the first row's)
            # The read table becomes the load's own (`st.target`, its columns in their order):
            # its line numbers set in place, not the whole read copied into it once more
            # (~0.6 CPU-s per million events rows).
            cols = ", ".join(q(c) for c in st.raw_cols)
            wh.sql(
                f"CREATE OR REPLACE TEMP TABLE {read} AS SELECT {cols}, NULL::BIGINT AS _source_line, "
                f"{int(st.load_id)}::INTEGER AS _load FROM (SELECT {', '.join(select)} FROM {reader})"
            )
            first = wh.sql(f"SELECT min(rowid) FROM {read}").fetchone()
            base = int(first[0]) if first and first[0] is not None else 0
            wh.sql(f"UPDATE {read} SET _source_line = (rowid - {base} + 2)::BIGINT")
            wh.sql(f"DROP TABLE {st.target}")
            wh.sql(f"ALTER TABLE {read} RENAME TO {st.target}")
    except Exception as exc:  # noqa: BLE001 - the reader's own words are the clearest reason
        # (the run's transaction is aborted: the run rolls back, its temp tables go with it)
        raise SourceError(str(st.src), None, f"unreadable CSV: {exc}") from exc
    wh.sql(f"DROP TABLE IF EXISTS {read}")
    rejects = wh.sql(
        f"SELECT min(csv_line), string_agg(DISTINCT error_type, ', '), line FROM {rej} GROUP BY line ORDER BY line"
    ).fetchall()
    bad: list[tuple[int | None, str, str]] = []
    for csv_line, error_type, reader_line in rejects:
        line_text = csv_line or ""
        why = f"{error_type.lower()}: expected {len(header)} fields"
        if not numbered:  # the reader's line is the file's (one record a line, no blank line)
            bad.append((int(reader_line), line_text, why))
            continue
        sep = line_text.find(staged.delimiter)
        line_no = int(line_text[:sep]) if sep > 0 and line_text[:sep].isdigit() else None
        body = line_text[sep + 1 :] if sep > 0 else line_text
        bad.append((line_no, body, why))
    if not numbered and bad:
        _renumber_after_rejects(st, [n for n, _, _ in bad if n is not None])
    st.rejected_lines = [n for n, _, _ in bad if n is not None]
    defer_quarantine_lines(st, st.drop_erased_lines(bad))
    wh.sql(f"DROP TABLE IF EXISTS {rej}; DROP TABLE IF EXISTS {rej}_scan")
    st.tr.rows_in = staged.records


def _renumber_after_rejects(st: LoadState, rejected: list[int]) -> None:
    """Rows read in place were numbered as if no line had been rejected: a row after the i-th
    rejected line (in file order) and before the next is i lines further down. A row on line x
    there is numbered x - i before the fix, so the first row after rejected line L_i is numbered
    L_i - i + 1 (consecutive rejected lines share that number: the last one's shift holds)."""
    by_number = {line - i + 1: i for i, line in enumerate(sorted(rejected), 1)}
    shifts = sorted(by_number.items())
    st.wh.sql("CREATE OR REPLACE TEMP TABLE _shifts (r BIGINT, shift BIGINT)")
    st.wh.db.executemany("INSERT INTO _shifts VALUES (?, ?)", shifts)
    st.wh.sql(
        f"""UPDATE {st.target} t SET _source_line = t._source_line + s.shift FROM (
              SELECT l._source_line AS r, sh.shift FROM (
                SELECT _source_line FROM {st.target} WHERE _load = {int(st.load_id)}) l
              ASOF JOIN _shifts sh ON l._source_line >= sh.r) s
            WHERE t._load = {int(st.load_id)} AND t._source_line = s.r"""
    )
    st.wh.sql("DROP TABLE _shifts")


def _read_json_lines(st: LoadState, into: str) -> None:
    wh, contract, staged, tr = st.wh, st.contract, st.staged, st.tr
    mapping, joined = st.mapping, st.joined
    assert staged.staged is not None
    lines = (
        f"read_csv({lit(staged.staged.as_posix())}, header=false, delim={lit(JSON_DELIMITER)}, quote='', "
        f"escape='', columns={{'_source_line': 'BIGINT', 'j': 'VARCHAR'}}, auto_detect=false, "
        f"max_line_size=10000000)"
    )
    ok = "json_valid(j) AND json_type(j) = 'OBJECT'"

    def field_sql(key: str, kind: Kind | None = None) -> str:
        path = _path(key)
        sep = _LIST_JOINS.get(kind) if kind is not None else None
        if sep is not None:  # a list of text is its items joined (a category list: its path)
            nested = f"array_to_string(json_extract_string(j, {lit(path + '[0][*]')}), {lit(sep)})"
            items = f"array_to_string(json_extract_string(j, {lit(path + '[*]')}), {lit(sep)})"
            return (
                f"CASE WHEN json_type(j, {lit(path)}) = 'ARRAY' "
                f"THEN CASE WHEN json_type(j, {lit(path + '[0]')}) = 'ARRAY' THEN {nested} ELSE {items} END "
                f"WHEN json_type(j, {lit(path)}) = 'OBJECT' THEN json_extract(j, {lit(path)})::VARCHAR "
                f"ELSE json_extract_string(j, {lit(path)}) END"
            )
        return (
            f"CASE WHEN json_type(j, {lit(path)}) IN ('ARRAY', 'OBJECT') THEN json_extract(j, {lit(path)})::VARCHAR "
            f"ELSE json_extract_string(j, {lit(path)}) END"
        )

    def keys_of(spec_name: str) -> list[str]:
        # JSON lines may name a column differently from one line to the next (item_id / product_id)
        if spec_name in st.mapped_explicitly:  # mapped: that key only
            return [mapping[spec_name], *joined.get(spec_name, [])]
        spec = contract.column(spec_name)
        names = {column_key(n) for n in (spec.name, *spec.aliases)}
        # (a header read by its values, not its name: a feed's `product_type` as the category)
        return [h for h in st.header if column_key(h) in names] or [
            mapping[spec_name],
            *joined.get(spec_name, []),
        ]

    def col_sql(spec_name: str) -> str:
        keys = keys_of(spec_name)
        used.update(keys)
        kind = contract.column(spec_name).kind
        if spec_name in st.mapped_explicitly:
            return joined_sql(field_sql(keys[0], kind), [field_sql(h, kind) for h in keys[1:]])
        return f"coalesce({', '.join(field_sql(k, kind) for k in keys)})"

    used: set[str] = set()
    select = [
        f"{col_sql(c)} AS {q(c)}" if c in mapping else f"{constant(st.implied, c)} AS {q(c)}"
        for c in contract.column_names
    ]
    with_attributes(select, st, [(k, field_sql(h)) for k, h in st.attributes.items()])
    used.update(st.attributes.values())
    select += [f"{field_sql(e)} AS {q('x_' + safe(e))}" for e in st.extra_kept if e not in used]
    tr.ignored_columns = [e for e in tr.ignored_columns if e not in used]
    wh.sql(f"CREATE TEMP TABLE _lines AS SELECT * FROM {lines}")
    # a list or an object given for a column that holds one value (an id, a number, a date) is
    # no value of it, nor an object for text: the line is quarantined as `invalid_type`, naming
    # the field, as POST /v1/events refuses it. A list of text is its items joined
    # (`_LIST_JOINS`: an answer's paragraphs, a catalog's category path or description lines, as
    # Amazon's metadata gives them; `"answer": ["No"]` was curated as the text `["No"]`)
    shaped = [
        (c, k)
        for c in contract.column_names
        if c in mapping and contract.column(c).kind is not Kind.JSON
        for k in keys_of(c)
    ]

    def listed(c: str, k: str) -> str:
        """What a list given for column `c` (key `k`) is wrong for: NULL when its items join
        (text: scalars; a category: scalars, or lists of scalars, its paths)."""
        kind = contract.column(c).kind
        if kind not in _LIST_JOINS:
            return lit(f"{k}: a list given where {_ONE[kind]} is expected")
        inner = f"json_type(j, {lit(_path(k) + '[*]')})"
        deeper = f"json_type(j, {lit(_path(k) + '[*][*]')})"
        # (an object inside the list is no text: `["A", {"x": 1}]` was curated as `A {"x":1}`)
        bad = f"list_contains({inner}, 'OBJECT') OR list_contains({deeper}, 'OBJECT') OR list_contains({deeper}, 'ARRAY')"
        if kind is not Kind.CATEGORY:
            bad += f" OR list_contains({inner}, 'ARRAY')"
        return f"CASE WHEN {bad} THEN {lit(f'{k}: a list holding more than text where {_ONE[kind]} is expected')} END"

    wrong = (
        "concat_ws('; ', "
        + ", ".join(
            f"CASE json_type(j, {lit(_path(k))}) WHEN 'ARRAY' THEN {listed(c, k)} "
            f"WHEN 'OBJECT' THEN {lit(f'{k}: an object given where {_ONE[contract.column(c).kind]} is expected')} END"
            for c, k in shaped
        )
        + ")"
        if shaped
        else "''"
    )
    # (only lines holding a bracket past the object's own are looked into: a plain events file
    # is not parsed once more per column)
    wh.sql(
        f"CREATE TEMP TABLE _wrong AS SELECT * FROM (SELECT _source_line, j, {wrong} AS detail FROM _lines "
        f"WHERE (contains(substr(j, 2), '[') OR contains(substr(j, 2), '{{')) AND {ok}) WHERE detail <> ''"
    )
    safe_lines = (
        f"(SELECT _source_line, CASE WHEN {ok} THEN j END AS j FROM _lines "
        "WHERE _source_line NOT IN (SELECT _source_line FROM _wrong))"
    )
    _say_several_paths(st, [(c, k) for c, k in shaped if contract.column(c).kind is Kind.CATEGORY], ok)
    wh.sql(f"{into} (SELECT {', '.join(select)}, _source_line FROM {safe_lines} WHERE j IS NOT NULL)")
    wrong_lines = wh.sql("SELECT _source_line, j, detail FROM _wrong ORDER BY 1").fetchall()
    wh.sql("DROP TABLE _wrong")
    # (a line naming an erased user is withheld; a re-sent line is `redelivered`, as a malformed one)
    defer_quarantine_lines(st, st.drop_erased_lines(wrong_lines), Reason.INVALID_TYPE)
    malformed = "NOT coalesce(CASE WHEN json_valid(j) THEN json_type(j) = 'OBJECT' END, false)"
    withheld_lines: list[int] = []
    if st.staging:  # a line that is no JSON object but names an erased user is withheld too
        bad_json = wh.sql(f"SELECT _source_line, j FROM _lines WHERE {malformed}").fetchall()
        kept = {n for n, _, _ in st.drop_erased_lines([(n, j, "") for n, j in bad_json])}
        withheld_lines = [n for n, _ in bad_json if n not in kept]
    # (kept in a temp table of their own until the run's transaction writes them)
    malformed_lines = f"_malformed_{contract.name}"
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE {malformed_lines} AS SELECT _source_line, j FROM _lines
            WHERE {malformed} AND NOT list_contains(?::BIGINT[], _source_line)""",
        [withheld_lines],
    )

    def quarantine_malformed() -> None:
        wh.sql(
            f"""INSERT INTO quarantine.rows SELECT nextval('quarantine.qid_seq'), ?, ?, ?, _source_line, ?, [?],
                CASE WHEN json_valid(j) THEN 'not a JSON object' ELSE 'not valid JSON' END,
                json_object('line', left(j, 10000)), 'open', now()::TIMESTAMP, NULL FROM {malformed_lines}""",
            [st.run_id, contract.name, str(st.src), Reason.MALFORMED_ROW.value, Reason.MALFORMED_ROW.value],
        )
        wh.sql(f"DROP TABLE {malformed_lines}")

    st.defer(quarantine_malformed)
    wh.sql("DROP TABLE _lines")
    tr.rows_in = staged.records


def _say_several_paths(st: LoadState, keys: list[tuple[str, str]], ok: str) -> None:
    """A category given as a list of paths (`[["Books", "Fiction"], ["Books", "Sale"]]`, as
    Amazon's metadata has it) is read as its first path: how many rows of each key gave more
    than one is said in the report's warnings (the first was kept without a word). Counted on
    the lines read as rows (`_lines` less `_wrong`), only where a line holds a bracket."""
    for c, k in keys:
        path = _path(k)
        row = st.wh.sql(
            f"SELECT count(*) FROM _lines WHERE contains(substr(j, 2), '[') AND {ok} "
            f"AND json_type(j, {lit(path)}) = 'ARRAY' AND json_type(j, {lit(path + '[0]')}) = 'ARRAY' "
            f"AND json_array_length(j, {lit(path)}) > 1 "
            "AND _source_line NOT IN (SELECT _source_line FROM _wrong)"
        ).fetchone()
        n = int(row[0]) if row else 0
        if n:
            named = c if k == c else f"{c} (the file's {k!r})"
            st.warn(
                f"{st.src.name}: {st.name}.{named}: {n:,} row(s) give several category paths (a list of "
                "lists): only the first path of each was kept"
            )


def _path(key: str) -> str:
    """A JSON line's field as a DuckDB JSON path (any key: quoted)."""
    return "$." + '"' + key.replace('"', '\\"') + '"'


# a JSON list given for a text column: its items joined with (a category list is a path)
_LIST_JOINS = {Kind.TEXT: "\n", Kind.STRING: " ", Kind.CATEGORY: " > "}

# what a column of each kind holds, as a quarantined row's detail says it
_ONE = {
    Kind.ID: "an id",
    Kind.STRING: "text",
    Kind.TEXT: "text",
    Kind.CATEGORY: "a category",
    Kind.FLOAT: "a number",
    Kind.BOOL: "true or false",
    Kind.TIMESTAMP: "a date",
    Kind.ENUM: "one value",
    Kind.JSON: "JSON",
}


def _read_parquet(st: LoadState, into: str) -> None:
    """Typed columns are read as text so that one set of checks serves every format."""
    contract, staged, mapping, joined = st.contract, st.staged, st.mapping, st.joined
    select = [
        joined_sql(
            f"CAST({q(mapping[c])} AS VARCHAR)",
            [f"CAST({q(h)} AS VARCHAR)" for h in joined.get(c, [])],
        )
        + f" AS {q(c)}"
        if c in mapping
        else f"{constant(st.implied, c)} AS {q(c)}"
        for c in contract.column_names
    ]
    with_attributes(select, st, [(k, f"CAST({q(h)} AS VARCHAR)") for k, h in st.attributes.items()])
    select += [f"CAST({q(e)} AS VARCHAR) AS {q('x_' + safe(e))}" for e in st.extra_kept]
    files = parquet_files(staged)
    line = "file_row_number + 1"
    options = "union_by_name=true, file_row_number=true"
    if len(staged.parts) > 1:  # numbered as the parts of a staged folder are
        line = f"(list_position({files}, filename) - 1) * {PART_LINES} + {line}"
        options += ", filename=true"
    try:
        row = st.wh.sql(
            f"{into} (SELECT {', '.join(select)}, {line} AS _source_line FROM read_parquet({files}, {options}))"
        ).fetchone()
    except Exception as exc:  # noqa: BLE001
        raise SourceError(str(st.src), None, f"unreadable Parquet file: {exc}") from exc
    st.tr.rows_in = int(row[0]) if row else 0
