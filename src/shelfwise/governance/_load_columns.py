"""A file's columns: its header, and which header is which canonical column (the column map
first, then names and aliases), with advice naming the likely column when one is missing."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceError
from ..storage import StagedFile, Warehouse
from ..storage._sources import JSON_DELIMITER, LINE_COLUMN
from ._compile import FALSE_TOKENS, MISSING_TOKENS, TRUE_TOKENS, lit, q
from ._contracts import (
    AVAILABILITY_WORDS,
    EVENTS,
    IMPLIED_EVENT_TYPES,
    ORDER_ID_ALIASES,
    TableContract,
    implied_event_type,
)
from ._load_state import column_key, match_headers, parquet_files
from ._mapping import (
    ATTRIBUTE_COLUMNS,
    ATTRIBUTE_HEADERS,
    ID_ENDINGS,
    MAP_FILE,
    ColumnMap,
    _key,
    attribute_key,
    mapping_advice,
    suggest_columns,
)

# a catalog's sale price column (WooCommerce's `Sale price`), not read as the price
SALE_PRICE_KEYS = ("saleprice", "salesprice", "specialprice", "promoprice")
# a catalog's cost column (PrestaShop's `wholesale_price`, what the shop pays its supplier): the
# products contract has no cost column, so it is not read, and said
COST_KEYS = ("wholesaleprice", "costprice", "cost", "unitcost", "purchaseprice")

# header names of an order id: an events file with one and no event type holds purchases
ORDER_KEYS = frozenset("".join(ch for ch in a if ch.isalnum()) for a in ORDER_ID_ALIASES)

__all__ = ["ORDER_KEYS", "Columns", "header_of", "map_columns", "samples_of"]


@dataclass
class Columns:
    mapping: dict[str, str]  # canonical -> source column (the first, when several are joined)
    extra: list[str]  # source columns outside the contract
    implied: dict[str, str]  # canonical columns the file implies without naming them
    joined: dict[str, list[str]] = field(default_factory=dict)  # canonical -> further headers
    # required columns a keyed delivery leaves out (a price-only products file): read from the
    # curated row of the key (`_load_raw._define_load`); a key not curated yet fails its check
    filled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the load's report says of the header
    warnings: list[str] = field(default_factory=list)  # what a person must read (the report's warnings)
    # attribute key -> the header kept as that key of the JSON `attributes` (products: `size`)
    attributes: dict[str, str] = field(default_factory=dict)


def map_columns(
    contract: TableContract,
    header: list[str],
    path: Path,
    column_map: ColumnMap,
    *,
    derived: bool = False,
    samples: Callable[[], dict[str, list[str]]] | None = None,
    keyed_update: bool = False,
    nothing_to_update: bool = False,
    had_customers: Callable[[], bool] | None = None,
    known_products: Callable[[list[str]], int] | None = None,
    known_users: Callable[[list[str]], int] | None = None,
) -> Columns:
    """canonical -> source column; the source columns outside the contract; and canonical
    columns the file implies without naming them (the event type of `ratings.csv`). The
    column map (`shelfwise.toml`, `--map`) is applied first (not to a `derived` table); the
    rest is matched by name. A canonical column mapped to several headers (a category path)
    reads the first, the others are joined to it. `keyed_update`: the file is a delivery to a
    keyed table curated already, so a required column other than the key may be left out (a
    price-only products file): each row keeps its key's curated value (`Columns.filled`). A
    header that repeats a name is read at its first column (said in `Columns.notes`).
    `had_customers`: whether the table's curated rows name customers (an events delivery
    appended to them): then a file without a user_id column but with a header whose name is a
    user id's (`Customer` for `Customer ID`) is refused, not read as anonymous sessions.
    `known_products`: how many of some values are product ids of the catalog (the delivery's
    products file, else the curated one): of an events file's several product id columns by name
    (Magento's `item_id`, the order line's id, beside `sku`) the one whose values match it best
    is read (`_product_column`)."""
    notes: list[str] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(header, 1):
        if h in seen:
            notes.append(
                f"{path.name}: the header repeats {h!r} (columns {seen[h]} and {i}): column {seen[h]} "
                "is read, the other ignored"
            )
            continue
        seen[h] = i
    mapping: dict[str, str] = {}
    joined: dict[str, list[str]] = {}
    explicit = {} if derived else column_map.for_table(contract.name)
    # `[map.events] event_type = "purchase"`: every row of the file is that kind of event (an
    # order export's file says so by no column) - a value of the contract, not a header of the file
    told = event_type_told(explicit.get("event_type", ()), header) if contract.name == "events" else None
    if told is not None:
        explicit = {c: hs for c, hs in explicit.items() if c != "event_type"}
        notes.append(
            f"{path.name}: every row is a {told} event, as the column map says (event_type = {told!r})"
        )
    unsent: set[str] = set()  # mapped columns a keyed delivery leaves out: not read by name either
    for c, headers in explicit.items():
        found: list[str] = []
        for h in headers:
            hit = h if h in header else match_headers(list(seen), {c: [h]}).get(c)
            if hit is None and keyed_update and c not in contract.key and not found:
                # a delivery to a keyed table may leave columns out (a price feed of the shop
                # whose map names its catalog export's every column): the column is this file's
                # to send or not, as if the map did not name it (said, in case it is a typo)
                unsent.add(c)
                if c not in contract.required_columns:  # (a required one is said below, `filled`)
                    notes.append(
                        f"{path.name}: the column map's {contract.name}.{c} = {h!r} is not in this "
                        f"delivery: each row keeps its curated {c}"
                    )
                break
            if hit is None:
                raise _not_in_file(column_map, contract.name, c, h, path, header)
            found.append(hit)
        if not found:
            continue
        mapping[c] = found[0]
        if len(found) > 1:
            joined[c] = found[1:]
    taken = {h for hs in [mapping.values(), *joined.values()] for h in hs}
    # (a column the map names for another header is not read from one that merely has its name:
    # a delivery with `Price` where the map says `price = "Sale Price"` does not send the price)
    rest = {
        spec.name: (spec.name, *spec.aliases)
        for spec in contract.columns
        if spec.name not in mapping and spec.name not in unsent
    }
    # ... but a header the map reads as another column is still its own namesake's when that is
    # a required column: `--map products.title=product_id` (a catalog without titles) said
    # `product_id` was missing while the header had it; one header then feeds both (a note)
    # (a required column only: `--map events.query=text` must not load the queries as review
    # text too, nor `products.category=brand` the paths as brands)
    namesakes = {h for h in taken if h in rest and (h in contract.required_columns or h in contract.key)}
    matched = match_headers(list(seen), rest, taken - namesakes)
    for c, h in list(matched.items()):
        if h in namesakes and h != c:  # (only its namesake, never another column's alias)
            del matched[c]
        elif h in namesakes:
            also = ", ".join(f"{contract.name}.{m}" for m, mh in mapping.items() if mh == h)
            notes.append(
                f"{path.name}: the column {h!r} is read as {contract.name}.{c} and, as the map says, as {also}"
            )
    if contract.name == "events" and "product_id" in matched:
        matched["product_id"] = _product_column(
            contract, list(seen), matched["product_id"], taken | set(matched.values()), path,
            samples, known_products, notes,
        )  # fmt: skip
    if (
        contract.name == "products"
        and column_key(matched.get("in_stock", "")) == "availability"
        and not _reads_as_availability(matched["in_stock"], path, samples, notes)
    ):
        del matched["in_stock"]
    mapping.update(matched)
    taken |= set(matched.values())
    if contract.name == "products" and "category" not in mapping and "category" not in unsent:
        feed = _feed_category(list(seen), taken, path, samples, notes)
        if feed is not None:
            mapping["category"] = feed
            taken.add(feed)
    attributes = _attribute_columns(
        contract, list(seen), header, taken, path, column_map, derived, keyed_update, notes
    )
    taken |= set(attributes.values())
    if attributes and "attributes" in mapping:
        notes.append(
            f"{path.name}: {', '.join(repr(h) for h in attributes.values())} kept as product attributes beside "
            f"those of {mapping['attributes']!r} (a key in both: the column's value wins where it has one)"
        )
    implied: dict[str, str] = {}
    if contract.name == "events" and "event_type" not in mapping:
        kind = told or implied_event_type(path.name)
        if kind is None and "value" in mapping and column_key(mapping["value"]) == "rating":
            kind = "rating"  # a rating per row and no event type: rating events
        if kind is None and column_key(mapping.get("session_id", "")) in ORDER_KEYS:
            kind = "purchase"  # order lines: every row is a purchase
        if kind is not None:
            implied["event_type"] = kind
    missing = [c for c in contract.required_columns if c not in mapping and c not in implied]
    if contract.name == "events" and "product_id" not in mapping:
        missing.append("product_id")
    if contract.name == "events" and "user_id" in missing and "session_id" in mapping:
        # a till's or a guest shop's rows: no customer, a session (a basket, a receipt) each;
        # but not a delivery whose customer column was renamed (`Customer ID` -> `Customer`)
        # to a table whose rows name customers: its purchases would lose their customers
        renamed = [h for h in header if h not in taken and _names_a_person(h)]
        if not (renamed and had_customers is not None and had_customers()):
            missing.remove("user_id")
            notes.append(
                f"{path.name}: no user_id column: every row is an anonymous session's (its session_id)"
            )
            if renamed:  # a first load (or one to anonymous rows) is read, but said loudly
                warnings.append(
                    f"{path.name}: no column is read as the user id, so every row is an anonymous "
                    f"session's, but {renamed[0]!r} is named like a customer id: if it names the "
                    f"customers, {mapping_advice(contract.name, {'user_id': renamed[0]})}"
                )
    filled: list[str] = []
    if keyed_update and contract.key and all(k in mapping for k in contract.key):
        filled = [c for c in missing if c not in contract.key]
        missing = [c for c in missing if c in contract.key]
        if filled:
            notes.append(
                f"{path.name}: no {', '.join(filled)} column: each row keeps its {contract.name} "
                f"row's curated {', '.join(filled)} (a row of a new {'/'.join(contract.key)} is "
                "quarantined: missing_required)"
            )
    if missing:
        sample = samples() if samples is not None else {}
        hints, picks = [], {}
        for m in missing:
            found_s = suggest_columns(
                contract, m, header, sample, used=taken, known=known_users if m == "user_id" else None
            )
            if found_s:
                picks[m] = found_s[0][0]
                likely = "; ".join(f"{h!r} ({why})" for h, why in found_s)
                hints.append(f"{m!r} (likely: {likely})")
            else:
                hints.append(f"{m!r}")
        advice = (
            " (an events file without one is read as one kind of event when its name says which -"
            f" {', '.join(f'{k} = {v}' for k, v in IMPLIED_EVENT_TYPES.items())} - or when it has a"
            f" rating column or an order id; or say it in {MAP_FILE}: [map.events] event_type ="
            ' "purchase" reads every row as a purchase)'
            if "event_type" in missing
            else ""
        )
        if "user_id" in missing and contract.name == "events":
            advice += (
                " (the curated events name customers and a column's name is a customer id's: this "
                "delivery's rows would all have become anonymous sessions; a file of rows without a "
                "customer has no such column)"
                if "session_id" in mapping
                else " (rows without a customer need a session_id column instead: each is an anonymous session's)"
            )
        keys = contract.key
        if nothing_to_update and keys and all(k in mapping for k in keys) and not set(missing) & set(keys):
            advice += (
                f" (a delivery without them updates curated {contract.name} rows, but there is no curated "
                f"{contract.name} table yet: its first delivery needs every required column)"
            )
        raise SourceError(
            str(path),
            1,
            f"missing required column(s) {', '.join(hints)}; the header has: "
            f"{', '.join(header) or 'no columns'}{advice}"
            + (
                f"\n  {mapping_advice(contract.name, picks)}"
                if picks
                else f"\n  name the column that holds it: --map {contract.name}.{missing[0]}=HEADER, or in "
                f'{MAP_FILE} beside the data: [map.{contract.name}] {missing[0]} = "HEADER"'
            ),
        )
    extra = [h for h in dict.fromkeys(header) if h not in taken and h != LINE_COLUMN]
    unit_keys = {column_key(n) for n in ("unit_price", *EVENTS.column("unit_price").aliases)}
    if contract.name == "events" and column_key(mapping.get("value", "")) in unit_keys:
        # (`Item Cost` mapped as the value: monetary summed unit prices, walk49a)
        warnings.append(
            f"{path.name}: events.value is {mapping['value']!r}, read as each line's total paid, but its "
            f"name says a unit price: to have a line worth unit price x quantity, map it as "
            f'events.unit_price instead (--map events.unit_price="{mapping["value"]}", or leave value '
            "unmapped: the header is read as unit_price by name)"
        )
    sale = [h for h in extra if column_key(h) in SALE_PRICE_KEYS]
    if contract.name == "products" and "price" in mapping and sale:
        # (WooCommerce's `Regular price` beside its `Sale price`: the price stays the regular one,
        # and revenue figures read from it do not change with a sale)
        notes.append(
            f"{path.name}: {sale[0]!r} is not read: products.price is {mapping['price']!r} (a product's "
            f"regular price, also where revenue falls back on the catalog's price); to read the price "
            f'paid on sale instead: --map products.price="{sale[0]}"'
        )
    if contract.name == "products" and "stock" in mapping and "in_stock" not in mapping:
        notes.append(
            f"{path.name}: products.in_stock is derived from {mapping['stock']!r} (stock): a product with "
            "a stock of 0 is out of stock (off recommendations and search), one with more is in stock, one "
            "without a figure stays unknown"
        )
    cost = [h for h in extra if column_key(h) in COST_KEYS]
    if contract.name == "products" and cost:
        cost_cols = [c.name for c in contract.columns if c.name == "cost"]
        notes.append(
            f"{path.name}: {cost[0]!r} is the product's cost (what the shop pays for it), not its price: "
            + (
                f"read it with --map products.cost={cost[0]!r}"
                if cost_cols
                else "not read (the products contract has no cost column; products.price is what a shopper pays)"
            )
        )
    return Columns(mapping, extra, implied, joined, filled, notes, warnings, attributes)


def _attribute_columns(
    contract: TableContract,
    header: list[str],
    full_header: list[str],
    taken: set[str],
    path: Path,
    column_map: ColumnMap,
    derived: bool,
    keyed_update: bool,
    notes: list[str],
) -> dict[str, str]:
    """attribute key -> the header kept as that key of the table's JSON attributes column: those
    the column map names (`products.attributes.fit=Fit`), then the well-known variant headers
    by name (`ATTRIBUTE_HEADERS`: size, color, material, ...) that no other column reads."""
    json_column = ATTRIBUTE_COLUMNS.get(contract.name)
    if json_column is None:
        return {}
    out: dict[str, str] = {}
    for key, h in ({} if derived else column_map.attributes_for(contract.name)).items():
        hit = h if h in header else match_headers(header, {key: [h]}).get(key)
        if hit is None and keyed_update:
            notes.append(
                f"{path.name}: the column map's {contract.name}.{json_column}.{key} = {h!r} is not in this "
                f"delivery: its rows have no {key} attribute"
            )
            continue
        if hit is None:
            raise _not_in_file(
                column_map, contract.name, f"{json_column}.{key}", h, path, header, full_header
            )
        out[attribute_key(key)] = hit  # (`colour` is `color`: one key, whatever the spelling)
    mapped = set(out.values())
    for h in header:
        known = ATTRIBUTE_HEADERS.get(column_key(h))
        if known is None or h in taken or h in out.values():
            continue
        held = out.get(known)
        if held is None:
            out[known] = h
            continue
        # a second spelling of a key in one file (`colour,color`; JSON lines whose rows say
        # `color` and `colour`; a `color` header beside a mapped `Farbe`): read too, under a key
        # of its own that `_load_state.fold_attribute_keys` folds into the one key where the row
        # has no value under it. Which header holds the key is not the file's order: the column
        # map's header, else the one spelled as the key (`color`, then `Color`), else the first
        if held not in mapped and _spelling_rank(h, known) < _spelling_rank(held, known):
            out[known], h = h, held
        out[h if h != known else f"_{known}"] = h  # (`_color` folds into `color` too)
    return out


def _spelling_rank(h: str, known: str) -> int:
    """How close the header `h` is spelled to the attribute key `known` it reads (0: as the key)."""
    return 0 if h == known else 1 if column_key(h) == known else 2


# a Google Shopping (Merchant Center) feed's category columns, read as products.category where
# no category column is named: the shop's own `product_type` path ("Apparel & Accessories >
# Shoes > Sneakers") first, Google's taxonomy (`google_product_category`, less the shop's own
# tree, and often written as a numeric id) only without one
FEED_CATEGORY_KEYS = ("producttype", "googleproductcategory")
# what a `product_type` of another export holds: a kind of catalog entry, no category (Magento's
# `simple` / `configurable`, WooCommerce's `variable`)
PRODUCT_KIND_WORDS = frozenset(
    (
        "simple", "configurable", "virtual", "bundle", "grouped", "downloadable", "variable",
        "variation", "external", "giftcard", "gift card", "physical", "digital", "service",
    )
)  # fmt: skip


def _not_in_file(
    column_map: ColumnMap,
    table: str,
    column: str,
    h: str,
    path: Path,
    header: list[str],
    shown: list[str] | None = None,
) -> SourceError:
    """The column map names `h` for `table.column` (an attribute: `attributes.KEY`), and the
    file has no such column: where the map said it, the closest header of `header`, and the
    file's header (`shown`, default `header`)."""
    origin = column_map.origin.get((table, column), MAP_FILE)
    close = difflib.get_close_matches(h, header, n=1, cutoff=0.5)
    return SourceError(
        str(path),
        1,
        f"{origin} maps {table}.{column} to {h!r}, which is not a column of this file"
        + (f" (is {close[0]!r} meant?)" if close else "")
        + f"; the header has: {', '.join(header if shown is None else shown) or 'no columns'}",
    )


