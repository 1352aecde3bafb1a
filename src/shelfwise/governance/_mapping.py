"""Column mappings: a shop's own headers -> the canonical columns of a table.

A mapping comes from a small file beside the data, `shelfwise.toml`:

    [map.events]
    timestamp = "Order Date"
    user_id = "Customer ID"

    [map.products]
    category = ["Category", "Sub-Category"]   # several columns: one category path

and from `--map table.column=HEADER` flags (repeatable), which override the file. Besides the
contract's columns, a map may name a column the load reads but never curates (`READ_COLUMNS`):
an order-lines export's order status, `[map.events] order_status = "Etat"`
(`--map events.order_status=Etat`), whose cancelled, refunded and unpaid orders are set aside.

A `[files]` table in the same file names the file a canonical table is read from when the shop's
export is not named after it (by default `events.csv`, `products.parquet`, ...):

    [files]
    events = "orders_2026.csv"
    products = "catalog export.csv"

Any header may be kept as one product attribute (a key of `products.attributes`, the JSON object
search matches and the models read) with `--map products.attributes.fit=Fit`, or in the file

    [map.products.attributes]
    fit = "Fit"
    heel_height = "Heel Height"

(a variant's well-known `size`, `color`, `material`, `gender`, `age_group` and `pattern`
columns are kept so by name, `ATTRIBUTE_HEADERS`, each under one key whatever its spelling:
`colour`, `Farbe` and `couleur` are `color`, `taille` and `Größe` are `size`). A mapped
column wins over the contract's own header names; the other columns are still matched by name.
The file is read with the standard library's tomllib; an unknown table or canonical column is a
clear error at once, before anything is loaded.

When a required column is missing, `suggest_columns` names the likely headers: close spellings
(difflib) and headers whose values look like the column (dates for a timestamp, event names for
an event type), with the exact flag and TOML lines to write.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError, SourceError, did_you_mean
from ._contracts import CONTRACTS, Kind, TableContract

MAP_FILE = "shelfwise.toml"
# words in a header that holding dates make it the likely event time (not a ship or birth date)
EVENT_TIME_WORDS = ("date", "time", "day", "when", "placed", "ordered", "created", "purchased", "occurred")
# words (or their beginnings) that make a date column a later or another moment than the
# event's: never ranked above one without them (Superstore's "Ship Date" beside a "Placed On" would date purchases by shipping)
OTHER_TIME_WORDS = (
    "ship", "deliver", "dispatch", "return", "refund", "cancel", "expir", "birth", "update", "modified",
)  # fmt: skip
# words in a header that make it a likely id of a user, a product, a query
ID_WORDS = {
    "user_id": ("customer", "user", "client", "member", "visitor", "buyer", "shopper", "account"),
    "product_id": ("product", "item", "article", "sku", "asin", "variant", "offer"),
    "query_id": ("query", "search", "qid"),
}
# the canonical columns that may be built from several source columns (joined as a path)
MULTI_COLUMN = {("products", "category")}
# columns a map may name that are read by the load, not curated: an order-lines export's order
# status (PrestaShop's `current_state`, a shop's own `Etat`), whose cancelled, refunded and
# unpaid orders' lines are set aside (`_load_aside`); found by name when not mapped
READ_COLUMNS: dict[str, tuple[str, ...]] = {"events": ("order_status",)}
# the JSON column of a table a header may be kept in as one of its keys (`products.attributes.fit`)
ATTRIBUTE_COLUMNS = {"products": "attributes"}
# the headers (compared as `column_key`s) kept as product attributes by name: a Google Shopping
# feed's (and any variant catalog's) size, colour, material, gender, age group and pattern ->
# the attribute's key
# (one canonical key per attribute, whatever the spelling: `colour`, German `Farbe` and French
# `couleur` are all `color`, so that facets and similar items see one key)
ATTRIBUTE_HEADERS = {
    "size": "size",
    "taille": "size",
    "größe": "size",
    "groesse": "size",
    "color": "color",
    "colour": "color",
    "farbe": "color",
    "couleur": "color",
    "material": "material",
    "gender": "gender",
    "agegroup": "age_group",
    "pattern": "pattern",
}


def attribute_key(key: str) -> str:
    """The canonical key of an attribute spelled `key` (`Colour` -> `color`, `age group` ->
    `age_group`, `ATTRIBUTE_HEADERS`); any other key as it is."""
    return ATTRIBUTE_HEADERS.get("".join(ch for ch in key.lower() if ch.isalnum()), key)


@dataclass
class ColumnMap:
    """table -> canonical column -> the source header(s) it is read from; `origin` says where
    each entry came from (the file or a flag), for error messages and the report."""

    tables: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # table -> its file's name (`[files]`)
    # table -> a column read, not curated (`READ_COLUMNS`) -> its header
    reads: dict[str, dict[str, str]] = field(default_factory=dict)
    # table -> an attribute's key -> its header (`products.attributes.fit=Fit`)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    def for_table(self, table: str) -> dict[str, tuple[str, ...]]:
        return self.tables.get(table, {})

    def attributes_for(self, table: str) -> dict[str, str]:
        return self.attributes.get(table, {})

    def __bool__(self) -> bool:
        return any(self.tables.values()) or any(self.reads.values()) or any(self.attributes.values())

    def set(self, table: str, column: str, headers: Sequence[str], origin: str) -> None:
        contract = _contract(table, origin)
        json_column = ATTRIBUTE_COLUMNS.get(table)
        if json_column is not None and column.startswith(json_column + "."):
            self._set_attribute(table, column[len(json_column) + 1 :], headers, origin)
            return
        reads = READ_COLUMNS.get(table, ())
        if column not in contract.column_names and column not in reads:
            also = f", and {', '.join(reads)} (read, not curated)" if reads else ""
            if json_column is not None:
                also += f", and {json_column}.KEY (a header kept as the attribute KEY)"
            raise ShelfwiseError(
                f"{origin}: {table} has no column {column!r}"
                f"{did_you_mean(column, [*contract.column_names, *reads])}"
                f"; its columns: {', '.join(contract.column_names)}{also}"
            )
        if not headers or any(not isinstance(h, str) or not h.strip() for h in headers):
            raise ShelfwiseError(f"{origin}: {table}.{column} must name a column of the file (a string)")
        if column in reads:  # (an order's status: read to set lines aside, never curated)
            if len(headers) > 1:
                raise ShelfwiseError(f"{origin}: {table}.{column} is read from one column")
            self.reads.setdefault(table, {})[column] = headers[0].strip()
            self.origin[(table, column)] = origin
            return
        if len(headers) > 1 and (table, column) not in MULTI_COLUMN:
            raise ShelfwiseError(
                f"{origin}: {table}.{column} is read from one column; only "
                f"{', '.join(f'{t}.{c}' for t, c in sorted(MULTI_COLUMN))} may join several"
            )
        self.tables.setdefault(table, {})[column] = tuple(h.strip() for h in headers)
        self.origin[(table, column)] = origin

    def _set_attribute(self, table: str, key: str, headers: Sequence[str], origin: str) -> None:
        """`products.attributes.KEY=HEADER`: the header's value kept as the attribute KEY."""
        json_column = ATTRIBUTE_COLUMNS[table]
        key = key.strip()
        if not key:
            raise ShelfwiseError(
                f"{origin}: name the attribute: {table}.{json_column}.KEY=HEADER, e.g. "
                f"--map {table}.{json_column}.fit=Fit"
            )
        if len(headers) != 1 or not isinstance(headers[0], str) or not headers[0].strip():
            raise ShelfwiseError(f"{origin}: {table}.{json_column}.{key} is read from one column (a string)")
        self.attributes.setdefault(table, {})[key] = headers[0].strip()
        self.origin[(table, f"{json_column}.{key}")] = origin

    def set_file(self, table: str, name: Any, origin: str) -> None:
        """`table` is read from the file `name` of the data directory."""
        _contract(table, origin)
        if not isinstance(name, str) or not name.strip():
            raise ShelfwiseError(f"{origin}: {table} must name a file of the data directory (a string)")
        name = name.strip()
        if Path(name).is_absolute() or ".." in Path(name).parts or Path(name).name != name:
            raise ShelfwiseError(
                f"{origin}: {table} = {name!r}: name a file of the data directory itself (no path)"
            )
        self.files[table] = name

    def describe(self) -> dict[str, dict[str, str]]:
        """As the report shows it: table -> canonical -> "Header" (or "A > B")."""
        out = {t: {c: " > ".join(h) for c, h in cols.items()} for t, cols in self.tables.items() if cols}
        for t, read in self.reads.items():
            out.setdefault(t, {}).update(read)
        for t, attrs in self.attributes.items():
            out.setdefault(t, {}).update({f"{ATTRIBUTE_COLUMNS[t]}.{k}": h for k, h in attrs.items()})
        return out


