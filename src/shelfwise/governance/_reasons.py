"""Reason codes: why a row was quarantined. Stable strings: reports and scripts rely on them."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a row did not reach the curated layer (one primary reason per row, all reasons kept)."""

    MALFORMED_ROW = "malformed_row"  # the parser could not split the line into the header's columns
    MISSING_REQUIRED = "missing_required"  # a required field is empty (after cleaning)
    INVALID_TYPE = "invalid_type"  # not a number / boolean / JSON where one is required
    INVALID_VALUE = "invalid_value"  # not one of the allowed values
    OUT_OF_RANGE = "out_of_range"  # a number or a date outside its plausible range
    UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"  # in none of the forms `timestamp_expr` reads
    DUPLICATE_ROW = "duplicate_row"  # an exact copy of an earlier row (the first is kept)
    DUPLICATE_KEY = "duplicate_key"  # same key, different content (the stated keep rule decides)
    # an appended keyed row (a product, a user) whose `updated_at` is older than its key's curated
    # row's: the newer curated row is kept (a re-send arriving out of order); not a fault
    STALE_ROW = "stale_row"
    UNKNOWN_REFERENCE = "unknown_reference"  # names a product / query the catalog does not know
    BOT_TRAFFIC = "bot_traffic"  # a user whose event rate is far beyond a human's
    UNKNOWN_FIELD = "unknown_field"  # a field outside the contract (the HTTP API is strict)
    # kept aside, not judged by the quality check (`_load_aside`): an order line that is no purchase
    CANCELLED_ORDER = "cancelled_order"  # a line of a cancelled or voided order
    REFUNDED_ORDER = "refunded_order"  # a line of an order refunded in full
    FAILED_PAYMENT = "failed_payment"  # a line of an order whose payment failed (WooCommerce `failed`)
    PENDING_PAYMENT = "pending_payment"  # a line of an order awaiting payment (`pending`)
    ON_HOLD_ORDER = "on_hold_order"  # a line of an order on hold, its payment not confirmed (`on-hold`)
    DRAFT_ORDER = "draft_order"  # a line of a checkout never placed (`checkout-draft`, `draft`)
    TRASHED_ORDER = "trashed_order"  # a line of an order the shop deleted (`trash`)
    SUSPECTED_FRAUD = "suspected_fraud"  # a line of an order held as suspected fraud (Magento `fraud`)
    CHILD_LINE = "child_line"  # a configurable product's child line: its parent line is the item bought
    NO_PRODUCT_LINE = "no_product_line"  # an order line without a product (a gift card, shipping)
    IMAGE_ROW = "image_row"  # a catalog export's row of a further picture alone (no product id, no title)
    STORE_VIEW_ROW = (
        "store_view_row"  # a catalog row of a store view (Magento's `store_view_code`): a translation
    )

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Reason.MALFORMED_ROW: "the line could not be parsed into the header's columns",
    Reason.MISSING_REQUIRED: "a required field is empty",
    Reason.INVALID_TYPE: "a value has the wrong type (number, boolean, JSON)",
    Reason.INVALID_VALUE: "a value is not one of the allowed values",
    Reason.OUT_OF_RANGE: "a number or date is outside its plausible range",
    Reason.UNPARSEABLE_TIMESTAMP: "a timestamp in none of the forms read (ISO 8601, epoch, YYYYMMDD, slash "
    "dates, '05 Jan 2024', RFC 2822)",
    Reason.DUPLICATE_ROW: "an exact duplicate of an earlier row (the first one is kept)",
    Reason.DUPLICATE_KEY: "a conflicting duplicate key (the last row in the file is kept; products and users "
    "with updated_at on every row of the key: the latest one)",
    Reason.STALE_ROW: "an older version of a curated row (its updated_at is earlier than the curated "
    "row's): the newer one is kept",
    Reason.UNKNOWN_REFERENCE: "refers to a product or query that is not in the catalog",
    Reason.BOT_TRAFFIC: "the user's event rate is far beyond a human's (robot traffic)",
    Reason.UNKNOWN_FIELD: "a field that is not in the contract (events posted over HTTP)",
    Reason.CANCELLED_ORDER: "a line of a cancelled or voided order: not a purchase (kept aside)",
    Reason.REFUNDED_ORDER: "a line of an order refunded in full: not a purchase (kept aside)",
    Reason.FAILED_PAYMENT: "a line of an order whose payment failed: not a purchase (kept aside)",
    Reason.PENDING_PAYMENT: "a line of an order still awaiting payment: not a purchase (kept aside)",
    Reason.ON_HOLD_ORDER: "a line of an order on hold, its payment not confirmed: not a purchase (kept aside)",
    Reason.DRAFT_ORDER: "a line of a checkout draft, never placed: not a purchase (kept aside)",
    Reason.TRASHED_ORDER: "a line of an order the shop deleted (trash): not a purchase (kept aside)",
    Reason.SUSPECTED_FRAUD: "a line of an order held as suspected fraud: not a purchase (kept aside)",
    Reason.CHILD_LINE: "the child line of an order line (Magento's configurable item): its parent line is the purchase (kept aside)",
    Reason.NO_PRODUCT_LINE: "an order line without a product (a gift card, wrapping, shipping; kept aside)",
    Reason.IMAGE_ROW: "a catalog row holding a further picture of the product above it alone (kept aside)",
    Reason.STORE_VIEW_ROW: "a catalog row of a store view (a translation of the product's default row; kept aside)",
}

# the set-aside reasons an order's status gives: the order is not (or no longer) a purchase
ORDER_STATUS_REASONS = (
    Reason.CANCELLED_ORDER,
    Reason.REFUNDED_ORDER,
    Reason.FAILED_PAYMENT,
    Reason.PENDING_PAYMENT,
    Reason.ON_HOLD_ORDER,
    Reason.DRAFT_ORDER,
    Reason.TRASHED_ORDER,
    Reason.SUSPECTED_FRAUD,
)
# the reasons of rows kept aside as the shop's data says them, not faults of the file: counted
# (`rows_set_aside`), never judged by the quality check
SET_ASIDE_REASONS = frozenset(
    {
        *ORDER_STATUS_REASONS,
        Reason.CHILD_LINE,
        Reason.NO_PRODUCT_LINE,
        Reason.IMAGE_ROW,
        Reason.STORE_VIEW_ROW,
    }
)
