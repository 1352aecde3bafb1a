"""Stage 2 of a table's load: the contract's row checks, compiled to one warehouse query over the
loaded strings (`_compile`): every row's typed values and every check it fails, in `_checked`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from ._compile import (
    DUCKDB,
    compile_contract,
    lit,
    mask_profile_value,
    q,
    several_category_paths,
    slash_category_paths,
)
from ._contracts import Kind
from ._load_state import CHECKED, LoadState, constant

__all__ = [
    "check_rows",
    "day_first_dates",
    "decide_decimal_mark",
    "decimal_comma_numbers",
    "money_text_currency",
    "note_unreadable",
    "say_currency_signs",
    "untracked_stock",
]


def check_rows(st: LoadState) -> None:
    """`_checked` (typed values, `_reasons`, `_detail`, `_source_line`) from `st.load`."""
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
    )
    extra_sel = st.extra_sel
    empty_text = lit("")
    # a kept profile column's values are masked as free text is (an e-mail or phone number in
    # a `Contact` or `Notes` column is personal data whatever the column is called)
    extra_clean = [
        f"{mask_profile_value(f'nullif(trim({c}), {empty_text})', name=e)} AS {c}"
        for c, e in zip(extra_sel, st.extra_kept, strict=True)
    ]
    loaded = st.load
    # a column the file does not have holds one constant in every row of this load (its implied
    # value or NULL, as `_load_raw` wrote it): read as that constant, its cleaning and checks fold
    # to constants in the warehouse instead of running on every row (a typical events file lacks
    # four: ~0.35 CPU-s per million rows, about a tenth of the row checks)
    absent = [c for c in st.contract.column_names if c not in st.mapping and c not in st.filled]
    if st.attributes and "attributes" in absent:  # (kept from their own columns: `size`, `color`)
        absent.remove("attributes")
    # (no currency column: each row's read from its money's own text, `money_text_currency`)
    # (a file with one: its empty cells', from their row's money)
    replaced = [f"{read} AS {q('currency')}"] if (read := money_text_currency(st)) else []
    if replaced and "currency" in absent:
        absent.remove("currency")
    if untracked_stock(st):  # (a figure of 0 on every row: read as none, `untracked_stock`)
        absent.append("stock")
    if absent or replaced:
        constants = ", ".join([f"{constant(st.implied, c)} AS {q(c)}" for c in absent] + replaced)
        loaded = f"(SELECT * REPLACE ({constants}) FROM {st.load})"
    source = (
        f"(SELECT * EXCLUDE ({', '.join(extra_sel)}), {', '.join(extra_clean)} FROM {loaded})"
        if extra_sel
        else loaded
    )
    st.wh.sql(f"CREATE OR REPLACE TEMP TABLE {CHECKED} AS {compiled.query(source, extra_sel)}")
    note_unreadable(st, day_first)


def untracked_stock(st: LoadState) -> bool:
    """Whether a full catalog load's stock figure is 0 (or empty) on every row: a shop that does
    not track stock exports 0 for every product (PrestaShop's `quantity`, BigCommerce's `Current
    Stock Level`), and read as figures it made the whole catalog out of stock, off every served
    list and search. Then the figure is read as none (each product's `in_stock` its given value,
    else unknown, as without a stock column) and a warning says so and how to say otherwise. A
    delivery appended to a curated catalog is not judged so: a stock feed of a few products all
    at 0 says they sold out (the first delivery of an appending shop is its catalog: judged). Decided once per load, on the loaded strings, for both engines (a figure holding a digit
    other than 0 is one above or below 0)."""
    if st.contract.name != "products" or "stock" not in st.mapping:
        return False
    if st.reprocess or (st.mode == "append" and "products" in st.wh.curated_tables()):
        return False  # (an append's first delivery is the whole catalog known)
    if st.untracked_stock is None:
        stock = q("stock")
        row = st.wh.sql(
            f"SELECT count(*) FILTER (WHERE regexp_matches({stock}, '[0-9]')), "
            f"count(*) FILTER (WHERE regexp_matches({stock}, '[1-9]')) FROM {st.load}"
        ).fetchone()
        figures, above = (int(row[0]), int(row[1])) if row else (0, 0)
        st.untracked_stock = figures > 0 and above == 0
        if st.untracked_stock:
            header, file = st.mapping["stock"], st.src.name
            derived = f"{file}: products.in_stock is derived from {header!r}"
            st.report.notes[:] = [n for n in st.report.notes if not n.startswith(derived)]
            given = (
                f"each product's in_stock is its {st.mapping['in_stock']!r} value, else unknown"
                if "in_stock" in st.mapping
                else "every product's in_stock stays unknown and it is served, as without a stock column"
            )
            st.warn(
                f"{file}: the stock column {header!r} is 0 or empty on every row ({figures:,} at 0), as "
                f"a shop that does not track stock exports it: read as no stock figure, not as a catalog "
                f"sold out ({given}); if the products really are out of stock, say so in an in_stock "
                f'column (or --map products.in_stock="COLUMN"), or send the figures as a stock feed '
                "with --append (an appended feed's 0 is out of stock)"
            )
    return st.untracked_stock


def note_unreadable(st: LoadState, day_first: bool) -> None:
    """Say how many rows hold a value of a lenient column (`ColumnSpec.lenient`: the users
    table's consent columns and their date) that cannot be read: a consent read as none, a date
    as no date. On the loaded strings, as either engine reads them."""
    from ._compile import _missing, bool_expr, timestamp_expr
    from ._load_paths import note_several_paths

    note_several_paths(st)  # (a category cell of several paths: warned of here, on both engines)
    _say_unknown_enum_values(st)
    cols = [
        c
        for c in st.contract.columns
        if c.lenient and c.name in st.mapping and c.kind in (Kind.BOOL, Kind.TIMESTAMP)
    ]
    if not cols:
        return
    counts = []
    for c in cols:
        s = f"nullif(trim({q(c.name)}), {lit('')})"
        parsed = bool_expr(s, DUCKDB) if c.kind is Kind.BOOL else timestamp_expr(s, day_first=day_first)
        bad = f"{s} IS NOT NULL AND NOT {_missing(s)} AND {parsed} IS NULL"
        if c.synonyms:  # (the column's own words are read: `PUBLISHED_WORDS`)
            bad += f" AND lower({s}) NOT IN ({', '.join(lit(a) for a, _ in c.synonyms)})"
        counts.append(f"count(*) FILTER (WHERE {bad}), min({s}) FILTER (WHERE {bad})")
    row = st.wh.sql(f"SELECT {', '.join(counts)} FROM {st.load}").fetchone()
    for i, c in enumerate(cols):
        n, example = row[2 * i], row[2 * i + 1]
        if not n:
            continue
        header = st.mapping[c.name]
        if c.kind is Kind.BOOL and c.lenient_value:
            st.note(
                f"{st.name}: {n:,} row(s) with a {c.name} ({header!r}) that is no yes or no shelfwise knows "
                f"(e.g. {example!r}): read as {str(c.lenient_value).lower()} (the product is shown; "
                f"a column {header!r} that says something else than whether it is shown may be renamed)"
            )
        elif c.kind is Kind.BOOL:
            st.note(
                f"{st.name}: {n:,} row(s) with a {c.name} ({header!r}) that is no yes or no "
                f"(e.g. {example!r}): read as no consent (fail closed) until a readable value arrives"
            )
        else:
            st.note(
                f"{st.name}: {n:,} row(s) with a {c.name} ({header!r}) that is no date (e.g. {example!r}): read as none"
            )


def _say_unknown_enum_values(st: LoadState) -> None:
    """A lenient enum column's values none of its allowed ones (an optional `currency`'s unknown
    code: `Kč`, `DOLLARZ`): the rows are curated with no value there, or the column's
    `lenient_unknown` (a currency's `XXX`: unknown, counted apart where money is summed), and one
    warning names the file, the column and each value with its count (the few most frequent)."""
    from ._compile import _missing, enum_expr

    for c in st.contract.columns:
        if not (c.lenient and c.kind is Kind.ENUM and c.name in st.mapping):
            continue
        s = f"nullif(trim({q(c.name)}), {lit('')})"
        norm = enum_expr(c, s)
        allowed = ", ".join(lit(a) for a in c.allowed)
        rows = st.wh.sql(
            f"SELECT {s} AS v, count(*) AS n FROM {st.load} WHERE {s} IS NOT NULL AND NOT {_missing(s)} "
            f"AND {norm} NOT IN ({allowed}) GROUP BY v ORDER BY n DESC, v"
        ).fetchall()
        if not rows:
            continue
        total = sum(int(n) for _, n in rows)
        shown = ", ".join(f"{v!r} {int(n):,} row(s)" for v, n in rows[:10])
        more = f", and {len(rows) - 10:,} other value(s)" if len(rows) > 10 else ""
        header = st.mapping[c.name]
        st.warn(
            f"{st.src.name}: {total:,} row(s) with a {c.name} ({header!r}) shelfwise does not know "
            f"({shown}{more}): curated as {c.lenient_unknown} (unknown: the rows are kept, their money "
            "never summed with a known currency's; write the code, e.g. ISO 4217's, to have it read)"
            if c.name == "currency"
            else f"{st.name}: {total:,} row(s) with a {c.name} ({header!r}) shelfwise does not know "
            f"({shown}{more}): curated with no {c.name} (the rows are kept)"
        )


NUMBER_MARKS = "meta.number_marks"

# the money columns whose text may carry a currency sign or code (`21,82 €`, `£13.39`, `EUR 12`)
MONEY_COLUMNS = ("price", "value", "unit_price")


def say_currency_signs(st: LoadState) -> None:
    """The currency signs and codes a money column's text carries (stripped when the number is
    read): said in the notes where one, warned of where a column holds more than one (`21,82 €`
    beside `£13.39`: read as one currency, summed as one), naming the file, the column and
    each sign with its count; where the file has a currency column too, the rows whose sign
    names another currency are counted. Only a real sign or code counts (`_compile.money_sign`:
    ISO 4217's upper-case codes, the signs and spellings that name one currency, and `$`): the
    `von` of `von 12` is a word, not a currency. Read from the load's strings: both engines."""
    from ._compile import _missing, enum_expr, money_currency_sql, money_sign_sql, money_signs

    cols = [c for c in MONEY_COLUMNS if c in st.contract.column_names and c in st.mapping]
    if not cols:
        return
    has_currency = "currency" in st.mapping and "currency" in st.contract.column_names
    for col in cols:
        v = q(col)
        signs = money_signs(st.wh.sql, st.load, v)
        sign = money_sign_sql(v, signs)
        rows = st.wh.sql(
            f"SELECT s, count(*) FROM (SELECT {sign} AS s FROM {st.load} WHERE {v} IS NOT NULL "
            f"AND TRY_CAST(trim({v}) AS DOUBLE) IS NULL) WHERE s IS NOT NULL GROUP BY s ORDER BY count(*) DESC, s"
        ).fetchall()
        # (a spelling in any case is one: `Euro` and `EURO`)
        counts: dict[str, int] = {}
        for s, n in rows:
            key = str(s) if len(str(s)) == 1 else str(s).upper()
            counts[key] = counts.get(key, 0) + int(n)
        if not counts:
            continue
        said = ", ".join(f"{s} {n:,} value(s)" for s, n in counts.items())
        if len(counts) == 1:
            ((only, n),) = counts.items()
            st.note(
                f"{st.src.name}: {col}: the currency sign or code {only} was stripped from {n:,} value(s)"
            )
        else:
            st.warn(
                f"{st.src.name}: {col} holds money in {len(counts)} currency signs or codes: {said} - the "
                "signs were stripped and the numbers read alike (shelfwise does not convert): deliver "
                "one file per currency, or a currency column with each row's ISO 4217 code"
            )
        if has_currency:
            spec = next(c for c in st.contract.columns if c.name == "currency")
            code = money_currency_sql(v, signs)
            # (an export's "no value", `n/a`, is no currency given: the money's own is read)
            given = "nullif(trim(currency), '')"
            row = st.wh.sql(
                f"SELECT count(*), min(_source_line) FROM {st.load} WHERE {v} IS NOT NULL AND {code} IS NOT NULL "
                f"AND {given} IS NOT NULL AND NOT {_missing(given)} AND {code} <> {enum_expr(spec, given)}"
            ).fetchone()
            if row and row[0]:
                st.warn(
                    f"{st.src.name}: {col}: {int(row[0]):,} row(s) carry a currency sign or code that is not "
                    f"their currency column's (e.g. line {int(row[1])}): check which currency the money is in"
                )


def money_text_currency(st: LoadState) -> str | None:
    """SQL over the load's strings of each row's currency read from its money's own text (a
    Google Shopping feed's `price` `49.99 EUR`, `€12`, `49,99 €`: `_compile.money_row_currencies`):
    a row's own sign or code names its currency; a row whose `value` and `unit_price` name
    different ones is of unknown currency (`XXX`). In a file without a currency column every
    row's is read so, and a row whose figure names none takes the one currency the file's other
    rows name, when they all name the same. In a file with one, only the rows whose cell is
    empty (or an export's "no value", `n/a`): a filled cell is the row's currency whatever its
    money's text says (`say_currency_signs` warns of the rows where the two disagree). None
    where the file keeps the curated currency or names a constant one, or no row it would read
    names any. Said in the load's notes. Read by both engines (the Spark load's rows are
    written from DuckDB's: `_load_spark.spark_check_rows`)."""
    from ._compile import _missing, money_row_currencies
    from ._contracts import UNKNOWN_CURRENCY

    c = "currency"
    if c not in st.contract.column_names or c in st.filled or c in st.implied:
        return None
    cols = [m for m in MONEY_COLUMNS if m in st.contract.column_names and m in st.mapping]
    if not cols:
        return None
    column = st.mapping.get(c)
    cell = f"trim({q(c)})"
    empty = f"(coalesce({cell}, '') = '' OR {_missing(cell)})"
    own, counts = money_row_currencies(st.wh.sql, st.load, [q(m) for m in cols], empty if column else "true")
    if column is not None:
        return _empty_cells_currency(st, column, cols, empty, own, counts)
    if own is None or not counts:
        return None
    named = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    said = ", ".join(f"{code} {n:,} row(s)" for code, n in named)
    one = [code for code, _ in named if code != UNKNOWN_CURRENCY]
    rest = (
        f"; the rows whose figure names none are read as {one[0]}"
        if len(named) == 1 and len(one) == 1
        else "; the rows whose figure names none have no currency"
    )
    st.note(
        f"{st.src.name}: no currency column: each row's currency read from its money's own sign or code ({said}){rest}"
    )
    if len(named) == 1 and len(one) == 1:
        return f"coalesce({own}, {lit(one[0])})"
    return own


def _empty_cells_currency(
    st: LoadState, column: str, cols: list[str], empty: str, own: str | None, counts: dict[str, int]
) -> str | None:
    """`money_text_currency` for a file with a currency column: an empty cell takes its row's
    money's own sign or code; a row with a plain figure beside an empty cell takes the one
    currency the file names (its filled cells and its other rows' money texts), when it names
    exactly one, as a file without the column reads it (a column present and empty in every row,
    as some exports write it, read its plain figures with no currency). A row without any figure
    is given none, nor an events line (it is in its product's currency). One more scan of the
    load counts such rows and lists the filled cells' currencies."""
    from ._compile import _missing, enum_expr
    from ._contracts import UNKNOWN_CURRENCY

    spec = next(x for x in st.contract.columns if x.name == "currency")
    figure = " OR ".join(
        f"(nullif(trim({q(m)}), '') IS NOT NULL AND NOT {_missing(f'trim({q(m)})')})" for m in cols
    )
    # (a figure naming no currency: `7.00`, `7,00`, `1,234.50`; the same test counts the rows,
    # says them and reads them)
    plain = f"({own}) IS NULL" if own is not None else "true"
    one: str | None = None
    # (an events line whose cell is empty is in its product's currency, read where the money is
    # summed: `insights._customers.money_currency`, the experiments' revenue; a file's other
    # lines say nothing of it: no scan for them)
    row = (
        None
        if st.contract.name == "events"
        else st.wh.sql(
            f"SELECT count(*) FILTER (WHERE {empty} AND ({figure}) AND {plain}), "
            f"list(DISTINCT {enum_expr(spec, f'trim({q(spec.name)})')}) FILTER (WHERE NOT {empty}) FROM {st.load}"
        ).fetchone()
    )
    plain_rows = int(row[0]) if row else 0
    if row and plain_rows:
        # (a filled code shelfwise cannot read is curated as unknown: no one currency then)
        filled = {str(x) if str(x) in spec.allowed else UNKNOWN_CURRENCY for x in (row[1] or [])}
        named_codes = filled | set(counts)
        if len(named_codes) == 1 and UNKNOWN_CURRENCY not in named_codes:
            one = next(iter(named_codes))
    if own is None and one is None:
        return None
    parts = []
    if counts:
        said = ", ".join(
            f"{code} {n:,} row(s)" for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        parts.append(
            f"{st.src.name}: {sum(counts.values()):,} row(s) with an empty currency cell ({column!r}): their "
            f"currency read from their money's own sign or code ({said})"
        )
    if one is not None:
        parts.append(
            f"{st.src.name}: {plain_rows:,} row(s) with a plain figure and an empty currency cell ({column!r}) "
            f"read as {one}, the one currency the file names"
        )
    for line in parts:
        st.note(line)
    read = own if own is not None else "NULL"
    if one is not None:
        read = f"coalesce({read}, CASE WHEN {figure} THEN {lit(one)} END)"
    return f"CASE WHEN {empty} THEN {read} ELSE {q('currency')} END"


def decimal_comma_numbers(st: LoadState) -> bool:
    """Whether the file writes its decimals with a comma, so that `323,136` is 323.136 and not
    three hundred and twenty-three thousand (a European export's `209,3` and `90,93` beside it).
    A file tells when some of its numbers write a comma decimal (`12,99`, `1.299,00`) and none a
    point one (`12.5`, `1,299.00`), or the reverse; what it tells is remembered for the table
    (`meta.number_marks`). A file that does not tell (a day's delivery of `323,136` alone, a row
    re-processed from the quarantine) is read as the table's earlier files told, else with a
    decimal comma when its fields are separated by `;` (what a comma-decimal locale's
    spreadsheet writes). Said in the load's notes when it changes what a value reads as."""
    from ._compile import decimal_comma_counts

    columns = [q(c.name) for c in st.contract.columns if c.kind is Kind.FLOAT and c.name in st.mapping]
    comma, point, either, example = decimal_comma_counts(st.wh.sql, st.load, columns)
    told: bool | None = True if comma and not point else False if point and not comma else None
    # (re-processed rows are no delivery's form; JSON numbers are typed, not a locale's text:
    # an absorb's `19.99` said nothing of how the shop's files write theirs; remembered in the
    # run's transaction: `LoadState.defer`)
    if told is not None and not st.reprocess and st.staged.format == "csv":
        st.defer(lambda: _remember_mark(st, told))
    if not either or example is None:
        return bool(told)
    known = known_decimal_mark(st.wh.sql, st.name) if told is None else None
    comma_decimal, why = decide_decimal_mark(comma, point, known, st.staged.delimiter)
    if comma_decimal:
        st.note(
            f"{st.src.name}: numbers like {example} read with a decimal comma ({example.replace(',', '.')}){why}"
        )
    return comma_decimal


def _remember_mark(st: LoadState, decimal_comma: bool) -> None:
    st.wh.sql(
        f"CREATE TABLE IF NOT EXISTS {NUMBER_MARKS} (table_name VARCHAR PRIMARY KEY, decimal_comma BOOLEAN, "
        "run_id VARCHAR, source_file VARCHAR, decided_at TIMESTAMP)"
    )
    st.wh.sql(
        f"INSERT OR REPLACE INTO {NUMBER_MARKS} VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
        [st.name, decimal_comma, st.run_id, str(st.src)],
    )


def decide_decimal_mark(
    comma: int, point: int, known: tuple[bool, str] | None, delimiter: str
) -> tuple[bool, str]:
    """(decimal comma, why) for a file whose numbers write `comma` unambiguous comma decimals and
    `point` point ones (`decimal_comma_counts`): the one rule of the events load and the order
    lines' derivation. A file tells when it writes one mark and never the other; a file that
    tells nothing (or both) is read as the table's earlier files told (`known`), else with a
    decimal comma when its fields are separated by `;` (a comma-decimal locale's spreadsheet)."""
    if comma and not point:
        return True, ": the file writes decimals with a comma and never with a point"
    if point and not comma:
        return False, ""
    if known is not None:
        where = "/".join(Path(str(known[1])).parts[-2:])
        return bool(known[0]), f", as an earlier file of this table wrote them ({where})"
    if delimiter == ";":
        return (
            True,
            ": no number tells the decimal mark, and fields separated by ';' are a comma-decimal export's",
        )
    return False, ""


def known_decimal_mark(sql: Callable[..., Any], table: str) -> tuple[bool, str] | None:
    """(decimal comma, the file that told) as `table`'s files told it (`meta.number_marks`);
    None when none did."""
    from ..storage._warehouse import has_table

    if not has_table(sql, "meta", "number_marks"):
        return None
    row = sql(
        f"SELECT decimal_comma, source_file FROM {NUMBER_MARKS} WHERE table_name = ?", [table]
    ).fetchone()
    return None if row is None else (bool(row[0]), str(row[1]))


DATE_ORDERS = "meta.date_orders"


def slash_date_counts(sql: Callable[..., Any], relation: str, ts: str) -> tuple[int, int, int, str]:
    """Of a sample of 200,000 slash dates `ts` in `relation`: how many, how many with a first
    field above 12, how many with a second one above 12, and one of them (what tells day first
    from month first: the events load's `day_first_dates`, an order-lines derivation's order)."""

    def part(group: int) -> str:
        return f"TRY_CAST(regexp_extract(v, '^\\s*([0-9]{{1,2}})/([0-9]{{1,2}})/', {group}) AS INTEGER)"

    row = sql(
        f"""SELECT count(*), count(*) FILTER (WHERE a > 12), count(*) FILTER (WHERE b > 12), any_value(v) FROM (
              SELECT {part(1)} AS a, {part(2)} AS b, v FROM (
                SELECT {ts} AS v FROM {relation} WHERE contains({ts}, '/') LIMIT 200000)
              WHERE a IS NOT NULL AND b IS NOT NULL)"""
    ).fetchone()
    slashed, first_big, second_big = (int(v or 0) for v in row[:3]) if row else (0, 0, 0)
    example = str(row[3]).strip() if row and row[3] is not None else "05/01/2024"
    return slashed, first_big, second_big, example


def day_first_dates(st: LoadState) -> bool:
    """Whether the file writes slash dates day first (`25/01/2024`), said in the load's notes.

    The file shows when some first field is above 12 and no second one is (day first), or the
    reverse (month first); what it shows is remembered for the table (`meta.date_orders`). A
    file that does not tell (every field up to 12: `02/01/2026`) is read as the shop's earlier
    files of the table were - a day-2 delivery re-sending a day-1 event then dates it alike, not
    a month apart - else, in an append, in the order under which it continues the table's dates
    (`_nearer_reading`: a guess, remembered as one with the loads it read), and month first when
    nothing tells (a sample of 200,000 such values). A shown order overrules a guessed one, with
    a warning naming the guess and the loads it read; a guess never overrules a shown order (it
    is only made where no order is known), and a few dates showing the other order do not
    overrule a shown one (a typo such as 13/01 in a month-first export)."""
    columns = [c.name for c in st.contract.columns if c.kind is Kind.TIMESTAMP]
    if not columns:
        return False
    slashed, first_big, second_big, example = slash_date_counts(st.wh.sql, st.load, q(columns[0]))
    if not slashed:
        return False
    told = bool(first_big) != bool(second_big)
    row = _known_order_row(st)
    known = None if row is None else _KnownOrder(bool(row[0]), str(row[1]), row[2] == GUESSED, row[3])
    if told:
        day_first = bool(first_big)
        evidence = first_big or second_big
        if known is not None and known.day_first != day_first:
            if known.guessed:  # shown beats guessed, however few the dates that show it
                st.warn(
                    f"{st.src.name}: {evidence} date(s) show {_order(day_first)} (e.g. {example}), "
                    f"against the table's order {_order(known.day_first)}, which was guessed from the "
                    f"nearest dates of {_file(known.source_file)}, not shown by any date; read "
                    f"{_order(day_first)} from now on. The guess read {_loads(known.loads)}: their "
                    f"dates that do not tell were read {_order(known.day_first)}"
                )
            elif evidence < max(10, slashed // 100):
                # a few values against what the table's files showed before (a typo like 13/01
                # in a month-first export): the table's order holds, and those rows fail their check
                st.note(
                    f"{st.src.name}: {evidence} date(s) would be read {'day' if day_first else 'month'} "
                    f"first, against the table's earlier files; kept {'day' if known.day_first else 'month'} "
                    "first (those rows are quarantined if they do not parse)"
                )
                return known.day_first
        _remember_order(st, day_first, SHOWN)
        if day_first:
            st.note(
                f"{st.src.name}: dates like 05/01/2024 read as day/month/year (a first field above 12 "
                "occurs, a second one never does)"
            )
        return day_first
    if first_big and second_big:  # both orders occur: month first (the other rows fail their check)
        return False
    if known is not None:
        if known.guessed and not st.reprocess:  # (a load the guess read: named if a file shows otherwise)
            loads = json.dumps([*_load_list(known.loads), [st.run_id, str(st.src)]])
            st.defer(
                lambda: st.wh.sql(
                    f"UPDATE {DATE_ORDERS} SET loads = ? WHERE table_name = ?", [loads, st.name]
                )
            )
        how = " (itself guessed from that file's nearest dates)" if known.guessed else ""
        st.note(
            f"{st.src.name}: no date tells whether {example} is day or month first; read "
            f"{'day/month' if known.day_first else 'month/day'}/year as in an earlier file of this table "
            f"({_file(known.source_file)}){how}"
        )
        return known.day_first
    nearer = _nearer_reading(st, columns[0])
    if nearer is not None:
        day_first, gaps, last = nearer
        # remembered as a guess: the table's next untold files, and a re-processed row of this
        # one, are read alike (not judged again from a later date), until a file shows the order
        _remember_order(st, day_first, GUESSED)
        (lo, hi), (olo, ohi) = gaps[day_first], gaps[not day_first]
        st.note(
            f"{st.src.name}: no date tells whether {example} is day or month first; read "
            f"{'day/month' if day_first else 'month/day'}/year: this delivery then runs from {lo:%Y-%m-%d} "
            f"to {hi:%Y-%m-%d}, continuing the table's latest date ({last:%Y-%m-%d}); read "
            f"{'month/day' if day_first else 'day/month'}/year it would run from {olo:%Y-%m-%d} to "
            f"{ohi:%Y-%m-%d} (no earlier file of this table told either)"
        )
        return day_first
    st.note(
        f"{st.src.name}: no date tells whether {example} is day or month first; read month/day/year "
        "(no earlier file of this table told either)"
    )
    return False


# how a table's remembered order was decided: shown by a file's dates, or guessed from the nearest
# dates of an append (`meta.date_orders.how`; NULL, from before it was recorded: shown)
SHOWN, GUESSED = "shown", "guessed"


@dataclass(frozen=True)
class _KnownOrder:
    day_first: bool
    source_file: str
    guessed: bool
    loads: str | None  # JSON [[run_id, source_file], ...]: the loads a guessed order read


def _remember_order(st: LoadState, day_first: bool, how: str) -> None:
    """The table's slash-date order, as this delivery decided it (`meta.date_orders`: `how`, and
    for a guess the loads it read, this one first); not in a re-processing (re-processed rows are
    the quarantine's: not a delivery's order)."""
    if not st.reprocess:
        loads = json.dumps([[st.run_id, str(st.src)]]) if how == GUESSED else None

        def remember() -> None:  # (in the run's transaction: `LoadState.defer`)
            _date_orders_table(st)
            st.wh.sql(
                f"INSERT OR REPLACE INTO {DATE_ORDERS} (table_name, day_first, run_id, source_file, "
                "decided_at, how, loads) VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?, ?)",
                [st.name, day_first, st.run_id, str(st.src), how, loads],
            )

        st.defer(remember)


def _date_orders_table(st: LoadState) -> None:
    st.wh.sql(
        f"CREATE TABLE IF NOT EXISTS {DATE_ORDERS} (table_name VARCHAR PRIMARY KEY, day_first BOOLEAN, "
        "run_id VARCHAR, source_file VARCHAR, decided_at TIMESTAMP, how VARCHAR, loads VARCHAR)"
    )
    # (a warehouse from before: its orders were all remembered alike, as shown)
    for column in ("how", "loads"):
        st.wh.sql(f"ALTER TABLE {DATE_ORDERS} ADD COLUMN IF NOT EXISTS {column} VARCHAR")


def _known_order_row(st: LoadState) -> tuple[Any, ...] | None:
    """The table's remembered order (day_first, source_file, how, loads); None when none is (a
    warehouse from before `how` and `loads`: NULL for them, remembered as shown)."""
    from ..storage._warehouse import has_table

    if not has_table(st.wh.sql, "meta", "date_orders"):
        return None
    have = {
        str(r[0])
        for r in st.wh.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'meta' "
            "AND table_name = 'date_orders'"
        ).fetchall()
    }
    cols = ", ".join(c if c in have else f"NULL AS {c}" for c in ("how", "loads"))
    row = st.wh.sql(
        f"SELECT day_first, source_file, {cols} FROM {DATE_ORDERS} WHERE table_name = ?", [st.name]
    ).fetchone()
    return None if row is None else tuple(row)


def _order(day_first: bool) -> str:
    return "day first" if day_first else "month first"


def _file(source: str) -> str:
    return "/".join(Path(source).parts[-2:])


def _load_list(loads: str | None) -> list[list[str]]:
    try:
        got = json.loads(loads) if loads else []
    except ValueError:
        return []
    return [list(x) for x in got] if isinstance(got, list) else []


def _loads(loads: str | None) -> str:
    """The loads a guessed order read, for a warning: "2 load(s): day2/events.csv (run 0191...), ..."."""
    got = _load_list(loads)
    named = ", ".join(f"{_file(src)} (run {run})" for run, src in got)
    return f"{len(got)} load(s): {named}" if got else "no load recorded"


def _nearer_reading(st: LoadState, column: str) -> tuple[bool, dict[bool, tuple[Any, Any]], Any] | None:
    """An append whose slash dates do not tell their order, to a table whose dates do not tell
    either (ISO dates before): the reading under which the delivery continues the table (every
    date from a week before its latest date to two months after), when one reading does and the
    other does not (`05/01/2019` after 2019-01-04 is the 5th of January; read month first it
    landed four months ahead and passed every check). None when neither or both do: a re-send
    of older lines, a backfill, an export of a whole year say nothing by their distance."""
    if st.mode != "append" or st.name not in st.wh.curated_tables():
        return None
    row = st.wh.sql(f"SELECT max({q(column)}) FROM curated.{q(st.name)}").fetchone()
    last = row[0] if row else None
    if last is None:
        return None
    date = f"regexp_extract({q(column)}, '^\\s*([0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{2,4}})', 1)"

    def read(order: str) -> str:  # (two-digit years first: %Y reads `19` as the year 19)
        return f"try_strptime({date}, ['{order}/%y', '{order}/%Y'])"

    row = st.wh.sql(
        f"SELECT min({read('%d/%m')}), max({read('%d/%m')}), min({read('%m/%d')}), max({read('%m/%d')}) "
        f"FROM (SELECT * FROM {st.load} WHERE contains({q(column)}, '/') LIMIT 200000)"
    ).fetchone()
    if not row or any(v is None for v in row):
        return None
    spans = {True: (row[0], row[1]), False: (row[2], row[3])}
    window = last - timedelta(days=CONTINUES_BEFORE_DAYS), last + timedelta(days=CONTINUES_AFTER_DAYS)
    continues = {flag: window[0] <= lo and hi <= window[1] for flag, (lo, hi) in spans.items()}
    if continues[True] == continues[False]:
        return None
    return continues[True], spans, last


# a delivery "continues" its table when all its dates lie from a week before the table's latest
# date to two months after it (a daily, weekly or monthly export of what came since)
CONTINUES_BEFORE_DAYS = 7
CONTINUES_AFTER_DAYS = 62
