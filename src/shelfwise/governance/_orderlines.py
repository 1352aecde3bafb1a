"""Denormalized order-lines exports: one file with order, customer and product columns.

Shops export what their order system holds: one row per order line, with the customer's and the
product's attributes repeated on every line (Tableau's "Superstore" sample is the classic case).
When an events file names product attributes (a product title, by the column map or by name) and
the dataset has no products file, the products are derived from it - one row per product id, its
title, category path (`Category > Sub-Category`) and brand as its latest line says them (by the
order's date, then the file's line; the ids with more than one title are counted in the notes),
and a unit price (the price column, or the median of revenue / quantity / (1 - discount) over
the product's lines). Likewise, without a users file, the customer's attributes (segment,
region, ...: the value of their latest order) become the users table. Both go through their contracts like any file: keys, cleaning,
quarantine, and the users contract leaves personal columns (names, postal codes) out. The events
themselves are the file's rows, read as usual.

A derived table is staged like a file: its rows carry the line of the order line they come from
(the product's or customer's last one in the file), so quarantine names the export's file and line.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import SourceError
from ..storage import StagedFile, Warehouse, stage_file
from ..storage._sources import JSON_DELIMITER, LINE_COLUMN, MAX_QUOTED_BYTES, PART_LINES
from ._compile import DUCKDB, GUEST_USER_IDS, decimal_comma_counts, lit, number_expr, q, timestamp_expr
from ._contracts import PRODUCTS, TableContract
from ._load_raw import unterminated_parts
from ._load_rows import decide_decimal_mark, known_decimal_mark, slash_date_counts

# headers (compared without case, spaces and punctuation) that continue a category path
SUBCATEGORY_KEYS = ("subcategory", "subcategoryname", "subcat", "productsubcategory")
# headers of a customer's attributes on an order line (besides customer_* / client_* columns)
USER_ATTRIBUTE_KEYS = (
    "segment",
    "customersegment",
    "region",
    "country",
    "countryregion",
    "state",
    "province",
    "city",
    "postalcode",
    "zipcode",
    "zip",
    "gender",
    "age",
    "agegroup",
    "loyaltytier",
    "tier",
    "customertype",
    "customername",
)
USER_PREFIXES = ("customer", "client", "buyer")
SALES_KEYS: tuple[str, ...] = ("sales", "revenue", "linetotal", "amount", "pricepaid")
SALES_KEYS += ("totalpricetaxincl", "totalpricetaxexcl")  # (PrestaShop 8's order lines)
QUANTITY_KEYS: tuple[str, ...] = ("quantity", "qty", "units", "quantityordered", "orderquantity")
QUANTITY_KEYS += ("productquantity",)  # (PrestaShop 8's order lines)
DISCOUNT_KEYS = ("discount", "discountrate")


@dataclass
class OrderLines:
    """What was derived from an order-lines events file."""

    tables: dict[str, StagedFile] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)  # table -> how it was derived


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def source_relation(staged: StagedFile, header: list[str], parquet_files: str) -> tuple[str, dict[str, str]]:
    """SQL reading a staged file's rows as text (lines the reader cannot split are skipped:
    the events load quarantines them) and the SQL expression of each header."""
    if staged.format == "csv":
        assert staged.staged is not None
        names = ([LINE_COLUMN] if staged.numbered else []) + [f"c{i}" for i in range(len(header))]
        spec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
        # a file read in place has no line column: its rows in file order (what derivation
        # reads is restaged as a numbered copy first, see `derive`)
        line, rest = (
            (f"TRY_CAST({q(LINE_COLUMN)} AS BIGINT)", f"* EXCLUDE ({q(LINE_COLUMN)})")
            if staged.numbered
            else ("row_number() OVER () + 1", "*")
        )
        rel = (
            f"(SELECT {line} AS _line, {rest} FROM "
            f"read_csv({lit(staged.staged.as_posix())}, header=true, delim={lit(staged.delimiter)}, "
            f"quote='\"', escape='\"', columns={spec}, auto_detect=false, ignore_errors=true, "
            "strict_mode=true, null_padding=false, max_line_size=10000000))"
        )
        return rel, {h: q(f"c{i}") for i, h in enumerate(header)}
    if staged.format == "parquet":  # lines numbered as the events load numbers them
        line, options = "file_row_number + 1", "union_by_name=true, file_row_number=true"
        if len(staged.parts) > 1:
            line = f"(list_position({parquet_files}, filename) - 1) * {PART_LINES} + {line}"
            options += ", filename=true"
        rel = f"(SELECT {line} AS _line, * FROM read_parquet({parquet_files}, {options}))"
        return rel, {h: f"CAST({q(h)} AS VARCHAR)" for h in header}
    assert staged.staged is not None
    rel = (
        f"(SELECT _source_line AS _line, j FROM read_csv({lit(staged.staged.as_posix())}, header=false, "
        f"delim={lit(JSON_DELIMITER)}, quote='', escape='', columns={{'_source_line': 'BIGINT', 'j': 'VARCHAR'}}, "
        "auto_detect=false, max_line_size=10000000) WHERE json_valid(j) AND json_type(j) = 'OBJECT')"
    )

    def field_sql(key: str) -> str:
        path = "$." + '"' + key.replace('"', '\\"') + '"'
        return f"json_extract_string(j, {lit(path)})"

    return rel, {h: field_sql(h) for h in header}


def derive(
    wh: Warehouse,
    staged: StagedFile,
    header: list[str],
    events_mapping: dict[str, str],
    product_map: dict[str, tuple[str, ...]],
    need: set[str],
    staged_dir: Path,
    parquet_files: str,
    *,
    after_curated: bool = False,
    appending: bool = False,
    pseudonym_sql: Callable[[str], tuple[str, list[Any]]] | None = None,
) -> OrderLines:
    """Products and users from an events file that carries their attributes; `need`: the
    tables the dataset has no file for; `product_map`: the column map's products entries
    (headers of this file). Nothing when the file names no product title.

    `after_curated`: the file is a delivery appended to curated events. A product or customer
    whose curated purchases are later than this file's latest line for them keeps its curated
    row (an export re-sending or catching up older orders must not turn a product's title, or a
    customer's segment, back to what an older order said): their rows are left out of the
    derived tables (`pseudonym_sql`: the warehouse's pseudonym of a raw user id, to find a
    customer's curated purchases).

    `appending`: the file is an `--append` delivery. Products and customers curated from a file
    of their own (a catalog, a users file: `from_own_file`) are never overwritten by it, whether
    or not events were curated before (a catalog loaded alone, then the first orders appended)."""
    out = OrderLines()
    pid, uid = events_mapping.get("product_id"), events_mapping.get("user_id")
    if pid is None or not need:
        return out

    by_key: dict[str, str] = {}
    for h in header:
        by_key.setdefault(_key(h), h)
    taken = set(events_mapping.values())
    # events columns that an order line also uses for the product (its revenue, its quantity)
    shared = {events_mapping[c] for c in ("value", "quantity") if c in events_mapping}

    # (only when the products are read from this file: a products file of their own is mapped
    # with its own headers; and only when the file holds some header the map names for the
    # products: a plain events file of a shop whose `shelfwise.toml` maps its catalog export
    # carries none, and is read as events alone, as without the map)
    if not any(h in header for hs in product_map.values() for h in hs):
        product_map = {}
    for column, hs in product_map.items() if "products" in need else ():
        for h in hs:
            if h not in header:
                raise SourceError(
                    str(staged.source),
                    1,
                    f"the column map names products.{column} = {h!r}, which is not a column of this file "
                    f"(the products are read from it: there is no products file); the header has: {', '.join(header)}",
                )

    def find(column: str, contract: TableContract, mapped: bool = True) -> list[str]:
        """This file's headers for `column`: the column map's (`mapped`: only when the products
        are read from this file), else the first of its name and aliases that the file has."""
        if mapped and column in product_map:
            return list(product_map[column])
        spec = contract.column(column)
        for cand in (spec.name, *spec.aliases):
            h = by_key.get(_key(cand))
            if h is not None and h not in taken:
                return [h]
        return []

    # an order-lines export names its products' titles (a plain events file does not): its
    # customers are derived whether or not the products are (a directory with a products file
    # of its own and no users file still gets the customers' attributes)
    order_lines = bool(find("title", PRODUCTS, mapped="products" in need))
    if not order_lines:  # a plain events file: nothing to derive, and nothing read (not its dates)
        return out
    if staged.format == "csv" and not staged.numbered:
        # order lines are read with their file lines (each derived row names its last line): a
        # plain file read in place is staged as a numbered copy for it
        staged = stage_file(staged.source, staged_dir)
    rel, expr = source_relation(staged, header, parquet_files)
    sql = wh.sql

    def text(h: str) -> str:
        return f"nullif(trim({expr[h]}), '')"

    # "latest" is by the order's date, then the file's line (an export is not always in date
    # order: a customer's city from the last line of the file was not that of their last order
    # for 566 of Superstore's 784 customers)
    latest_key = "_line"
    ts = events_mapping.get("timestamp")
    when = "NULL::TIMESTAMP"
    if ts is not None:
        when = f"coalesce({timestamp_expr(text(ts), day_first=_day_first(sql, rel, text(ts)))}, TIMESTAMP '0001-01-01')"
        latest_key = f"({when}, _line)"
    later_known = after_curated and ts is not None

    def newer(table: str, key: str, params: list[Any] | None = None) -> tuple[str, list[Any]]:
        """A filter over a derived table's rows (`_as_of`: its latest line's date): only those
        whose curated row no later order line said (`AS_OF`: the date of the line each derived
        row was read from, by key; a purchase that says nothing of a product, a web or served
        one, does not count)."""
        if not later_known or not wh.exists("meta", "derived_as_of"):
            return "", []
        return (
            f"""WHERE NOT EXISTS (SELECT 1 FROM {AS_OF} m WHERE m.table_name = {lit(table)}
                  AND m.key = {key} AND m.as_of > d._as_of)""",
            params or [],
        )

    if "products" in need:
        title = find("title", PRODUCTS)
        if title:
            cols: dict[str, list[str]] = {"title": title}
            category = find("category", PRODUCTS)
            if category and "category" not in product_map:
                category += [by_key[k] for k in SUBCATEGORY_KEYS if k in by_key and by_key[k] not in taken]
            for name, found in (
                ("category", category),
                *((c, find(c, PRODUCTS)) for c in ("brand", "description")),
            ):
                if found:
                    cols[name] = found
            used = {h for found in cols.values() for h in found}
            select = [f"{text(pid)} AS product_id"]
            for name, found in cols.items():
                select.append(
                    f"nullif(concat_ws(' > ', {', '.join(text(h) for h in found)}), '') AS {q(name)}"
                    if len(found) > 1
                    else f"{text(found[0])} AS {q(name)}"
                )
            price = find("price", PRODUCTS)
            how = ""
            sales = next((by_key[k] for k in SALES_KEYS if k in by_key), None)
            qty = next((by_key[k] for k in QUANTITY_KEYS if k in by_key), None)
            disc = next((by_key[k] for k in DISCOUNT_KEYS if k in by_key), None)
            # the file's decimal mark, as the events load reads it (`323,136` beside `209,3`)
            numeric = [text(h) for h in (price[0] if price else None, sales, disc) if h]
            comma, point, either, _ = decimal_comma_counts(sql, rel, numeric)
            dc = False
            if either:  # (the events load's rule: `decimal_comma_numbers`)
                told = bool(comma) != bool(point)
                known = None if told else known_decimal_mark(sql, "events")
                dc = decide_decimal_mark(comma, point, known, staged.delimiter)[0]

            def num(e: str) -> str:
                return number_expr(e, decimal_comma=dc)

            if price:
                unit = num(text(price[0]))
                how = f"the median of {price[0]!r} over its lines"
                used.add(price[0])
            else:
                unit = "NULL::DOUBLE"
                if sales and qty:
                    n_qty, n_sales = num(text(qty)), num(text(sales))
                    d = f"coalesce({num(text(disc))}, 0)" if disc else "0"
                    # the line's revenue is after its discount: the list price is before it
                    unit = f"CASE WHEN {n_qty} > 0 AND {d} >= 0 AND {d} < 1 THEN {n_sales} / {n_qty} / (1 - {d}) END"
                    how = (
                        f"the median of {sales} / {qty}"
                        + (f" / (1 - {disc})" if disc else "")
                        + " over its lines"
                    )
                    used |= {sales, qty} | ({disc} if disc else set())
            if how:
                select.append(f"{unit} AS _unit")
            names = ["product_id", *cols]
            # one row per product id: each attribute as its latest line says it (an export whose
            # product id carries two titles made two rows, one quarantined `duplicate_key` in
            # every delivery and the other taking turns as "the" title; the ids are counted)
            attributes = ", ".join(
                f"arg_max({q(c)}, _k) FILTER (WHERE {q(c)} IS NOT NULL) AS {q(c)}" for c in cols
            )
            price_out = ", CAST(round(median(_unit), 2) AS VARCHAR) AS price" if how else ""
            lines = f"SELECT _line, {latest_key} AS _k, {when} AS _when, {', '.join(select)} FROM {rel}"
            keep, _ = newer("products", _id_key("d.product_id"))
            keep, catalog_kept = _only_new(wh, "products", _id_key("d.product_id"), keep, appending)
            out.tables["products"] = _write(
                sql,
                staged,
                staged_dir / "products.derived.staged",
                f"""SELECT * FROM (
                      SELECT max(_line) AS {q(LINE_COLUMN)}, product_id, {attributes}{price_out},
                        max(_when) AS _as_of FROM ({lines})
                      WHERE product_id IS NOT NULL GROUP BY product_id) d {keep} ORDER BY 1""",
                names + (["price"] if how else []),
                as_of=("products", _id_key("product_id"), []),
            )
            if catalog_kept:
                _say_added(sql, out, "products", f"SELECT count(DISTINCT product_id) FROM ({lines})")
            elif keep:
                _say_kept(sql, out, "products", f"SELECT count(DISTINCT product_id) FROM ({lines})")
            row = sql(
                f"""SELECT count(*) FROM (SELECT product_id FROM ({lines}) WHERE product_id IS NOT NULL
                    GROUP BY product_id HAVING count(DISTINCT title) > 1)"""
            ).fetchone()
            titled_twice = int(row[0]) if row else 0
            taken |= used - shared
            out.descriptions["products"] = (
                f"one row per product id of the order lines in {staged.source.name}, as its latest line "
                "says it: "
                + ", ".join(f"{c} from {' > '.join(hs)}" for c, hs in cols.items())
                + (f", price = {how}" if how else "")
                + (
                    f"; {titled_twice:,} product id(s) carry more than one title in the export (the "
                    "latest line's is taken)"
                    if titled_twice
                    else ""
                )
            )
    if "users" in need and uid is not None:
        attrs = [
            h
            for h in header
            if h not in taken
            and h != LINE_COLUMN
            and (_key(h) in USER_ATTRIBUTE_KEYS or (_key(h).startswith(USER_PREFIXES) and h != uid))
        ]
        if attrs:
            latest = ", ".join(
                f"arg_max({text(h)}, {latest_key}) FILTER (WHERE {text(h)} IS NOT NULL) AS {q(h)}"
                for h in attrs
            )
            keep, params = "", cast(list[Any], [])
            # a guest checkout's placeholder id beside its order (WooCommerce's 0) is no customer:
            # its rows are read as anonymous sessions (`_compile.GUEST_USER_IDS`)
            sid = events_mapping.get("session_id")
            guests = ", ".join(lit(g) for g in GUEST_USER_IDS)
            no_guest = (
                f"AND NOT (lower({text(uid)}) IN ({guests}) AND {text(sid)} IS NOT NULL)" if sid else ""
            )
            key: tuple[str, str, list[Any]] | None = None
            users_kept = False
            if pseudonym_sql is not None:  # (the as-of dates are kept by pseudonym, never raw ids)
                pseudo, pseudo_params = pseudonym_sql(_id_key("user_id"))
                key = ("users", pseudo, pseudo_params)
                if later_known:
                    pseudo_d, params = pseudonym_sql(_id_key("d.user_id"))
                    keep, params = newer("users", pseudo_d, params)
                if appending:
                    pseudo_d, own = pseudonym_sql(_id_key("d.user_id"))
                    keep, users_kept = _only_new(wh, "users", pseudo_d, keep, appending)
                    params = [*params, *own] if users_kept else params
            out.tables["users"] = _write(
                sql,
                staged,
                staged_dir / "users.derived.staged",
                f"""SELECT * FROM (
                      SELECT max(_line) AS {q(LINE_COLUMN)}, {text(uid)} AS user_id, {latest},
                        max({when}) AS _as_of FROM {rel}
                      WHERE {text(uid)} IS NOT NULL {no_guest} GROUP BY {text(uid)}) d {keep} ORDER BY 1""",
                ["user_id", *attrs],
                params,
                as_of=key,
            )
            if users_kept:
                _say_added(
                    sql, out, "users", f"SELECT count(DISTINCT {text(uid)}) FROM {rel} WHERE true {no_guest}"
                )
            elif keep:
                _say_kept(sql, out, "users", f"SELECT count(DISTINCT {text(uid)}) FROM {rel}")
            out.descriptions["users"] = (
                f"one row per customer of the order lines in {staged.source.name}, with the attributes of "
                f"their latest order: {', '.join(attrs)} (personal ones are left out by the users contract)"
            )
    if out.tables:
        out.notes.append(
            f"{staged.source.name}: an order-lines export (order, customer and product columns): events are its "
            "rows; " + "; ".join(f"{t} derived as {d}" for t, d in out.descriptions.items())
        )
    return out


# the date of the order line each derived products / users row was read from, by key (a product
# id; a user's pseudonym, erased with them): a later delivery's older lines leave those rows as
# they are (`derive(after_curated=...)`)
AS_OF = "meta.derived_as_of"


def _id_key(raw: str) -> str:
    """A raw id as curation reads it (trimmed, `123.0` as `123`): a product's curated id, the
    raw id whose pseudonym is a user's curated one."""
    from ._compile import _clean, _id_value
    from ._contracts import Kind

    return _id_value(_clean(f"nullif(trim({raw}), '')", Kind.ID), DUCKDB)


# where each curated products / users table came from: `file` (a catalog, a users export of its
# own) or `derived` (order lines); an order-lines delivery never overwrites a file's rows
ORIGIN = "meta.derived_origin"


def from_own_file(wh: Warehouse, table: str) -> bool:
    """Whether curated `table` came from a file of its own (a catalog), not from order lines
    (`ORIGIN`; a warehouse from before it: a table with no order line's dates in `AS_OF`)."""
    if table not in wh.curated_tables():
        return False
    if wh.exists("meta", "derived_origin"):
        row = wh.sql(f"SELECT origin FROM {ORIGIN} WHERE table_name = ?", [table]).fetchone()
        if row is not None:
            return bool(row[0] == "file")
    if wh.exists("meta", "derived_as_of"):
        row = wh.sql(f"SELECT count(*) FROM {AS_OF} WHERE table_name = ?", [table]).fetchone()
        return not (row and row[0])
    return True


def _only_new(wh: Warehouse, table: str, key: str, keep: str, appending: bool) -> tuple[str, bool]:
    """`keep` (a filter over the derived rows `d`) narrowed to the keys curated `table` lacks
    when that table came from a file of its own (`from_own_file`): the order lines add what the
    catalog lacks and overwrite none of its fields (walk49b: a delivery of orders rewrote 68
    catalog prices with the lines' discounted median). The filter, and whether it narrowed."""
    if not appending or not from_own_file(wh, table):
        return keep, False
    column = "product_id" if table == "products" else "user_id"
    cond = f"NOT EXISTS (SELECT 1 FROM curated.{table} c WHERE c.{column} = {key})"
    return (f"{keep} AND {cond}" if keep else f"WHERE {cond}"), True


def _say_added(sql: Callable[..., Any], out: OrderLines, table: str, count_all: str) -> None:
    """A note of the derived rows an order-lines delivery adds to a table read from a file of
    its own, and of those it leaves as the file said them."""
    row = sql(count_all).fetchone()
    added = out.tables[table].records
    left = max((int(row[0]) if row else 0) - added, 0)
    whose, file = ("product(s)", "catalog") if table == "products" else ("customer(s)", "users file")
    out.notes.append(
        f"{added:,} {whose} of these order lines not in curated.{table} added from them; {left:,} "
        f"keep their curated row as the {file} said it (order lines never overwrite a {file}'s fields)"
    )


def record_as_of(wh: Warehouse, table: str, *, derived: bool, replace: bool) -> None:
    """After a load of `table` (products, users): a derived one's as-of dates into `AS_OF` (a
    full load's replace the table's; a delivery's replace its keys'); a load from a file of the
    table's own (a catalog, a users export) drops the table's dates: its rows are no order
    line's."""
    _record_origin(wh, table, derived=derived, replace=replace)
    temp = f"_as_of_{table}"
    row = wh.sql("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [temp]).fetchone()
    have = bool(row and row[0])
    if not derived or not have:
        if wh.exists("meta", "derived_as_of"):
            wh.sql(f"DELETE FROM {AS_OF} WHERE table_name = ?", [table])
        if have:
            wh.sql(f"DROP TABLE {temp}")
        return
    wh.sql(f"CREATE TABLE IF NOT EXISTS {AS_OF} (table_name VARCHAR, key VARCHAR, as_of TIMESTAMP)")
    if replace:
        wh.sql(f"DELETE FROM {AS_OF} WHERE table_name = ?", [table])
    else:
        wh.sql(f"DELETE FROM {AS_OF} WHERE table_name = ? AND key IN (SELECT key FROM {temp})", [table])
    wh.sql(
        f"INSERT INTO {AS_OF} SELECT ?, key, max(as_of) FROM {temp} WHERE key IS NOT NULL GROUP BY key",
        [table],
    )
    wh.sql(f"DROP TABLE {temp}")


def _record_origin(wh: Warehouse, table: str, *, derived: bool, replace: bool) -> None:
    """`ORIGIN` after a load of `table`: a file's load makes it `file`; a derived full load
    `derived`; a derived delivery leaves it as it was (rows added to a catalog keep it a
    catalog), `derived` when none was said."""
    wh.sql(f"CREATE TABLE IF NOT EXISTS {ORIGIN} (table_name VARCHAR, origin VARCHAR)")
    if derived and not replace:
        row = wh.sql(f"SELECT count(*) FROM {ORIGIN} WHERE table_name = ?", [table]).fetchone()
        if row and row[0]:
            return
    wh.sql(f"DELETE FROM {ORIGIN} WHERE table_name = ?", [table])
    wh.sql(f"INSERT INTO {ORIGIN} VALUES (?, ?)", [table, "derived" if derived else "file"])


def _say_kept(sql: Callable[..., Any], out: OrderLines, table: str, count_all: str) -> None:
    """A note of the derived rows left out because a later order line said their curated row
    (`count_all`: the SQL counting the file's keys of `table`)."""
    row = sql(count_all).fetchone()
    left = (int(row[0]) if row else 0) - out.tables[table].records
    if left > 0:
        whose = "product(s)" if table == "products" else "customer(s)"
        out.notes.append(
            f"{left:,} {whose} of these order lines keep their curated {table} row: an order of theirs "
            "curated already is dated later, or these lines' dates cannot be read (an older or undated "
            "line does not overwrite what a dated later one said)"
        )


def _write(
    sql: Callable[..., Any],
    staged: StagedFile,
    path: Path,
    query: str,
    header: list[str],
    params: list[Any] | None = None,
    as_of: tuple[str, str, list[Any]] | None = None,
) -> StagedFile:
    """Write a derived table as a staged CSV (line column first) and describe it as staged.
    `query` also gives each row's `_as_of` (its latest line's date): with `as_of` (the table,
    the SQL of a row's key over `_derived`, its parameters) they are kept in the temp table
    `_as_of_<table>` for `record_as_of`, once the table's load is done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sql(f"CREATE OR REPLACE TEMP TABLE _derived AS {query}", params or None)
    if as_of is not None:
        table, key, key_params = as_of
        sql(
            f"CREATE OR REPLACE TEMP TABLE _as_of_{table} AS SELECT {key} AS key, _as_of AS as_of FROM _derived "
            "WHERE _as_of IS NOT NULL",
            key_params or None,
        )
    columns = ", ".join(q(c) for c in [LINE_COLUMN, *header])
    sql(
        f"COPY (SELECT {columns} FROM _derived) TO {lit(path.as_posix())} "
        """(FORMAT CSV, HEADER, DELIMITER ',', QUOTE '"', ESCAPE '"')"""
    )
    row = sql("SELECT count(*) FROM _derived").fetchone()
    sql("DROP TABLE _derived")
    return StagedFile(
        source=staged.source,
        staged=path,
        format="csv",
        parts=list(staged.parts),
        part_sha256=list(staged.part_sha256),
        delimiter=",",
        header=header,
        sha256=staged.sha256,
        size_bytes=staged.size_bytes,
        records=int(row[0]) if row else 0,
        line_scale=staged.line_scale,  # (a packed order's product: its row's line, and its place)
        unterminated=unterminated_parts(staged),
    )


__all__ = ["OrderLines", "derive", "source_relation"]


def _day_first(sql: Callable[[str], Any], rel: str, ts: str) -> bool:
    """Whether the export writes slash dates day first (`25/01/2024`), for ordering a customer's
    lines by their dates: some first field above 12 and no second one, or the reverse; when the
    file does not tell (every field up to 12), as the events table's earlier files told
    (`meta.date_orders`, what the events load reads them by), else month first."""
    _, first_big, second_big, _ = slash_date_counts(sql, rel, ts)
    if bool(first_big) != bool(second_big):
        return bool(first_big)
    if first_big:  # both orders occur: month first, as the events load reads them
        return False
    has = sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'meta' AND table_name = 'date_orders'"
    ).fetchone()
    if has and has[0]:
        known = sql("SELECT day_first FROM meta.date_orders WHERE table_name = 'events'").fetchone()
        if known is not None:
            return bool(known[0])
    return False


# BigCommerce's default Orders export: one row per order, its products packed in one cell,
# `Product ID: 77, Product Qty: 2, Product SKU: ABC-1, Product Name: Chair, ..., Product Total
# Price: 20.00 | Product ID: 80, ...`. Read as one order line per product: the order's columns
# and the product's fields (`Product ID`, `Product Qty`, ...: the events contract reads them by
# their aliases). Each line is numbered `row line * scale + k` (the row's k-th product), the
# scale PACKED_LINES unless an order packs that many products or more (`_packed_scale`: the next
# power of ten); quarantine names the row's line and k (`_load_publish.account`).
PACKED_KEYS = ("productdetails",)
PACKED_LINES = 1000
# a packed cell of a large order (about 180 bytes a product) passes the csv module's default
# field limit (128 KiB: an order of ~700 products): raised to what staging keeps in one field
csv.field_size_limit(max(csv.field_size_limit(), MAX_QUOTED_BYTES))
PACKED_FIELDS = (
    "Product ID",
    "Product Qty",
    "Product SKU",
    "Product Name",
    "Product Weight",
    "Product Variation Details",
    "Product Unit Price",
    "Product Total Price",
)
_PACKED_FIELD = re.compile(r"(?:^|,\s*)(" + "|".join(re.escape(f) for f in PACKED_FIELDS) + r"):[ \t]?")
# (a product is split from the next at a ` | ` before a field's name: a name may hold a `|`)
_PACKED_PART = re.compile(r"\s*\|\s*(?=(?:" + "|".join(re.escape(f) for f in PACKED_FIELDS) + r"):)")


def packed_products(cell: str) -> list[tuple[dict[str, str] | None, str, str]]:
    """The products of a packed `Product Details` cell: (fields, text, why) per part, fields None
    for a part that cannot be read (no `Product ID: ...` in it; `why` says so)."""
    out: list[tuple[dict[str, str] | None, str, str]] = []
    for part in _PACKED_PART.split(cell.strip()):
        if not part.strip():
            continue
        found = list(_PACKED_FIELD.finditer(part))
        fields: dict[str, str] = {}
        for i, m in enumerate(found):
            end = found[i + 1].start() if i + 1 < len(found) else len(part)
            fields[m.group(1)] = part[m.end() : end].strip()
        lead = part[: found[0].start()].strip() if found else part.strip()
        if not found or lead or not fields.get("Product ID"):
            why = (
                "a packed product that names no product ('Product ID: ...' missing or empty)"
                if not lead or not found
                else f"text before its first field: {lead[:80]!r}"
            )
            out.append((None, part, f"Product Details: unreadable packed product: {why}"))
            continue
        out.append((fields, part, ""))
    return out


def packed_column(header: list[str]) -> str | None:
    """The header of the packed products cell of an orders export, or None."""
    return next((h for h in header if _key(h) in PACKED_KEYS), None)


def _looks_packed(staged: StagedFile, at: int, rows: int = 100) -> bool:
    """Whether the first non-empty cells of column `at` (of the first `rows` rows) are packed
    products: most of them start with `Product ID:`."""
    assert staged.staged is not None
    seen = packed = 0
    with open(staged.staged, encoding="utf-8-sig", newline="") as src:
        reader = csv.reader(src, delimiter=staged.delimiter)
        next(reader, None)
        for row in reader:
            if staged.numbered:
                row = row[1:]
            cell = row[at].strip() if at < len(row) else ""
            if cell:
                seen += 1
                packed += cell.startswith("Product ID:")
            if seen >= rows:
                break
    return seen > 0 and packed * 2 > seen


def _packed_scale(staged: StagedFile, at: int) -> int:
    """The line scale of an unpacked orders export: PACKED_LINES, or the power of ten above the
    most products one order's cell packs (a large order is read whole, never a reason to stop
    the file): the file's order lines keep PACKED_LINES' numbers unless one order needs more."""
    assert staged.staged is not None
    most = 0
    with open(staged.staged, encoding="utf-8-sig", newline="") as src:
        reader = csv.reader(src, delimiter=staged.delimiter)
        next(reader, None)
        for row in reader:
            cell = row[at + 1 if staged.numbered else at] if len(row) > at + staged.numbered else ""
            if "|" in cell:  # (an upper bound of its parts: an empty part is skipped)
                most = max(most, len(_PACKED_PART.findall(cell)) + 1)
    return max(PACKED_LINES, 10 ** len(str(most)))


def unpack_orders(staged: StagedFile, staged_dir: Path) -> tuple[StagedFile, str | None]:
    """`staged` as one record per packed product (a new numbered staged copy) when it is a CSV
    file whose header has a packed `Product Details` column and no `Product ID` of its own, and a
    note saying how many orders held how many lines; else `staged` as it is and None. A row whose
    cell is empty, or a part that cannot be read, is a rejected record of its own (quarantined as
    malformed_row with why), never dropped: rows in = lines read."""
    if staged.format != "csv" or staged.staged is None:
        return staged, None
    header = list(staged.header)
    packed = packed_column(header)
    if packed is None or any(_key(h) == _key("Product ID") for h in header):
        return staged, None
    at = header.index(packed)
    if not _looks_packed(staged, at):  # a free-text `Product Details` column of another export
        return staged, None
    kept = [h for i, h in enumerate(header) if i != at]
    # two variants of one product in an order (`Size: S`, `Size: M`: one `Product ID`, the
    # variation not curated) would be two equal lines, the second quarantined as a duplicate:
    # such lines carry an event id of their own, the order's id and the product's place
    order_at = next((i for i, h in enumerate(kept) if _key(h) == "orderid"), None)
    with_ids = order_at is not None and not any(_key(h) == "eventid" for h in kept)
    ids = ["event_id"] if with_ids else []
    out_header = [LINE_COLUMN, *kept, *PACKED_FIELDS, *ids]
    staged_dir.mkdir(parents=True, exist_ok=True)
    target = staged_dir / (staged.source.name.removesuffix(".gz") + ".unpacked.staged")
    scale = _packed_scale(staged, at)
    info = StagedFile(
        source=staged.source,
        staged=target,
        format="csv",
        parts=list(staged.parts),
        part_sha256=list(staged.part_sha256),
        delimiter=",",
        header=[*kept, *PACKED_FIELDS, *ids],
        sha256=staged.sha256,
        size_bytes=staged.size_bytes,
        blank_lines=staged.blank_lines,
        transcoded_lines=staged.transcoded_lines,
        nul_bytes=staged.nul_bytes,
        notes=list(staged.notes),
        line_scale=scale,
        unterminated=unterminated_parts(staged),
    )
    # (lines staging rejected itself keep their numbers, scaled: one record of their line)
    info.bad_lines = [(line * scale, text, why) for line, text, why in staged.bad_lines]
    orders = lines = 0
    unreadable_orders = 0
    rejected = len(info.bad_lines)  # (rows not read as an order: the unreadable parts are the rest)
    with (
        open(staged.staged, encoding="utf-8-sig", newline="") as src,
        open(target, "w", encoding="utf-8", newline="") as dst,
    ):
        reader = csv.reader(src, delimiter=staged.delimiter)
        writer = csv.writer(dst, lineterminator="\n")
        next(reader, None)  # the header
        writer.writerow(out_header)
        for n, row in enumerate(reader):
            if staged.numbered:
                line, row = int(row[0]), row[1:]
            else:
                line = n + 2
            if len(row) != len(header):  # (the events load's reader would reject it: so does this)
                text = staged.delimiter.join(row)
                info.bad_lines.append(  # (the whole row: its place 0, no product named)
                    (line * scale, text, f"{len(row)} field(s) where the header has {len(header)}")
                )
                rejected += 1
                continue
            orders += 1
            base = [v for i, v in enumerate(row) if i != at]
            parts = packed_products(row[at])
            if not parts:
                info.bad_lines.append(
                    (
                        line * scale,
                        staged.delimiter.join(row),
                        f"{packed}: no product in the order's cell",
                    )
                )
                unreadable_orders += 1
                continue
            seen = Counter((f or {}).get("Product ID", "").strip() for f, _, _ in parts if f is not None)
            for k, (fields, text, why) in enumerate(parts, start=1):
                if fields is None:
                    info.bad_lines.append((line * scale + k, text, why))
                    continue
                event = []
                if with_ids:
                    assert order_at is not None
                    twice = seen[fields.get("Product ID", "").strip()] > 1
                    event = [f"{base[order_at].strip()}#{k}" if twice and base[order_at].strip() else ""]
                writer.writerow(
                    [line * scale + k, *base, *(fields.get(f, "") for f in PACKED_FIELDS), *event]
                )
                lines += 1
    info.records = lines
    if staged.numbered:
        staged.staged.unlink(missing_ok=True)
    unreadable = len(info.bad_lines) - rejected - unreadable_orders
    note = (
        f"{staged.source.name}: {orders:,} order(s) packed their products in {packed!r} (BigCommerce's "
        f"Orders export) and held {lines + unreadable:,} order line(s): read as one row per product"
        + (f" ({unreadable:,} that could not be read quarantined as malformed_row)" if unreadable else "")
        + (f"; {unreadable_orders:,} order(s) with no product quarantined" if unreadable_orders else "")
        + "; a line's quarantine names its order's row and the product's place in the cell"
    )
    return info, note
