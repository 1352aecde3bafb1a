"""A table's load on Apache Spark (`--engine spark`): the same stages as on DuckDB, over the same
`LoadState`, with the data work in Spark.

- reading the file stays where it is (`_load_raw`: staging, the CSV/JSON/Parquet reader, malformed
  lines, the raw layer in the workdir's DuckDB); the load's rows reach Spark as Parquet (pandas-3
  string nulls would otherwise arrive as 'NaN');
- the contract's row checks are the contract compiled to Spark SQL (`_compile.SparkDialect`),
  with the text normalizer and the JSON test as Python UDFs;
- erased users' rows are withheld, then duplicates, repeated event ids, conflicting keys, unknown
  references and robot windows are flagged, in Spark (windows and joins);
- pseudonyms are the same keyed HMAC-SHA256 hexdigests (computed once per distinct id, as on
  DuckDB, and joined in Spark); the curated version and this load's quarantined rows are
  written as Parquet in the engine's warehouse location, and recorded in the workdir's DuckDB
  catalog (`Warehouse.publish_parquet`; quarantined rows are indexed in `quarantine.rows` for
  the stewards' commands).

The accounting and the pandera validation are the DuckDB path's (`_load_publish.account`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..storage import SparkEngine
from ._compile import (
    JSON_COVERED_UDF,
    JSON_MERGE_UDF,
    JSON_VALID_UDF,
    NORMALIZE_LINES_UDF,
    NORMALIZE_UDF,
    SPARK,
    client_event_id,
    compile_contract,
    lit,
    mask_profile_value,
    q,
    several_category_paths,
    slash_category_paths,
)
from ._contracts import BOT_EVENT_TYPES
from ._load_anonymous import spark_uncount_redelivered
from ._load_publish import (
    ID_CURATED_SQL,
    account,
    curated_nothing,
    keep_curated_text,
    lost_text_condition,
    quarantined_before,
    redelivery_details,
    resolve_proven_repeats,
    same_row,
    say_completed,
    say_stale,
    sent_twice,
    shrunk_by_snapshot,
    stale_applies,
    stale_detail_sql,
    supersede_open,
    unchanged_version,
    upsert_select,
)
from ._load_raw import completed_condition, tell_new_keys
from ._load_retract import retract_orders, retracted_orders, retracted_rows
from ._load_rows import (
    day_first_dates,
    decimal_comma_numbers,
    money_text_currency,
    note_unreadable,
    say_currency_signs,
    untracked_stock,
)
from ._load_sales import spark_uncount_redelivered as spark_uncount_redelivered_sales
from ._load_sets import (
    NEAR_DETAIL,
    RESENT_BOT_DETAIL,
    consent_columns,
    consent_disagree_sql,
    curated_near,
    key_dated_sql,
    key_keep_said,
    key_newest_first,
    repeats_sql,
    resent_bot_lines,
    say_consent_conflicts,
    say_repeated_rows,
)
from ._load_state import PAST_RETENTION, LoadState, count_withheld, note_withheld, safe
from ._privacy import Pseudonymizer
from ._reasons import Reason

__all__ = ["discard_staged", "spark_check_rows", "spark_check_sets", "spark_publish", "spark_withhold_erased"]

bq = SPARK.q  # Spark's identifier quoting


def _engine(st: LoadState) -> SparkEngine:
    assert isinstance(st.engine, SparkEngine)
    return st.engine


def _tmp(st: LoadState) -> Path:
    return _engine(st).location / "_tmp" / st.run_id


def discard_staged(st: LoadState) -> None:
    """A failed load's staged rows (raw ids, erased users' rows not yet withheld) go with it."""
    shutil.rmtree(_tmp(st), ignore_errors=True)


def register_udfs(spark: Any) -> None:
    """The contract SQL's Python functions, as Arrow-batched UDFs."""
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql.functions import pandas_udf

    from ._duck_json import COVERED_SQL, MERGE_SQL, VALID_SQL, duckdb_series
    from ._text import normalize_text_array

    def normalize(values: pd.Series) -> pd.Series:
        arr = normalize_text_array(pa.array(values, pa.string(), from_pandas=True))
        return pd.Series(arr.to_pylist(), index=values.index, dtype=object)

    def normalize_lines(values: pd.Series) -> pd.Series:
        arr = normalize_text_array(pa.array(values, pa.string(), from_pandas=True), keep_lines=True)
        return pd.Series(arr.to_pylist(), index=values.index, dtype=object)

    def json_valid(values: pd.Series) -> pd.Series:
        return duckdb_series(VALID_SQL, values.index, s=values)

    def json_merge(old: pd.Series, new: pd.Series) -> pd.Series:
        return duckdb_series(MERGE_SQL, old.index, o=old, n=new)

    def json_covered(new: pd.Series, old: pd.Series) -> pd.Series:
        return duckdb_series(COVERED_SQL, new.index, n=new, o=old)

    # (this module's annotations are strings; pyspark reads the UDF kind from real ones)
    for fn in (normalize, normalize_lines, json_valid, json_merge, json_covered):
        fn.__annotations__ = {
            a: pd.Series for a in (*fn.__code__.co_varnames[: fn.__code__.co_argcount], "return")
        }
    spark.udf.register(NORMALIZE_UDF, pandas_udf(normalize, "string"))  # type: ignore[call-overload]
    spark.udf.register(NORMALIZE_LINES_UDF, pandas_udf(normalize_lines, "string"))  # type: ignore[call-overload]
    # (JSON judged, merged and compared by DuckDB itself, a batch at a time: `_duck_json`)
    spark.udf.register(JSON_VALID_UDF, pandas_udf(json_valid, "boolean"))  # type: ignore[call-overload]
    spark.udf.register(JSON_MERGE_UDF, pandas_udf(json_merge, "string"))  # type: ignore[call-overload]
    spark.udf.register(JSON_COVERED_UDF, pandas_udf(json_covered, "boolean"))  # type: ignore[call-overload]