def _reads_as_availability(
    h: str, path: Path, samples: Callable[[], dict[str, list[str]]] | None, notes: list[str]
) -> bool:
    """Whether an `Availability` header (matched by name) holds stock words (a Google Shopping
    feed's in_stock / out_of_stock / preorder, yes/no): a shop's free text there ("Ships in 2-3
    days", "Available from 2026-01-10") is no in-stock flag, and read as one it quarantined
    every product row (the column was ignored before). Not read then, said in a note."""
    sample = samples() if samples is not None else {}
    vals = [v.strip().lower() for v in sample.get(h, []) if v is not None and v.strip()]
    words = {*TRUE_TOKENS, *FALSE_TOKENS, *MISSING_TOKENS, *(w for w, _ in AVAILABILITY_WORDS)}
    if not vals or sum(v in words for v in vals) >= 0.5 * len(vals):
        return True
    notes.append(
        f"{path.name}: {h!r} holds text, not stock words (e.g. {vals[0][:40]!r}): not read as "
        f"products.in_stock (to read it: --map products.in_stock={h!r})"
    )
    return False


def _feed_category(
    header: list[str],
    taken: set[str],
    path: Path,
    samples: Callable[[], dict[str, list[str]]] | None,
    notes: list[str],
) -> str | None:
    """The header read as products.category where no category column is named: a Google
    Shopping feed's `product_type`, else its `google_product_category`; not one whose sampled
    values are kinds of catalog entry (Magento's `product_type`, `simple`) nor numeric taxonomy
    ids (`1604`). Said in a note."""
    found = {column_key(h): h for h in header if h not in taken and column_key(h) in FEED_CATEGORY_KEYS}
    if not found:
        return None
    sample = samples() if samples is not None else {}
    for key in FEED_CATEGORY_KEYS:
        h = found.get(key)
        if h is None:
            continue
        vals = [v.strip() for v in sample.get(h, []) if v is not None and v.strip()]
        kinds = sum(v.lower() in PRODUCT_KIND_WORDS for v in vals)
        ids = sum(v.isdigit() for v in vals)
        if vals and kinds >= 0.5 * len(vals):
            notes.append(
                f"{path.name}: {h!r} holds kinds of catalog entry (e.g. {vals[0][:40]!r}), not categories: "
                f"not read as products.category (to read it: --map products.category={h!r})"
            )
            continue
        if vals and ids >= 0.5 * len(vals):
            notes.append(
                f"{path.name}: {h!r} holds Google's numeric taxonomy ids (e.g. {vals[0][:40]!r}), not "
                f"category paths: not read as products.category (to read it: --map products.category={h!r})"
            )
            continue
        other = [o for k, o in found.items() if k != key]
        notes.append(
            f"{path.name}: {h!r} (a Google Shopping feed's "
            + (
                "product type, the shop's own category path"
                if key == "producttype"
                else "Google product category"
            )
            + ") is read as products.category"
            + (f"; {other[0]!r} (Google's taxonomy) is not read" if other and key == "producttype" else "")
        )
        return h
    return None


