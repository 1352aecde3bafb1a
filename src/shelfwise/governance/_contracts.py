"""Data contracts: what each canonical table must look like.

A contract is a *specification* (plain frozen dataclasses); the ingestion engine compiles it into
row-level checks with reason codes (Ibis expressions that run in the warehouse) and into a pandera
schema that the curated result is validated against. Keeping the spec apart from execution lets
the same contract run on DuckDB and on Spark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandera (~1 s to import) is imported where schemas are built
    import pandera.ibis as pa


def skip_pyspark_pandas() -> None:
    """Call before pandera is first imported. pandera imports `pyspark.pandas` whenever pyspark
    is installed (the `spark` extra), to patch pandas' type hints; pyspark 4.0's pandas API
    does not import under pandas 3 (`DateOffset` left `pandas.tseries.frequencies`), so that
    import fails anyway, after ~0.8 s of CPU on every load. Marked absent, pandera's guarded
    import fails at once. (Only where it would fail: pandas 3 or later.)"""
    import sys
    from importlib.metadata import version

    if "pyspark.pandas" not in sys.modules and int(version("pandas").split(".")[0]) >= 3:
        sys.modules["pyspark.pandas"] = None  # type: ignore[assignment]


class Kind(StrEnum):
    """How a raw string is parsed and cleaned."""

    ID = "id"  # trimmed string identifier
    STRING = "string"  # short text: NFKC, HTML stripped, whitespace collapsed
    TEXT = "text"  # free text: as STRING, plus personal data masked
    CATEGORY = "category"  # category path "a > b > c"
    FLOAT = "float"
    BOOL = "bool"
    TIMESTAMP = "timestamp"  # ISO 8601 (with or without offset) or epoch seconds / milliseconds, to UTC
    JSON = "json"  # a JSON document
    ENUM = "enum"  # lower-cased, synonyms mapped, must be one of `allowed`


class Classification(StrEnum):
    """Who may see a column (enforced by roles; `personal` never reaches the curated layer raw)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    PERSONAL = "personal"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: Kind
    required: bool = False
    classification: Classification = Classification.PUBLIC
    allowed: tuple[str, ...] = ()
    # raw value -> allowed value, for ENUM; for BOOL, a lower-cased value -> "true" / "false"
    # read before the usual yes and no (`PUBLISHED_WORDS`), or "none": a word read as no value
    synonyms: tuple[tuple[str, str], ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    pseudonymize: bool = False  # replaced by a keyed HMAC pseudonym before curation
    integer: bool = False  # FLOAT only: a whole number (a count of units)
    aliases: tuple[str, ...] = ()  # other header names accepted for this column
    description: str = ""
    # TEXT only: personal data in it (emails, cards, phones, ...) is masked before curation;
    # False for the shop's own words published as written (an FAQ answer's phone number)
    mask_personal: bool = True
    keep_lines: bool = False  # TEXT only: line breaks kept (spaces still collapse within a line)
    # ID, STRING, TEXT, CATEGORY: a longer value (in characters, as trimmed) is invalid_value.
    # One 900 KB review text among the events made every later absorb run out of memory
    # (DuckDB 1.5 scans the NULLs after a value stored out of line as copies of it: 2,048
    # copies per vector; walk48b F0)
    max_chars: int | None = None
    # BOOL, TIMESTAMP, ENUM: a value that cannot be read does not quarantine the row; a BOOL
    # reads as false (a consent nobody can read is no consent: fail closed), a TIMESTAMP as no
    # date (counted in the load's notes), an ENUM value none of `allowed` as no value (an
    # optional `currency`'s unknown code: the sale is kept; warned of, each value with its count)
    lenient: bool = False
    # what a lenient BOOL's unreadable value reads as: false (a consent: fail closed) or true
    # (`published`: a catalog's own status words, `Enabled`, `new`, a whole catalog quarantined)
    lenient_value: bool = False
    # what a lenient ENUM's given value none of `allowed` reads as, instead of no value: an
    # optional `currency`'s unreadable code (`Kč`) is `UNKNOWN_CURRENCY`, so that money in it is
    # told from money with no currency given and never summed into another currency's figure
    lenient_unknown: str | None = None

    @property
    def codes(self) -> bool:
        """Whether an enum's allowed values are codes (ISO 4217's `EUR`): read upper-cased as
        written, not lower-cased with spaces and dashes as underscores."""
        return bool(self.allowed) and all(a.isupper() for a in self.allowed)


@dataclass(frozen=True)
class TableContract:
    name: str
    version: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()  # unique key of the curated table
    key_rule: str = ""  # how a conflicting duplicate key is resolved (stated in reports)
    dedupe_exact: bool = False  # exact duplicate rows are quarantined (the first is kept)
    references: tuple[tuple[str, str, str], ...] = ()  # (column, table, column)
    owner: str = "data-platform"
    steward: str = "data-steward"
    description: str = ""
    # extra columns outside the canonical set are kept (as profile columns) only for `users`
    keep_extra_columns: bool = False

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def classification(self) -> dict[str, str]:
        return {c.name: c.classification.value for c in self.columns}

    def to_pandera(self, *, values: bool = True) -> pa.DataFrameSchema:
        """The pandera schema the *curated* table must satisfy; `values=False`: columns and
        types only (pandera's Ibis backend reports every value check of an empty table as
        failed, so an empty table is validated this way)."""
        return _to_pandera(self, values=values)


EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating", "search", "return", "no_sale")
# what a purchase line's quantity makes of it (`_compile._table_rules`, `_row_check`): 0 units is
# a product-day that sold nothing (a per-product-and-day export writes it), kept as `no_sale`
# (not a purchase: demand reads it as an observed zero); fewer than 0 is units brought back,
# curated as a `return` of that many units (never a sale)
NO_SALE, RETURN = "no_sale", "return"
# Behavioural event types that a bot inflates; ratings/purchases come in legitimate bursts
# (a MovieLens user rates 50 films in a minute; Amazon review times are whole days).
BOT_EVENT_TYPES = ("view", "click", "add_to_cart", "search")

_EVENT_SYNONYMS = (
    ("pageview", "view"),
    ("view_item", "view"),  # GA4 event names
    ("product_view", "view"),
    ("item_view", "view"),
    ("detail", "view"),
    ("select_item", "click"),
    ("view_search_results", "search"),
    ("rate", "rating"),
    ("page_view", "view"),
    ("detail_view", "view"),
    ("impression_click", "click"),
    ("addtocart", "add_to_cart"),
    ("add-to-cart", "add_to_cart"),
    ("cart", "add_to_cart"),
    ("add_to_basket", "add_to_cart"),
    ("transaction", "purchase"),
    ("order", "purchase"),
    ("buy", "purchase"),
    ("bought", "purchase"),
    ("sale", "purchase"),
    ("review", "rating"),
    ("query", "search"),
)

# Column names other shops and public datasets use for the same thing, shared by every table that
# has the column (a table may add names of its own, e.g. a bare `id` where it is the table's key).
PRODUCT_ID_ALIASES = (
    "item_id",
    "itemid",
    "sku",
    "asin",
    "product_uid",
    "article_id",
    "movie_id",
    "variant_id",
    # (PrestaShop 8's exports: `id_product`)
    "id_product",
)
USER_ID_ALIASES = (
    "userid",
    "customer_id",
    "visitor_id",
    "visitorid",
    "user_pseudo_id",
    "client_id",
    "member_id",
    "reviewer_id",  # (Amazon's reviews: `reviewerID`)
    "customer_user_id",  # (WooCommerce's orders: `Customer User ID`, 0 for a guest)
    "customer_user",
    # (PrestaShop 8's exports: `id_customer`, the customer's id in orders and customers alike)
    "id_customer",
)
QUERY_ALIASES = ("search_term", "search_query")
# order-lines exports: the order's date is the event's time, the order id groups its lines
ORDER_DATE_ALIASES = ("order_date", "order_datetime", "order_time", "purchase_date", "invoice_date")
# (Magento 2's order number is `increment_id`, `order_increment_id` in some extensions' exports)
ORDER_ID_ALIASES = (
    "order_id", "order_number", "order_no", "invoice_no", "invoice_id", "basket_id", "increment_id",
    "order_increment_id",
    # (PrestaShop 8's order exports: `id_order`; its `reference` is a code of letters per order)
    "id_order",
)  # fmt: skip

# what a shop's `Published` / `Status` column writes (BOOL `synonyms`: the value lower-cased and
# trimmed, read before the usual yes and no): WooCommerce's 1 / 0 / -1 (published, private,
# draft) and post statuses, Shopify's TRUE / FALSE and active / draft / archived. Another value
# is no yes or no is read as shown (`ColumnSpec.lenient_value`), counted in the load's notes
PUBLISHED_WORDS = (
    *(
        (w, "true")
        for w in ("publish", "published", "active", "visible", "public", "live", "online", "enabled")
    ),
    # Magento's `visibility`: shown in the catalog, in search or both
    *((w, "true") for w in ("catalog, search", "catalog", "search")),
    *(
        (w, "false")
        for w in (
            "-1",
            "-1.0",
            # Magento's `product_online` 2 (disabled; 1 enabled), and its `visibility` of a
            # configurable's child, never shown alone
            "2",
            "2.0",
            "not visible individually",
            "draft",
            "private",
            "archived",
            "archive",
            "hidden",
            "pending",
            "unpublished",
            "not published",
            "inactive",
            "disabled",
            "trash",
            "future",
            "offline",
        )
    ),
)

# a variant's parent product (style) column: Google Shopping's `item_group_id`, a `parent_sku`,
# WooCommerce's `Parent`, Shopify's `Handle` (every variant row of a product shares it)
GROUP_ID_ALIASES = (
    "item_group_id",
    "parent_sku",
    "parent_id",
    "parent_product_id",
    "product_group_id",
    "style_id",
    "parent",
    "handle",
)

# what a Google Shopping (Merchant Center) feed's `availability` says beyond in stock and out of
# stock (`_compile.TRUE_TOKENS` / `FALSE_TOKENS` read `in_stock`, `in stock`, `out_of_stock`,
# `out of stock`): a product on preorder or backorder is sold now and delivered later, so it is
# in stock (shown and recommended); `limited availability` is in stock, `discontinued` not
AVAILABILITY_WORDS = (
    *(
        (w, "true")
        for w in (
            "preorder", "pre-order", "pre_order", "pre order", "backorder", "back-order", "back_order",
            "back order", "limited availability", "limited_availability",
        )
    ),
    *((w, "false") for w in ("discontinued", "sold_out", "soldout")),
)  # fmt: skip

# ISO 4217 currency codes in use (a `currency` column's values, curated upper-cased)
_ISO_4217 = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB
PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP
SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
ZMW ZWG ZWL
"""
# withdrawn since 2000, still found in order histories (Croatia's kuna until 2023, the euro's
# predecessors, Venezuela's, Mauritania's, ... older codes); and the digital bolivar (2021)
_ISO_4217_WITHDRAWN = """
ATS BEF BYR CUC CYP CSD DEM EEK ESP FIM FRF GHC GRD HRK IEP ITL LTL LUF LVL MGF MRO MTL MZM NLG PTE
ROL SDD SIT SKK SRG STD TMM TRL VEB VEF ZMK ZWD ZWN ZWR AZM VED
"""
CURRENCY_CODES = tuple(_ISO_4217.split()) + tuple(_ISO_4217_WITHDRAWN.split())
# a `currency` cell that was given but names no currency shelfwise reads (`Kč`, `DOLLARZ`): ISO
# 4217's code for "no currency" (never a shop's money), curated so that the money's readers
# (`insights.money_currency`, the experiments' revenue) count those rows apart
UNKNOWN_CURRENCY = "XXX"
# unambiguous currency signs read as their code (`$` is not: USD, CAD, AUD, ...)
CURRENCY_SIGNS = (
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("₹", "INR"),
    ("₽", "RUB"),
    ("₺", "TRY"),
    ("zł", "PLN"),
)


# common spellings of a code that name one currency only (`$` alone, `kr`, `dollar` do not)
CURRENCY_SPELLINGS = (
    ("US$", "USD"),
    ("USD$", "USD"),
    ("U.S.$", "USD"),
    ("A$", "AUD"),
    ("AU$", "AUD"),
    ("C$", "CAD"),
    ("CA$", "CAD"),
    ("NZ$", "NZD"),
    ("HK$", "HKD"),
    ("S$", "SGD"),
    ("R$", "BRL"),
    ("MX$", "MXN"),
    ("EURO", "EUR"),
    ("EUROS", "EUR"),
    ("GBP£", "GBP"),
    ("£GBP", "GBP"),
    ("€EUR", "EUR"),
    ("EUR€", "EUR"),
    ("RMB", "CNY"),
)


def _currency_column(*extra: str) -> ColumnSpec:
    return ColumnSpec(
        "currency",
        Kind.ENUM,
        allowed=CURRENCY_CODES,
        synonyms=tuple((sign.lower(), code) for sign, code in CURRENCY_SIGNS + CURRENCY_SPELLINGS),
        # an unknown code is no currency shelfwise reads, the row kept (one optional value never
        # loses a sale): curated as UNKNOWN_CURRENCY, never summed with a known currency's money
        lenient=True,
        lenient_unknown=UNKNOWN_CURRENCY,
        aliases=("currency_code", "currency_iso", *extra),
        description="the ISO 4217 code of the row's money (price, value, unit_price), upper-cased; without "
        "a currency column, read from the money's own text (`49.99 EUR`, `€12`); a code shelfwise cannot "
        f"read is {UNKNOWN_CURRENCY} (unknown); shelfwise does not convert: money in several currencies "
        "is reported per currency",
    )


# the headers of when a shop's system last changed a row (a product, a customer): PrestaShop's
# `date_upd`, WooCommerce's `date_modified`, Magento's and a generic `updated_at`, Shopify's
# `Updated At` (its key is the canonical name's)
UPDATED_AT_ALIASES = (
    "date_upd",
    "date_modified",
    "date_modified_gmt",
    "modified_at",
    "last_modified",
    "last_modified_at",
    "last_updated",
    "last_updated_at",
    "date_updated",
    "updated_on",
    "modified_on",
    "update_time",
)


def _updated_at_column() -> ColumnSpec:
    """A keyed table's optional `updated_at`: an appended row older than its key's curated one
    is quarantined as `stale_row` instead of replacing it (`_load_publish.flag_stale`)."""
    return ColumnSpec(
        "updated_at",
        Kind.TIMESTAMP,
        classification=Classification.INTERNAL,
        aliases=UPDATED_AT_ALIASES,
        lenient=True,
        description="when the shop's system last changed the row: an appended row older than the "
        "curated one of its key does not replace it (quarantined as stale_row; an unreadable date: "
        "none, and the later delivery wins)",
    )


PRODUCTS = TableContract(
    name="products",
    # 1.1.0: stock (units on hand) and lead_time_days (days from order to delivery), optional
    # 1.2.0: published, optional (WooCommerce's `Published` 1/0/-1, Shopify's `Published` or
    # `Status`): a product the catalog says is not published (a draft, private, archived) is
    # curated, learned from and kept in its history, but never served
    # 1.3.0: group_id, optional: the style (parent product) a size/colour variant belongs to
    # (`parent_sku`, Google Shopping's `item_group_id`, WooCommerce's `Parent`, Shopify's
    # `Handle`); a product without one is its own group. Serving shows one product per group
    # 1.4.0: currency, optional (ISO 4217, the price's currency)
    # 1.5.0: updated_at, optional (PrestaShop's `date_upd`, WooCommerce's `date_modified`,
    # Magento's `updated_at`, Shopify's `Updated At`): an appended row older than its key's
    # curated one does not replace it (`stale_row`)
    # 1.6.0: a currency code shelfwise cannot read is XXX (`UNKNOWN_CURRENCY`: was empty, and its
    # money summed with the known currency's); without a currency column the price's own text
    # names it (Google Shopping's `49.99 EUR`, `€12`, `49,99 €`)
    # 1.7.0: so does it a row's empty currency cell (or `n/a`); a filled cell is the row's currency;
    # a product_id on several rows of one file keeps the row with the latest updated_at where
    # each of them has one (else, and on a tie, the last row)
    # 1.8.0: a plain figure beside an empty currency cell takes the one currency the file names
    # (its filled cells and money texts), as a file without the column reads it
    version="1.8.0",
    description="The shop's catalog: one row per product.",
    key=("product_id",),
    key_rule="the row of a product_id with the latest updated_at wins where each of its rows has one; "
    "else (and on a tie) the last in file order (later rows are newer versions)",
    columns=(
        ColumnSpec(
            "product_id",
            Kind.ID,
            required=True,
            aliases=(*PRODUCT_ID_ALIASES, "id"),
        ),
        ColumnSpec("title", Kind.STRING, required=True, aliases=("name", "product_title", "product_name")),
        ColumnSpec(
            "description",
            Kind.STRING,
            # (PrestaShop 8's products export: `description_short`, HTML, where no `description`)
            aliases=("description_short",),
        ),
        ColumnSpec(
            "category",
            Kind.CATEGORY,
            aliases=("category_path", "categories", "category_name", "product_category", "genres", "genre"),
        ),
        ColumnSpec("brand", Kind.STRING),
        ColumnSpec(
            "price",
            Kind.FLOAT,
            min_value=0.0,
            max_value=1_000_000.0,
            # (WooCommerce's `Regular price`, Shopify's `Variant Price`; a `Sale price` beside it is
            # not read: a note says so, `_load_columns.SALE_PRICE_KEYS`)
            aliases=("regular_price", "variant_price"),
        ),
        ColumnSpec(
            "in_stock",
            Kind.BOOL,
            # (Shopify's products export: `Variant Inventory Policy`, `continue` sells when out of
            # stock (a backorder: in stock whatever the figure), `deny` says nothing of it (the
            # stock figure decides, when there is one))
            # (Google Shopping / Merchant Center feeds: `availability`, in_stock / out_of_stock /
            # preorder / backorder: `AVAILABILITY_WORDS`)
            aliases=(
                "available",
                "instock",
                "is_in_stock",
                "variant_inventory_policy",
                "inventory_policy",
                "availability",
            ),
            synonyms=(("continue", "true"), ("deny", "none"), *AVAILABILITY_WORDS),
        ),
        ColumnSpec("attributes", Kind.JSON),
        ColumnSpec(
            "published",
            Kind.BOOL,
            # (Magento: `product_online`, and `visibility` when it is the only one; beside
            # `product_online` it is read too: `Not Visible Individually` is not published)
            aliases=(
                "status",
                "post_status",
                "product_status",
                "publish_status",
                "product_online",
                "visibility",
                # (BigCommerce's products export: `Product Visible?` Y or N)
                "product_visible",
                # (PrestaShop 8's products export: `active`, 1 or 0)
                "active",
            ),
            synonyms=PUBLISHED_WORDS,
            # a value no yes or no we know (a catalog's own `status`: `Enabled`, `new`, `sale`)
            # is shown, counted in the load's notes (it quarantined the row: a whole catalog
            # whose `status` said `Enabled`/`Disabled`, a review)
            lenient=True,
            lenient_value=True,
            description="whether the shop shows the product (false: a draft, private, archived or hidden one)",
        ),
        ColumnSpec(
            "stock",
            Kind.FLOAT,
            min_value=0.0,
            max_value=1_000_000_000.0,
            integer=True,
            aliases=(
                "stock_qty",
                "stock_level",
                "on_hand",
                "qty_on_hand",
                "quantity_on_hand",
                "inventory",
                "qty",
                # (BigCommerce's products export)
                "current_stock_level",
                # (Shopify's products export: the variant's units; its `Variant Inventory Policy`
                # is in_stock)
                "variant_inventory_qty",
                "variant_inventory_quantity",
                "inventory_quantity",
                # (PrestaShop 8's products export: `quantity`, the units in stock; in an events file
                # `quantity` is an order line's units, the events contract's own column)
                "quantity",
            ),
            description="units on hand",
        ),
        _updated_at_column(),
        ColumnSpec(
            "lead_time_days",
            Kind.FLOAT,
            min_value=0.0,
            max_value=3650.0,
            aliases=("lead_time", "leadtime", "lead_days", "replenishment_days", "delivery_days"),
            description="days from placing a replenishment order to its delivery",
        ),
        ColumnSpec(
            "group_id",
            Kind.ID,
            # (the headers `_load_aside.PARENT_KEYS` reads as a variant's parent, and WooCommerce's
            # `Parent`)
            aliases=GROUP_ID_ALIASES,
            description=(
                "the style or parent product a variant (a size, a colour) belongs to; empty: the "
                "product is its own group. Served lists hold one product per group"
            ),
        ),
        _currency_column("price_currency"),
    ),
)

# the longest values an event holds, in characters (longer: quarantined, or refused by
# `POST /v1/events` naming the field): a review, a search query, an id
EVENT_TEXT_CHARS = 10_000
EVENT_QUERY_CHARS = 1_000
EVENT_ID_CHARS = 256

EVENTS = TableContract(
    name="events",
    # 1.1.0: recommendation_id / search_id attribute an event to a served list
    # 1.2.0: quantity (units of an order line); event_id, an idempotency key: curated once
    # 1.3.0: quantity is a whole number of units (2.5 was curated; issue 18 says integer >= 1)
    # 1.4.0: event types return and no_sale; a purchase line of 0 units is a no_sale row and one
    # of fewer than 0 a return of that many units (both were out_of_range, quarantined: a
    # product-per-day export's zero rows failed every delivery); quantity and value are curated
    # as units and money (>= 0), a return's negative line total as what was refunded
    # 1.5.0: a field's length is bounded (`EVENT_TEXT_CHARS`, `EVENT_QUERY_CHARS`, `EVENT_ID_CHARS`)
    # 1.6.0: unit_price, optional (an order-lines export's `Item Cost`, `Unit Price`, `Lineitem
    # price`): a purchase line without a value is worth unit_price x quantity (a unit price read
    # as the value was summed as if it were the line's total)
    # 1.7.0: currency, optional (ISO 4217, the value's and unit_price's currency; Shopify's and
    # WooCommerce's `Currency` / `Order Currency`, Magento's `order_currency_code`)
    # 1.8.0: a currency code shelfwise cannot read is XXX (`UNKNOWN_CURRENCY`: was empty, and its
    # money summed with the known currency's); without a currency column the value's or
    # unit_price's own text names it (`49.99 EUR`, `€12`)
    # 1.9.0: so does it a row's empty currency cell (or `n/a`); a filled cell is the row's currency
    version="1.9.0",
    description="Behaviour events: views, clicks, carts, purchases, ratings, searches, reviews.",
    dedupe_exact=True,
    references=(("product_id", "products", "product_id"),),
    columns=(
        ColumnSpec(
            "user_id",
            Kind.ID,
            max_chars=EVENT_ID_CHARS,
            required=True,
            classification=Classification.PERSONAL,
            pseudonymize=True,
            aliases=(*USER_ID_ALIASES, "user"),
        ),
        ColumnSpec(
            "product_id",
            Kind.ID,
            max_chars=EVENT_ID_CHARS,
            # (PrestaShop's order line names its product's reference, the SKU, beside `product_id`)
            aliases=(*PRODUCT_ID_ALIASES, "item", "product_reference"),
        ),
        ColumnSpec(
            "event_type",
            Kind.ENUM,
            required=True,
            allowed=EVENT_TYPES,
            synonyms=_EVENT_SYNONYMS,
            aliases=(
                "event",
                "type",
                "action",
                "behavior",
                "behaviour",
                "event_name",
                "interaction",
                "interaction_type",
            ),
        ),
        ColumnSpec(
            "timestamp",
            Kind.TIMESTAMP,
            required=True,
            aliases=(
                "ts",
                "time",
                "datetime",
                "event_time",
                "date",
                "event_timestamp",
                "created_at",
                "occurred_at",
                "unix_review_time",  # (Amazon's reviews: `unixReviewTime`, seconds)
                *ORDER_DATE_ALIASES,
                "date_add",  # (PrestaShop 8's exports: when the order was placed)
            ),
        ),
        ColumnSpec(
            "session_id",
            Kind.ID,
            max_chars=EVENT_ID_CHARS,
            classification=Classification.INTERNAL,
            # an order (basket) groups what was bought together, as a session groups what was seen
            aliases=("session", "sessionid", *ORDER_ID_ALIASES),
        ),
        ColumnSpec(
            "query",
            Kind.TEXT,
            max_chars=EVENT_QUERY_CHARS,
            classification=Classification.INTERNAL,
            aliases=QUERY_ALIASES,
        ),
        ColumnSpec(
            "value",
            Kind.FLOAT,
            # (below 0: out_of_range but on a return, `_compile._table_rules`)
            max_value=1_000_000.0,
            # an order line's revenue is the price paid
            # a rating's stars (Amazon's reviews say `overall`: read as nothing, every rating
            # weighed alike), an order line's revenue
            aliases=(
                "rating",
                "overall",
                "stars",
                "star_rating",
                "price_paid",
                "sales",
                "revenue",
                "line_total",
                "amount",
                # BigCommerce's order line (one per product of its `Product Details`)
                "product_total_price",
                # (Magento 2's order items: the line's total)
                "row_total",
                # (PrestaShop 8's order lines: the line's total with tax, else without)
                "total_price_tax_incl",
                "total_price_tax_excl",
            ),
        ),
        ColumnSpec(
            "unit_price",
            Kind.FLOAT,
            min_value=0.0,
            max_value=1_000_000.0,
            aliases=(
                "item_cost",
                "lineitem_price",
                "price_each",
                "item_price",
                "price_per_unit",
                "product_unit_price",  # BigCommerce
                # (PrestaShop 8's order lines: a unit's price with tax, else without)
                "unit_price_tax_incl",
                "unit_price_tax_excl",
            ),
            description="the price of one unit on an order line: a line without a value is worth "
            "unit_price x quantity (its value, when given, is the line's total and wins)",
        ),
        ColumnSpec(
            "quantity",
            Kind.FLOAT,
            # (the range is the event type's, `_compile._table_rules`: 1 or more, but 0 on a
            # purchase line is no sale and fewer a return)
            max_value=1_000_000.0,
            integer=True,
            aliases=(
                "qty",
                "units",
                "quantity_ordered",
                "order_quantity",
                "product_qty",  # BigCommerce
                "qty_ordered",  # (Magento 2's order items)
                # (PrestaShop 8's order lines)
                "product_quantity",
            ),
            description="units bought in a purchase (an order line), or returned: a whole number, 1 or more; "
            "1 where missing. A purchase line of 0 is curated as a no_sale row (quantity 0), one of -n "
            "as a return of n units",
        ),
        ColumnSpec(
            "text",
            Kind.TEXT,
            classification=Classification.INTERNAL,
            max_chars=EVENT_TEXT_CHARS,
            aliases=("review", "review_text"),
        ),
        ColumnSpec(
            "recommendation_id",
            Kind.ID,
            max_chars=EVENT_ID_CHARS,
            classification=Classification.INTERNAL,
            description="the served recommendation list this event followed (from the HTTP API)",
        ),
        ColumnSpec(
            "search_id",
            Kind.ID,
            max_chars=EVENT_ID_CHARS,
            classification=Classification.INTERNAL,
            description="the served search results page this event followed (from the HTTP API)",
        ),
        ColumnSpec(
            "event_id",
            Kind.ID,
            max_chars=EVENT_ID_CHARS,
            classification=Classification.INTERNAL,
            aliases=("idempotency_key",),
            description="the event's unique id (a client's idempotency key; for a served event without "
            "one, where the server spooled it): a repeated event_id is a duplicate_row",
        ),
        _currency_column("order_currency", "order_currency_code", "presentment_currency"),
    ),
)

QUERIES = TableContract(
    name="queries",
    version="1.1.0",
    description="Search queries with relevance judgments.",
    key=("query_id",),
    key_rule="the last row of a query_id in file order wins",
    columns=(
        ColumnSpec("query_id", Kind.ID, required=True, aliases=("qid", "id")),
        ColumnSpec("query", Kind.TEXT, required=True, aliases=("query_text", *QUERY_ALIASES, "text")),
    ),
)

JUDGMENTS = TableContract(
    name="judgments",
    version="1.1.0",
    description="Graded relevance of a product for a query (higher is better).",
    key=("query_id", "product_id"),
    key_rule="the last row of a (query_id, product_id) pair in file order wins",
    references=(("query_id", "queries", "query_id"), ("product_id", "products", "product_id")),
    columns=(
        ColumnSpec("query_id", Kind.ID, required=True, aliases=("qid",)),
        ColumnSpec(
            "product_id",
            Kind.ID,
            required=True,
            aliases=(*PRODUCT_ID_ALIASES, "doc_id", "docid"),
        ),
        ColumnSpec(
            "relevance",
            Kind.FLOAT,
            required=True,
            min_value=-1000.0,
            max_value=1000.0,
            aliases=("rating", "grade", "label", "score"),
        ),
    ),
)

USERS = TableContract(
    name="users",
    # 1.2.0: the optional consent columns (governance/_consent.py reads them after each load)
    # 1.3.0: a consent value that is no yes or no we know reads as no consent (the row was
    # quarantined, and the customer had the shop's default: consent); the optional
    # `consent_updated_at`, when the shop's system last changed the consent
    # 1.4.0: updated_at, optional: an appended row older than the user's curated one does not
    # replace it (`stale_row`)
    # 1.5.0: a user_id on several rows of one file keeps the row with the latest updated_at where
    # each of them has one (else, and on a tie, the last row)
    version="1.5.0",
    description="User profiles. Personal columns (names, contact details, addresses) never reach the curated layer.",
    key=("user_id",),
    key_rule="the row of a user_id with the latest updated_at wins where each of its rows has one; "
    "else (and on a tie) the last in file order",
    keep_extra_columns=True,
    columns=(
        ColumnSpec(
            "user_id",
            Kind.ID,
            required=True,
            classification=Classification.PERSONAL,
            pseudonymize=True,
            aliases=(*USER_ID_ALIASES, "id"),
        ),
        ColumnSpec(
            "consent_personalization",
            Kind.BOOL,
            # a person's choice is theirs to see, not the public's (it read "public")
            classification=Classification.INTERNAL,
            aliases=("personalization_consent", "consent_profiling", "personalization"),
            lenient=True,
            description="the user consents to personalized lists (blank: unknown, the shop's default; "
            "a value that is no yes or no: no consent)",
        ),
        ColumnSpec(
            "consent_marketing",
            Kind.BOOL,
            classification=Classification.INTERNAL,
            # (Shopify's customers export: `Accepts Email Marketing`, earlier `Accepts Marketing`)
            aliases=(
                "marketing_consent",
                "marketing_opt_in",
                "newsletter_opt_in",
                "accepts_marketing",
                "accepts_email_marketing",
                "email_marketing_consent",
                "email_opt_in",
                "newsletter",
                "newsletter_subscribed",
                "newsletter_subscription",
                "subscribed_to_newsletter",
                # (Magento 2's customers export: Subscribed, Not Subscribed, Unsubscribed, Not Activated)
                "newsletter_subscription_status",
                "newsletter_status",
                # (BigCommerce's customers export: Y or N)
                "receive_review_abandoned_cart_emails",
                "receive_marketing_emails",
                "email_optin",
                "optin",
            ),
            lenient=True,
            description="the user consents to marketing (audience exports; blank: unknown, the shop's "
            "default; a value that is no yes or no: no consent)",
        ),
        ColumnSpec(
            "consent_updated_at",
            Kind.TIMESTAMP,
            classification=Classification.INTERNAL,
            # (Shopify: `Accepts Email Marketing Updated At`, its API's
            # `email_marketing_consent.consent_updated_at`)
            aliases=(
                "consent_updated",
                "consent_date",
                "consent_changed_at",
                "marketing_consent_updated_at",
                "accepts_email_marketing_updated_at",
                "accepts_marketing_updated_at",
                "email_marketing_consent_updated_at",
            ),
            lenient=True,
            description="when the shop's system last changed the user's consent: an older row does not "
            "overrule a consent recorded since (an unreadable date: none)",
        ),
        _updated_at_column(),
    ),
)

FAQ = TableContract(
    name="faq",
    # 1.1.0: the shop's own words are curated as written: no masking of the contact details an
    # answer gives shoppers (1.0.0 turned "call +1 800 555 0199" into "call [phone]"), and an
    # answer keeps its line breaks (its numbered steps)
    version="1.1.0",
    description="The shop's customer-service FAQ (any language): what `shelfwise ask` answers from. "
    "Written by the shop and shown to shoppers as written: not masked, answers keep their lines.",
    key=("faq_id",),
    key_rule="the last row of a faq_id in file order wins",
    columns=(
        ColumnSpec("faq_id", Kind.ID, required=True, aliases=("id", "question_id", "intent")),
        ColumnSpec(
            "question", Kind.TEXT, required=True, aliases=("title", "instruction", "q"), mask_personal=False
        ),
        ColumnSpec(
            "answer",
            Kind.TEXT,
            required=True,
            aliases=("response", "reply", "a"),
            mask_personal=False,
            keep_lines=True,
        ),
    ),
)

CONTRACTS: dict[str, TableContract] = {c.name: c for c in (PRODUCTS, QUERIES, USERS, EVENTS, JUDGMENTS, FAQ)}
# Load order: referenced tables first.
LOAD_ORDER = ("products", "queries", "users", "events", "judgments", "faq")
# file names other exports use for a table, read when the canonical name is absent (`ratings.csv`
# and `movies.csv` of a MovieLens download, an `orders.csv` export, an `items.jsonl` catalog)
TABLE_FILE_ALIASES: dict[str, tuple[str, ...]] = {
    # (Shopify's admin exports: `products_export.csv`, `orders_export.csv`, `customers_export.csv`;
    # a large one is split as `orders_export_1.csv`, ...; WooCommerce's product export is named
    # after its date, `wc-product-export-7-12-2026-1796642000000.csv`: a name ending in `*` is a
    # prefix)
    "products": (
        "items", "catalog", "movies", "articles", "products_export", "products_export_1", "wc-product-export-*",
    ),
    "events": (
        "interactions", "ratings", "transactions", "orders", "purchases", "clicks", "views",
        "orders_export", "orders_export_1",
    ),
    "users": ("customers", "customers_export", "customers_export_1"),
}  # fmt: skip
# an events file named for one kind of event, without an event type column, holds that kind
IMPLIED_EVENT_TYPES = {
    "ratings": "rating",
    "transactions": "purchase",
    "orders": "purchase",
    "purchases": "purchase",
    "clicks": "click",
    "views": "view",
}


def implied_event_type(file_name: str) -> str | None:
    """The kind of event a file's name implies (`IMPLIED_EVENT_TYPES`), its stem read without an
    export's suffix: `orders_export.csv`, `orders-export_2.csv` and `Orders.csv.gz` hold purchases."""
    stem = file_name.lower().split(".")[0]
    stem = re.sub(r"[ _-]*(export)?([ _-]*\d+)?$", "", stem)
    return IMPLIED_EVENT_TYPES.get(stem)


# Extra user-profile columns whose *name* says they hold personal data: excluded from curated data.
PERSONAL_COLUMN_HINTS = (
    "email",
    "e_mail",
    "mail",
    "phone",
    "mobile",
    "telephone",
    "name",
    "first_name",
    "last_name",
    "full_name",
    "surname",
    "address",
    "street",
    "zip",
    "zip_code",
    "zipcode",
    "postcode",
    "postal_code",
    "ip",
    "ip_address",
    "birth",
    "birthday",
    "birth_date",
    "dob",
    "ssn",
    "passport",
    "iban",
    "card",
    # account handles: they name a person as a name does
    "username",
    "nickname",
    "login_name",
    "screen_name",
    # national and tax identifiers
    "tax_id",
    "vat_id",
    "vat_number",
    "national_id",
    "id_card",
    "social_security",
    "driver_license",
    "driving_licence",
    # where a person is: coordinates as precise as an address
    "latitude",
    "longitude",
    "lat",
    "lng",
    "lon",
    "long",
    "geolocation",
    "coordinates",
    "gps",
    "geohash",
    # contact details in short and in other words
    "tel",
    "cell",
    "cellphone",
    "fax",
    "contact",
    "addr",
    "addr1",
    "addr2",
    "ship_to",
    "bill_to",
    "shipping",
    "billing",
    "house_number",
    "apartment",
    # online identifiers (a device, an advertising id: a person, under the GDPR)
    "device_id",
    "imei",
    "mac_address",
    "advertising_id",
    "idfa",
    "gaid",
    "cookie_id",
    "password",
    # special categories of personal data (GDPR art. 9): never a profile column
    "ethnicity",
    "ethnic",
    "race",
    "religion",
    "religious",
    "health",
    "medical",
    "disability",
    "sexual_orientation",
    "political",
    "trade_union",
    "biometric",
    "genetic",
    # the same in the languages shops export in: German, French, Spanish, Italian, Dutch,
    # Portuguese (names compared transliterated: "Straße" is strasse, "Prénom" prenom)
    "vorname",
    "nachname",
    "familienname",
    "anschrift",
    "adresse",
    "strasse",
    "hausnummer",
    "plz",
    "postleitzahl",
    "telefon",
    "handy",
    "geburt",
    "geburtsdatum",
    "geburtstag",
    "konfession",
    "steuernummer",
    "ausweis",
    "prenom",
    "nom",
    "nom_de_famille",
    "rue",
    "code_postal",
    "telephone",
    "portable",
    "naissance",
    "courriel",
    "nombre",
    "apellido",
    "apellidos",
    "direccion",
    "calle",
    "codigo_postal",
    "telefono",
    "movil",
    "celular",
    "nacimiento",
    "correo",
    "dni",
    "nif",
    "cedula",
    "curp",
    "nome",
    "cognome",
    "indirizzo",
    "cap",
    "cellulare",
    "nascita",
    "codice_fiscale",
    "voornaam",
    "achternaam",
    "naam",
    "adres",
    "straat",
    "telefoon",
    "geboorte",
    "geboortedatum",
    "bsn",
    "sobrenome",
    "endereco",
    "cep",
    "telefone",
    "nascimento",
    "cpf",
)


def _words(name: str) -> str:
    """A column's name as lower-case words joined by `_`: `Customer Name`, `customer-name`,
    `CustomerName` and `customer_name` are one name (accents and `ß` transliterated)."""
    import unicodedata

    name = unicodedata.normalize("NFKD", name.replace("ß", "ss")).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()).strip("_")


