"""Order lines that are no purchase, kept aside before the row checks (both engines).

An order-lines export (every row a purchase, its orders named by a session_id column: Shopify's
`orders_export.csv`) holds lines the shop did not sell:

- the lines of an order never paid or never placed: its payment failed (`failed_payment`), still
  awaited (`pending_payment`) or not confirmed (`on_hold_order`), a checkout draft (`draft_order`),
  an order in the shop's trash (`trashed_order`); Magento 2's `holded` (on hold), `payment_review`
  (pending payment) and `fraud` (`suspected_fraud`), and its `closed` (refunded in full) where the
  status column holds Magento's own statuses (`MAGENTO_STATUSES`), a finished order elsewhere. A status is read without WooCommerce's `wc-`
  prefix, case, spaces, underscores and hyphens (`wc-on-hold` is `On Hold`); a status in neither
  list (`STATUS_REASONS`, `PURCHASE_STATUSES`) is not guessed: its lines stay purchases and the
  load's notes name it with its lines;
- the lines of a cancelled or voided order (`Cancelled at` set, `Financial Status` voided or
  cancelled), and of an order refunded in full (`refunded`: the goods came back or were never
  sent; a `partially_refunded` order stays a purchase, its export does not say which line was
  refunded). The export writes the order's fields on its first line only: they are carried to
  the order's other lines (a filter on the column kept lines 2..n of a cancelled order): a line's
  own value, else its order's first non-empty one by line (never max(), which made one refunded
  line of a paid order set the order aside); a line without an order id has its own alone. A
  cancellation column counts only a time or an explicit true (a boolean `cancelled` of false/no/0
  set whole files aside). Over half a delivery set aside is a warning, said with the check;
- lines without a product (a gift card, gift wrapping, shipping: no SKU): no product to learn or
  serve.

Their rows stay in raw (everything received) and go to the quarantine with a reason of their own
(`cancelled_order`, `refunded_order`, `no_product_line`, status open: a steward may release one),
counted in the load's `rows_quarantined` (rows in = curated + quarantined + withheld) and in
`rows_set_aside`, which the quality check does not judge: they are the shop's data as it is, not
faults of the file. The load view (`LoadState.load`) leaves them out, so DuckDB's and Spark's row
checks never see them. The lines of an erased user are withheld (`rows_withheld`) before any is
written to the quarantine, on both engines (this stage runs on DuckDB for both).
"""

from __future__ import annotations

from collections.abc import Callable

from ..storage import stage_file
from ._compile import id_sql, lit, q
from ._ingest_report import SET_ASIDE_WARN_SHARE
from ._load_state import LoadState, count_withheld, parquet_files, still_the_quarantines
from ._orderlines import source_relation
from ._reasons import Reason

__all__ = [
    "ASIDE",
    "INHERITED",
    "NOT_VISIBLE",
    "VARIANTS",
    "order_status_columns",
    "set_aside",
    "status_key_sql",
]

# the temp table of a load's set-aside lines (`_source_line`, reason, detail), read by `_define_load`
ASIDE = "_aside_lines"
# a catalog's variant rows and the line of their parent's row (`_source_line`, `parent_line`)
VARIANTS = "_variant_parents"
# a product's fields a variant row leaves empty and takes from its parent's row (its id, price
# and stock are its own)
INHERITED = ("title", "description", "category", "brand", "in_stock")
# header names of the parent product a catalog row belongs to (Shopify's `Handle`, Google
# Merchant's `item_group_id`)
PARENT_KEYS = ("handle", "parentid", "parentsku", "parentproductid", "itemgroupid", "productgroupid")