def _contract(table: str, origin: str) -> TableContract:
    if table not in CONTRACTS:
        raise ShelfwiseError(
            f"{origin}: unknown table {table!r}{did_you_mean(table, CONTRACTS)}; tables: {', '.join(CONTRACTS)}"
        )
    return CONTRACTS[table]


def read_map_file(path: Path, into: ColumnMap | None = None) -> ColumnMap:
    """The `[map.<table>]` sections of a `shelfwise.toml`."""
    out = into if into is not None else ColumnMap()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(str(path), None, f"unreadable: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(str(path), None, f"not valid TOML: {exc}") from exc
    unknown = sorted(set(doc) - {"map", "files"})
    if unknown:
        raise SourceError(
            str(path),
            None,
            f"unknown section(s) {', '.join(unknown)}: a column mapping is written under [map.<table>], "
            'e.g. [map.events] then timestamp = "Order Date"; the file of a table under [files], '
            'e.g. events = "orders_2026.csv"',
        )
    files = doc.get("files", {})
    if not isinstance(files, dict):
        raise SourceError(str(path), None, '[files] must hold TABLE = "FILE NAME" lines')
    for table, name in files.items():
        out.set_file(table, name, f"{path} [files]")
    sections = doc.get("map", {})
    if not isinstance(sections, dict):
        raise SourceError(str(path), None, "[map] must hold [map.<table>] sections")
    for table, cols in sections.items():
        where = f"{path} [map.{table}]"
        if not isinstance(cols, dict):
            raise SourceError(str(path), None, f'map.{table} must be a section of column = "HEADER" lines')
        for column, headers in cols.items():
            if isinstance(headers, dict) and column == ATTRIBUTE_COLUMNS.get(table):
                # [map.products.attributes] fit = "Fit": each key an attribute
                for key, header in headers.items():
                    out.set(table, f"{column}.{key}", [header], f"{where}.{column}")
                continue
            seq = [headers] if isinstance(headers, str) else headers if isinstance(headers, list) else None
            if seq is None:
                raise ShelfwiseError(f"{where}: {column} must be a header name (a string) or a list of them")
            out.set(table, column, seq, where)
    return out


def parse_map_flags(flags: Iterable[str], into: ColumnMap | None = None) -> ColumnMap:
    """`table.column=HEADER` flags (the header may hold spaces and `=`; quote it in the shell).
    A column given twice or more reads every header given, in order, as `shelfwise.toml`'s
    list does (`--map products.category=Dept --map 'products.category=Sub Dept'`: the category
    path); the flags for a column replace the file's entry."""
    out = into if into is not None else ColumnMap()
    given: dict[tuple[str, str], list[str]] = {}
    for flag in flags:
        target, sep, header = flag.partition("=")
        table, dot, column = target.strip().partition(".")
        if not sep or not dot or not header.strip():
            raise ShelfwiseError(
                f"--map {flag!r}: write TABLE.COLUMN=HEADER, e.g. --map 'events.timestamp=Order Date'"
            )
        headers = given.setdefault((table.strip(), column.strip()), [])
        if header in headers:  # (the same flag twice says it once)
            continue
        headers.append(header)
        out.set(table.strip(), column.strip(), headers, f"--map {flag}")
    return out


def load_column_map(data_dir: Path | None, flags: Sequence[str] = ()) -> ColumnMap:
    """The mapping for a dataset directory: its `shelfwise.toml` (when there is one), then the
    flags on top (a flag replaces the file's entry for the same column)."""
    out = ColumnMap()
    if data_dir is not None and (data_dir / MAP_FILE).is_file():
        read_map_file(data_dir / MAP_FILE, out)
    return parse_map_flags(flags, out)


# -- suggestions for a missing column ---------------------------------------------------------------
def suggest_columns(
    contract: TableContract,
    missing: str,
    header: Sequence[str],
    samples: Mapping[str, Sequence[str]],
    used: Iterable[str] = (),
    known: Callable[[list[str]], int] | None = None,
) -> list[tuple[str, str]]:
    """The headers that may hold canonical column `missing`, best first, each with why: its
    values look like the column's kind, or its name is close. `used` headers (already mapped to
    other columns) are left out. `known`: how many of some values are the ids another file
    names (a users file's key: the events' user ids): a header whose values are comes first. A
    column of e-mail addresses is never advised as a customer key ahead of an id column."""
    from ._row_check import parse_number, parse_timestamp

    spec = contract.column(missing)
    taken = set(used)
    names = [missing, *spec.aliases]
    scored: dict[str, tuple[float, str]] = {}

    given = {h: [v.strip() for v in vs if v is not None and v.strip()] for h, vs in samples.items()}
    mails = {h for h, vs in given.items() if vs and sum(bool(_EMAIL.match(v)) for v in vs) >= 0.8 * len(vs)}

    def implausible(h: str) -> bool:
        """A header whose values cannot be the column's, whatever its name: empty in every
        sampled row (Shopify's `Device ID`, `Location`), links for an id (`Variant Image`), no
        event names for an event type, no dates for a time."""
        if h not in given:  # (no samples: names alone decide)
            return False
        vals = given[h]
        if not vals:
            return True
        if spec.kind is Kind.ID:
            return sum(bool(_LINK.match(v)) or len(v) > 64 for v in vals) > 0.2 * len(vals)
        if spec.kind is Kind.ENUM:
            allowed = {a for a in spec.allowed} | {a for a, _ in spec.synonyms}
            return sum(v.lower().replace(" ", "_").replace("-", "_") in allowed for v in vals) < 0.5 * len(
                vals
            )
        if spec.kind is Kind.TIMESTAMP:
            return sum(parse_timestamp(v) is not None for v in vals) < 0.5 * len(vals)
        return False

    def offer(h: str, score: float, why: str) -> None:
        if spec.kind is Kind.ID and _describes(h) and not (missing == "user_id" and h in mails):
            return  # `Product Name` holds titles, `Customer Name` names: no id to map
        if implausible(h):
            return
        if h not in taken and (h not in scored or scored[h][0] < score):
            scored[h] = (score, why)

    keys = [_key(n) for n in names]
    ratios = {h: max(difflib.SequenceMatcher(None, _key(h), k).ratio() for k in keys) for h in header}
    for h in header:
        if ratios[h] >= 0.6 or any(k and k in _key(h) for k in keys):
            offer(h, 1.0 + ratios[h], "a similar name")
    if missing == "user_id":  # a shop that keys its customers on their e-mail (Shopify's orders)
        for h in mails:
            # (no example: an address is a customer's, and the advice lands in the audit log)
            # (below an id column's 2.5: `id_customer` beside `email` is the key)
            offer(h, 2.4, "holds e-mail addresses, a customer key")
    for h, values in samples.items():
        vals = [v.strip() for v in values if v is not None and v.strip()]
        if not vals or h in taken:
            continue
        # a sample of a personal column (an e-mail, a phone, a name) is never quoted: the advice
        # goes into the error, and from there into the hash-chained audit log and lineage
        personal = h in mails or _personal(h) or any(_EMAIL.match(v) for v in vals[:5])
        example = "its values not quoted: personal data" if personal else f"e.g. {vals[0][:40]!r}"
        if spec.kind is Kind.TIMESTAMP:
            from datetime import datetime

            def plausible(v: str) -> bool:
                ts = parse_timestamp(v)
                return ts is not None and datetime(1990, 1, 1) <= ts <= datetime(2100, 1, 1)

            share = sum(plausible(v) for v in vals) / len(vals)
            # a column of small numbers parses as epoch seconds of 1970: not a date
            if share >= 0.8:
                bonus = 0.5 if any(w in _key(h) for w in EVENT_TIME_WORDS) else 0.0
                parts = re.findall(r"[a-z]+", h.lower())
                if any(w.startswith(o) for w in parts for o in OTHER_TIME_WORDS):
                    bonus -= 1.5  # below every date column without such a word (at most 2.2 < 2.8)
                # of several date columns (order date, ship date) the closest name first
                offer(h, 2.0 + share + bonus + 0.2 * ratios.get(h, 0.0), f"holds dates, {example}")
        elif spec.kind is Kind.ENUM:
            allowed = {a for a in spec.allowed} | {a for a, _ in spec.synonyms}
            share = sum(v.lower().replace(" ", "_").replace("-", "_") in allowed for v in vals) / len(vals)
            if share >= 0.5:
                offer(h, 2.0 + share, f"holds {missing} values, {example}")
        elif spec.kind is Kind.FLOAT:
            share = sum(parse_number(v) is not None for v in vals) / len(vals)
            if share >= 0.9 and h in scored:
                offer(h, scored[h][0] + 0.5, f"a similar name, holds numbers, {example}")
        elif spec.kind is Kind.ID:
            words = ID_WORDS.get(missing, ())
            if any(w in _key(h) for w in words):
                # (`Customer ID`, and PrestaShop's `id_customer`)
                idlike = _key(h).endswith(ID_ENDINGS) or h.lower().startswith(ID_STARTS)
                offer(h, 2.2 + 0.3 * idlike, f"{'an id column' if idlike else 'names one'}, {example}")
    if known is not None:  # the column whose values are the other file's ids first
        for h in list(scored):
            vals = given.get(h, [])
            hits = known(vals) if vals else 0
            if hits:
                score, why = scored[h]
                scored[h] = (
                    score + 1.0,
                    f"its values are the events' user ids ({hits} of {len(vals)} sampled), {why}",
                )
    return [(h, why) for h, (_, why) in sorted(scored.items(), key=lambda kv: -kv[1][0])][:3]


def mapping_advice(table: str, picks: Mapping[str, str]) -> str:
    """The exact flags and TOML lines that map `picks` (canonical -> header)."""
    flags = " ".join(f"--map '{table}.{c}={h}'" for c, h in picks.items())
    toml = "\n".join(f'    {c} = "{h}"' for c, h in picks.items())
    return f"say which with {flags}\n  or in the data directory's {MAP_FILE}:\n    [map.{table}]\n{toml}"


def _personal(header: str) -> bool:
    """Whether a header names personal data (`classify_extra_column`: e-mail, phone, names...)."""
    from ._contracts import Classification, classify_extra_column

    return classify_extra_column(header) is Classification.PERSONAL


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LINK = re.compile(r"^(https?:)?//|^www\.", re.IGNORECASE)

# how an id column's name ends (`Product ID`, `Client No`, `sku`)
ID_ENDINGS = ("id", "code", "sku", "number", "no", "ref")
# how an id column's name starts (PrestaShop's `id_customer`, `id_product`)
ID_STARTS = ("id_", "id ", "id-")
# words of a header that describes a thing rather than naming it by an id
_DESCRIBING = ("name", "title", "desc", "category", "brand", "price", "segment", "type", "date", "email")


def _describes(header: str) -> bool:
    """Whether a header holds a description (a title, a name, a category...), not an id: its
    name says so and does not end the way an id column's does (`Product Name`, not `Name ID`)."""
    key = _key(header)
    return any(w in key for w in _DESCRIBING) and not key.endswith(ID_ENDINGS)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


__all__ = [
    "ATTRIBUTE_COLUMNS",
    "ATTRIBUTE_HEADERS",
    "ID_WORDS",
    "MAP_FILE",
    "READ_COLUMNS",
    "ColumnMap",
    "attribute_key",
    "load_column_map",
    "mapping_advice",
    "parse_map_flags",
    "read_map_file",
    "suggest_columns",
]
