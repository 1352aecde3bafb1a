"""Stage 4 of a table's load: privacy and publishing.

- `withhold_erased` (right after the row checks, before anything is stored): the rows of erased
  users dated at or before their erasure leave the load (`_erasures`);
- `publish`: user ids replaced by keyed HMAC pseudonyms, rows an earlier load curated recognised
  (append), rejected rows quarantined with reason, file and line, the valid ones published as a
  new curated version that is validated against the contract's pandera schema, and the load's
  accounting (`rows_in == curated + quarantined + withheld`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pyarrow as pa

from ..errors import ContractViolation
from ..storage import TableVersion, Warehouse
from ..storage._sources import PART_LINES
from ._compile import DUCKDB, Dialect, client_event_id, lit, q
from ._contracts import Kind, TableContract
from ._load_anonymous import uncount_redelivered
from ._load_raw import completed_condition
from ._load_retract import RETRACT, RETRACTED_SOURCE, retract_orders, retracted_rows
from ._load_sales import uncount_redelivered as uncount_redelivered_sales
from ._load_state import (
    CHECKED,
    PAST_RETENTION,
    LoadState,
    count_withheld,
    note_withheld,
    still_the_quarantines,
)
from ._privacy import Pseudonymizer
from ._reasons import SET_ASIDE_REASONS, Reason
from ._text import lost_to_encoding

__all__ = [
    "account",
    "keep_curated_text",
    "lost_text_condition",
    "publish",
    "redelivery_details",
    "say_stale",
    "sent_twice",
    "stale_applies",
    "stale_detail_sql",
    "validate_curated",
    "withhold_erased",
]


def withhold_erased(st: LoadState) -> None:
    """Take the rows of erased users dated at or before their erasure out of this load
    (`_checked` and the not yet stored `st.target`). Every id of the load is pseudonymized
    here (`_pseudo_<col>`, used again when the valid rows are curated) and looked up in the
    erasure register. A row is kept only when its timestamp is valid and later than the
    erasure (a returning shopper's new data); undated tables (`users`) keep none."""
    if not st.staging:
        return
    wh = st.wh
    _withhold_expired(st)
    if st.erasures is None:  # staged for the retention policy alone: nobody was erased
        for c in st.pseudo_cols:
            _pseudonym_table(st, c)
        note_withheld(st)
        return
    hits: list[tuple[str, str, datetime]] = []
    for c in st.pseudo_cols:
        ids = [
            r[0] for r in wh.sql(f"SELECT DISTINCT {q(c)} FROM {CHECKED} WHERE {q(c)} IS NOT NULL").fetchall()
        ]
        pseudos, erased = st.erasures.lookup(ids)
        _register_pseudonyms(st, c, ids, pseudos)
        hits += [(c, raw, at) for raw, at in erased]
    if not hits:
        note_withheld(st)  # (lines that never became rows may have been)
        return
    table = pa.table(
        {
            "col": pa.array([h[0] for h in hits], pa.string()),
            "raw_id": pa.array([h[1] for h in hits], pa.string()),
            "at": pa.array([h[2] for h in hits], pa.timestamp("us")),
        }
    )
    on = " OR ".join(f"(e.col = {lit(c)} AND c.{q(c)} = e.raw_id)" for c in st.pseudo_cols)
    later = "false"
    if st.dated:
        # a valid date after the erasure and no later than this load (a day of clock skew): an
        # erased user's row dated in the future is withheld even where `max_future_days` would
        # curate it, or an old export with a mistyped year could bring them back
        later = 'c."timestamp" > e.at AND c."timestamp" <= now()::TIMESTAMP + INTERVAL 1 DAY'
    wh.db.register("_erased_src", table)
    try:
        wh.sql(
            f"""CREATE OR REPLACE TEMP TABLE _withheld AS SELECT DISTINCT c._source_line AS line
                FROM {CHECKED} c JOIN _erased_src e ON {on} WHERE NOT coalesce({later}, false)"""
        )
    finally:
        wh.db.unregister("_erased_src")
    row = wh.sql("SELECT count(*) FROM _withheld").fetchone()
    n = int(row[0]) if row else 0
    if n:
        wh.sql(f"DELETE FROM {CHECKED} WHERE _source_line IN (SELECT line FROM _withheld)")
        wh.sql(f"DELETE FROM {st.target} WHERE _source_line IN (SELECT line FROM _withheld)")
        count_withheld(st.tr, n)
        if st.reprocess:
            st.withheld_lines += [int(r[0]) for r in wh.sql("SELECT line FROM _withheld").fetchall()]
    note_withheld(st)
    wh.sql("DROP TABLE _withheld")


def _withhold_expired(st: LoadState) -> None:
    """Take the rows dated before the retention policy's cutoff out of this load (valid or not:
    the policy keeps no copy of them, quarantine included), as `retention enforce` deletes them
    from what is curated. A row whose time cannot be read is judged by its load, now: kept."""
    if st.expire_before is None or not st.dated:
        return
    wh = st.wh
    # (a date before the plausible range is the row checks' `out_of_range`, quarantined: an
    # export that wrote 1970 on every row is a broken delivery, not an old one)
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _expired AS SELECT _source_line AS line FROM {CHECKED}
            WHERE "timestamp" < ? AND "timestamp" >= ?""",
        [st.expire_before, datetime(st.settings.min_year, 1, 1)],
    )
    row = wh.sql("SELECT count(*) FROM _expired").fetchone()
    n = int(row[0]) if row else 0
    if n:
        wh.sql(f"DELETE FROM {CHECKED} WHERE _source_line IN (SELECT line FROM _expired)")
        wh.sql(f"DELETE FROM {st.target} WHERE _source_line IN (SELECT line FROM _expired)")
        count_withheld(st.tr, n, PAST_RETENTION)
        if st.reprocess:
            st.withheld_lines += [int(r[0]) for r in wh.sql("SELECT line FROM _expired").fetchall()]
    wh.sql("DROP TABLE _expired")


def publish(st: LoadState) -> None:
    wh, contract, tr, run_id = st.wh, st.contract, st.tr, st.run_id
    pseudo_cols, extra_sel = st.pseudo_cols, st.extra_sel
    select_out = [
        f"p_{c}.pseudonym AS {q(c)}" if c in pseudo_cols else f"t.{q(c)}" for c in contract.column_names
    ]
    select_out += [f"t.{c}" for c in extra_sel]
    joins = ""
    for c in pseudo_cols:
        if not st.staging:  # (withhold_erased built it already, for every id of the load)
            _pseudonym_table(st, c)
        joins += f" LEFT JOIN _pseudo_{c} p_{c} ON p_{c}.raw_id = t.{q(c)}"
    appending = st.mode == "append" and contract.name in wh.curated_tables()
    order = (
        'ORDER BY t."timestamp", t._source_line' if contract.name == "events" else "ORDER BY t._source_line"
    )
    source_sql = f"SELECT {', '.join(select_out)} FROM {CHECKED} t{joins} WHERE len(t._reasons) = 0 {order}"
    added = None
    if appending:  # rows an earlier load curated already: recognised, never added twice
        # the valid rows as they will be curated, kept with their line while they are compared
        wh.sql(
            f"CREATE OR REPLACE TEMP TABLE _new AS SELECT t._source_line, {', '.join(select_out)} "
            f"FROM {CHECKED} t{joins} WHERE len(t._reasons) = 0 {order}"
        )
        cur = f"curated.{q(contract.name)}"
        cur_cols = [r[0] for r in wh.sql(f"DESCRIBE {cur}").fetchall()]
        if contract.key:  # (a re-send's text that lost its letters to an encoding error)
            duckdb_text_mending(st, cur_cols)
            _flag_stale(st, cur_cols)  # (an older version of a curated row: the newer stays)
        _flag_redelivered(st, st.raw_cols)
        uncount_redelivered(st)  # the report's anonymous rows: those curated
        uncount_redelivered_sales(st)  # ... and its no-sale rows and returns
        wh.sql("DELETE FROM _new WHERE _source_line IN (SELECT line FROM _redelivered)")
        row = wh.sql("SELECT count(*) FROM _new").fetchone()
        added = int(row[0]) if row else 0
        keep = f"SELECT * FROM {cur}"
        if st.completions and not contract.key:  # a cut last line's curated row: replaced
            replaced = 0
            for line, _, _, column in st.completions:
                cond = completed_condition(st, column, cur_cols)
                row = f"(SELECT * FROM _new WHERE _source_line = {int(line)}) c"
                hit = wh.sql(f"SELECT count(*) FROM ({keep}) e SEMI JOIN {row} ON {cond}").fetchone()
                replaced += int(hit[0]) if hit else 0
                keep = f"SELECT e.* FROM ({keep}) e ANTI JOIN {row} ON {cond}"
            say_completed(st, replaced)
        fresh = "SELECT * EXCLUDE (_source_line) FROM _new"
        kept = retract_orders(st)  # an order's latest status wins over its curated purchase
        if kept is not None:
            keep = f"SELECT * FROM ({keep}) WHERE {kept}"
        if contract.key:  # the newer version of a key replaces the curated one (an upsert)
            using = ", ".join(q(k) for k in contract.key)
            keep += f" ANTI JOIN _new USING ({using})"
            new_cols = [r[0] for r in wh.sql("DESCRIBE _new").fetchall() if r[0] != "_source_line"]
            on = " AND ".join(f"o.{q(k)} = n.{q(k)}" for k in contract.key)
            fresh = (
                f"SELECT {upsert_select(contract, new_cols, cur_cols, st.delivered, nulls_keep=st.reprocess, merged=st.merged)} "
                "FROM _new n "
                f"LEFT JOIN (SELECT *, true AS _present FROM {cur}) o ON {on} ORDER BY n._source_line"
            )
            fresh = f"({fresh})"
        source_sql = f"{keep} UNION ALL BY NAME {fresh}"
    # the raw row as JSON is built only for quarantined rows, not for every row
    raw_json = "json_object(" + ", ".join(f"{lit(c)}, l.{q(c)}" for c in st.raw_cols) + ")"
    redelivered = "_source_line IN (SELECT line FROM _redelivered)" if appending else "false"
    wh.sql(
        f"""INSERT INTO quarantine.rows SELECT nextval('quarantine.qid_seq'), {lit(run_id)}, {lit(contract.name)},
            {lit(str(st.src))}, c._source_line, c._reasons[1], c._reasons, c._detail, {raw_json},
            CASE WHEN c._reasons[1] = {lit(Reason.STALE_ROW.value)} THEN 'superseded'
                 WHEN c._redelivered OR {ID_CURATED_SQL.format(reasons="c._reasons", detail="c._detail")}
                   OR {quarantined_before(st, raw_json)} OR {sent_twice(st, "c._reasons", "c._detail", raw_json, "c._source_line")}
                 THEN 'redelivered' ELSE 'open' END, now()::TIMESTAMP,
            CASE WHEN c._reasons[1] = {lit(Reason.STALE_ROW.value)} THEN {lit(run_id)} END
            FROM (SELECT *, {redelivered} AS _redelivered FROM {CHECKED}) c
            JOIN {st.load} l ON l._source_line = c._source_line
            WHERE len(c._reasons) > 0 ORDER BY c._source_line"""
    )
    if appending:
        resolve_proven_repeats(st)
    if st.mode == "append" and not appending:  # the table's first load: every valid row is new
        tr.rows_updated, tr.rows_unchanged = 0, 0
    before = wh.latest_version(contract.name)
    valid = wh.sql(f"SELECT count(*) FROM {CHECKED} WHERE len(_reasons) = 0").fetchone()
    if curated_nothing(st, int(valid[0]) if valid else 0, before) and before is not None:
        tv, added = before, 0  # the earlier version stays the table
    else:
        supersede_open(st)
        tv = wh.publish(contract.name, source_sql, run_id, contract.version, same_keeps=appending)
        unchanged_version(st, tv)
        shrunk_by_snapshot(st, before, tv)
    # a new events version: the oldest ones beyond the kept go (the events table is what grows:
    # a server absorbs every 30 s; other tables' versions are read by date, `insights` --as-of)
    if tv.run_id == st.run_id and contract.name == "events":
        from ._retention import prune_curated_versions

        dropped = prune_curated_versions(wh, contract.name)
        if dropped:
            st.note(
                f"{st.name}: {len(dropped)} old curated version(s) dropped (v{min(dropped)}"
                f"{'' if len(dropped) == 1 else f'-v{max(dropped)}'}; config/retention.json "
                "curated_versions_kept, and the versions kept bundles learned from, stay)"
            )
    for c in pseudo_cols:
        wh.sql(f"DROP TABLE _pseudo_{c}")  # the raw -> pseudonym map never persists
    wh.sql("DROP TABLE IF EXISTS _redelivered")
    wh.sql(f"DROP TABLE IF EXISTS {RETRACT}")
    wh.sql(f"DROP TABLE {CHECKED}")
    wh.sql("DROP TABLE IF EXISTS _new")
    wh.sql(f"DROP VIEW {st.load}")
    account(st, tv, added)


# the kinds of a column whose value is text (a title, a description, a brand, a category path)
TEXT_KINDS = (Kind.STRING, Kind.TEXT, Kind.CATEGORY)


# (column, lines, values): the kept curated values set in an engine's rows of the load
Mend = Callable[[str, list[int], list[str]], None]
# column -> (line, the load's value, the curated one) where they differ and the load's holds a
# `?` or U+FFFD
Candidates = Callable[[str], list[tuple[int, str, str]]]


def keep_curated_text(st: LoadState, cur_cols: list[str], candidates: Candidates, mend: Mend) -> None:
    """An appended delivery to a keyed table (a catalog's re-send): a text value that is its
    key's curated one with some non-ASCII letters lost to an encoding error (`Caf? cr?me` for
    `Café crème`, `_text.lost_to_encoding`) keeps the curated value; counted and said in one
    warning with an example, instead of overwriting the good text. A new text still replaces it.
    Both engines: `candidates` reads the load's rows against the curated ones, `mend` sets the
    kept values (DuckDB: `duckdb_text_mending`)."""
    contract = st.contract
    if not contract.key or st.reprocess:
        return
    texts = [
        c.name
        for c in contract.columns
        if c.kind in TEXT_KINDS
        and c.name in st.delivered
        and c.name in cur_cols
        and c.name not in contract.key
    ]
    kept, example = 0, ""
    for col in texts:
        rows = candidates(col)
        hits = [(int(line), new, old) for line, new, old in rows if lost_to_encoding(new, old)]
        if not hits:
            continue
        if not example:
            example = f"{col} {hits[0][1]!r} for {hits[0][2]!r}"
        kept += len(hits)
        mend(col, [line for line, _, _ in hits], [old for _, _, old in hits])
    if kept:
        st.warn(
            f"{st.src.name}: {kept:,} text value(s) kept as curated: they differ from it only by letters "
            f"lost to an encoding error ('?' or U+FFFD in their place, e.g. {example}); re-send the "
            "file in UTF-8 to change them"
        )


def lost_text_condition(col: str, dialect: Dialect = DUCKDB) -> str:
    """SQL over `n` (the load's row) and `o` (its key's curated row): `col` differs and the
    load's value holds a `?` or U+FFFD (`keep_curated_text`'s candidates)."""
    c = dialect.q(col)
    return f"n.{c} <> o.{c} AND (instr(n.{c}, '?') > 0 OR instr(n.{c}, {dialect.lit(chr(0xFFFD))}) > 0)"


def duckdb_text_mending(st: LoadState, cur_cols: list[str]) -> None:
    """`keep_curated_text` on DuckDB, over `_new` (this load's rows as they will be curated;
    `cur_cols`: the curated table's columns)."""
    wh, contract = st.wh, st.contract
    cur = f"curated.{q(contract.name)}"
    on = " AND ".join(f"o.{q(k)} = n.{q(k)}" for k in contract.key)

    def candidates(col: str) -> list[tuple[int, str, str]]:
        sql = f"SELECT n._source_line, n.{q(col)}, o.{q(col)} FROM _new n JOIN {cur} o ON {on} WHERE {lost_text_condition(col)}"
        return [(int(a), b, c) for a, b, c in wh.sql(sql).fetchall()]

    def mend(col: str, lines: list[int], values: list[str]) -> None:
        wh.sql(
            f"UPDATE _new SET {q(col)} = m.value FROM (SELECT unnest(?::BIGINT[]) AS line, "
            "unnest(?::VARCHAR[]) AS value) m WHERE _new._source_line = m.line",
            [lines, values],
        )

    keep_curated_text(st, cur_cols, candidates, mend)


# the column that says when the shop's system last changed a keyed row (`_contracts.UPDATED_AT_ALIASES`)
UPDATED_AT = "updated_at"


def stale_applies(st: LoadState, cur_cols: list[str]) -> bool:
    """Whether an appended keyed load is judged for rows older than their curated version: the
    table has `updated_at`, the delivery gives it and the curated table holds it (both engines)."""
    return (
        bool(st.contract.key)
        and not st.reprocess
        and UPDATED_AT in st.contract.column_names
        and UPDATED_AT in st.delivered
        and UPDATED_AT in cur_cols
    )


def stale_detail_sql(st: LoadState, dialect: Dialect = DUCKDB) -> str:
    """SQL over `n` (the load's row) and `o` (its key's curated row): why `n` is a `stale_row`
    (a pseudonymized key - a user id - is not written out: the detail is shown in reports)."""
    contract = st.contract
    shown = not any(contract.column(k).pseudonymize for k in contract.key)
    # (`CAST(... AS STRING)`: both warehouses' spelling)
    key = (
        " || ',' || ".join(f"CAST(n.{dialect.q(k)} AS STRING)" for k in contract.key)
        if shown
        else dialect.lit("(pseudonymized)")
    )
    u = dialect.q(UPDATED_AT)
    return (
        f"concat({dialect.lit('older than the curated row of ' + '/'.join(contract.key) + ' ')}, {key}, "
        f"{dialect.lit(': updated_at ')}, CAST(n.{u} AS STRING), {dialect.lit(' before ')}, "
        f"CAST(o.{u} AS STRING), {dialect.lit(' (the curated row is kept)')})"
    )


def say_stale(st: LoadState, n: int) -> None:
    """The warning of a load whose rows were older than their curated version (both engines)."""
    if n:
        st.warn(
            f"{st.src.name}: {n:,} {st.name} row(s) older than their curated version (updated_at "
            "earlier than the curated row's: a re-send arriving out of order) did not replace it; "
            "quarantined as stale_row (status superseded), not judged"
        )


def _flag_stale(st: LoadState, cur_cols: list[str]) -> None:
    """Appending to a keyed table whose rows carry `updated_at`: a valid row older than its
    key's curated row (an export re-sent, its older version arriving after the newer one) does
    not replace it. It leaves `_new` and is flagged `stale_row` (quarantined with status
    `superseded`, counted in `rows_stale`, not judged). Equal or missing times: the later
    delivery wins, as without the column."""
    if not stale_applies(st, cur_cols):
        return
    wh, contract = st.wh, st.contract
    cur = f"curated.{q(contract.name)}"
    on = " AND ".join(f"o.{q(k)} = n.{q(k)}" for k in contract.key)
    u = q(UPDATED_AT)
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _stale AS SELECT n._source_line AS line, {stale_detail_sql(st)} AS detail
            FROM _new n JOIN {cur} o ON {on} WHERE n.{u} < o.{u}"""
    )
    row = wh.sql("SELECT count(*) FROM _stale").fetchone()
    n = int(row[0]) if row else 0
    if n:
        wh.sql(
            f"""UPDATE {CHECKED} SET _reasons = list_append(_reasons, '{Reason.STALE_ROW.value}'),
                _detail = coalesce(_detail, s.detail) FROM _stale s WHERE s.line = {CHECKED}._source_line"""
        )
        wh.sql("DELETE FROM _new WHERE _source_line IN (SELECT line FROM _stale)")
    wh.sql("DROP TABLE _stale")
    say_stale(st, n)


def say_completed(st: LoadState, replaced: int) -> None:
    """Count the curated rows of cut last lines that this load's complete lines replaced
    (`_load_raw.find_completions`) as updated, and say so (both engines)."""
    if not replaced:
        return
    st.tr.rows_updated = (st.tr.rows_updated or 0) + replaced
    # (the file's rows, as the warning on the cut line named them: a packed order's product is
    # numbered line * scale + k; a re-send of one export is read at the scale it was)
    scale = max(st.staged.line_scale, 1)

    def row(n: int) -> int:
        return n // scale

    lines = ", ".join(
        f"line {row(n)} (completing line {row(m)} of load {k})" for n, k, m, _ in st.completions
    )
    st.note(
        f"{st.name}: {replaced} row(s) delivered cut off at the end of an earlier file replaced by "
        f"their complete line in {st.src}: {lines}; counted updated, not added as new events"
    )


def curated_nothing(st: LoadState, valid: int, before: TableVersion | None) -> bool:
    """Whether a full snapshot whose file had rows (not all of erased users) curates none: every
    row quarantined or set aside (walk49a: events mapped to a product id the catalog is not keyed
    on, 0 of 1,216 curated, replaced 1,291 curated rows with none, exit 0). It is not published over
    an earlier version (the table stays as it was, `published` false); a first load publishes its
    empty table. Either way the report says so and `ingest` exits 1 (`curated_nothing`)."""
    tr = st.tr
    # lines set aside (an order cancelled, refunded) are the shop's data, not faults: a snapshot
    # of them alone is published (refused, the cancelled orders stayed curated as purchases)
    aside = _set_aside_lines(st.wh)
    if st.mode == "append" or st.reprocess or valid or tr.rows_in - tr.rows_withheld - aside <= 0:
        return False
    tr.curated_nothing = True
    kept = (
        f"NOT PUBLISHED: the curated table stays at version {before.version} ({before.row_count:,} rows)"
        if before is not None
        else "published empty (the table's first load)"
    )
    st.warn(
        f"{st.name}: this full snapshot curated none of its {tr.rows_in - tr.rows_withheld:,} rows (every "
        f"one quarantined or set aside: quarantine list shows why): {kept}; the load failed (exit 1)"
    )
    if before is not None:
        tr.published = False
    suggest_product_column(st)
    return True


def _set_aside_lines(wh: Warehouse) -> int:
    """The lines `_load_aside` kept aside in this load (its temp table; 0 where none was made)."""
    from ._load_aside import ASIDE

    made = wh.sql(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [ASIDE]
    ).fetchone()
    if not made or not made[0]:
        return 0
    row = wh.sql(f"SELECT count(*) FROM {ASIDE}").fetchone()
    return int(row[0]) if row else 0


def suggest_product_column(st: LoadState) -> None:
    """When unknown product ids are the load's main reason and another column of its file holds
    ids the catalog knows (orders mapped to WooCommerce's numeric `Product Id` where the catalog
    is keyed on `SKU`), a note names the column and its `--map`."""
    wh, name = st.wh, st.name
    col = st.mapping.get("product_id")
    if col is None or name == "products" or "products" not in wh.curated_tables():
        return
    top = wh.sql(
        "SELECT reason, count(*) FROM quarantine.rows WHERE run_id = ? AND table_name = ? "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
        [st.run_id, name],
    ).fetchone()
    if not top or top[0] != Reason.UNKNOWN_REFERENCE.value:
        return
    from ._load_aside import _relation

    rel, expr = _relation(st)
    best: tuple[int, str] | None = None
    for h in st.header:
        if h == col or h not in expr:
            continue
        hit = wh.sql(
            f"""SELECT count(DISTINCT v) FROM (SELECT nullif(trim({expr[h]}), '') AS v FROM {rel})
                WHERE v IN (SELECT product_id::VARCHAR FROM curated.products)"""
        ).fetchone()
        n = int(hit[0]) if hit else 0
        if n and (best is None or n > best[0]):
            best = (n, h)
    if best is not None:
        st.note(
            f"{st.src.name}: {best[0]:,} value(s) of its column {best[1]!r} are product ids of the catalog, "
            f"where {col!r} names products it does not know: map it (--map '{name}.product_id={best[1]}')"
        )


def shrunk_by_snapshot(st: LoadState, before: TableVersion | None, tv: TableVersion) -> None:
    """Warn when a full snapshot curated fewer rows than its table held: `train --data DIR`
    re-run after an `--append` delivery replaced the 100,000 curated events with DIR's 85,000,
    and nothing said that a day's rows had left the table (the earlier version keeps them)."""
    if st.mode == "append" or before is None or tv.run_id != st.run_id or tv.row_count >= before.row_count:
        return
    st.warn(
        f"{st.name}: this full snapshot curated {tv.row_count:,} rows where the table held "
        f"{before.row_count:,}: the {before.row_count - tv.row_count:,} rows of earlier loads it does "
        f"not hold are no longer curated (version {before.version} keeps them; a day's delivery is "
        "added with --append)"
    )


def unchanged_version(st: LoadState, tv: TableVersion) -> None:
    """Say so when a delivery left its table as it was (`Warehouse.publish`'s `same_keeps`)."""
    if tv.run_id != st.run_id:
        st.note(f"{st.name}: nothing new to curate: the curated table stays at version {tv.version}")


# a row whose only fault is an event id an earlier load curated (`_load_sets`): a re-send, as a
# row equal to a curated one is (an export that carries event ids re-sends them so)
ID_CURATED_SQL = "(len({reasons}) = 1 AND {detail} LIKE 'event_id %: already curated')"


def sent_twice(st: LoadState, reasons: str, detail: str, raw: str, line: str) -> str:
    """The condition, over the load's quarantined rows (`raw` their fields as received, `line`
    their source line), that a row is one event sent twice within this load, its client's
    event_id included: a client's retry of a batch that two server processes both accepted and
    one absorb reads; an export that repeats an event in the same file. Such a copy is a
    re-send, counted `redelivered`, not one more open fault: the exact duplicate of a valid row,
    and the later copies of a bad one (whatever check it failed: its first copy holds the
    fault). A row repeating an event_id with other content stays open (the id was reused for
    another event), as does a copy without an id or with the server's (nothing says it is the
    same event: `client_event_id`)."""
    copy = f"row_number() OVER (PARTITION BY {raw}::VARCHAR ORDER BY {line}) > 1"
    # a bad row repeated whole within the load (a day appended twice to one file): its first
    # copy holds the fault, the later ones are copies of it, whatever the event_id
    bad_copy = f"({reasons}[1] <> 'duplicate_row' AND {copy})"
    if "event_id" not in st.contract.column_names:
        return bad_copy if st.contract.dedupe_exact and not st.reprocess else "false"
    given = client_event_id(f"json_extract_string({raw}, '$.event_id')")
    duplicate = f"({reasons}[1] = 'duplicate_row' AND {detail} = 'exact duplicate of an earlier row')"
    with_id = f"(nullif(trim({given}), '') IS NOT NULL AND ({duplicate} OR {copy}))"
    return with_id if st.reprocess or not st.contract.dedupe_exact else f"({with_id} OR {bad_copy})"


def resolve_proven_repeats(st: LoadState) -> None:
    """Appending: an earlier load's open `duplicate_row`s that repeated a row of their file
    whole (a day appended twice to one file) are resolved `redelivered` by this load when it
    sends that row once and it is recognised as curated already (a clean re-send: the repeat
    was a copy, not another event). Both engines (the quarantine is the workdir's DuckDB)."""
    if st.mode != "append" or st.reprocess or not st.contract.dedupe_exact:
        return
    wh, table, run_id = st.wh, lit(st.name), lit(st.run_id)
    rows = wh.sql(
        f"""UPDATE quarantine.rows SET status = 'redelivered', resolved_run_id = {run_id}
            WHERE table_name = {table} AND status = 'open' AND run_id <> {run_id}
              AND reason = 'duplicate_row' AND detail = 'exact duplicate of an earlier row'
              AND raw::VARCHAR IN (
                SELECT raw::VARCHAR FROM quarantine.rows n WHERE n.table_name = {table} AND n.run_id = {run_id}
                GROUP BY 1
                HAVING count(*) = 1 AND bool_and(n.status = 'redelivered' AND n.reason = 'duplicate_row'
                                                 AND n.detail LIKE 're-delivered: %'))
            RETURNING 1"""
    ).fetchall()
    if rows:
        st.note(
            f"{st.name}: {len(rows):,} open duplicate_row(s) of earlier loads (rows their file repeated "
            "whole) resolved as redelivered: this delivery sends each once, and it is curated already"
        )


def quarantined_before(st: LoadState, raw: str) -> str:
    """The condition that a row whose raw fields are `raw` (JSON) was quarantined by an earlier
    load of the table: a re-sent bad row is in the quarantine once, open, and its copies
    `redelivered` (still counted in each load's quarantined rows), not one more open row per
    re-send. Never in a re-processing: a row failing again there is the quarantine's open row
    (its earlier row is superseded by it). An earlier row `superseded` is no longer the
    quarantine's (a full snapshot dropped it, `supersede_open`): a bad row that comes back is
    open again, not a copy of nothing open. A row a re-processing superseded is still the
    quarantine's, under the row its fix became (a first fix failed, the second was released: the
    re-sent original came back as a new open fault)."""
    if st.reprocess:
        return "false"
    table, run_id = st.name, st.run_id
    return (
        f"{raw}::VARCHAR IN (SELECT raw::VARCHAR FROM quarantine.rows "
        f"WHERE table_name = {lit(table)} AND run_id <> {lit(run_id)} AND {still_the_quarantines(st.mode == 'append')})"
    )


def supersede_open(st: LoadState) -> None:
    """A full snapshot replaces its table, and with it what earlier loads left open in the
    quarantine: a row the new snapshot no longer holds as it was (fixed and curated now, or
    gone) is `superseded` by this load, not open for ever (a corrected re-export left 300 rows
    "open" that the same load had curated). A bad row the snapshot sends again stays open once:
    its copy in this load is `redelivered` (`quarantined_before`). Appends (daily deliveries,
    absorbs, re-processing) add to the table and supersede nothing, and neither does a snapshot
    supersede the served events the server rejected (`http:` sources: never the export's).
    The load's notes say how many."""
    if st.mode == "append":
        return
    table, run_id = lit(st.name), lit(st.run_id)
    row = st.wh.sql(
        f"""UPDATE quarantine.rows SET status = 'superseded', resolved_run_id = {run_id}
            WHERE table_name = {table} AND status = 'open' AND run_id <> {run_id}
              AND NOT starts_with(source_file, 'http:')
              AND NOT EXISTS (SELECT 1 FROM quarantine.rows n WHERE n.table_name = {table}
                              AND n.run_id = {run_id} AND n.raw::VARCHAR = quarantine.rows.raw::VARCHAR)
            RETURNING 1"""
    ).fetchall()
    if row:
        st.note(
            f"{st.name}: {len(row):,} quarantined row(s) of earlier loads superseded: this full snapshot no "
            "longer sends them as they were (fixed and curated, or gone)"
        )


def account(st: LoadState, tv: TableVersion, added: int | None) -> None:
    """The load's numbers from its published version and its quarantined rows (both engines),
    then the curated table validated against the contract's pandera schema."""
    wh, contract, tr, run_id = st.wh, st.contract, st.tr, st.run_id
    tr.curated_version, tr.content_hash, tr.rows_total = tv.version, tv.content_hash, tv.row_count
    # a full load's curated rows are the table; an appended load's are the rows it added
    tr.rows_curated = tv.row_count if added is None else added
    if st.mode == "append":
        tr.mode = "append"
        if tr.rows_inserted is None:
            tr.rows_inserted = tr.rows_curated - (tr.rows_updated or 0)
    scale = st.staged.line_scale
    if scale > 1:  # an order's k-th packed product is line * scale + k: the line, and k said
        wh.sql(
            f"""UPDATE quarantine.rows SET source_line = source_line // {scale},
                detail = CASE WHEN source_line % {scale} = 0 THEN detail ELSE
                    coalesce(detail || ' ', '') || '(product ' || CAST(source_line % {scale} AS VARCHAR) ||
                    ' of the row''s packed Product Details)' END
                WHERE run_id = ? AND table_name = ? AND source_line IS NOT NULL""",
            [run_id, contract.name],
        )
    if st.staged.source.is_dir():  # a folder's rows are numbered part * PART_LINES + line: name both
        parts = "[" + ", ".join(lit(str(p)) for p in st.staged.parts) + "]"
        wh.sql(
            f"""UPDATE quarantine.rows SET source_file = {parts}[source_line // {PART_LINES} + 1],
                source_line = source_line % {PART_LINES}
                WHERE run_id = ? AND table_name = ? AND source_line IS NOT NULL""",
            [run_id, contract.name],
        )
    # (a curated line an earlier load delivered and this one took out, `_load_retract`, is not
    # among this load's rows: counted in rows_retracted)
    mine = f"NOT starts_with(coalesce(source_file, ''), {lit(RETRACTED_SOURCE)})"
    rows = wh.sql(
        f"SELECT reason, count(*) FROM quarantine.rows WHERE run_id = ? AND table_name = ? AND {mine} "
        "GROUP BY 1 ORDER BY 2 DESC",
        [run_id, contract.name],
    ).fetchall()
    tr.reasons = {r[0]: int(r[1]) for r in rows}
    tr.rows_quarantined = sum(tr.reasons.values())
    tr.rows_stale = tr.reasons.get(Reason.STALE_ROW.value, 0)
    # order lines kept aside (`_load_aside`), those sent before (`redelivered`) included: a line
    # set aside and sent again is still set aside (a re-run read "set aside 0"), counted re-sent too
    aside = wh.sql(
        "SELECT count(*), count(*) FILTER (WHERE status = 'redelivered') FROM quarantine.rows "
        f"WHERE run_id = ? AND table_name = ? AND list_contains(?::VARCHAR[], reason) AND {mine}",
        [run_id, contract.name, sorted(SET_ASIDE_REASONS)],
    ).fetchone()
    tr.rows_set_aside = int(aside[0]) if aside else 0
    tr.rows_set_aside_resent = int(aside[1]) if aside else 0
    again = wh.sql(
        f"SELECT count(*), count(*) FILTER (WHERE {ID_CURATED_SQL.format(reasons='reasons', detail='detail')}) "
        "FROM quarantine.rows WHERE run_id = ? AND table_name = ? AND status = 'redelivered'",
        [run_id, contract.name],
    ).fetchone()
    # sent again: rows curated before (by content or by event id) and bad rows quarantined before
    tr.rows_redelivered = int(again[0]) if again else 0
    if st.mode == "append" and again and again[1]:  # re-sent event ids are unchanged rows too
        tr.rows_unchanged = (tr.rows_unchanged or 0) + int(again[1])
    tr.balanced = tr.rows_in == tr.rows_curated + tr.rows_quarantined + tr.rows_withheld
    if not tr.balanced:
        st.note(
            f"{contract.name}: rows_in {tr.rows_in} != curated {tr.rows_curated} + quarantined "
            f"{tr.rows_quarantined} + withheld {tr.rows_withheld}"
        )
    validate_curated(wh, contract, empty=tr.rows_total == 0)


def _register_pseudonyms(st: LoadState, column: str, raw_ids: list[str], pseudonyms: list[str]) -> None:
    """`_pseudo_<column>(raw_id, pseudonym)`: a temp table, dropped once the load is published."""
    arrow = pa.table(
        {"raw_id": pa.array(raw_ids, pa.string()), "pseudonym": pa.array(pseudonyms, pa.string())}
    )
    st.wh.db.register("_pseudo_src", arrow)
    try:
        st.wh.sql(f"CREATE OR REPLACE TEMP TABLE _pseudo_{column} AS SELECT * FROM _pseudo_src")
    finally:
        st.wh.db.unregister("_pseudo_src")


def _pseudonym_table(st: LoadState, column: str) -> None:
    """The pseudonyms of the ids of the valid rows."""
    # computed by the warehouse (`Pseudonymizer.sql`: the same HMAC, in parallel, no id
    # through Python)
    expr, params = Pseudonymizer.of(st.workdir).sql("raw_id")
    st.wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _pseudo_{column} AS SELECT raw_id, {expr} AS pseudonym FROM (
              SELECT DISTINCT {q(column)} AS raw_id FROM {CHECKED}
              WHERE len(_reasons) = 0 AND {q(column)} IS NOT NULL)""",
        params,
    )


def _flag_redelivered(st: LoadState, names: list[str]) -> None:
    """Append mode: flag the valid rows of this load that an earlier load curated already
    (an at-least-once export re-sends part of yesterday) as `duplicate_row`, and count what
    the load does to the table. A row is identified by every curated column as it would be
    curated (cleaned, the user pseudonymized): an events row equal to a curated one is a
    re-delivery; a keyed row is an insert (new key), an update (its key's curated row
    differs) or unchanged (equal: a re-delivery). The comparison is a hash join in the
    warehouse; events are compared only with the curated events of the delivery's time
    range: a filter, so it holds whatever the table's order (a delivery older than the last
    one appends rows out of time order); it is fast where the table is in time order, as
    each version is within itself: row groups outside the range are skipped.

    Compares `_new` (this load's valid rows as they will be curated, with `_source_line`);
    leaves `_redelivered(line)`: the source lines flagged."""
    wh, contract, tr = st.wh, st.contract, st.tr
    cur = f"curated.{q(contract.name)}"
    cur_cols = [r[0] for r in wh.sql(f"DESCRIBE {cur}").fetchall()]
    same = same_row(contract, names, cur_cols, delivered=st.delivered, merged=st.merged)
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
    else:
        where = ""
        if "timestamp" in names and "timestamp" in cur_cols:
            lo, hi = wh.sql('SELECT min("timestamp"), max("timestamp") FROM _new').fetchone() or (None, None)
            if lo is not None:
                where = f"WHERE \"timestamp\" BETWEEN TIMESTAMP '{lo}' AND TIMESTAMP '{hi}'"
        earlier = f"SELECT * FROM {cur} {where}"
        if contract.name == "events":  # (lines a later delivery took out were delivered too)
            typed = [(r[0], r[1]) for r in wh.sql(f"DESCRIBE {cur}").fetchall()]
            retracted = retracted_rows(wh, typed)
            if retracted is not None:
                earlier += f" UNION ALL BY NAME SELECT * FROM ({retracted}) {where}"
        wh.sql(
            f"""CREATE OR REPLACE TEMP TABLE _redelivered AS SELECT DISTINCT c._source_line AS line
                FROM _new c JOIN ({earlier}) e ON {same}"""
        )
        row = wh.sql("SELECT count(*) FROM _redelivered").fetchone()
        tr.rows_unchanged, tr.rows_updated = (int(row[0]) if row else 0), 0
    if not tr.rows_unchanged:
        return
    redelivery_details(st)
    wh.sql(
        f"""UPDATE {CHECKED} SET _reasons = list_append(_reasons, '{Reason.DUPLICATE_ROW.value}'),
            _detail = coalesce(_detail, r.detail) FROM _redelivery r WHERE r.line = {CHECKED}._source_line"""
    )
    wh.sql("DROP TABLE _redelivery")


# the columns that tell one event from another: compared even where one side is NULL (an
# anonymous row is not the same event as a customer's); the rest of an event (value, quantity,
# text, ...) describes it, and a side without a value there does not make it another event
EVENT_IDENTITY = frozenset({"user_id", "session_id", "product_id", "event_type", "timestamp", "query"})


def same_row(
    contract: TableContract,
    names: list[str],
    cur_cols: list[str],
    dialect: Dialect = DUCKDB,
    delivered: frozenset[str] | None = None,
    merged: frozenset[str] = frozenset(),
) -> str:
    """The condition that this load's row `c` (columns `names`) is the curated row `e`
    (columns `cur_cols`). Only the columns the delivery gives (`delivered`; None: all of
    `names`) are compared: a file without a column says nothing about it. Required columns
    are never NULL in a valid row: compared with `=`, which lets the warehouse push the join's
    key range down to the scan; a keyed table's others NULL-safely; an event's describing
    columns (outside EVENT_IDENTITY) where both sides have a value (a re-send that adds the
    order value to a purchase is the same purchase). A column merged key by key (`merged`:
    attributes from a few attribute columns) is the same where its keys hold the curated values."""
    required = set(contract.required_columns)
    given = set(names) if delivered is None else set(names) & set(delivered)
    given |= {c for c in merged if c in names and c in cur_cols}
    tolerant = not contract.key and contract.name == "events"

    def equal(col: str) -> str:
        left = "c." + dialect.q(col)
        right = "e." + dialect.q(col) if col in cur_cols else "NULL"
        if col in merged and col not in required:
            return dialect.json_covered(left, right)
        if col == "event_id":  # an id the server gave says nothing (`client_event_id`)
            left, right = client_event_id(left), client_event_id(right)
        if col in required and col in cur_cols:
            return f"{left} = {right}"
        if tolerant and col not in EVENT_IDENTITY:
            return f"({left} IS NULL OR {right} IS NULL OR {left} = {right})"
        return f"{left} {dialect.null_safe_eq} {right}"

    return " AND ".join([equal(col) for col in dict.fromkeys(names) if col in given] or ["true"])


def upsert_select(
    contract: TableContract,
    new_cols: list[str],
    cur_cols: list[str],
    delivered: frozenset[str],
    dialect: Dialect = DUCKDB,
    nulls_keep: bool = False,
    merged: frozenset[str] = frozenset(),
) -> str:
    """The SELECT list over `n` (this load's rows) LEFT JOIN `o` (the curated rows of their
    keys, `o._present` where there is one) that a keyed table's new version takes: a column
    the delivery gives from the load, one it does not from the curated row of the key (a new
    key: the load's value, its default or NULL). A partial re-send of a product (price only)
    keeps its brand and category instead of blanking them. A `merged` column (a JSON object:
    attributes from a few attribute columns, `LoadState.merged`) takes the delivered keys over
    the key's curated object, its other keys kept."""
    out = []
    for col in dict.fromkeys([*new_cols, *cur_cols]):
        c = dialect.q(col)
        if nulls_keep and col not in contract.key and col in new_cols and col in cur_cols:
            # a re-processed row names every column (the quarantine keeps a row's fields, not
            # which of them its file had): an empty one keeps the key's curated value
            out.append(f"CASE WHEN o._present AND n.{c} IS NULL THEN o.{c} ELSE n.{c} END AS {c}")
        elif col in merged and col in new_cols and col in cur_cols:
            out.append(
                f"CASE WHEN o._present THEN {dialect.json_merge(f'o.{c}', f'n.{c}')} ELSE n.{c} END AS {c}"
            )
        elif col == UPDATED_AT and col in delivered and col in new_cols and col in cur_cols:
            # a row without a (readable) time keeps its key's curated one: the stale check
            # (`_flag_stale`) still knows how new the key's row is for a later out-of-order re-send
            out.append(f"coalesce(n.{c}, o.{c}) AS {c}")
        elif col in contract.key or col in delivered or col not in cur_cols:
            out.append(f"n.{c}")
        elif col == "in_stock" and "stock" in delivered and col in new_cols and "stock" in cur_cols:
            # a stock feed without `in_stock`: the flag follows the figure (derived), unless the
            # curated flag was the shop's own word against its figure (a backorder shop's true
            # at 0): a figure says nothing of that
            q_stock = dialect.q("stock")
            out.append(
                f"CASE WHEN o._present AND o.{c} IS NOT NULL AND o.{q_stock} IS NOT NULL "
                f"AND o.{c} <> (o.{q_stock} > 0) THEN o.{c} ELSE n.{c} END AS {c}"
            )
        elif col in new_cols:
            out.append(f"CASE WHEN o._present THEN o.{c} ELSE n.{c} END AS {c}")
        else:  # a kept extra column this file lacks
            out.append(f"o.{c}")
    return ", ".join(out)


def redelivery_details(st: LoadState) -> None:
    """`_redelivery(line, detail)`: why each line of `_redelivered(line)` (this load's rows an
    earlier load curated already) is a re-delivery, and which load delivered it first (both
    engines: the raw layer is the workdir's)."""
    wh, contract = st.wh, st.contract
    version = wh.latest_version(contract.name)
    holder = f"{contract.name} v{version.version}" if version else contract.name
    if contract.key:
        # (a pseudonymized key - a user id - is not written out: the detail is shown in reports)
        shown = not any(contract.column(k).pseudonymize for k in contract.key)
        key_text = " || ',' || ".join(f"l.{q(k)}" for k in contract.key) if shown else "'(pseudonymized)'"
        what = (
            f"{lit('re-delivered unchanged: the curated row of ' + '/'.join(contract.key) + ' ')} || "
            f"{key_text} || {lit(f' in {holder} is identical')}"
        )
    else:
        what = lit(f"re-delivered: an identical row is already curated ({holder})")
    required = set(contract.required_columns)

    def equal(left: str, right: str, col: str) -> str:
        return f"{left} {'=' if col in required else 'IS NOT DISTINCT FROM'} {right}"

    # which load delivered it first: the raw layer keeps every load's rows as received, and a
    # re-sent row is usually the same text (when it is not, the curated version is named alone)
    load = st.load
    raw_cols = [r[0] for r in wh.sql(f"DESCRIBE {load}").fetchall() if r[0] != "_source_line"]
    raw_same = " AND ".join(equal(f"r.{q(c)}", f"d.{q(c)}", c) for c in raw_cols)
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _first AS
            SELECT d._source_line AS line, min(r._load) AS first_load
            FROM (SELECT * FROM {load} WHERE _source_line IN (SELECT line FROM _redelivered)) d
            JOIN {st.raw_table} r ON r._load <> {int(st.load_id)} AND {raw_same} GROUP BY 1"""
    )
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _redelivery AS
            SELECT l._source_line AS line, {what} || coalesce('; first delivered by load ' || f.first_load || ' ('
                || m.source_file || ', ' || strftime(m.loaded_at, '%Y-%m-%d %H:%M:%S') || ' UTC, run ' || m.run_id || ')', '') AS detail
            FROM {load} l LEFT JOIN _first f ON f.line = l._source_line
            LEFT JOIN meta.raw_loads m ON m.load_id = f.first_load
            WHERE l._source_line IN (SELECT line FROM _redelivered)"""
    )
    wh.sql("DROP TABLE _first")


def validate_curated(wh: Warehouse, contract: TableContract, *, empty: bool = False) -> None:
    """The curated table must satisfy the contract's pandera schema (checks run in the warehouse;
    `empty`: columns and types only)."""
    from .._lazy import preloaded

    preloaded()  # (`shelfwise ingest` imports pandera and Ibis in the background meanwhile)
    import pandera.errors

    schema = contract.to_pandera(values=not empty)
    try:
        schema.validate(wh.table(contract.name), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        raise ContractViolation(f"curated {contract.name} breaks its contract {schema.name}: {exc}") from exc