# header names (compared without case, spaces and punctuation) of an order's payment status and
# of the time it was cancelled
STATUS_KEYS = (
    "financialstatus",
    "paymentstatus",
    "orderstatus",
    "status",
    # PrestaShop 8's order exports: the order's state by name (`current_state`, `order_state`)
    "currentstate",
    "orderstate",
)
# a header read as the order's status only where its values are order statuses shelfwise knows
# (most of them, `STATE_SHARE`): a bare `state` is as often the region of an address
STATUS_BY_VALUE_KEYS = ("state",)
STATE_SHARE = 0.5
CANCELLED_KEYS = ("cancelledat", "canceledat", "cancelled", "canceled", "cancellationdate", "cancelleddate")
# an order's status as read: lower case, WooCommerce's `wc-` prefix off, spaces, underscores and
# hyphens out (`wc-on-hold`, `On Hold` and `on_hold` are `onhold`)
# statuses whose lines are set aside, and why: an order cancelled, voided or refunded in full, and
# one never paid (its payment failed, still awaited or not confirmed) or never placed (a
# checkout draft) or deleted (WooCommerce's trash)
CANCELLED_STATUSES = ("voided", "cancelled", "canceled")
REFUNDED_STATUSES = ("refunded",)
STATUS_REASONS: dict[str, Reason] = {
    **{s: Reason.CANCELLED_ORDER for s in CANCELLED_STATUSES},
    **{s: Reason.REFUNDED_ORDER for s in REFUNDED_STATUSES},
    "failed": Reason.FAILED_PAYMENT,
    "pending": Reason.PENDING_PAYMENT,
    "pendingpayment": Reason.PENDING_PAYMENT,
    "onhold": Reason.ON_HOLD_ORDER,
    "checkoutdraft": Reason.DRAFT_ORDER,
    "draft": Reason.DRAFT_ORDER,
    "trash": Reason.TRASHED_ORDER,
    # Magento 2's order states: on hold (`holded`), a payment under review, suspected fraud
    "holded": Reason.ON_HOLD_ORDER,
    "paymentreview": Reason.PENDING_PAYMENT,
    "fraud": Reason.SUSPECTED_FRAUD,
    "suspectedfraud": Reason.SUSPECTED_FRAUD,
    # BigCommerce's: a card declined, a checkout never finished (`Incomplete`), an order placed
    # and never paid, and one held for a fraud check before its payment is taken (as Magento's
    # payment review); `Disputed` (a paid order whose payment the buyer contests) stays a purchase
    # until a refund says otherwise, as `Partially Refunded` does
    "declined": Reason.FAILED_PAYMENT,
    "incomplete": Reason.DRAFT_ORDER,
    "awaitingpayment": Reason.PENDING_PAYMENT,
    "manualverificationrequired": Reason.PENDING_PAYMENT,
    # PrestaShop 8's default order states never paid: a failed payment, a bank wire or a cheque
    # awaited (the goods wait for the money), a backorder not paid. ("Canceled" and "Refunded" are
    # above; its "Awaiting cash on delivery validation" is a purchase, `PURCHASE_STATUSES`)
    "paymenterror": Reason.FAILED_PAYMENT,
    "awaitingbankwirepayment": Reason.PENDING_PAYMENT,
    "awaitingcheckpayment": Reason.PENDING_PAYMENT,
    "awaitingchequepayment": Reason.PENDING_PAYMENT,
    "onbackordernotpaid": Reason.PENDING_PAYMENT,
}
# header names of an order line's own id and of the line it is the child of (Magento 2 writes a
# configurable product bought as a parent line, `product_type` configurable, with the price, and a
# child line, `parent_item_id` naming the parent's `item_id`, price 0: one item, on two lines)
LINE_ID_KEYS = ("itemid", "orderitemid", "lineitemid", "lineid")
PARENT_LINE_KEYS = ("parentitemid", "parentorderitemid", "parentlineitemid", "parentlineid")
# `closed` is a refunded-in-full order in Magento 2 (a credit memo closed it) but a finished one
# elsewhere (Shopify archives fulfilled orders as closed): read as refunded only where the status
# column's values are Magento's, i.e. it also holds a status only Magento writes: `holded`,
# `payment_review`, or `complete` (WooCommerce writes `completed`); else it stays a purchase (the
# notes name it as a status not known)
MAGENTO_CLOSED = "closed"
MAGENTO_STATUSES = ("holded", "paymentreview", "complete")
# statuses of a paid order, read as purchases (Shopify's financial and fulfillment statuses,
# WooCommerce's `processing` and `completed`); a partially refunded order stays a purchase (its
# export does not say which line was refunded). A status in neither list is not guessed: its
# lines stay purchases and the load's notes name it
PURCHASE_STATUSES = (
    "paid",
    "partiallypaid",
    "authorized",
    "partiallyrefunded",
    "fulfilled",
    "unfulfilled",
    "partiallyfulfilled",
    "partial",
    "processing",
    "completed",
    "complete",
    "shipped",
    "delivered",
    # BigCommerce's paid orders on their way
    "awaitingfulfillment",
    "awaitingshipment",
    "awaitingpickup",
    "partiallyshipped",
    "disputed",
    # PrestaShop 8's default order states of a paid order, and its cash on delivery order: placed
    # and shipped, paid on delivery (a purchase, as Shopify's `pending` payment status is)
    "paymentaccepted",
    "remotepaymentaccepted",
    "processinginprogress",
    "onbackorderpaid",
    "awaitingcashondeliveryvalidation",
)
# a payment status column (Shopify's `Financial Status`) says how the order is paid, not whether
# it was placed: its `pending` is a cash-on-delivery or bank-transfer order awaiting its money,
# often shipped already, a purchase. Only an order status (WooCommerce's `Order Status`) sets the
# never-paid and never-placed statuses aside; a payment status, cancelled, voided and refunded alone
PAYMENT_STATUS_KEYS = ("financialstatus", "paymentstatus")
PAID_LATER_STATUSES = ("pending",)


