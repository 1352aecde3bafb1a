"""Between a table's set checks and its publishing: how many valid events rows are no-sale rows
and returns (`_contracts.NO_SALE`, `RETURN`).

A purchase line of 0 units (a product-per-day export's day without a sale) is curated as a
`no_sale` row and one of fewer than 0 units as a `return` (`_compile._events_values`): neither
is a purchase, neither a fault. The load report counts them (`TableReport.no_sale_rows`,
`return_rows`) among the rows it curated, so that a shop sees them apart from its sales.

The count is of the rows curated: appending, the rows an earlier load curated already
(re-delivered) are taken off again (`uncount_redelivered`, `spark_uncount_redelivered`, called
by the publish stages), as `_load_anonymous` does for anonymous rows.
"""

from __future__ import annotations

from ._contracts import NO_SALE, RETURN
from ._load_state import CHECKED, LoadState

__all__ = [
    "count_sales_outcomes",
    "spark_count_sales_outcomes",
    "spark_uncount_redelivered",
    "uncount_redelivered",
]


def _applies(st: LoadState) -> bool:
    return st.contract.name == "events"


def count_sales_outcomes(st: LoadState) -> None:
    if _applies(st):
        st.tr.no_sale_rows, st.tr.return_rows = _checked(st, "len(_reasons) = 0")


def _checked(st: LoadState, where: str) -> tuple[int, int]:
    """The no_sale and return rows of the checked table that meet `where` (DuckDB)."""
    row = st.wh.sql(
        f"SELECT count(*) FILTER (WHERE event_type = '{NO_SALE}'), count(*) FILTER (WHERE event_type = "
        f"'{RETURN}') FROM {CHECKED} WHERE {where}"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def spark_count_sales_outcomes(st: LoadState) -> None:
    if not _applies(st):
        return
    from pyspark.sql import functions as F

    df = st.frames["checked"].where(F.size("_reasons") == 0)
    got = df.agg(
        F.sum(F.when(F.col("event_type") == NO_SALE, 1).otherwise(0)),
        F.sum(F.when(F.col("event_type") == RETURN, 1).otherwise(0)),
    ).first()
    st.tr.no_sale_rows, st.tr.return_rows = (int(got[0] or 0), int(got[1] or 0)) if got else (0, 0)


def uncount_redelivered(st: LoadState) -> None:
    """Appending (DuckDB): take the re-delivered rows (`_redelivered(line)`) off the counts."""
    if not _applies(st) or not (st.tr.no_sale_rows or st.tr.return_rows):
        return
    no_sale, returns = _checked(st, "_source_line IN (SELECT line FROM _redelivered)")
    st.tr.no_sale_rows -= no_sale
    st.tr.return_rows -= returns


def spark_uncount_redelivered(st: LoadState, lines: list[int]) -> None:
    """As `uncount_redelivered`, in Spark: `lines`, the re-delivered rows' source lines."""
    if not _applies(st) or not (st.tr.no_sale_rows or st.tr.return_rows) or not lines:
        return
    from pyspark.sql import functions as F

    df = st.frames["checked"].where(F.col("_source_line").isin([int(n) for n in lines]))
    st.tr.no_sale_rows -= int(df.where(F.col("event_type") == NO_SALE).count())
    st.tr.return_rows -= int(df.where(F.col("event_type") == RETURN).count())
