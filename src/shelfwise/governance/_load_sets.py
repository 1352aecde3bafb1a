"""Stage 3 of a table's load: the checks that look at a row against the others, in the warehouse
(`_checked` updated in place): exact duplicates, repeated event ids, conflicting keys (the
stated keep rule), unknown references, robot traffic (events per user in a sliding window)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from ._compile import DUCKDB, Dialect, client_event_id, lit, q
from ._contracts import BOT_EVENT_TYPES
from ._load_raw import tell_new_keys
from ._load_state import LoadState
from ._privacy import Pseudonymizer
from ._reasons import Reason

__all__ = ["check_sets", "key_dated_sql", "key_keep_said", "key_newest_first"]


def check_sets(st: LoadState) -> None:
    wh, contract = st.wh, st.contract
    tell_new_keys(st)  # a new key's row in a delivery without some required column: said so
    # (an event_id the server gave is not the event's content: `client_event_id`)
    content = [
        client_event_id(q(c)) if c == "event_id" else q(c) for c in contract.column_names
    ] + st.extra_sel
    if contract.dedupe_exact:
        _flag_repeats(
            st, Reason.DUPLICATE_ROW, content, last_wins=False, detail="'exact duplicate of an earlier row'"
        )
        if contract.name == "events":
            _say_repeated_till_lines(st)
    if "event_id" in contract.column_names:
        _flag_event_ids(st)
    if contract.key:
        keys = [q(k) for k in contract.key]
        # an exact copy of a kept row is a duplicate row; a different row with the same key is a conflict
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
            newest_first=key_newest_first(st),
        )
        say_consent_conflicts(st, combine_consent_sql(st))
    for col, ref_table, ref_col in contract.references:
        if ref_table not in st.report.tables and not (
            st.mode == "append" and ref_table in wh.curated_tables()
        ):
            continue
        # a product whose catalog row was quarantined (e.g. its title was broken HTML) is still a
        # known product: its events are valid, only its catalog row needs a fix.
        known = (
            f"SELECT {q(ref_col)} FROM curated.{q(ref_table)} UNION "
            f"SELECT nullif(trim(json_extract_string(raw, '$.{ref_col}')), '') FROM quarantine.rows "
            f"WHERE table_name = {lit(ref_table)} AND reason <> 'malformed_row' AND (run_id = {lit(st.run_id)}"
            + (" OR status = 'open')" if st.mode == "append" else ")")
        )
        wh.sql(f"CREATE OR REPLACE TEMP TABLE _known AS {known}")
        wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{Reason.UNKNOWN_REFERENCE.value}'),
                _detail = coalesce(_detail, '{col}: unknown {ref_table[:-1]} ' || {q(col)})
                WHERE {q(col)} IS NOT NULL AND {q(col)} NOT IN (SELECT * FROM _known WHERE {q(ref_col)} IS NOT NULL)"""
        )
        wh.sql("DROP TABLE _known")
    if contract.name == "events":
        _flag_bots(st)


def key_newest_first(st: LoadState, d: Dialect = DUCKDB) -> str:
    """The order that keeps, among one load's rows of a key, the row the shop changed last: where
    the file gives `updated_at` and every row of the key has one, the latest first (an export
    listing a product's history, or two systems' rows merged, need not list it last); then the
    last row. A key with a row without a (readable) time keeps its last row, as a later delivery
    without one replaces the curated row (`_load_publish._flag_stale`). Empty without the column.
    The ORDER BY prefix reads `_dated`, which `key_dated_sql` adds to the rows."""
    if "updated_at" in st.contract.column_names and "updated_at" in st.delivered:
        return f"CASE WHEN _dated THEN {d.q('updated_at')} END DESC NULLS LAST, "
    return ""


def key_dated_sql(columns: list[str], d: Dialect = DUCKDB) -> str:
    """`_dated`: whether every row of the partition `columns` has an `updated_at`."""
    by = ", ".join(columns)
    u = d.q("updated_at")
    return f"count({u}) OVER (PARTITION BY {by}) = count(*) OVER (PARTITION BY {by}) AS _dated"


def key_keep_said(st: LoadState) -> str:
    """How a conflicting key's kept row was chosen, as its quarantined rows' detail says it."""
    if key_newest_first(st):
        return " (the row with the latest updated_at wins where each has one, else the last row)"
    return " (the last row wins)"


def consent_columns(st: LoadState) -> list[str]:
    """The consent columns of a keyed users load (empty for any other table)."""
    from ._consent import USERS_COLUMNS

    if st.contract.name != "users" or not st.contract.key:
        return []
    return [c for c in USERS_COLUMNS if c in st.contract.column_names]