def status_reasons(status_header: str | None) -> dict[str, Reason]:
    """The statuses whose lines are set aside, for the file's status column (`STATUS_REASONS`, or
    the cancelled and refunded ones alone for a payment status)."""
    if status_header is not None and _key(status_header) in PAYMENT_STATUS_KEYS:
        kept = (Reason.CANCELLED_ORDER, Reason.REFUNDED_ORDER)
        return {k: r for k, r in STATUS_REASONS.items() if r in kept}
    return STATUS_REASONS


# a cancellation column's values that say an order was cancelled, besides a time
CANCELLED_TRUE = ("true", "yes", "y", "t", "1", "cancelled", "canceled", "voided")
# a value read as a time (a date first: `2024-03-07 11:00:00 +0100`, `07/03/2024`)
_DATE_LIKE = r"^\d{4}-\d{1,2}-\d{1,2}|^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def status_key_sql(value: str) -> str:
    """SQL of an order status as it is compared (`STATUS_REASONS`): lower case, a leading `wc-`
    off, every character but letters and digits out."""
    return f"regexp_replace(regexp_replace(lower({value}), '^wc-', ''), '[^a-z0-9]', '', 'g')"


def order_status_columns(
    header: list[str], taken: set[str], holds_statuses: Callable[[str], bool] | None = None
) -> tuple[str | None, str | None]:
    """The header of an order's status and of its cancellation time, when the file has them. A
    header named only like a status (`state`) is one where `holds_statuses` says its values are."""
    by_key = {_key(h): h for h in reversed(header) if h not in taken}
    status = next((by_key[k] for k in STATUS_KEYS if k in by_key), None)
    if status is None and holds_statuses is not None:
        status = next(
            (by_key[k] for k in STATUS_BY_VALUE_KEYS if k in by_key and holds_statuses(by_key[k])), None
        )
    cancelled = next((by_key[k] for k in CANCELLED_KEYS if k in by_key), None)
    return status, cancelled


def _known_statuses() -> tuple[str, ...]:
    return (*STATUS_REASONS, *PURCHASE_STATUSES, *PAID_LATER_STATUSES, MAGENTO_CLOSED)


def _relation(st: LoadState) -> tuple[str, dict[str, str]]:
    """The staged file's rows as text with the lines raw numbers them by (`source_relation`)."""
    staged = st.staged
    if staged.format == "csv" and not staged.numbered:  # (read with its lines, as raw numbers them)
        staged = stage_file(staged.source, st.workdir / "tmp" / "staged")  # (removed with the run's)
    return source_relation(staged, st.header, parquet_files(staged))


