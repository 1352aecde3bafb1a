"""An order's latest status wins over a purchase an earlier load curated (both engines).

A daily `--append` delivery of order lines may re-send an order with a new status: curated as a
purchase on day 1 (`Shipped`), sent again on day 2 as `Refunded` or `Cancelled`. The day-2 lines
are set aside (`_load_aside`); the order's day-1 lines are curated purchases still, so revenue,
profiles and models counted a refunded order (walk50D: 635 rows where the orders' latest statuses
give 633). A full snapshot already does right (it is the table); an append now does the same:

- the orders whose lines this load sets aside for their status (`STATUS_ASIDE`: cancelled,
  refunded, unpaid, never placed; not a line without a product or a child line, which say
  nothing of the order) are looked up among the curated purchases (`event_type` purchase, the
  order in `session_id`);
- those curated lines leave the new curated version: each is written to the quarantine with the
  order's reason (`refunded_order`, ...) and a detail naming the delivery, line and run that
  changed it and the version that held it, status `superseded` (the delivery's own line, open,
  is the order now: a steward releases that one), `source_file` `RETRACTED_SOURCE` + the table;
- they are counted apart (`rows_retracted`, not among this load's rows in: the accounting of the
  delivery stays rows_in = curated + quarantined + withheld, and rows_total is the table after it)
  and a warning names the orders.

The opposite change (an order set aside on day 1, paid on day 2) needs nothing here: its day-2
lines are valid purchases and curated as new rows.
"""

from __future__ import annotations

from typing import Any

from ._compile import id_sql, lit, q
from ._load_state import LoadState
from ._reasons import ORDER_STATUS_REASONS

__all__ = [
    "RETRACT",
    "RETRACTED_SOURCE",
    "STATUS_ASIDE",
    "retract_orders",
    "retracted_orders",
    "retracted_rows",
]

# the quarantine's `source_file` of a curated line taken out by a later delivery (prefix + table)
RETRACTED_SOURCE = "curated:"
# the set-aside reasons that say an order is not (or no longer) a purchase
STATUS_ASIDE = ORDER_STATUS_REASONS
# the temp table of the orders this load takes out of the curated purchases (`_order`, reason, detail)
RETRACT = "_retract_orders"
# a few orders named in the warning, the rest counted
_SHOWN = 10


def _aside_made(st: LoadState) -> bool:
    from ._load_aside import ASIDE

    row = st.wh.sql(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [ASIDE]
    ).fetchone()
    return bool(row and row[0])