# a column that says whether a person agreed (`Accepts SMS Marketing`, `Email Opt-In`, `GDPR
# Consent`, `Unsubscribed`): a yes or no, no personal data, whatever channel its name names
_CONSENT_NAME = re.compile(
    r"consent|(?:^|_)opt(?:ed)?_?(?:in|out)(?:_|$)|accepts_(?:\w+_)?marketing|(?:^|_)(?:un)?subscribed(?:_|$)"
    r"|(?:^|_)newsletter(?:_subscri\w*|_status|_sign_?up)?$"
    # an e-mail permission: BigCommerce's `Receive Review/Abandoned Cart Emails?`, `Receive
    # Marketing Emails`, `Email Permission`, `Optin`, `Allow Emails`
    r"|(?:^|_)(?:receive|allow|accepts?|wants?)_(?:\w+_)?e_?mails?(?:_|$)|e_?mail_permission|permission_to_e_?mail"
    r"|(?:^|_)optin(?:_|$)"
)


# an e-mail the shop sends to run an order or an account, not to market (`Receive Invoice Email`,
# `Receive Order Emails`, `Shipping Notification Emails`): no consent is asked for those, so a
# column of them neither grants nor withdraws marketing consent (unless its name also says
# marketing: `Receive Order and Newsletter Emails`)
_TRANSACTIONAL_WORDS = frozenset(
    {
        "invoice",
        "invoices",
        "order",
        "orders",
        "shipping",
        "shipment",
        "shipments",
        "delivery",
        "dispatch",
        "receipt",
        "receipts",
        "confirmation",
        "confirmations",
        "transactional",
        "notification",
        "notifications",
        "password",
        "account",
        "billing",
        "tracking",
    }
)
_MARKETING_WORDS = re.compile(r"market|newsletter|promo|offer|news|review|abandon|cart|advert|partner|sms")