def set_aside(st: LoadState) -> None:
    """Keep aside the lines of an order-lines events file that are no purchase, and a catalog's
    rows of pictures alone (see the module); defines `ASIDE` (empty when none) and points the
    load view past them."""
    wh = st.wh
    wh.sql(f"CREATE OR REPLACE TEMP TABLE {ASIDE} (_source_line BIGINT, reason VARCHAR, detail VARCHAR)")
    if st.name == "products" and not st.reprocess:
        _store_views(st)
        _not_visible(st)
        _variants(st)
        _finish(st)
        return
    order = st.mapping.get("session_id")
    if st.name != "events" or order is None or st.implied.get("event_type") != "purchase" or st.reprocess:
        if st.name == "events" and "order_status" in st.read_columns and not st.reprocess:
            st.note(
                f"{st.src.name}: the column map's events.order_status = {st.read_columns['order_status']!r} "
                "is not read: an order's status sets lines aside in an order-lines file only (every row a "
                "purchase, its order named by events.session_id); map session_id to the order id"
            )
        return
    taken = set(st.mapping.values())
    rel, expr = _relation(st)
    mapped = st.read_columns.get("order_status")  # (a column of the file: `_ingest` checked)

    def holds_statuses(h: str) -> bool:
        """Whether most of the column's values (`STATE_SHARE`) are order statuses we know."""
        known = ", ".join(lit(v) for v in _known_statuses())
        value = status_key_sql(f"nullif(trim({expr[h]}), '')")
        got = wh.sql(
            f"SELECT count(*) FILTER (WHERE v IN ({known})), count(v) FROM (SELECT {value} AS v FROM {rel})"
        ).fetchone()
        return bool(got and got[1] and got[0] >= STATE_SHARE * got[1])

    status, cancelled = order_status_columns(
        st.header, taken | ({mapped} if mapped else set()), holds_statuses
    )
    if mapped is not None:
        status = mapped
    read = [h for h in (status, cancelled) if h]
    if read:  # read for the set-aside: not among the columns the load ignored
        st.tr.ignored_columns = [c for c in st.tr.ignored_columns if c not in read]
        st.report.notes.append(
            f"{st.staged.source.name}: {' and '.join(repr(h) for h in read)} "
            f"{'is' if len(read) == 1 else 'are'} read for the order's status (the lines of a cancelled, "
            "voided or refunded order are set aside, not purchases), not curated as a column"
        )

    def text(h: str) -> str:
        return f"nullif(trim({expr[h]}), '')"

    def carried(value: str) -> str:
        """A line's own value, else its order's first non-empty one (by line: Shopify writes the
        order's fields on its first line only); a line without an order id has its own alone."""
        first = (
            f"first_value({value} IGNORE NULLS) OVER (PARTITION BY {text(order)} ORDER BY _line "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
        )
        return f"coalesce({value}, CASE WHEN {text(order)} IS NOT NULL THEN {first} END)"

    # a cancellation column is read only where it says so: a time (`Cancelled at`) or an explicit
    # true (a boolean `cancelled` holding false/no/0 is no cancellation)
    said = ", ".join(lit(v) for v in CANCELLED_TRUE)
    cancel = (
        f"CASE WHEN regexp_matches({text(cancelled)}, {lit(_DATE_LIKE)}) OR lower({text(cancelled)}) IN ({said}) "
        f"THEN {text(cancelled)} END"
        if cancelled
        else "NULL::VARCHAR"
    )
    status_value = status_key_sql(text(status)) if status else "NULL::VARCHAR"
    status_said = f"lower({text(status)})" if status else "NULL::VARCHAR"
    lines = (
        f"SELECT _line, {text(order)} AS _order, {carried(status_value)} AS _status, "
        f"{carried(status_said)} AS _said, {carried(cancel)} AS _cancelled FROM {rel}"
    )
    no_product = f"nullif(trim(l.{q('product_id')}), '') IS NULL"
    reasons = status_reasons(status)
    wh.sql(f"CREATE OR REPLACE TEMP TABLE _aside_status AS {lines}")
    if status and reasons is STATUS_REASONS:
        marks = ", ".join(lit(s) for s in MAGENTO_STATUSES)
        said_by = wh.sql(
            f"SELECT list(DISTINCT _said ORDER BY _said) FROM _aside_status WHERE _status IN ({marks})"
        ).fetchone()
        closed = wh.sql(
            f"SELECT count(*) FROM _aside_status WHERE _status = {lit(MAGENTO_CLOSED)}"
        ).fetchone()
        if said_by and said_by[0] and closed and closed[0]:
            reasons = {**reasons, MAGENTO_CLOSED: Reason.REFUNDED_ORDER}
            st.note(
                f"{st.src.name}: {status!r} holds Magento's statuses ({', '.join(repr(v) for v in said_by[0])}): "
                f"its 'closed' is an order refunded in full (a credit memo), set aside as refunded_order "
                "(elsewhere 'closed' is a finished order, a purchase)"
            )
    aside_list = ", ".join(lit(s) for s in reasons)
    by_status = " ".join(f"WHEN o._status = {lit(s)} THEN {lit(r.value)}" for s, r in reasons.items())
    status_name = lit(status or "status")
    the_order = "coalesce('order ' || o._order, 'a line without an order id')"
    wh.sql(
        f"""INSERT INTO {ASIDE}
            SELECT l._source_line,
              CASE WHEN o._cancelled IS NOT NULL THEN {lit(Reason.CANCELLED_ORDER.value)}
                   {by_status}
                   ELSE {lit(Reason.NO_PRODUCT_LINE.value)} END,
              CASE WHEN o._cancelled IS NOT NULL
                     THEN {the_order} || ' was cancelled at ' || o._cancelled || ': not a purchase'
                   WHEN o._status IN ({aside_list})
                     THEN {the_order} || ' is ' || o._said || ' (' || {status_name} || '): not a purchase'
                   ELSE 'an order line without a product id (a gift card, wrapping, shipping): no product to learn or serve' END
            FROM {st.target} l LEFT JOIN _aside_status o ON o._line = l._source_line
            WHERE l._load = {int(st.load_id)} AND (o._cancelled IS NOT NULL
              OR o._status IN ({aside_list}) OR {no_product})"""
    )
    _child_lines(st, rel, expr, order)
    if status:
        _unknown_statuses(st, status)
    wh.sql("DROP TABLE _aside_status")
    _finish(st)