# a generic line or row id that an order-lines export names beside the product's `sku` (Magento's
# `item_id` is the order line's id: 767 "products" for 611 SKUs, walk49b)
_GENERIC_PRODUCT_KEYS = ("itemid", "id", "item")
# the shares of sampled values found in the catalog under which a generic pick is read past, and
# over which another column is read instead
POOR_MATCH = 0.5
GOOD_MATCH = 0.9


def _product_column(
    contract: TableContract,
    header: list[str],
    pick: str,
    taken: set[str],
    path: Path,
    samples: Callable[[], dict[str, list[str]]] | None,
    known_products: Callable[[list[str]], int] | None,
    notes: list[str],
) -> str:
    """Of an events file's headers named as a product id (`pick`, the first by the contract's
    names, and any other), the one whose sampled values are the catalog's product ids the most
    (`known_products`); with no catalog to tell, or none matching, `sku` over a generic `item_id`
    or `id` on an order-lines export (a file with an order id column). Said in a note when
    several competed."""
    spec = contract.column("product_id")
    keys = {column_key(n) for n in (spec.name, *spec.aliases)}
    candidates = [h for h in header if column_key(h) in keys and (h == pick or h not in taken)]
    if len(candidates) < 2:
        return pick
    shares: dict[str, float] = {}
    if known_products is not None and samples is not None:
        sample = samples()
        for h in candidates:
            vals = sorted({v.strip() for v in sample.get(h, []) if v is not None and v.strip()})
            if vals:
                try:
                    shares[h] = known_products(vals) / len(vals)
                except Exception:  # noqa: BLE001 - no catalog to read: the names decide
                    shares = {}
                    break
    best = max(candidates, key=lambda h: shares.get(h, 0.0))
    # only a generic line or row id (`item_id`, `id`) is read past, and only when it matches the
    # catalog poorly and another column well: a `product_id` column, or an `item_id` that is the
    # product, stays (integer product and line ids overlap; one retired product in the sample
    # turned a real product_id into the line id: a review)
    generic = column_key(pick) in _GENERIC_PRODUCT_KEYS
    pick_matches = shares.get(pick, 0.0) >= POOR_MATCH
    order_file = any(column_key(h) in ORDER_KEYS for h in header)
    sku = next((h for h in candidates if column_key(h) == "sku"), None)
    if generic and best != pick and shares.get(best, 0.0) >= GOOD_MATCH and not pick_matches:
        chosen = best
        why = (
            f"its values match the catalog's product ids ({100 * shares[best]:.1f}% of those sampled, "
            + ", ".join(f"{100 * shares.get(h, 0.0):.1f}% for {h!r}" for h in candidates if h != best)
            + ")"
        )
    elif generic and not pick_matches and order_file and sku is not None:
        chosen = sku
        why = f"an order-lines export's {pick!r} is likely the line's own id, {sku!r} the product's" + (
            " (no catalog product id matched either well)" if shares else " (no catalog to compare with)"
        )
    else:
        chosen = pick
        why = "the first of the contract's names" + (
            f" (its values match the catalog: {100 * shares.get(pick, 0.0):.1f}% of those sampled)"
            if shares
            else ""
        )
    notes.append(
        f"{path.name}: {', '.join(repr(h) for h in candidates)} could each be the product id: "
        f"{chosen!r} is read as events.product_id, {why}; to read another: "
        f'--map events.product_id="{next(h for h in candidates if h != chosen)}"'
    )
    return chosen