def looks_like_consent(name: str) -> bool:
    """Whether a column's name says it holds a person's consent (`_CONSENT_NAME`); a
    transactional e-mail's (`_TRANSACTIONAL_WORDS`: invoices, order confirmations, shipping
    notices) is none, unless its name says marketing too."""
    low = _words(name)
    if _CONSENT_NAME.search(low) is None:
        return False
    if set(low.split("_")) & _TRANSACTIONAL_WORDS:
        return _MARKETING_WORDS.search(low) is not None
    return True


def classify_extra_column(name: str) -> Classification:
    """Classification of a profile column outside the contract, from its name (in English or in
    one of the languages `PERSONAL_COLUMN_HINTS` lists, accents and `ß` transliterated). A
    consent column is never personal (`Accepts Email Marketing` holds "email" and was dropped,
    so every customer who said no had the shop's default consent)."""
    if looks_like_consent(name):
        return Classification.INTERNAL
    low = _words(name)
    parts = set(low.split("_"))
    # a billing or shipping address in one column (Magento's `billing_full`, `shipping_full`,
    # `billing_line_1`): the street, house number and town of a person
    if parts & _ADDRESS_OWNERS and parts & _ADDRESS_PARTS:
        return Classification.PERSONAL
    # a customer's company (PrestaShop's `company`, BigCommerce's `Company`, Magento's
    # `billing_company`): a line of their address, and a sole trader's is their own name
    # (`Ann Lee Plumbing`); a company's size or sector (`company_size`) is no name and stays
    if low in _COMPANY_NAMES or ("company" in parts and parts & _ADDRESS_OWNERS):
        return Classification.PERSONAL
    # and `Post Code` is a postcode, `TaxID` a tax_id: the words run together compared too
    compact = low.replace("_", "")
    for hint in PERSONAL_COLUMN_HINTS:
        if hint in _WHOLE_NAME_ONLY:
            if low == hint:
                return Classification.PERSONAL
            continue
        run = hint.replace("_", "")
        if low == hint or hint in parts or (len(hint) > 4 and (hint in low or run in compact)):
            return Classification.PERSONAL
    return Classification.INTERNAL