def _child_lines(st: LoadState, rel: str, expr: dict[str, str], order: str) -> None:
    """Set aside a child line (`child_line`): one whose parent line column (`parent_item_id`)
    names the line id (`item_id`) of another line of the same order. Its parent line carries the
    product bought (Magento writes the chosen variant's SKU on both) and the price (0 on the
    child's): read once, not twice. A line already set aside (a cancelled order's) keeps its reason."""
    taken = set(st.mapping.values())
    by_key = {_key(h): h for h in reversed(st.header)}
    item = next((by_key[k] for k in LINE_ID_KEYS if k in by_key), None)
    parent = next((by_key[k] for k in PARENT_LINE_KEYS if k in by_key and by_key[k] not in taken), None)
    if item is None or parent is None:
        return

    def text(h: str) -> str:
        return f"nullif(trim({expr[h]}), '')"

    rows = (
        f"SELECT _line, {text(order)} AS _order, {text(item)} AS _item, {text(parent)} AS _parent FROM {rel}"
    )
    st.wh.sql(
        f"""INSERT INTO {ASIDE}
            SELECT l._source_line, {lit(Reason.CHILD_LINE.value)},
              'a child line of order ' || c._order || ' (' || {lit(parent)} || ' ' || c._parent
              || ', the line on line ' || p._line || '): that line is the item bought, read once'
            FROM {st.target} l JOIN ({rows}) c ON c._line = l._source_line
            JOIN ({rows}) p ON p._order = c._order AND p._item = c._parent AND p._line <> c._line
            WHERE l._load = {int(st.load_id)} AND c._parent IS NOT NULL
              AND l._source_line NOT IN (SELECT _source_line FROM {ASIDE})
            QUALIFY row_number() OVER (PARTITION BY l._source_line ORDER BY p._line) = 1"""
    )
    st.tr.ignored_columns = [c for c in st.tr.ignored_columns if c != parent]
    st.note(
        f"{st.src.name}: {parent!r} is read to set a child line aside (one naming the {item!r} of another "
        "line of its order: Magento's configurable item, its parent line the purchase with the price), "
        "not curated as a column"
    )


def _unknown_statuses(st: LoadState, status: str) -> None:
    """A note naming the status values the load's lines hold that shelfwise does not know (in
    neither `STATUS_REASONS` nor `PURCHASE_STATUSES`), with their lines: kept as purchases, not
    guessed (a shop's own status, `wc-packed`, may be paid or not)."""
    paid_later = PAID_LATER_STATUSES if status_reasons(status) is not STATUS_REASONS else ()
    known = ", ".join(lit(s) for s in (*status_reasons(status), *PURCHASE_STATUSES, *paid_later))
    rows = st.wh.sql(
        f"""SELECT o._said, count(*) FROM {st.target} l JOIN _aside_status o ON o._line = l._source_line
            WHERE l._load = {int(st.load_id)} AND o._cancelled IS NULL AND o._status IS NOT NULL
              AND o._status NOT IN ({known})
              AND l._source_line NOT IN (SELECT _source_line FROM {ASIDE})
            GROUP BY 1 ORDER BY 2 DESC, 1"""
    ).fetchall()
    if not rows:
        return
    said = ", ".join(f"{v!r} {int(n):,} line(s)" for v, n in rows)
    st.note(
        f"{st.src.name}: {status!r} value(s) shelfwise does not know: {said}; read as purchases (kept, "
        "not guessed: set aside are only cancelled, voided and refunded orders, and by an order status "
        "(not a payment status) failed, pending, on-hold, draft and trash ones and Magento's holded, "
        "payment_review and fraud, PrestaShop's payment error, awaiting bank wire or check payment and on "
        "backorder (not paid), a `wc-` prefix and case ignored; 'closed' is refunded beside Magento's "
        "own statuses only)"
    )