def spark_check_rows(st: LoadState) -> None:
    """The load's rows (strings) to Parquet, read by Spark, checked by the compiled contract."""
    spark = _engine(st).session
    register_udfs(spark)
    day_first = day_first_dates(st)
    say_currency_signs(st)
    compiled = compile_contract(
        st.contract,
        min_year=st.settings.min_year,
        max_future_days=st.settings.max_future_days,
        day_first=day_first,
        decimal_comma=decimal_comma_numbers(st),
        several_paths=several_category_paths(st.mapping.get("category")),
        slash_paths=slash_category_paths(st.header),
        dialect=SPARK,
    )
    path = _tmp(st) / f"{st.name}_load.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    # (a stock figure of 0 on every row of a catalog is read as none, as on DuckDB: `untracked_stock`)
    replaced = [f"NULL::VARCHAR AS {q('stock')}"] if untracked_stock(st) else []
    # (no currency column, or an empty cell of one: the row's read from its money's own text, as on DuckDB)
    if read := money_text_currency(st):
        replaced.append(f"{read} AS {q('currency')}")
    rows = f"SELECT * REPLACE ({', '.join(replaced)}) FROM" if replaced else "SELECT * FROM"
    st.wh.sql(f"COPY ({rows} {st.load}) TO '{path.as_posix()}' (FORMAT PARQUET)")
    load = spark.read.parquet(str(path))
    st.frames["load"] = load
    view = f"_sw_load_{st.name}"
    load.createOrReplaceTempView(view)
    extra = [bq("x_" + safe(e)) for e in st.extra_kept]
    source = view
    if extra:
        kept = [bq(c) for c in st.contract.column_names] + ["_source_line"]
        # masked as on DuckDB (`_load_rows.check_rows`)
        cleaned = [
            mask_profile_value(f"nullif({SPARK.trim(c)}, '')", SPARK, name=e) + f" AS {c}"
            for c, e in zip(extra, st.extra_kept, strict=True)
        ]
        source = f"(SELECT {', '.join(kept + cleaned)} FROM {view}) AS _with_extra"
    # the compiled contract is one wide projection (a CASE per column and reason): as one
    # whole-stage Java method it outgrows the JVM's 64 KB limit, and Spark printed a compiler
    # error (hundreds of lines) before it fell back to running the expressions one by one, as it
    # does here from the start
    with _sql_conf(spark, "spark.sql.codegen.wholeStage", "false"):
        st.frames["checked"] = spark.sql(compiled.query(source, extra)).localCheckpoint()
    note_unreadable(st, day_first)