# a profile column that names the customer's company
_COMPANY_NAMES = frozenset({"company", "company_name", "companyname", "business_name", "customer_company"})

# the words of a header naming whose address (`billing_full`, `ship_line1`) and what part of it
_ADDRESS_OWNERS = frozenset({"billing", "shipping", "bill", "ship", "delivery"})
_ADDRESS_PARTS = frozenset({"full", "line", "line1", "line2", "line3", "l1", "l2", "addr", "address"})

# a value that is a street address: a house number and a street (`1 Main St`, `221B Baker
# Street`, `12 rue de la Paix`) or a street and a house number (`Hauptstr. 5`, `Kerkstraat 12`)
STREET_ADDRESS = re.compile(
    r"^\s*\d{1,5}[A-Za-z]?,?\s+(?:[^\W\d][\w.'-]*\s+){0,4}?"
    r"(?:st|street|ave|avenue|rd|road|blvd|boulevard|ln|lane|dr|drive|way|ct|court|pl|place|sq|square"
    r"|ter|terrace|hwy|highway|pkwy|parkway|cres|crescent|close|rue|avenida|calle|via|strasse|stra\u00dfe)\b"
    r"|^\s*[^\W\d][\w.'-]*(?:str\.|stra(?:ss|\u00df)e|weg|gasse|allee|straat|laan|gracht|plein)\s+\d{1,5}[a-z]?\b",
    re.IGNORECASE,
)