# header names of a catalog row's store view (Magento 2's `store_view_code`, Magento 1's `_store`):
# empty on the product's default row, a store's code on a row of that store's translations
STORE_VIEW_KEYS = ("storeviewcode", "storeview")  # (not a bare `store`: a marketplace's vendor)


def _store_views(st: LoadState) -> None:
    """A catalog that repeats a product on a row per store view (Magento: `store_view_code` `de`,
    a German `name`, the other fields empty) beside its default row (the column empty): each
    store view's row is a translation, kept aside as `store_view_row` (the last row of an id
    won: German titles served, categories and prices lost); the default row is the product.
    Only when the file has default rows (a column empty somewhere), and said in a note."""
    view = next(
        (h for k in STORE_VIEW_KEYS for h in st.header if _key(h) == k and h not in st.mapping.values()), None
    )
    if view is None:
        return
    key = st.mapping.get("product_id")
    rel, expr = _relation(st)
    if key is None or key not in expr:
        return
    code, pid = f"nullif(trim({expr[view]}), '')", f"nullif(trim({expr[key]}), '')"
    # a store view's row only where its product has a default row (the column empty): a row of
    # its own with the column set (a marketplace vendor's product) is a product (a review)
    views = (
        f"SELECT _line, {code} AS _view FROM {rel} WHERE {code} IS NOT NULL "
        f"AND {pid} IN (SELECT {pid} FROM {rel} WHERE {code} IS NULL AND {pid} IS NOT NULL)"
    )
    before = st.wh.sql(f"SELECT count(*) FROM {ASIDE}").fetchone()
    st.wh.sql(
        f"""INSERT INTO {ASIDE} SELECT l._source_line, {lit(Reason.STORE_VIEW_ROW.value)},
              'a row of store view ' || h._view || ' ({view}): a translation of the product''s default row, '
              || 'not a product of its own'
            FROM {st.target} l JOIN ({views}) h ON h._line = l._source_line
            WHERE l._load = {int(st.load_id)}"""
    )
    after = st.wh.sql(f"SELECT count(*) FROM {ASIDE}").fetchone()
    n = int(after[0] if after else 0) - int(before[0] if before else 0)
    if not n:
        return
    st.tr.ignored_columns = [c for c in st.tr.ignored_columns if c != view]
    st.note(
        f"{st.src.name}: {view!r} is read for the store view: its {n:,} store-view row(s) of a product with "
        "a default row (the column empty) are translations kept aside (store_view_row); the default row is the product"
    )


# the lines of a catalog whose `visibility` says the product is never shown alone (Magento's
# `Not Visible Individually`: a configurable's child), read as not published by the load view
# when `published` is read from another column (`product_online`): either saying no is a no
NOT_VISIBLE = "_not_visible_lines"


def _not_visible(st: LoadState) -> None:
    """`NOT_VISIBLE` from a `visibility` column beside the column `published` is read from."""
    st.wh.sql(f"DROP TABLE IF EXISTS {NOT_VISIBLE}")
    read = st.mapping.get("published")
    view = next((h for h in st.header if _key(h) == "visibility" and h != read), None)
    if read is None or view is None or view in st.mapping.values():
        return
    rel, expr = _relation(st)
    st.wh.sql(
        f"""CREATE TEMP TABLE {NOT_VISIBLE} AS SELECT _line AS _source_line FROM {rel}
            WHERE lower(trim({expr[view]})) = 'not visible individually'"""
    )
    st.tr.ignored_columns = [c for c in st.tr.ignored_columns if c != view]
    row = st.wh.sql(f"SELECT count(*) FROM {NOT_VISIBLE}").fetchone()
    st.note(
        f"{st.src.name}: {view!r} is read beside {read!r} for published: {int(row[0]) if row else 0:,} "
        "row(s) 'Not Visible Individually' (a configurable's child) are not published, whatever "
        f"{read!r} says"
    )