def consent_disagree_sql(col: str) -> str:
    """The condition, over a user key's rows, that its consent column `col` (quoted) disagrees:
    two answers differ, or one row says no and another is empty (`count(DISTINCT)` skips the
    empty one, and the last row, empty, then won over the opt-out: the shop default answered)."""
    return f"(count(DISTINCT {col}) > 1 OR (bool_or(NOT {col}) AND count({col}) < count(*)))"


def combine_consent_sql(st: LoadState) -> int:
    """A user key on several rows of one load whose consent columns disagree (opted out in one
    store's row, opted in or empty in another's) is combined conservatively: an opt-out on any row wins,
    on the row that is curated (the last row otherwise won, and a customer who withdrew stayed
    marketable). Returns the number of users whose rows disagreed."""
    cols = consent_columns(st)
    if not cols:
        return 0
    keys = ", ".join(q(k) for k in st.contract.key)
    null_key = " AND ".join(f"{q(k)} IS NOT NULL" for k in st.contract.key)
    disagree = " OR ".join(consent_disagree_sql(q(c)) for c in cols)
    aggs = ", ".join(f"bool_and({q(c)}) AS {q('_c_' + c)}" for c in cols)
    wh = st.wh
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _consent_conflicts AS
            SELECT {keys}, {aggs} FROM _checked WHERE {null_key} GROUP BY {keys} HAVING {disagree}"""
    )
    row = wh.sql("SELECT count(*) FROM _consent_conflicts").fetchone()
    n = int(row[0]) if row else 0
    if n:
        sets = ", ".join(f"{q(c)} = coalesce(f.{q('_c_' + c)}, _checked.{q(c)})" for c in cols)
        on = " AND ".join(f"_checked.{q(k)} = f.{q(k)}" for k in st.contract.key)
        wh.sql(f"UPDATE _checked SET {sets} FROM _consent_conflicts f WHERE {on}")
    wh.sql("DROP TABLE _consent_conflicts")
    return n


def say_consent_conflicts(st: LoadState, users: int) -> None:
    if users:
        st.warn(
            f"{st.src.name}: {users:,} user(s) have several rows whose consent disagrees (e.g. opted "
            "out in one row, opted in in another): an opt-out on any row wins (the curated row and "
            "the consent register hold the withdrawal)"
        )


def repeats_sql(st: LoadState, d: Dialect = DUCKDB) -> tuple[str, str] | None:
    """The conditions, over the checked rows, of (a) a row repeating an earlier row of the file
    whole (`duplicate_row`, an exact duplicate) and (b) such a row that is a purchase which may be
    a separate sale (`_say_repeated_till_lines`); None for a table without event types and times."""
    have = set(st.contract.column_names)
    if not {"event_type", "timestamp"} <= have:
        return None
    no_id = f"{d.q('event_id')} IS NULL" if "event_id" in have else "true"
    # an order-lines export stamps every line of an order with the order's time: one product on
    # two lines of one order (Shopify lists it twice when the lines' properties differ) repeats
    # to the second like a re-send, which within one file it hardly ever is
    in_order = f" OR {d.q('session_id')} IS NOT NULL" if "session_id" in have else ""
    ts = d.q("timestamp")
    dup = Reason.DUPLICATE_ROW.value
    only_dup = f"_reasons = ['{dup}']" if d is DUCKDB else f"_reasons = array('{dup}')"
    whole = f"(_detail = 'exact duplicate of an earlier row' AND {only_dup})"
    # (a file without quantities is one unit a row: its repeats are units too)
    sale = (
        f"({whole} AND {d.q('event_type')} = 'purchase' AND {no_id} "
        f"AND ({ts} = date_trunc('day', {ts}){in_order}))"
    )
    return whole, sale


# the fewest rows repeated whole within one file that can read as the file duplicated
DUPLICATED_FILE_MIN = 5


def say_repeated_rows(st: LoadState, rows: int, whole: int, sales: int) -> None:
    """Say what repeated rows within one events file are (both engines): `whole` rows repeat an
    earlier row of the file in every field, `sales` of them purchases that may be separate sales,
    of the file's `rows`. Many rows of every kind repeated (views as well as purchases) are a delivery
    duplicated (a day appended twice, an export concatenated): said first, and that nothing is to
    be done (giving the copies event_ids would count them as sales); purchases alone repeated may
    be a till's separate sales: what tells them apart."""
    if not whole:
        return
    # a file repeated whole: many rows (a quarter of the file at least) of every kind; a few
    # repeated lines are a re-send's or a till's, said (purchases) or not as before
    if whole > sales and whole >= DUPLICATED_FILE_MIN and whole * 4 >= rows:
        st.warn(
            f"{st.src}: {whole:,} of {rows:,} rows repeat an earlier row of the same file in every field "
            f"(views and other events as well as {sales:,} purchase(s)): the file looks like a delivery "
            "duplicated (a day appended twice, an export concatenated to itself) - each row was kept "
            "once (duplicate_row) and nothing more is needed; do not give the copies event_ids or "
            "re-process them (that would count them as separate events, a purchase twice)"
        )
        return
    if not sales:
        return
    # the columns the rows were compared on are those the file gives: never one it did not
    # read (a quantity column left unmapped made lines of 6 and 8 units "the same quantity")
    read = st.delivered
    same = ["shopper or session/order", "product", "time"]
    same += [c for c in ("quantity", "value", "unit_price") if c in read]
    unread = [c for c in ("quantity", "value") if c not in read]
    st.warn(
        f"{st.src.name}: {sales:,} purchase row(s) repeat another row exactly (same {', '.join(same[:-1])} "
        f"and {same[-1]}"
        + (f"; no {' or '.join(unread)} column was read: map it if the file has one" if unread else "")
        + ") and were kept once (duplicate_row); if they are separate sales "
        "(a till's date-only export: two shoppers buying one each; an order listing one product on two "
        "lines), give each row an event_id (the receipt or order and line number) or one row per "
        "product and day (or order) with the summed quantity, and re-process them "
        "(`shelfwise quarantine reprocess --file FIXED.jsonl`)"
    )