def event_type_told(headers: tuple[str, ...], header: list[str]) -> str | None:
    """The event type a column map gives as a value (`event_type = "purchase"`): a name of no
    column of the file that is an event type of the contract (or a synonym of one)."""
    if len(headers) != 1 or headers[0] in header or match_headers(header, {"event_type": [headers[0]]}):
        return None
    spec = EVENTS.column("event_type")
    value = headers[0].strip().lower().replace(" ", "_").replace("-", "_")
    synonyms = dict(spec.synonyms)
    return value if value in spec.allowed else synonyms.get(value)


# the words a customer column is named by, alone or with an id's ending (`Customer`,
# `Customer No`, `client_ref`): not `store_id`, `user_agent`, `new_customer`, `customer_count`
_PERSON_WORDS = ("customer", "user", "client", "member", "buyer", "shopper", "account", "visitor", "consumer")
_ID_ENDINGS = ("", *ID_ENDINGS, "nr", "num", "key")


def _names_a_person(header: str) -> bool:
    """Whether a header is named as a customer id column is (a renamed `Customer ID`), or
    begins with a customer's word and ends as an id does (`Buyer Account No`)."""
    key = _key(header)
    return any(key == w + e for w in _PERSON_WORDS for e in _ID_ENDINGS) or (
        key.startswith(_PERSON_WORDS)
        and key.endswith(("id", "number", "no", "nr", "ref"))
        and not any(w in key for w in _NOT_A_PERSON)
    )