def _variants(st: LoadState) -> None:
    """A catalog exported a row per variant under its parent (Shopify: `Handle`; the product's
    title, description, vendor, type and published flag on the parent's first row only): each
    variant row takes the fields it leaves empty from its parent's first titled row (`VARIANTS`,
    read by the load view); a row with no value in any mapped column (a further picture of the
    product: its image alone) is kept aside as `image_row`; a variant with a price, stock or
    options but no product id is no picture: judged (`missing_required`)."""
    # (the column read as the product's group, `group_id`, is its parent column: mapped or found
    # by name; else a parent header the load does not read)
    parent = st.mapping.get("group_id") or next(
        (h for k in PARENT_KEYS for h in st.header if _key(h) == k and h not in st.mapping.values()), None
    )
    if parent is None or "title" not in st.mapping:
        return
    rel, expr = _relation(st)
    handle = f"nullif(trim({expr[parent]}), '')"
    title = f"nullif(trim(l.{q('title')}), '')"
    # a picture alone: every column the file maps (and every extra kept) empty, its group aside
    # (Shopify writes the handle on a picture's row too); a variant with a price or stock but no
    # SKU is a product row without its id, judged (`missing_required`)
    mapped = [c for c in st.raw_cols if (c in st.mapping and c != "group_id") or c.startswith("x_")]
    picture = " AND ".join(f"nullif(trim(l.{q(c)}::VARCHAR), '') IS NULL" for c in mapped) or "false"
    st.wh.sql(
        f"""CREATE OR REPLACE TEMP TABLE {VARIANTS} AS SELECT * FROM (
              SELECT l._source_line, {picture} AS _picture, h._parent,
                min(CASE WHEN {title} IS NOT NULL THEN l._source_line END) OVER (PARTITION BY h._parent) AS parent_line
              FROM {st.target} l JOIN (SELECT _line, {handle} AS _parent FROM {rel}) h ON h._line = l._source_line
              WHERE l._load = {int(st.load_id)} AND h._parent IS NOT NULL)
            WHERE parent_line IS NOT NULL AND parent_line <> _source_line"""
    )
    st.wh.sql(
        f"""INSERT INTO {ASIDE} SELECT _source_line, {lit(Reason.IMAGE_ROW.value)},
              'a row of ' || {lit(parent)} || ' ' || _parent || ' with no value but its picture: a further '
              || 'picture of the product on line ' || parent_line || ', not a product'
            FROM {VARIANTS} WHERE _picture"""
    )
    # the fields actually filled: a variant's empty field its parent's row has a value for
    inherit = [c for c in INHERITED if c in st.raw_cols]
    empty = lambda t, c: f"nullif(trim({t}.{q(c)}::VARCHAR), '') IS NULL"  # noqa: E731
    takes = {c: f"({empty('l', c)} AND NOT {empty('p', c)})" for c in inherit}
    # (per field, and the variant rows that took any: one pass over the variants)
    counts = st.wh.sql(
        f"""SELECT {"".join(f"count(*) FILTER (WHERE {t}), " for t in takes.values())}
                   count(DISTINCT v._source_line) FILTER (WHERE {" OR ".join(takes.values()) or "false"})
            FROM {VARIANTS} v
            JOIN {st.target} l ON l._load = {int(st.load_id)} AND l._source_line = v._source_line
            JOIN {st.target} p ON p._load = {int(st.load_id)} AND p._source_line = v.parent_line
            WHERE NOT v._picture"""
    ).fetchone() or (0,) * (len(takes) + 1)
    took = {c: int(n) for c, n in zip(inherit, counts[:-1], strict=True) if n}
    variants = int(counts[-1] or 0)
    grouped = (
        f" (read as products.group_id: served lists hold one product per {parent!r})"
        if st.mapping.get("group_id") == parent
        else ""
    )
    # (read for the variants' fields: not among the columns the load ignored)
    st.tr.ignored_columns = [c for c in st.tr.ignored_columns if c != parent]
    if variants:
        said = ", ".join(f"{c} ({n:,})" for c, n in took.items())
        st.note(
            f"{st.src.name}: {variants:,} variant row(s) take fields they leave empty from their parent's "
            f"first row (the same {parent!r}{grouped}): {said}; each variant is a product of its own id"
        )