def _say_repeated_till_lines(st: LoadState) -> None:
    """Purchases of a date-only export repeated exactly (same shopper or session, product, date
    and quantity, no event_id) are one event sent twice as far as the rows can tell, and kept
    once; on a till's export they may be two shoppers buying one each. Said in the warnings with
    what tells them apart (an event_id, or the day's quantity summed in one row): the
    duplicate_row count alone read as re-sends; a file repeated whole is said to be one
    (`say_repeated_rows`)."""
    conds = repeats_sql(st)
    if conds is None:
        return
    whole, sale = conds
    row = st.wh.sql(
        f"SELECT count(*), count(*) FILTER (WHERE {whole}), count(*) FILTER (WHERE {sale}) FROM _checked"
    ).fetchone()
    if row:
        say_repeated_rows(st, int(row[0]), int(row[1] or 0), int(row[2] or 0))


def _flag_repeats(
    st: LoadState, reason: Reason, columns: list[str], *, last_wins: bool, detail: str, newest_first: str = ""
) -> None:
    """Add `reason` to the still-valid rows that repeat `columns` (NULLs equal) of another
    still-valid row: all but the first (or, `last_wins`, the last) by source line (after
    `newest_first`, an ORDER BY prefix: `key_newest_first`). The
    window runs only over the rows whose hash of `columns` occurs more than once (a
    superset of the repeats: equal values hash equally), not over every row: about 0.3 s
    less per million mostly distinct events. The hashes that occur more than once are found
    as equal neighbours in order (sorting 8-byte hashes costs about half of grouping them, every
    hash its own group: ~0.3 CPU-s per million events rows), and a load without any repeats
    (the usual one) reads `_checked` no more."""
    wh = st.wh
    cols = ", ".join(columns)
    order = newest_first + ("_source_line DESC" if last_wins else "_source_line")
    valid = "len(_reasons) = 0"
    dated = f", {key_dated_sql(columns)}" if newest_first else ""
    wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _repeated_hashes AS SELECT DISTINCT h FROM (
              SELECT h, lead(h) OVER (ORDER BY h) AS n FROM (SELECT hash({cols}) AS h FROM _checked WHERE {valid})
            ) WHERE h = n"""
    )
    row = wh.sql("SELECT count(*) FROM _repeated_hashes").fetchone()
    if row and row[0]:
        wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{reason.value}'), _detail = coalesce(_detail, f.detail)
                FROM (SELECT _source_line AS line, {detail} AS detail,
                             row_number() OVER (PARTITION BY {cols} ORDER BY {order}) > 1 AS hit
                      FROM (SELECT *{dated} FROM _checked WHERE {valid} AND hash({cols}) IN (
                        SELECT h FROM _repeated_hashes))) f
                WHERE f.hit AND _checked._source_line = f.line AND len(_checked._reasons) = 0"""
        )
    wh.sql("DROP TABLE _repeated_hashes")