# words of a header that name another thing than the customer (`Customer Order No`), or a
# customer's attribute shared by many (`Customer Group Id`, `Customer Tax ID`, `User Agent ID`,
# `Visitor Country Id`: read as a user id, a group would be one customer)
_NOT_A_PERSON = (
    "order", "invoice", "session", "basket", "product", "item", "note", "ip", "group", "type", "tax",
    "vat", "phone", "mobile", "agent", "country", "region", "state", "city", "zip", "postal", "segment",
    "tier", "level", "class", "category", "language", "currency", "channel", "source", "status", "store",
)  # fmt: skip


def samples_of(wh: Warehouse, staged: StagedFile, header: list[str]) -> dict[str, list[str]]:
    """Up to 200 values of each column of a staged file (for the missing-column advice)."""
    try:
        if staged.format == "csv":
            assert staged.staged is not None
            names = ([LINE_COLUMN] if staged.numbered else []) + [f"c{i}" for i in range(len(header))]
            spec = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
            drop = f" EXCLUDE ({q(LINE_COLUMN)})" if staged.numbered else ""
            rows = wh.sql(
                f"SELECT *{drop} FROM read_csv({lit(staged.staged.as_posix())}, "
                f"header=true, delim={lit(staged.delimiter)}, quote='\"', escape='\"', columns={spec}, "
                # (serial: DuckDB's parallel reader refuses null padding beside quoted newlines, and
                # a catalog's HTML bodies hold them: Shopify's export had no samples, names alone)
                "auto_detect=false, ignore_errors=true, null_padding=true, parallel=false) LIMIT 200"
            ).fetchall()
            return {h: [r[i] for r in rows if r[i] is not None] for i, h in enumerate(header)}
        if staged.format == "parquet":
            cols = ", ".join(f"CAST({q(h)} AS VARCHAR)" for h in header)
            rows = wh.sql(
                f"SELECT {cols} FROM read_parquet({parquet_files(staged)}, union_by_name=true) LIMIT 200"
            ).fetchall()
            return {h: [r[i] for r in rows if r[i] is not None] for i, h in enumerate(header)}
        assert staged.staged is not None
        out: dict[str, list[str]] = {h: [] for h in header}
        with open(staged.staged, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh):
                if n >= 200:
                    break
                try:
                    rec = json.loads(line.partition(JSON_DELIMITER)[2])
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    for k, v in rec.items():
                        if k in out and v is not None:
                            out[k].append(str(v))
        return out
    except Exception:  # noqa: BLE001 - advice only: without samples, names alone are suggested
        return {}


def header_of(wh: Warehouse, staged: StagedFile) -> list[str]:
    """The column names of a staged file (the keys of the first 10,000 JSON lines)."""
    if staged.format == "csv":
        return staged.header
    if staged.format == "parquet":
        rows = wh.sql(
            f"DESCRIBE SELECT * FROM read_parquet({parquet_files(staged)}, union_by_name=true)"
        ).fetchall()
        return [r[0] for r in rows]
    assert staged.staged is not None
    if not staged.records:  # JSON lines with no line: no key (DuckDB cannot read the empty file)
        return []
    rows = wh.sql(
        f"""SELECT DISTINCT unnest(json_keys(CASE WHEN json_valid(j) AND json_type(j) = 'OBJECT' THEN j ELSE '{{}}' END)) FROM (
              SELECT column1 AS j FROM read_csv({lit(staged.staged.as_posix())}, header=false, delim={lit(JSON_DELIMITER)},
              quote='', escape='', columns={{'column0': 'BIGINT', 'column1': 'VARCHAR'}}, ignore_errors=true) LIMIT 10000)
            WHERE json_valid(j) AND json_type(j) = 'OBJECT'"""
    ).fetchall()
    return sorted(r[0] for r in rows)