def _finish(st: LoadState) -> None:
    """The set-aside lines into the quarantine, the load view past them, and a note."""
    wh = st.wh
    _withhold_erased(st)
    row = wh.sql(f"SELECT count(*) FROM {ASIDE}").fetchone()
    from ._load_raw import _define_load

    if row and row[0]:  # (in the run's transaction: `LoadState.defer`)
        st.defer(lambda: _quarantine(st))
    _define_load(st, st.target)
    if not row or not row[0]:
        return
    counts = dict(wh.sql(f"SELECT reason, count(*) FROM {ASIDE} GROUP BY 1 ORDER BY 1").fetchall())
    said = ", ".join(f"{int(n):,} {r}" for r, n in counts.items())
    what = "not products" if st.name == "products" else "not purchases"
    carried = (
        "" if st.name == "products" else "; the order's status is carried from its first line to the others"
    )
    st.note(
        f"{st.src.name}: {said} line(s) kept aside, {what} (quarantined with their reason, not judged "
        f"by the quality check{carried})"
    )
    total = wh.sql(f"SELECT count(*) FROM {st.target} WHERE _load = {int(st.load_id)}").fetchone()
    aside, rows = sum(int(n) for n in counts.values()), int(total[0]) if total else 0
    if rows and aside > SET_ASIDE_WARN_SHARE * rows:
        st.warn(
            f"{st.src.name}: {aside:,} of {rows:,} line(s) kept aside ({said}), over "
            f"{100 * SET_ASIDE_WARN_SHARE:g}% of the delivery and not judged by the quality check: is a status "
            "or cancellation column read as it should be? (quarantine list shows each line's reason)"
        )


def _withhold_erased(st: LoadState) -> None:
    """Set-aside lines naming an erased user leave the load before anything is written to the
    quarantine (its `raw` holds the id in clear): withheld and counted, as the row checks' rows of
    erased users are (`withhold_erased`, which reads only the lines checked, never these). A line
    set aside is no purchase, so its date is not asked: every one naming an erased user is
    withheld."""
    if not st.staging or st.erasures is None:
        return
    wh, lines = st.wh, set()
    for c in st.pseudo_cols:
        rows = wh.sql(
            f"""SELECT a._source_line, {id_sql(f"l.{q(c)}")} FROM {ASIDE} a
                JOIN {st.target} l ON l._source_line = a._source_line AND l._load = {int(st.load_id)}
                WHERE nullif(trim(l.{q(c)}), '') IS NOT NULL"""
        ).fetchall()
        _, erased = st.erasures.lookup(sorted({str(r[1]) for r in rows}))
        hit = {raw for raw, _ in erased}
        lines |= {int(r[0]) for r in rows if str(r[1]) in hit}
    if not lines:
        return
    listed = ", ".join(str(n) for n in sorted(lines))
    wh.sql(f"DELETE FROM {ASIDE} WHERE _source_line IN ({listed})")
    wh.sql(f"DELETE FROM {st.target} WHERE _load = {int(st.load_id)} AND _source_line IN ({listed})")
    count_withheld(st.tr, len(lines))
    if st.reprocess:
        st.withheld_lines += sorted(lines)


def _quarantine(st: LoadState) -> None:
    """The set-aside rows into the quarantine, as the row checks write theirs (`raw`: the row's
    contract columns); one sent before by another load is `redelivered`."""
    raw = "json_object(" + ", ".join(f"{lit(c)}, l.{q(c)}" for c in st.raw_cols) + ")"
    before = (
        f"SELECT DISTINCT raw::VARCHAR AS raw FROM quarantine.rows WHERE table_name = {lit(st.name)} "
        f"AND run_id <> {lit(st.run_id)} AND {still_the_quarantines(st.mode == 'append')}"
    )
    st.wh.sql(
        f"""INSERT INTO quarantine.rows
            SELECT nextval('quarantine.qid_seq'), {lit(st.run_id)}, {lit(st.name)}, {lit(str(st.src))},
                   a._source_line, a.reason, [a.reason], a.detail, a.raw::JSON,
                   CASE WHEN e.raw IS NOT NULL THEN 'redelivered' ELSE 'open' END, now()::TIMESTAMP, NULL
            FROM (SELECT a._source_line, a.reason, a.detail, {raw}::VARCHAR AS raw FROM {ASIDE} a
                  JOIN {st.target} l ON l._source_line = a._source_line AND l._load = {int(st.load_id)}) a
            LEFT JOIN ({before}) e ON e.raw = a.raw ORDER BY a._source_line"""
    )
