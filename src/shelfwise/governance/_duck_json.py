"""DuckDB's own JSON answers, a batch at a time: what the Spark dialect's JSON UDFs
(`_load_spark.register_udfs`) run on each Arrow batch, so that a JSON cell is judged, merged and
compared on Spark exactly as on DuckDB (the SQL text is the DuckDB dialect's own: one source of
truth, no imitation of DuckDB's JSON reader or writer in Python or in Spark SQL).

Spark's own JSON functions disagree with DuckDB's: `from_json(.., 'map<string,string>')` turns a
number, a boolean or a nested object into JSON text (a merged `{"size": 42}` came back as
`{"size":"42"}`, and `"1"` compared equal to `1`), and Python's `json.loads` refuses what
DuckDB's reader (yyjson) accepts (a trailing comma, `Infinity`) and accepts what it refuses (a
lone surrogate `"\\ud800"`), and fails on deep nesting (RecursionError)."""

from __future__ import annotations

import os
import threading
from typing import Any

from ._compile import DUCKDB

# the DuckDB dialect's SQL over a batch's columns `o` (the curated value), `n` (the delivered
# one) and `s` (a cell): `SparkDialect.json_merge`, `json_covered` and `json_valid` call these
MERGE_SQL = DUCKDB.json_merge("o", "n")
COVERED_SQL = DUCKDB.json_covered("n", "o")
VALID_SQL = DUCKDB.json_valid("s")

_lock = threading.Lock()
_con: Any = None  # one in-memory DuckDB per (Spark worker) process, a cursor per batch


def _forget_in_child() -> None:
    """A forked child (Spark's daemon forks its Python workers) starts its own connection, and
    a lock a parent's thread held at the fork is not the child's to wait on."""
    global _con, _lock
    _con, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def _cursor() -> Any:
    global _con
    import duckdb

    with _lock:
        if _con is None:
            # (one thread: Spark runs a task per core already, and one thread keeps the
            # batch's row order without an ORDER BY)
            _con = duckdb.connect(config={"threads": 1})
        return _con.cursor()


def duckdb_column(sql: str, columns: dict[str, Any]) -> Any:
    """`SELECT sql` over the batch `columns` (name -> pyarrow array, all of one length), its
    one result column (a pyarrow ChunkedArray) in the batch's row order."""
    import pyarrow as pa

    cur = _cursor()
    try:
        cur.register("_sw_batch", pa.table(columns))
        return cur.execute(f"SELECT {sql} FROM _sw_batch").to_arrow_table().column(0)
    finally:
        cur.close()


def duckdb_series(sql: str, index: Any, **columns: Any) -> Any:
    """`duckdb_column` over pandas Series of text (a pandas UDF's arguments), as a pandas
    Series of Python values (None for NULL) on `index`."""
    import pandas as pd
    import pyarrow as pa

    arrays = {k: pa.array(v, pa.string(), from_pandas=True) for k, v in columns.items()}
    out = duckdb_column(sql, arrays)
    return pd.Series(out.to_numpy(zero_copy_only=False), index=index, dtype=object)