@contextmanager
def _sql_conf(spark: Any, key: str, value: str) -> Iterator[None]:
    """`key` set to `value` in the session for the block (a local or a Connect session), then
    what it was."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


SMALL_HITS = 50_000


def _add_reason(st: LoadState, hits: Any, reason: Reason, *, any_row: bool = False) -> None:
    """Append `reason` to the still-valid (`any_row`: every) rows whose `_source_line` is in
    `hits(_hit_line, _hit_detail)`; the first detail stays."""
    from pyspark.sql import functions as F

    df = st.frames["checked"]
    # defects are few: up to SMALL_HITS flagged rows are fetched (one job) and joined back as a
    # small local table, so `checked` needs no new materialization; more are joined as computed
    # and the result checkpointed (else every later check would recompute the windows)
    few = hits.limit(SMALL_HITS + 1).collect()
    small = len(few) <= SMALL_HITS
    if small and not few:
        return
    if small:
        hits = _engine(st).session.createDataFrame(
            [(int(r[0]), r[1]) for r in few], "_hit_line bigint, _hit_detail string"
        )
        hits = F.broadcast(hits)
    j = df.join(hits, df["_source_line"] == hits["_hit_line"], "left")
    hit = F.col("_hit_line").isNotNull()
    if not any_row:
        hit = hit & (F.size("_reasons") == 0)
    # (the flag first: `_reasons` changes in the next step and the detail needs the same answer)
    j = j.withColumn("_hit", hit)
    j = j.withColumn(
        "_reasons",
        F.when(F.col("_hit"), F.concat("_reasons", F.array(F.lit(reason.value)))).otherwise(
            F.col("_reasons")
        ),
    ).withColumn(
        "_detail", F.when(F.col("_hit"), F.coalesce("_detail", "_hit_detail")).otherwise(F.col("_detail"))
    )
    j = j.drop("_hit", "_hit_line", "_hit_detail")
    st.frames["checked"] = j if small else j.localCheckpoint()


def _view(st: LoadState) -> str:
    st.frames["checked"].createOrReplaceTempView("_sw_checked")
    return "_sw_checked"


def spark_withhold_erased(st: LoadState) -> None:
    """As `_load_publish.withhold_erased`: every id of the load pseudonymized once and looked
    up in the erasure register; their rows dated at or before the erasure leave the load."""
    if not st.staging:
        return
    spark = _engine(st).session
    _spark_withhold_expired(st)
    if st.erasures is None:  # staged for the retention policy alone: nobody was erased
        note_withheld(st)
        return
    df = st.frames["checked"]
    hits: list[tuple[str, str, datetime]] = []
    for c in st.pseudo_cols:
        ids = [r[0] for r in df.where(df[c].isNotNull()).select(c).distinct().collect()]
        pseudos, erased = st.erasures.lookup(ids)
        st.frames[f"pseudo_{c}"] = (ids, pseudos)
        hits += [(c, raw, at) for raw, at in erased]
    if not hits:
        note_withheld(st)  # (lines that never became rows may have been)
        return
    spark.createDataFrame(hits, "col string, raw_id string, at timestamp_ntz").createOrReplaceTempView(
        "_sw_erased"
    )
    on = " OR ".join(f"(e.col = {SPARK.lit(c)} AND c.{bq(c)} = e.raw_id)" for c in st.pseudo_cols)
    later = "false"
    if st.dated:
        later = f"c.`timestamp` > e.at AND c.`timestamp` <= {SPARK.now_plus_days(1)}"
    lines = [
        int(r[0])
        for r in spark.sql(
            f"SELECT DISTINCT c._source_line FROM {_view(st)} c JOIN _sw_erased e ON {on} "
            f"WHERE NOT coalesce({later}, false)"
        ).collect()
    ]
    if lines:
        from pyspark.sql import functions as F

        st.frames["checked"] = df.where(~F.col("_source_line").isin(lines)).localCheckpoint()
        st.wh.sql(f"DELETE FROM {st.target} WHERE list_contains(?::BIGINT[], _source_line)", [lines])
        count_withheld(st.tr, len(lines))
        if st.reprocess:
            st.withheld_lines += lines
    note_withheld(st)


def _spark_withhold_expired(st: LoadState) -> None:
    """As `_load_publish._withhold_expired`: the rows dated before the retention policy's
    cutoff leave the load, valid or not."""
    if st.expire_before is None or not st.dated:
        return
    import pyarrow as pa
    from pyspark.sql import functions as F

    df = st.frames["checked"]
    # (literals from text: a Python datetime literal goes through the host's time zone; a date
    # before the plausible range is quarantined as `out_of_range`, as on DuckDB)
    cutoff = F.lit(st.expire_before.isoformat(sep=" ")).cast("timestamp_ntz")
    floor = F.lit(f"{st.settings.min_year:04d}-01-01 00:00:00").cast("timestamp_ntz")
    expired = (F.col("timestamp") < cutoff) & (F.col("timestamp") >= floor)
    lines = [int(r[0]) for r in df.where(expired).select("_source_line").collect()]
    if lines:
        st.frames["checked"] = df.where(~F.coalesce(expired, F.lit(False))).localCheckpoint()
        # (a join, not a list per row: a re-sent history may be millions of rows)
        st.wh.db.register("_expired_src", pa.table({"line": pa.array(lines, pa.int64())}))
        try:
            st.wh.sql(f"DELETE FROM {st.target} WHERE _source_line IN (SELECT line FROM _expired_src)")
        finally:
            st.wh.db.unregister("_expired_src")
        count_withheld(st.tr, len(lines), PAST_RETENTION)
        if st.reprocess:
            st.withheld_lines += lines


def spark_check_sets(st: LoadState) -> None:
    """As `_load_sets.check_sets`, in Spark."""
    contract = st.contract
    tell_new_keys(st)
    content = [client_event_id(bq(c)) if c == "event_id" else bq(c) for c in contract.column_names] + [
        bq("x_" + safe(e)) for e in st.extra_kept
    ]
    if contract.dedupe_exact:
        _flag_repeats(
            st, Reason.DUPLICATE_ROW, content, last_wins=False, detail="'exact duplicate of an earlier row'"
        )
        if contract.name == "events":
            _say_repeated_rows(st)
    if "event_id" in contract.column_names:
        _flag_repeats(
            st,
            Reason.DUPLICATE_ROW,
            ["event_id"],
            last_wins=False,
            detail="'event_id ' || event_id || ': repeats an earlier event'",
            where="event_id IS NOT NULL",
        )
        if st.mode == "append":
            _flag_curated_event_ids(st)
    if contract.key:
        keys = [bq(k) for k in contract.key]
        _flag_repeats(
            st, Reason.DUPLICATE_ROW, content, last_wins=True, detail="'exact duplicate of a later row'"
        )
        key_text = " || ',' || ".join(keys)
        _flag_repeats(
            st,
            Reason.DUPLICATE_KEY,
            keys,
            last_wins=True,
            detail=f"'conflicting duplicate of key ' || {key_text} || {lit(key_keep_said(st))}",
            newest_first=key_newest_first(st, SPARK),
        )
        say_consent_conflicts(st, _combine_consent(st))
    for col, ref_table, ref_col in contract.references:
        if ref_table not in st.report.tables and not (
            st.mode == "append" and ref_table in st.wh.curated_tables()
        ):
            continue
        _flag_unknown(st, col, ref_table, ref_col)
    if contract.name == "events":
        _flag_bots(st)


def _combine_consent(st: LoadState) -> int:
    """As `_load_sets.combine_consent_sql`, in Spark: an opt-out on any row of a user key wins."""
    from pyspark.sql import functions as F

    cols = consent_columns(st)
    if not cols:
        return 0
    keys = list(st.contract.key)
    df = st.frames["checked"]
    grouped = df.where(" AND ".join(f"{bq(k)} IS NOT NULL" for k in keys)).groupBy(*keys)
    agg = grouped.agg(
        *[F.expr(f"bool_and({bq(c)})").alias("_c_" + c) for c in cols],
        *[F.expr(consent_disagree_sql(bq(c))).alias("_n_" + c) for c in cols],
    )
    agg = agg.where(" OR ".join(f"`_n_{c}`" for c in cols)).drop(*["_n_" + c for c in cols])
    n = agg.count()
    if not n:
        return 0
    j = df.join(F.broadcast(agg), on=keys, how="left")
    for c in cols:
        j = j.withColumn(c, F.coalesce(F.col("_c_" + c), F.col(c))).drop("_c_" + c)
    st.frames["checked"] = j.select(*df.columns).localCheckpoint()
    return int(n)


def _say_repeated_rows(st: LoadState) -> None:
    """As `_load_sets._say_repeated_till_lines`, in Spark."""
    conds = repeats_sql(st, SPARK)
    if conds is None:
        return
    whole, sale = conds
    row = st.frames["checked"].selectExpr("count(*)", f"count_if({whole})", f"count_if({sale})").first()
    say_repeated_rows(st, int(row[0]), int(row[1] or 0), int(row[2] or 0))


def _flag_repeats(
    st: LoadState,
    reason: Reason,
    columns: list[str],
    *,
    last_wins: bool,
    detail: str,
    where: str = "true",
    newest_first: str = "",
) -> None:
    spark = _engine(st).session
    order = newest_first + ("_source_line DESC" if last_wins else "_source_line")
    dated = f", {key_dated_sql(columns, SPARK)}" if newest_first else ""
    hits = spark.sql(
        f"""SELECT _source_line AS _hit_line, {detail} AS _hit_detail FROM (
              SELECT *, row_number() OVER (PARTITION BY {", ".join(columns)} ORDER BY {order}) AS _rn
              FROM (SELECT *{dated} FROM {_view(st)} WHERE size(_reasons) = 0 AND {where}) AS v) AS r
            WHERE _rn > 1"""
    )
    _add_reason(st, hits, reason)


def _flag_unknown(st: LoadState, col: str, ref_table: str, ref_col: str) -> None:
    """Ids the referenced table does not know: its curated rows (this load's Parquet) and the
    rows of it quarantined by this load (a product with a broken title is still a product)."""
    spark = _engine(st).session
    parts = []
    ref = _current(st, ref_table)
    if ref is not None:
        ref.createOrReplaceTempView("_sw_ref")
        parts.append(f"SELECT {bq(ref_col)} AS id FROM _sw_ref")
    # appending, the rows of it still open in quarantine from earlier loads count too (as on DuckDB)
    still_open = " OR status = 'open'" if st.mode == "append" else ""
    quarantined = [
        r[0]
        for r in st.wh.sql(
            f"SELECT DISTINCT nullif(trim(json_extract_string(raw, '$.{ref_col}')), '') FROM quarantine.rows "
            f"WHERE table_name = ? AND reason <> 'malformed_row' AND (run_id = ?{still_open})",
            [ref_table, st.run_id],
        ).fetchall()
        if r[0] is not None
    ]
    spark.createDataFrame([(v,) for v in quarantined], "id string").createOrReplaceTempView("_sw_ref_q")
    parts.append("SELECT id FROM _sw_ref_q")
    c = bq(col)
    hits = spark.sql(
        f"""SELECT c._source_line AS _hit_line, {SPARK.lit(f"{col}: unknown {ref_table[:-1]} ")} || c.{c} AS _hit_detail
            FROM {_view(st)} c LEFT ANTI JOIN ({" UNION ".join(parts)}) AS k ON c.{c} = k.id
            WHERE c.{c} IS NOT NULL"""
    )
    _add_reason(st, hits, Reason.UNKNOWN_REFERENCE, any_row=True)


def _current(st: LoadState, table: str) -> Any:
    """The current curated version of `table` as a Spark DataFrame (None: none yet): a Parquet
    version read where it lies, a DuckDB one (a workdir loaded on DuckDB before) exported to
    Parquet in the load's temporary folder first."""
    version = st.wh.latest_version(table)
    if version is None or table not in st.wh.curated_tables():
        return None
    spark = _engine(st).session
    if "/" in version.physical_name:
        return spark.read.parquet(version.physical_name.rsplit("/", 1)[0])
    path = _tmp(st) / f"{table}_current.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    st.wh.sql(f"COPY (SELECT * FROM curated.{q(table)}) TO '{path.as_posix()}' (FORMAT PARQUET)")
    return spark.read.parquet(str(path))


def _flag_curated_event_ids(st: LoadState) -> None:
    """Appending: a valid row whose event_id is already curated is a `duplicate_row` (as on DuckDB)."""
    cur = _current(st, st.contract.name)
    if cur is None or "event_id" not in cur.columns:
        return
    spark = _engine(st).session
    cur.select("event_id").where("event_id IS NOT NULL").createOrReplaceTempView("_sw_cur_ids")
    hits = spark.sql(
        f"""SELECT c._source_line AS _hit_line, 'event_id ' || c.event_id || ': already curated' AS _hit_detail
            FROM {_view(st)} c LEFT SEMI JOIN _sw_cur_ids k ON c.event_id = k.event_id
            WHERE size(c._reasons) = 0"""
    )
    _add_reason(st, hits, Reason.DUPLICATE_ROW)


def _flag_bots(st: LoadState) -> None:
    """As `_load_sets._flag_bot_windows`: the window over the load's valid behaviour rows and,
    appending, the curated rows of the same users close to them (`curated_near`, read from
    DuckDB and brought over as Parquet)."""
    from pyspark.sql import functions as F

    s = st.settings
    spark = _engine(st).session
    types = ", ".join(SPARK.lit(t) for t in BOT_EVENT_TYPES)
    view = _view(st)
    behaviour = f"size(_reasons) = 0 AND event_type IN ({types})"
    window = int(s.bot_window_seconds) * 1_000_000
    peak = int(s.bot_max_events)
    mine = st.frames["checked"].where(behaviour)
    ts = F.unix_micros(F.col("timestamp").cast("timestamp"))
    near = curated_near(
        st,
        lambda: [
            (r[0], int(r[1]), int(r[2]))
            for r in mine.where("user_id IS NOT NULL").groupBy("user_id").agg(F.min(ts), F.max(ts)).collect()
        ],
    )
    micros = "unix_micros(CAST(`timestamp` AS TIMESTAMP))"
    rows = f"SELECT user_id, {micros} AS ts_us, 1 AS own FROM {view} WHERE {behaviour}"
    if near:
        path = _tmp(st) / "near.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        st.wh.sql(f"COPY _near TO '{path.as_posix()}' (FORMAT PARQUET)")
        st.wh.sql("DROP TABLE _near")
        spark.read.parquet(str(path)).createOrReplaceTempView("_sw_near")
        rows += f""" UNION ALL SELECT n.user_id, n.ts_us, 0 FROM _sw_near n LEFT ANTI JOIN (
            SELECT user_id, {micros} AS ts_us, product_id, event_type FROM {view} WHERE {behaviour}) c
            ON c.user_id = n.user_id AND c.ts_us = n.ts_us AND c.product_id <=> n.product_id
            AND c.event_type = n.event_type"""
    bots = spark.sql(
        f"""WITH ev AS ({rows})
            SELECT user_id AS _bot, max(CASE WHEN own_n > 0 THEN n END) AS peak,
                   max(n > {peak} AND own_n > 0 AND own_n < n) AS with_near FROM (
              SELECT user_id, count(*) OVER w AS n, sum(own) OVER w AS own_n
              FROM ev WHERE user_id IN (SELECT user_id FROM ev GROUP BY user_id HAVING count(*) > {peak})
              WINDOW w AS (PARTITION BY user_id ORDER BY ts_us RANGE BETWEEN {window} PRECEDING AND CURRENT ROW)
            ) AS w
            GROUP BY user_id HAVING max(CASE WHEN own_n > 0 THEN n END) > {peak}"""
    )
    bots.createOrReplaceTempView("_sw_bots")
    hits = spark.sql(
        f"""SELECT c._source_line AS _hit_line,
                   'user made ' || b.peak || ' events within {int(s.bot_window_seconds)} s'
                   || CASE WHEN b.with_near THEN {SPARK.lit(NEAR_DETAIL)} ELSE '' END AS _hit_detail
            FROM {view} c JOIN _sw_bots b ON c.user_id = b._bot"""
    )
    _add_reason(st, hits, Reason.BOT_TRAFFIC)
    # then the re-sent rows the window left valid (read from the load's strings in DuckDB: the
    # same lines as there)
    again = resent_bot_lines(st)
    if again:
        _add_reason(
            st,
            spark.createDataFrame(
                [(n, RESENT_BOT_DETAIL) for n in again], "_hit_line bigint, _hit_detail string"
            ),
            Reason.BOT_TRAFFIC,
        )


def spark_publish(st: LoadState) -> None:
    """Pseudonyms, the curated version and the quarantined rows as Parquet; the catalog and the
    accounting in the workdir's DuckDB. Appending (`--append`), as on DuckDB: the load's valid
    rows an earlier load curated already are quarantined as re-delivered `duplicate_row`s, and
    the new version is the current one with this load's rows added (keyed tables: upserted)."""
    from pyspark.sql import functions as F

    eng, wh, contract, tr = _engine(st), st.wh, st.contract, st.tr
    spark = eng.session
    df = st.frames["checked"]
    valid = df.where(F.size("_reasons") == 0)
    pseudo = Pseudonymizer.of(st.workdir)
    for c in st.pseudo_cols:
        if f"pseudo_{c}" in st.frames:  # every id of the load, pseudonymized when withholding
            ids, pseudos = st.frames[f"pseudo_{c}"]
        else:
            ids = [r[0] for r in valid.where(F.col(c).isNotNull()).select(c).distinct().collect()]
            pseudos = pseudo.many(ids)
        table = spark.createDataFrame(
            list(zip(ids, pseudos, strict=True)), f"_raw_{c} string, _pseudo_{c} string"
        )
        valid = valid.join(F.broadcast(table), valid[c] == table[f"_raw_{c}"], "left")
    out_cols = [
        F.col(f"_pseudo_{c}").alias(c) if c in st.pseudo_cols else F.col(c) for c in contract.column_names
    ] + [F.col("x_" + safe(e)) for e in st.extra_kept]
    order = ["timestamp", "_source_line"] if contract.name == "events" else ["_source_line"]
    current = _current(st, contract.name) if st.mode == "append" else None
    redelivered: list[int] = []
    added = None
    if current is None:
        if st.mode == "append":  # the table's first load: every valid row is new
            tr.rows_updated, tr.rows_unchanged = 0, 0
        curated = valid.orderBy(*order).select(*out_cols)
    else:
        new = valid.select(*out_cols, "_source_line").localCheckpoint()
        if contract.key:  # (a re-send's text that lost its letters to an encoding error: as on DuckDB)
            new = _text_mending(st, new, current)
            new = _flag_stale(st, new, current)  # (an older version of a curated row: as on DuckDB)
        redelivered = _flag_redelivered(st, new, current)
        spark_uncount_redelivered(st, redelivered)  # the report's anonymous rows: those curated
        spark_uncount_redelivered_sales(st, redelivered)  # ... and its no-sale rows and returns
        if redelivered:
            gone = spark.createDataFrame([(n,) for n in redelivered], "_gone bigint")
            new = new.join(F.broadcast(gone), new["_source_line"] == gone["_gone"], "left_anti")
        if st.completions and not contract.key:  # a cut last line's curated row: replaced
            current = _drop_completed(st, new, current)
        new = new.orderBy(*order).drop("_source_line").localCheckpoint()
        added = new.count()
        keep = current
        if retract_orders(st) is not None:  # an order's latest status wins (as on DuckDB)
            orders = retracted_orders(st)  # (a delivery's orders: a list, not a join)
            hit = (F.col("event_type") == "purchase") & F.col("session_id").cast("string").isin(orders)
            keep = current.where(~F.coalesce(hit, F.lit(False)))
        if contract.key:  # the newer version of a key replaces the curated one (an upsert)
            keep = current.join(new.select(*contract.key), list(contract.key), "left_anti")
            # a column the delivery does not give keeps the key's curated value (`upsert_select`)
            new.createOrReplaceTempView("_sw_upsert_n")
            current.createOrReplaceTempView("_sw_upsert_o")
            on = " AND ".join(f"o.{bq(k)} = n.{bq(k)}" for k in contract.key)
            cols = upsert_select(
                contract,
                list(new.columns),
                list(current.columns),
                st.delivered,
                SPARK,
                nulls_keep=st.reprocess,
                merged=st.merged,
            )
            new = spark.sql(
                f"SELECT {cols} FROM _sw_upsert_n n LEFT JOIN "
                f"(SELECT *, true AS _present FROM _sw_upsert_o) o ON {on}"
            )
        curated = keep.unionByName(new, allowMissingColumns=True)
        if contract.name == "events":  # (a late event among the earlier ones: the table in time order)
            curated = curated.orderBy("timestamp")
    prev = wh.latest_version(contract.name)
    version = (prev.version + 1) if prev else 1
    where = eng.location / "curated" / contract.name / f"v{version}"
    curated.write.mode("overwrite").parquet(str(where))
    # this load's quarantined rows, each with its raw row as received (JSON, every column)
    load = st.frames["load"]
    raw_json = (
        "to_json(named_struct("
        + ", ".join(f"{SPARK.lit(c)}, l.{bq(c)}" for c in st.raw_cols)
        + "), map('ignoreNullFields', 'false'))"
    )
    load.createOrReplaceTempView("_sw_raw")
    bad = spark.sql(
        f"""SELECT c._source_line AS source_line, c._reasons[0] AS reason, c._reasons AS reasons,
                   c._detail AS detail, {raw_json} AS raw
            FROM {_view(st)} c JOIN _sw_raw l ON l._source_line = c._source_line WHERE size(c._reasons) > 0"""
    )
    qdir = eng.location / "quarantine" / contract.name / f"run={st.run_id}"
    bad.write.mode("overwrite").parquet(str(qdir))
    wh.sql(
        f"""INSERT INTO quarantine.rows SELECT nextval('quarantine.qid_seq'), {lit(st.run_id)}, {lit(contract.name)},
            {lit(str(st.src))}, source_line, reason, reasons, detail, raw::JSON,
            CASE WHEN reason = {lit(Reason.STALE_ROW.value)} THEN 'superseded'
                 WHEN list_contains(?::BIGINT[], source_line)
                   OR {ID_CURATED_SQL.format(reasons="reasons", detail="detail")}
                   OR {quarantined_before(st, "raw")} OR {sent_twice(st, "reasons", "detail", "raw", "source_line")}
                 THEN 'redelivered' ELSE 'open' END,
            now()::TIMESTAMP, CASE WHEN reason = {lit(Reason.STALE_ROW.value)} THEN {lit(st.run_id)} END
            FROM read_parquet('{qdir.as_posix()}/*.parquet') ORDER BY source_line""",
        [redelivered],
    )
    if current is not None:
        resolve_proven_repeats(st)
    before = wh.latest_version(contract.name)
    if current is None and curated_nothing(st, valid.limit(1).count(), before) and before is not None:
        shutil.rmtree(where, ignore_errors=True)  # the earlier version stays the table
        tv, added = before, 0
    else:
        supersede_open(st)
        tv = wh.publish_parquet(
            contract.name,
            f"{where.as_posix()}/*.parquet",
            st.run_id,
            contract.version,
            same_keeps=current is not None,
        )
        if tv.version != version:  # nothing new: the files written for a version are not one
            shutil.rmtree(where, ignore_errors=True)
        unchanged_version(st, tv)
        shrunk_by_snapshot(st, before, tv)
    wh.sql(f"DROP VIEW {st.load}")
    shutil.rmtree(_tmp(st), ignore_errors=True)
    st.frames.clear()
    account(st, tv, added)


def _drop_completed(st: LoadState, new: Any, current: Any) -> Any:
    """As the DuckDB publish: the curated rows of cut last lines that this load's complete
    lines replace (`_load_raw.find_completions`) leave the current version; counted updated."""
    spark = _engine(st).session
    cur_cols = list(current.columns)
    replaced = 0
    for line, _, _, column in st.completions:
        cond = completed_condition(st, column, cur_cols, SPARK)
        new.where(f"_source_line = {int(line)}").createOrReplaceTempView("_sw_done_c")
        current.createOrReplaceTempView("_sw_done_e")
        replaced += spark.sql(f"SELECT 1 FROM _sw_done_e e LEFT SEMI JOIN _sw_done_c c ON {cond}").count()
        current = spark.sql(
            f"SELECT e.* FROM _sw_done_e e LEFT ANTI JOIN _sw_done_c c ON {cond}"
        ).localCheckpoint()
    say_completed(st, replaced)
    return current


def _text_mending(st: LoadState, new: Any, current: Any) -> Any:
    """`_load_publish.keep_curated_text` in Spark: `new` with the text values that lost letters
    to an encoding error set back to their key's curated ones."""
    from pyspark.sql import functions as F

    spark = _engine(st).session
    new.createOrReplaceTempView("_sw_mend_n")
    current.createOrReplaceTempView("_sw_mend_o")
    on = " AND ".join(f"o.{bq(k)} = n.{bq(k)}" for k in st.contract.key)
    held = [new]

    def candidates(col: str) -> list[tuple[int, str, str]]:
        rows = spark.sql(
            f"SELECT n._source_line, n.{bq(col)}, o.{bq(col)} FROM _sw_mend_n n JOIN _sw_mend_o o "
            f"ON {on} WHERE {lost_text_condition(col, SPARK)}"
        ).collect()
        return [(int(r[0]), r[1], r[2]) for r in rows]

    def mend(col: str, lines: list[int], values: list[str]) -> None:
        fix = spark.createDataFrame(
            list(zip(lines, values, strict=True)), "_mend_line bigint, _mend_value string"
        )
        df = held[0]
        df = df.join(F.broadcast(fix), df["_source_line"] == fix["_mend_line"], "left")
        held[0] = df.withColumn(col, F.coalesce(F.col("_mend_value"), F.col(col))).drop(
            "_mend_line", "_mend_value"
        )

    keep_curated_text(st, list(current.columns), candidates, mend)
    return new if held[0] is new else held[0].localCheckpoint()


def _flag_stale(st: LoadState, new: Any, current: Any) -> Any:
    """As `_load_publish._flag_stale`, in Spark: the rows of `new` (this load's valid rows as
    they will be curated, with `_source_line`) whose `updated_at` is older than their key's
    curated row's are flagged `stale_row` and leave `new` (returned)."""
    from pyspark.sql import functions as F

    if not stale_applies(st, list(current.columns)):
        return new
    spark = _engine(st).session
    new.createOrReplaceTempView("_sw_stale_n")
    current.createOrReplaceTempView("_sw_stale_o")
    on = " AND ".join(f"o.{bq(k)} = n.{bq(k)}" for k in st.contract.key)
    u = bq("updated_at")
    # (kept as a frame, not fetched: a whole old export re-sent by mistake is millions of stale
    # rows; `_add_reason` fetches only a few)
    hits = spark.sql(
        f"SELECT CAST(n._source_line AS BIGINT) AS _hit_line, {stale_detail_sql(st, SPARK)} AS _hit_detail "
        f"FROM _sw_stale_n n JOIN _sw_stale_o o ON {on} WHERE n.{u} < o.{u}"
    ).localCheckpoint()
    n = hits.count()
    say_stale(st, n)
    if not n:
        return new
    _add_reason(st, hits, Reason.STALE_ROW)
    gone = hits.select(F.col("_hit_line").alias("_gone"))
    return new.join(gone, new["_source_line"] == gone["_gone"], "left_anti").localCheckpoint()


def _flag_redelivered(st: LoadState, new: Any, current: Any) -> list[int]:
    """As `_load_publish._flag_redelivered`, in Spark: the rows of `new` (this load's valid rows
    as they will be curated, with `_source_line`) that `current` (the curated version) holds
    already - keyed tables: the key's curated row is identical (inserted / updated / unchanged
    counted); others: an identical row, looked for among the curated rows of the delivery's time
    range. They are flagged `duplicate_row` with the detail DuckDB gives (which load delivered
    them first: the raw layer is the workdir's). Returns their lines."""
    spark = _engine(st).session
    contract, tr, names = st.contract, st.tr, st.raw_cols
    cur_cols = list(current.columns)
    same = same_row(contract, names, cur_cols, SPARK, delivered=st.delivered, merged=st.merged)
    if contract.name == "events" and not contract.key:  # (lines a later delivery took out were delivered too)
        typed = [(f.name, _duck_type(f.dataType.simpleString())) for f in current.schema.fields]
        retracted = retracted_rows(st.wh, typed)
        if retracted is not None:
            back = st.wh.sql(retracted).df()
            if len(back):
                current = current.unionByName(spark.createDataFrame(back, schema=current.schema))
    new.createOrReplaceTempView("_sw_new")
    current.createOrReplaceTempView("_sw_cur")
    if contract.key:
        on = " AND ".join(f"c.{bq(k)} = e.{bq(k)}" for k in contract.key)
        upsert = spark.sql(
            f"""SELECT c._source_line AS line, e._present IS NOT NULL AS present,
                       coalesce(e._present AND {same}, false) AS same
                FROM _sw_new c LEFT JOIN (SELECT *, true AS _present FROM _sw_cur) e ON {on}"""
        ).localCheckpoint()
        counts = upsert.selectExpr(
            "count_if(NOT present)", "count_if(present AND NOT same)", "count_if(same)"
        ).first()
        tr.rows_inserted, tr.rows_updated, tr.rows_unchanged = (int(v) for v in counts)
        lines = [int(r[0]) for r in upsert.where("same").select("line").collect()]
    else:
        where = ""
        if "timestamp" in names and "timestamp" in cur_cols:
            # the bounds as text written by Spark in its session's time zone, read back in it: a
            # TIMESTAMP (with local time zone) collected into Python is in the Python process's
            # local time, and a range taken from it would miss the delivery's edge rows on a
            # machine not set to UTC (the events' timestamps are TIMESTAMP_NTZ today, which
            # collects unshifted: this keeps it right whichever type the column has)
            fmt = SPARK.lit("yyyy-MM-dd HH:mm:ss.SSSSSS")
            lo, hi = spark.sql(
                f"SELECT date_format(min(`timestamp`), {fmt}), date_format(max(`timestamp`), {fmt}) FROM _sw_new"
            ).first()
            if lo is not None:
                where = f"WHERE `timestamp` BETWEEN {SPARK.lit(lo)}::timestamp AND {SPARK.lit(hi)}::timestamp"
        lines = [
            int(r[0])
            for r in spark.sql(
                f"""SELECT DISTINCT c._source_line FROM _sw_new c
                    JOIN (SELECT * FROM _sw_cur {where}) e ON {same}"""
            ).collect()
        ]
        tr.rows_unchanged, tr.rows_updated = len(lines), 0
    if not lines:
        return []
    wh = st.wh
    wh.sql("CREATE OR REPLACE TEMP TABLE _redelivered AS SELECT unnest(?::BIGINT[]) AS line", [lines])
    redelivery_details(st)
    details = [(int(n), d) for n, d in wh.sql("SELECT line, detail FROM _redelivery").fetchall()]
    wh.sql("DROP TABLE _redelivery")
    wh.sql("DROP TABLE _redelivered")
    hits = spark.createDataFrame(details, "_hit_line bigint, _hit_detail string")
    _add_reason(st, hits, Reason.DUPLICATE_ROW)
    return sorted(lines)


def _duck_type(spark_type: str) -> str:
    """The DuckDB type of a Spark column's simple type name (for reading a quarantined curated
    row back as its table's row)."""
    return {
        "string": "VARCHAR",
        "timestamp_ntz": "TIMESTAMP",
        "timestamp": "TIMESTAMP",
        "double": "DOUBLE",
        "float": "DOUBLE",
        "bigint": "BIGINT",
        "int": "BIGINT",
        "boolean": "BOOLEAN",
        "date": "DATE",
    }.get(spark_type, "VARCHAR")