def retract_orders(st: LoadState) -> str | None:
    """Appending order lines to curated events: take the curated purchase lines of the orders
    this load sets aside for their status out (see the module). Writes them to the quarantine and
    counts them; returns the SQL condition a curated row (unqualified columns) keeps to stay in
    the new version, or None when no curated line is taken out."""
    wh, tr = st.wh, st.tr
    order = st.mapping.get("session_id")
    if (
        st.mode != "append"
        or st.reprocess
        or st.name != "events"
        or order is None
        or "events" not in wh.curated_tables()
        or not _aside_made(st)
    ):
        return None
    from ._load_aside import ASIDE

    reasons = ", ".join(lit(r.value) for r in STATUS_ASIDE)
    # one row per order: the reason and detail of its first set-aside line of this delivery
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE {RETRACT} AS
            SELECT _order, arg_min(reason, _source_line) AS reason, arg_min(detail, _source_line) AS detail,
                   min(_source_line) AS line
            FROM (SELECT nullif({id_sql(f"l.{q('session_id')}::VARCHAR")}, '') AS _order, a.reason, a.detail,
                         a._source_line
                  FROM {ASIDE} a JOIN {st.target} l ON l._source_line = a._source_line AND l._load = {int(st.load_id)}
                  WHERE a.reason IN ({reasons})
                  -- (a line an earlier load set aside, sent again, says nothing new of its order: an old
                  -- delivery re-run must not take out the purchase a later one curated)
                  AND a._source_line NOT IN (SELECT source_line FROM quarantine.rows WHERE run_id = {lit(st.run_id)}
                      AND table_name = 'events' AND status = 'redelivered' AND source_line IS NOT NULL))
            WHERE _order IS NOT NULL GROUP BY 1"""
    )
    hit = f"(event_type = 'purchase' AND session_id::VARCHAR IN (SELECT _order FROM {RETRACT}))"
    row = wh.sql(f"SELECT count(*), count(DISTINCT session_id) FROM curated.events WHERE {hit}").fetchone()
    lines, orders = (int(row[0]), int(row[1])) if row else (0, 0)
    if not lines:
        wh.sql(f"DROP TABLE {RETRACT}")
        return None
    version = wh.latest_version("events")
    holder = f"events v{version.version}" if version else "events"
    cols = [r[0] for r in wh.sql("DESCRIBE curated.events").fetchall()]
    raw = "json_object(" + ", ".join(f"{lit(c)}, e.{q(c)}" for c in cols) + ")"
    scale = st.staged.line_scale  # (a packed order's product: its row's line, `_orderlines`)
    line = f"(o.line // {scale})" if scale > 1 else "o.line"
    if st.staged.source.is_dir():  # a folder's lines are part * PART_LINES + line: its file and row
        from ..storage._sources import PART_LINES

        parts = "[" + ", ".join(lit(str(p)) for p in st.staged.parts) + "]"
        said = lit("; said by ")
        line = f"{parts}[{line} // {PART_LINES} + 1] || ' line ' || CAST({line} % {PART_LINES} AS VARCHAR)"
    else:
        said = lit(f"; said by {st.src} line ")
    by = lit(
        f" (run {st.run_id}): its purchase line curated by an earlier load ({holder}) is taken out of "
        "the curated events, the order's latest status wins"
    )
    wh.sql(
        f"""INSERT INTO quarantine.rows
            SELECT nextval('quarantine.qid_seq'), {lit(st.run_id)}, 'events', {lit(RETRACTED_SOURCE + holder)},
                   NULL, o.reason, [o.reason], o.detail || {said} || {line} || {by}, {raw},
                   'superseded', now()::TIMESTAMP, {lit(st.run_id)}
            FROM curated.events e JOIN {RETRACT} o ON e.session_id::VARCHAR = o._order
            WHERE e.event_type = 'purchase' ORDER BY o._order, e."timestamp" """
    )
    by_reason = wh.sql(
        f"""SELECT o.reason, count(*) FROM curated.events e JOIN {RETRACT} o ON e.session_id::VARCHAR = o._order
            WHERE e.event_type = 'purchase' GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    named = [
        r[0]
        for r in wh.sql(
            f"SELECT DISTINCT session_id FROM curated.events WHERE {hit} ORDER BY 1 LIMIT {_SHOWN + 1}"
        ).fetchall()
    ]
    tr.rows_retracted = lines
    tr.retracted = {str(r): int(n) for r, n in by_reason}
    shown = ", ".join(str(o) for o in named[:_SHOWN]) + (", ..." if len(named) > _SHOWN else "")
    why = ", ".join(f"{int(n):,} {r}" for r, n in by_reason)
    st.warn(
        f"events: {lines:,} earlier purchase line(s) of {orders:,} order(s) now cancelled, refunded or unpaid "
        f"in {st.src.name} ({why}; order(s) {shown}) were taken out of the curated events: the order's "
        "latest status wins (quarantined as superseded with the delivery that changed them: quarantine list)"
    )
    return f"NOT coalesce({hit}, false)"


def retracted_orders(st: LoadState) -> list[str]:
    """The orders `retract_orders` took out (for the Spark path's anti join); drops its table."""
    rows = [str(r[0]) for r in st.wh.sql(f"SELECT _order FROM {RETRACT}").fetchall()]
    st.wh.sql(f"DROP TABLE {RETRACT}")
    return rows


def retracted_rows(wh: Any, cur_cols: list[tuple[str, str]]) -> str | None:
    """SQL of the curated event rows later deliveries took out (`retract_orders`), as the curated
    rows they were (`cur_cols`: the curated table's (name, type)), or None when there are none:
    what a re-delivery is compared with beside the curated rows (an old delivery run again
    re-sends the purchase line of an order since refunded: it was delivered, it is not new)."""
    import json

    from ._compile import lit

    sql = wh.sql
    found = sql(
        "SELECT count(*) FROM quarantine.rows WHERE table_name = 'events' AND status = 'superseded' "
        f"AND starts_with(source_file, {lit(RETRACTED_SOURCE)})"
    ).fetchone()
    if not found or not found[0]:
        return None
    shape = lit(json.dumps(dict(cur_cols)))
    return (
        f"SELECT unnest(json_transform(raw, {shape})) FROM quarantine.rows WHERE table_name = 'events' "
        f"AND status = 'superseded' AND starts_with(source_file, {lit(RETRACTED_SOURCE)})"
    )