def holds_street_addresses(values: list[str]) -> bool:
    """Whether a column's sample values are street addresses (`STREET_ADDRESS`): half or more of
    its values that are not empty, and at least one."""
    seen = [v for v in values if v and v.strip()]
    hits = sum(1 for v in seen if STREET_ADDRESS.search(v))
    return bool(seen) and hits * 2 >= len(seen)


# hints that name a personal column only as the whole name: as a word of a longer one they mean
# something else (`billing_cycle`, `free_shipping_member`, `health_score`, `recalled_orders`,
# `Nombre de commandes`, French for "number of orders", `price_cap`, `contact_preference`)
_WHOLE_NAME_ONLY = frozenset(
    {"nombre", "calle", "billing", "shipping", "portable", "contact", "health", "medical", "cap", "nom"}
)


_PANDERA_TYPES = {
    Kind.ID: str,
    Kind.STRING: str,
    Kind.TEXT: str,
    Kind.CATEGORY: str,
    Kind.ENUM: str,
    Kind.JSON: str,
    Kind.FLOAT: float,
    Kind.BOOL: bool,
}


def _to_pandera(contract: TableContract, *, values: bool = True) -> pa.DataFrameSchema:
    import ibis.expr.datatypes as dt

    skip_pyspark_pandas()
    import pandera.ibis as pa

    columns = {}
    for c in contract.columns:
        checks: list[pa.Check] = []
        if not values:
            dtype = dt.Timestamp(scale=6) if c.kind is Kind.TIMESTAMP else _PANDERA_TYPES[c.kind]
            columns[c.name] = pa.Column(dtype, nullable=True, required=True)
            continue
        if c.allowed:
            # (a lenient enum's unreadable value: `lenient_unknown`, a currency's XXX)
            checks.append(pa.Check.isin([*c.allowed, *([c.lenient_unknown] if c.lenient_unknown else [])]))
        if c.min_value is not None:
            checks.append(pa.Check.ge(c.min_value))
        if c.max_value is not None:
            checks.append(pa.Check.le(c.max_value))
        dtype = dt.Timestamp(scale=6) if c.kind is Kind.TIMESTAMP else _PANDERA_TYPES[c.kind]
        columns[c.name] = pa.Column(dtype, checks=checks, nullable=not c.required, required=True)
    return pa.DataFrameSchema(
        columns,
        name=f"{contract.name}@{contract.version}",
        strict=False,
        unique=(list(contract.key) or None) if values else None,
    )