def _flag_event_ids(st: LoadState) -> None:
    """An event_id (an idempotency key) is curated once: a row repeating one of an earlier
    row of this load or, appending, one already curated is a `duplicate_row` (a client's
    retry, a served event absorbed twice)."""
    wh, table = st.wh, st.contract.name
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
    if st.mode == "append" and has_ids and has_ids[0]:
        wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{dup}'),
                    _detail = coalesce(_detail, 'event_id ' || event_id || ': already curated')
                WHERE len(_reasons) = 0 AND event_id IN (
                    SELECT c.event_id FROM curated.{q(table)} c SEMI JOIN _checked n USING (event_id))"""
        )


# the fields that name one behaviour event as received (raw strings, trimmed)
_BOT_ROW = ("user_id", "session_id", "product_id", "event_type", "timestamp")
RESENT_BOT_DETAIL = "sent again: an earlier load quarantined this event as robot traffic"


def resent_bot_lines(st: LoadState) -> list[int]:
    """Appending: the lines of this load that re-send an event an earlier load quarantined as
    `bot_traffic` (the same user, session, product, type and time as received). Such a row is
    robot traffic still: a re-sent part of a robot's burst holds fewer events than the window
    allows and would pass the window alone. Read from the load's strings in the warehouse, so
    both engines flag the same lines."""
    if st.mode != "append" or st.reprocess:  # (re-processed rows are the quarantine's own)
        return []
    have = st.wh.sql(
        "SELECT count(*) FROM quarantine.rows WHERE table_name = ? AND reason = ? AND run_id <> ?",
        [st.name, Reason.BOT_TRAFFIC.value, st.run_id],
    ).fetchone()
    if not have or not have[0]:
        return []
    fields = [c for c in _BOT_ROW if c in st.delivered]

    def norm(expr: str) -> str:
        return f"coalesce(trim({expr}), '')"

    on = " AND ".join(
        norm("l." + q(c)) + " = " + norm("json_extract_string(b.raw, " + lit("$." + c) + ")") for c in fields
    )
    rows = st.wh.sql(
        f"""SELECT DISTINCT l._source_line FROM {st.load} l JOIN (
              SELECT raw FROM quarantine.rows WHERE table_name = {lit(st.name)}
              AND reason = {lit(Reason.BOT_TRAFFIC.value)} AND run_id <> {lit(st.run_id)}) b ON {on}
            ORDER BY 1"""
    ).fetchall()
    return [int(r[0]) for r in rows]


def curated_near(st: LoadState, spans: Callable[[], list[tuple[str, int, int]]]) -> bool:
    """Appending: the curated behaviour events of this load's users within a robot window of
    each user's own behaviour events in the load, as the temp table `_near(user_id, ts_us,
    product_id, event_type)` in the warehouse (the user's RAW id, the time in epoch
    microseconds); False when there are none. A robot's burst that an export splits across two
    deliveries is under the limit in each; the window counts both parts. `spans()`: per user
    of the load with behaviour events, (raw id, first, last) in epoch microseconds; each user's
    own span bounds what is read of theirs (one late straggler in a delivery widens the load's
    span, not every user's). The curated rows are read from DuckDB on both engines; the load's
    users are pseudonymized (the keyed HMAC of publishing) only when curated behaviour events
    lie within the load's span at all."""
    if st.mode != "append" or st.reprocess or st.name not in st.wh.curated_tables():
        return False  # (a first load, or a re-processing of the quarantine's own rows)
    users = spans()
    if not users:
        return False
    wh = st.wh
    w = int(st.settings.bot_window_seconds) * 1_000_000
    lo, hi = min(u[1] for u in users) - w, max(u[2] for u in users) + w
    types = ", ".join(lit(t) for t in BOT_EVENT_TYPES)
    span = (
        f"c.event_type IN ({types}) "
        f'AND c."timestamp" BETWEEN make_timestamp({int(lo)}) AND make_timestamp({int(hi)})'
    )
    if not wh.sql(f"SELECT 1 FROM curated.{q(st.name)} c WHERE {span} LIMIT 1").fetchone():
        return False
    raw = [u[0] for u in users]
    pseudo = Pseudonymizer.of(st.workdir)
    ids = pa.table(
        {
            "raw_id": raw,
            "pseudonym": pseudo.many(raw),
            "lo": [u[1] - w for u in users],
            "hi": [u[2] + w for u in users],
        }
    )
    wh.db.register("_near_ids", ids)
    try:
        wh.sql(
            f"""CREATE OR REPLACE TEMP TABLE _near AS
                SELECT m.raw_id AS user_id, epoch_us(c."timestamp") AS ts_us, c.product_id, c.event_type
                FROM curated.{q(st.name)} c JOIN _near_ids m ON m.pseudonym = c.user_id
                WHERE {span} AND epoch_us(c."timestamp") BETWEEN m.lo AND m.hi"""
        )
    finally:
        wh.db.unregister("_near_ids")
    row = wh.sql("SELECT count(*) FROM _near").fetchone()
    if not row or not row[0]:
        wh.sql("DROP TABLE _near")
        return False
    return True


NEAR_DETAIL = " (with events an earlier load curated)"


def _flag_bots(st: LoadState) -> None:
    # the window first, over every valid row (a re-sent part of a burst still counts towards the
    # burst the load holds); then the re-sent rows the window left valid
    _flag_bot_windows(st)
    again = resent_bot_lines(st)
    if again:
        st.wh.sql(
            f"""UPDATE _checked SET _reasons = list_append(_reasons, '{Reason.BOT_TRAFFIC.value}'),
                _detail = coalesce(_detail, {lit(RESENT_BOT_DETAIL)})
                WHERE len(_reasons) = 0 AND _source_line IN (SELECT unnest(?::BIGINT[]))""",
            [again],
        )


def _flag_bot_windows(st: LoadState) -> None:
    s = st.settings
    types = ", ".join(lit(t) for t in BOT_EVENT_TYPES)
    behaviour = f"len(_reasons) = 0 AND event_type IN ({types})"
    peak, secs = int(s.bot_max_events), int(s.bot_window_seconds)
    wh = st.wh
    near = curated_near(
        st,
        lambda: [
            (r[0], int(r[1]), int(r[2]))
            for r in wh.sql(
                f'SELECT user_id, epoch_us(min("timestamp")), epoch_us(max("timestamp")) FROM _checked '
                f"WHERE {behaviour} AND user_id IS NOT NULL GROUP BY user_id"
            ).fetchall()
        ],
    )
    # the events the window counts: the load's valid behaviour rows and, appending, the
    # curated ones of the same users close to them (`curated_near`; a curated row the load
    # re-sends counted once); `own`: whether the row is this load's. A user is a robot when a
    # window holding at least one of the load's rows holds too many.
    rows = f'SELECT user_id, epoch_us("timestamp") AS ts_us, 1 AS own FROM _checked WHERE {behaviour}'
    if near:
        rows += f""" UNION ALL SELECT n.user_id, n.ts_us, 0 FROM _near n WHERE NOT EXISTS (
            SELECT 1 FROM _checked c WHERE {behaviour.replace("_reasons", "c._reasons")}
            AND c.user_id = n.user_id AND epoch_us(c."timestamp") = n.ts_us
            AND c.product_id IS NOT DISTINCT FROM n.product_id AND c.event_type = n.event_type)"""
    # the sliding window runs only over users with more events in all than one window may
    # hold (no one else can exceed it): a few users instead of every one (~0.2 s per 1M events)
    st.wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE _bots AS
            WITH ev AS ({rows})
            SELECT user_id, max(n) FILTER (WHERE own_n > 0) AS peak,
                   bool_or(n > {peak} AND own_n > 0 AND own_n < n) AS with_near FROM (
              SELECT user_id, count(*) OVER w AS n, sum(own) OVER w AS own_n
              FROM ev WHERE user_id IN (SELECT user_id FROM ev GROUP BY user_id HAVING count(*) > {peak})
              WINDOW w AS (PARTITION BY user_id ORDER BY ts_us
                           RANGE BETWEEN {secs * 1_000_000} PRECEDING AND CURRENT ROW))
            GROUP BY user_id HAVING max(n) FILTER (WHERE own_n > 0) > {peak}"""
    )
    st.wh.sql(
        f"""UPDATE _checked SET _reasons = list_append(_reasons, '{Reason.BOT_TRAFFIC.value}'),
            _detail = coalesce(_detail, 'user made ' || b.peak || ' events within {secs} s'
                               || CASE WHEN b.with_near THEN {lit(NEAR_DETAIL)} ELSE '' END)
            FROM _bots b WHERE _checked.user_id = b.user_id AND len(_checked._reasons) = 0"""
    )
    st.wh.sql("DROP TABLE _bots")
    st.wh.sql("DROP TABLE IF EXISTS _near")
