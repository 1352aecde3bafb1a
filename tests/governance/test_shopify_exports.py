"""A Shopify shop's admin exports as downloaded (walk48a): `products_export.csv` with a row per
variant, `orders_export.csv` with a row per line item and the order's fields on its first line
only, `customers_export.csv`. Small files with known answers; `tests/storage/test_spark_shopify.py`
loads the same files on Spark."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.governance._contracts import EVENTS, PRODUCTS
from shelfwise.governance._ingest import _declare_hint
from shelfwise.governance._mapping import suggest_columns
from tests.conftest import curated_rows

ORDERS_HEADER = "Name,Email,Financial Status,Created at,Lineitem quantity,Lineitem name,Lineitem sku,Cancelled at,Location,Device ID\n"
ORDERS = ORDERS_HEADER + (
    "#1001,a@example.com,paid,2024-03-05T14:22:31+01:00,2,Chair - Black,CH-BLA,,,\n"
    "#1001,a@example.com,,2024-03-05T14:22:31+01:00,1,Lamp,LA-1,,,\n"
    "#1002,b@example.com,paid,2024-03-06T10:00:00+01:00,1,Chair - White,CH-WHI,,,\n"
    "#1003,c@example.com,voided,2024-03-07T10:00:00+01:00,1,Lamp,LA-1,2024-03-07T11:00:00+01:00,,\n"
    "#1003,c@example.com,,2024-03-07T10:00:00+01:00,3,Chair - Black,CH-BLA,,,\n"
)
MAP = '[map.events]\nuser_id = "Email"\nproduct_id = "Lineitem sku"\nsession_id = "Name"\nquantity = "Lineitem quantity"\n'


def _shop(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "shop"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


# -- F6: first steps --------------------------------------------------------------------------------
def test_shopifys_export_names_are_read_as_their_tables(tmp_path: Path) -> None:
    """`orders_export.csv` holds purchases (only `orders.csv` did), `customers_export.csv` is the
    users table."""
    d = _shop(
        tmp_path,
        {
            "orders_export.csv": ORDERS.split("#1003")[0],
            "customers_export.csv": "Email,Tags\na@example.com,vip\nb@example.com,\n",
            "shelfwise.toml": MAP + '[map.users]\nuser_id = "Email"\n',
        },
    )
    report = Ingestor(tmp_path / "w").run(d)
    assert set(report.tables) == {"events", "users"}
    assert report.tables["events"].rows_curated == 3
    assert curated_rows(tmp_path / "w", "SELECT DISTINCT event_type FROM curated.events") == [("purchase",)]


def test_the_map_may_say_every_row_is_a_purchase(tmp_path: Path) -> None:
    d = _shop(
        tmp_path,
        {
            "sales 2024.csv": "Email,Lineitem sku,Created at\na@example.com,CH-BLA,2024-03-05T14:22:31Z\n",
            "shelfwise.toml": '[files]\nevents = "sales 2024.csv"\n[map.events]\nuser_id = "Email"\n'
            'product_id = "Lineitem sku"\nevent_type = "purchase"\n',
        },
    )
    report = Ingestor(tmp_path / "w").run(d)
    assert report.tables["events"].rows_curated == 1
    assert curated_rows(tmp_path / "w", "SELECT event_type FROM curated.events") == [("purchase",)]


def test_a_customers_export_is_offered_as_the_users_table(tmp_path: Path) -> None:
    d = _shop(tmp_path, {"shop customers.csv": "Email,Tags\na@x.com,vip\n", "shop sales.csv": ORDERS})
    hint = _declare_hint(d)
    assert 'users = "shop customers.csv"' in hint and 'events = "shop sales.csv"' in hint, hint


def test_suggested_columns_are_plausible_by_their_values() -> None:
    """Shopify's orders: `Device ID` and `Location` are empty, `Variant Image` holds links, the
    customer's key is `Email` (they were offered as user_id, event_type and product_id)."""
    header = ORDERS_HEADER.strip().split(",")
    rows = [line.split(",") for line in ORDERS.strip().splitlines()[1:]]
    samples = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    assert suggest_columns(EVENTS, "user_id", header, samples)[0][0] == "Email"
    assert all(
        h not in ("Device ID", "Location")
        for m in ("user_id", "event_type")
        for h, _ in suggest_columns(EVENTS, m, header, samples)
    )
    catalog = ["Handle", "Variant SKU", "Variant Image"]
    samples = {
        "Handle": ["chair", "chair"],
        "Variant SKU": ["CH-BLA", "CH-WHI"],
        "Variant Image": ["https://cdn.shopify.com/a.jpg", ""],
    }
    assert [h for h, _ in suggest_columns(PRODUCTS, "product_id", catalog, samples)] == ["Variant SKU"]


# -- F5 / F8: order lines that are no purchase -------------------------------------------------------
MORE_ORDERS = (
    "#1004,d@example.com,refunded,2024-03-08T10:00:00Z,1,Gift Card,,,,\n"
    "#1004,d@example.com,,2024-03-08T10:00:00Z,1,Lamp,LA-1,,,\n"
    "#1005,d@example.com,paid,2024-03-09T10:00:00Z,1,Gift Card,,,,\n"
    "#1006,e@example.com,partially_refunded,2024-03-09T11:00:00Z,1,Lamp,LA-1,,,\n"
)
CATALOG = (
    "Handle,Title,Body (HTML),Vendor,Variant SKU,Variant Price,Image Src\n"
    'chair,Steno Chair,"<p>A chair.\nFor the office.</p>",Global,CH-BLA,60.74,https://x/1.jpg\n'
    ",,,,,,https://x/ignored.jpg\n"  # (no handle: no variant of anything, a faulty row)
    "chair,,,,CH-WHI,61.00,https://x/2.jpg\n"
    "chair,,,,,,https://x/3.jpg\n"  # a further picture of the chair alone
    "lamp,Desk Lamp,<p>Bright.</p>,Lumo,LA-1,20.00,\n"
)
CATALOG_MAP = '[map.products]\nproduct_id = "Variant SKU"\nprice = "Variant Price"\nbrand = "Vendor"\ndescription = "Body (HTML)"\n'


def shopify_shop(tmp_path: Path) -> Path:
    """The orders and the catalog of a small Shopify shop (for both engines)."""
    return _shop(
        tmp_path,
        {
            "orders_export.csv": ORDERS + MORE_ORDERS,
            "products_export.csv": CATALOG,
            "shelfwise.toml": MAP + CATALOG_MAP,
        },
    )


def test_cancelled_voided_and_refunded_orders_are_kept_aside_not_purchases(tmp_path: Path) -> None:
    """The order's status is on its first line only (#1003: voided and cancelled; #1004: refunded
    in full): all their lines are kept aside, counted with a reason, not judged; so are order lines
    without a product (gift cards); a partially refunded order stays a purchase."""
    report = Ingestor(tmp_path / "w").run(shopify_shop(tmp_path))
    ev = report.tables["events"]
    assert ev.reasons == {"cancelled_order": 2, "refunded_order": 2, "no_product_line": 1}
    assert (ev.rows_in, ev.rows_curated, ev.rows_quarantined, ev.rows_set_aside) == (9, 4, 5, 5)
    assert ev.balanced and ev.check().passed and ev.check().judged == 4
    rows = curated_rows(
        tmp_path / "w", "SELECT session_id, product_id, quantity FROM curated.events ORDER BY 1, 2"
    )
    assert rows == [
        ("#1001", "CH-BLA", 2),
        ("#1001", "LA-1", 1),
        ("#1002", "CH-WHI", 1),
        ("#1006", "LA-1", 1),
    ]
    details = curated_rows(
        tmp_path / "w",
        "SELECT source_line, detail FROM quarantine.rows WHERE table_name = 'events' ORDER BY 1",
    )
    assert details[1] == (6, "order #1003 was cancelled at 2024-03-07T11:00:00+01:00: not a purchase")
    assert details[2] == (7, "order #1004 is refunded (Financial Status): not a purchase")


def test_an_erased_users_set_aside_lines_are_withheld_not_quarantined(tmp_path: Path) -> None:
    """c@ (order #1003, cancelled) is erased; the shop sends its orders again: c@'s two cancelled
    lines are withheld (counted), never written to the quarantine with the e-mail in clear."""
    from shelfwise import Shop

    w, data = tmp_path / "w", shopify_shop(tmp_path)
    Ingestor(w).run(data)
    Shop(w).erase("c@example.com")
    ev = Ingestor(w, mode="append").run(data).tables["events"]
    assert (ev.rows_withheld, ev.withheld) == (2, {"erased_user": 2})
    assert "cancelled_order" not in ev.reasons and ev.balanced
    named = "SELECT count(*) FROM quarantine.rows WHERE raw::VARCHAR LIKE '%c@example.com%'"
    assert curated_rows(w, named) == [(0,)]


def test_a_plain_reprocess_never_releases_set_aside_lines(tmp_path: Path) -> None:
    """Re-processing the events' open rows as they are leaves the five set-aside lines open (a
    cancelled order #1003 and a refunded #1004 stay no purchase; the gift cards are no fault)."""
    from shelfwise.governance import Quarantine

    w = tmp_path / "w"
    Ingestor(w).run(shopify_shop(tmp_path))
    res = Quarantine(w).reprocess("events")
    assert (res["retried"], res["released"], res["skipped"], res["set_aside"]) == (0, 0, 5, 5)
    assert curated_rows(w, "SELECT DISTINCT session_id FROM curated.events ORDER BY 1") == [
        ("#1001",),
        ("#1002",),
        ("#1006",),
    ]
    statuses = "SELECT reason, status, count(*) FROM quarantine.rows WHERE table_name = 'events' GROUP BY ALL ORDER BY 1"
    assert curated_rows(w, statuses) == [
        ("cancelled_order", "open", 2),
        ("no_product_line", "open", 1),
        ("refunded_order", "open", 2),
    ]


STATUS_MAP = (
    '[map.events]\nuser_id = "customer"\nproduct_id = "sku"\nsession_id = "order_id"\ntimestamp = "date"\n'
)


def _orders(tmp_path: Path, text: str):
    data = _shop(tmp_path, {"orders.csv": text, "shelfwise.toml": STATUS_MAP})
    report = Ingestor(tmp_path / "w").run(data)
    lines = "SELECT source_line, reason, detail FROM quarantine.rows ORDER BY 1"
    return report, report.tables["events"], curated_rows(tmp_path / "w", lines)


def test_a_boolean_cancelled_column_sets_aside_only_the_true_ones(tmp_path: Path) -> None:
    """false/no/0 are no cancellation (every line was set aside as "cancelled at false")."""
    _, ev, lines = _orders(
        tmp_path,
        "order_id,customer,sku,date,cancelled\nA1,u1,P1,2024-03-01,false\nA2,u2,P2,2024-03-02,no\n"
        "A3,u3,P1,2024-03-03,0\nA4,u4,P2,2024-03-04,true\n",
    )
    assert (ev.rows_curated, ev.rows_set_aside) == (3, 1)
    assert lines == [(5, "cancelled_order", "order A4 was cancelled at true: not a purchase")]


def test_a_per_line_status_is_the_lines_own_and_orderless_lines_are_judged_alone(tmp_path: Path) -> None:
    """An order's status is carried to its lines that have none, from its first line that has one
    (not max(): 'refunded' beside 'paid' set the paid line aside); lines without an order id are
    no one order (one voided line set all of them aside)."""
    _, ev, lines = _orders(
        tmp_path,
        "order_id,customer,sku,date,status\nA1,u1,P1,2024-03-01,paid\nA1,u1,P2,2024-03-01,refunded\n"
        ",u2,P1,2024-03-02,paid\n,u3,P2,2024-03-03,voided\nA9,u4,P1,2024-03-04,voided\nA9,u4,P2,2024-03-04,\n",
    )
    assert (ev.rows_curated, ev.rows_set_aside) == (2, 4)
    assert lines == [
        (3, "refunded_order", "order A1 is refunded (status): not a purchase"),
        (5, "cancelled_order", "a line without an order id is voided (status): not a purchase"),
        (6, "cancelled_order", "order A9 is voided (status): not a purchase"),
        (7, "cancelled_order", "order A9 is voided (status): not a purchase"),
    ]


def test_woocommerce_statuses_unpaid_and_dead_orders_are_kept_aside(tmp_path: Path) -> None:
    """WooCommerce writes `wc-cancelled`, `wc-completed` and has failed, pending, on-hold, draft
    and trashed orders (walk49a: 87 such lines were curated as purchases): the `wc-` prefix, case,
    spaces, underscores and hyphens are not the status; unpaid and dead orders are kept aside with
    a reason each; a status shelfwise does not know stays a purchase and the notes name it."""
    report, ev, lines = _orders(
        tmp_path,
        "order_id,customer,sku,date,status\n"
        "A1,u1,P1,2024-03-01,wc-completed\nA2,u2,P2,2024-03-01,wc-processing\n"
        "A3,u3,P1,2024-03-02,wc-cancelled\nA3,u3,P2,2024-03-02,\nA4,u4,P1,2024-03-02,failed\n"
        "A5,u5,P2,2024-03-03,wc-pending\nA6,u6,P1,2024-03-03,On Hold\nA7,u7,P2,2024-03-03,wc-checkout-draft\n"
        "A8,u8,P1,2024-03-04,trash\nA9,u9,P2,2024-03-04,Partially_Refunded\nB1,u1,P2,2024-03-05,wc-packed\n"
        "B1,u1,P1,2024-03-05,\nB2,u2,P1,2024-03-05,wc-REFUNDED\n",
    )
    assert [(n, r) for n, r, _ in lines] == [
        (4, "cancelled_order"),
        (5, "cancelled_order"),
        (6, "failed_payment"),
        (7, "pending_payment"),
        (8, "on_hold_order"),
        (9, "draft_order"),
        (10, "trashed_order"),
        (14, "refunded_order"),
    ]
    assert lines[0][2] == "order A3 is wc-cancelled (status): not a purchase"
    assert (ev.rows_in, ev.rows_curated, ev.rows_set_aside) == (13, 5, 8) and ev.balanced
    assert ev.check().passed and ev.check().judged == 5
    unknown = [n for n in report.notes if "does not know" in n]
    assert len(unknown) == 1 and "'wc-packed' 2 line(s)" in unknown[0], report.notes
    assert "read as purchases" in unknown[0]


def test_a_payment_status_pending_is_a_purchase_awaiting_its_money(tmp_path: Path) -> None:
    """Shopify's `Financial Status` says how an order is paid: its `pending` is a cash-on-delivery
    or bank-transfer order, often shipped already (a review of the WooCommerce fix: every such
    line was set aside as `pending_payment`). Only an order status sets unpaid orders aside; a
    payment status sets aside cancelled, voided and refunded ones, as before."""
    report, ev, lines = _orders(
        tmp_path,
        "order_id,customer,sku,date,Financial Status\nA1,u1,P1,2024-03-01,pending\n"
        "A2,u2,P2,2024-03-01,paid\nA3,u3,P1,2024-03-02,voided\nA4,u4,P2,2024-03-02,refunded\n",
    )
    assert (ev.rows_curated, ev.rows_set_aside) == (2, 2)
    assert [r for _, r, _ in lines] == ["cancelled_order", "refunded_order"]
    assert not [n for n in report.notes if "does not know" in n], report.notes


def test_a_delivery_mostly_set_aside_is_said_loudly(tmp_path: Path) -> None:
    """3 of 4 lines set aside: a warning, and the check says it (it said a bare "passed")."""
    report, ev, _ = _orders(
        tmp_path,
        "order_id,customer,sku,date,status\nA1,u1,P1,2024-03-01,voided\nA2,u2,P2,2024-03-02,refunded\n"
        "A3,u3,P1,2024-03-03,voided\nA4,u4,P2,2024-03-04,paid\n",
    )
    assert ev.rows_set_aside == 3
    assert any("3 of 4 line(s) kept aside" in w for w in report.warnings)
    assert "WARNING: 3 of 4 rows set aside" in ev.check().describe()


def test_a_column_suggestion_never_quotes_a_customers_e_mail(tmp_path: Path) -> None:
    """Unmapped orders: the advice offers `Email` for user_id without quoting an address (it went
    into the error, the hash-chained audit log and lineage); a product's sku is still quoted."""
    import pytest

    from shelfwise.errors import SourceError

    w, data = tmp_path / "w", _shop(tmp_path, {"orders_export.csv": ORDERS})
    with pytest.raises(SourceError) as err:
        Ingestor(w).run(data)
    assert "'Email' (holds e-mail addresses, a customer key)" in str(err.value)
    assert "@example.com" not in str(err.value)
    named = [p.name for p in w.rglob("*") if p.is_file() and b"@example.com" in p.read_bytes()]
    assert named == []
    samples = {"Customer Phone": ["+44 20 7946 0958"], "Customer ID": ["C-17"]}
    assert dict(suggest_columns(EVENTS, "user_id", list(samples), samples)) == {
        "Customer ID": "an id column, e.g. 'C-17'",
        "Customer Phone": "names one, its values not quoted: personal data",
    }


# -- F4: variants ------------------------------------------------------------------------------------
def test_variant_rows_take_their_parents_fields_and_pictures_are_kept_aside(tmp_path: Path) -> None:
    """Shopify leaves Title, Body, Vendor empty on a variant's row: the variant (CH-WHI, sold in
    #1002) was quarantined for an empty title and could never be served; the picture-only row
    is no product (kept aside, not judged)."""
    report = Ingestor(tmp_path / "w").run(shopify_shop(tmp_path))
    pr = report.tables["products"]
    assert pr.reasons == {"image_row": 1, "missing_required": 1}  # (the row of no handle is a fault)
    assert (pr.rows_in, pr.rows_curated, pr.rows_set_aside) == (5, 3, 1) and pr.balanced
    got = curated_rows(
        tmp_path / "w", "SELECT product_id, title, brand, price FROM curated.products ORDER BY 1"
    )
    assert got == [
        ("CH-BLA", "Steno Chair", "Global", 60.74),
        ("CH-WHI", "Steno Chair", "Global", 61.0),  # its own price, its parent's title and vendor
        ("LA-1", "Desk Lamp", "Lumo", 20.0),
    ]
    desc = curated_rows(
        tmp_path / "w", "SELECT description FROM curated.products WHERE product_id = 'CH-WHI'"
    )
    assert desc[0][0].startswith("A chair.")


def test_a_variant_without_a_sku_is_judged_not_a_picture(tmp_path: Path) -> None:
    """Variants with a price but no SKU are product rows without their id (`missing_required`,
    judged: the check fails), not pictures; the row with its image alone is one."""
    catalog = (
        "Handle,Title,Body (HTML),Vendor,Variant SKU,Variant Price,Image Src\n"
        "chair,Steno Chair,<p>A chair.</p>,Global,CH-BLA,60.74,https://x/1.jpg\n"
        "chair,,,,,61.00,\n"
        "chair,,,,,62.00,\n"
        "chair,,,,,,https://x/3.jpg\n"
    )
    data = _shop(tmp_path, {"products_export.csv": catalog, "shelfwise.toml": CATALOG_MAP})
    pr = Ingestor(tmp_path / "w").run(data).tables["products"]
    assert pr.reasons == {"missing_required": 2, "image_row": 1}
    assert (pr.rows_curated, pr.rows_set_aside, pr.check().judged, pr.check().passed) == (1, 1, 3, False)


def test_a_split_export_is_refused_naming_its_parts_and_read_as_a_folder(tmp_path: Path) -> None:
    """`orders_export_1.csv` and `_2`: refused with both named (only `_1` was read, the load
    passed); moved into the folder the error names, both are read as one table, and the voided
    order #1003, whose second line is in `_2`, is set aside whole."""
    import pytest

    from shelfwise.errors import SourceError

    one = ORDERS_HEADER + "".join(ORDERS.splitlines(keepends=True)[1:5])
    two = ORDERS_HEADER + ORDERS.splitlines(keepends=True)[5]
    data = _shop(tmp_path, {"orders_export_1.csv": one, "orders_export_2.csv": two, "shelfwise.toml": MAP})
    with pytest.raises(
        SourceError, match=r"2 parts \(orders_export_1.csv, orders_export_2.csv\).*'orders_export'"
    ):
        Ingestor(tmp_path / "w").run(data)
    (data / "orders_export").mkdir()
    for name in ("orders_export_1.csv", "orders_export_2.csv"):
        (data / name).rename(data / "orders_export" / name)
    ev = Ingestor(tmp_path / "w").run(data).tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.reasons) == (5, 3, {"cancelled_order": 2})


def test_a_set_aside_line_sent_again_is_still_set_aside(tmp_path: Path) -> None:
    """The same full load twice (walk49a): the second said `rows_set_aside: 0, rows_redelivered:
    54` where the first said `rows_set_aside: 54`; it is set aside again, of them re-sent, and
    judged no more than the first time."""
    data = shopify_shop(tmp_path)
    first = Ingestor(tmp_path / "w").run(data).tables["events"]
    again = Ingestor(tmp_path / "w").run(data).tables["events"]
    assert (first.rows_set_aside, first.rows_set_aside_resent, first.rows_redelivered) == (5, 0, 0)
    assert (again.rows_set_aside, again.rows_set_aside_resent, again.rows_redelivered) == (5, 5, 5)
    assert again.check().judged == first.check().judged == 4 and again.check().passed
    assert again.reasons == first.reasons and again.balanced


WOO_ORDERS = (
    "Order Number,Customer User ID,Order Date,Product Id,SKU,Quantity\n"
    "5000,u1,2024-03-01,1042,CH-BLA,1\n5001,u2,2024-03-02,1043,LA-1,2\n"
)
WOO_CATALOG = "SKU,Name\nCH-BLA,Chair\nLA-1,Lamp\n"


def woo_map(product: str) -> str:
    return WOO_MAP.replace("[map.events]\n", f'[map.events]\nproduct_id = "{product}"\n')


WOO_MAP = (
    '[map.events]\nuser_id = "Customer User ID"\nsession_id = "Order Number"\ntimestamp = "Order Date"\n'
    'event_type = "purchase"\n[map.products]\nproduct_id = "SKU"\ntitle = "Name"\n'
)


def test_a_full_snapshot_that_curates_no_row_is_not_published(tmp_path: Path) -> None:
    """walk49a: events mapped to WooCommerce's numeric `Product Id` (the catalog is keyed on
    SKU) quarantined all 1,216 rows and replaced 1,291 curated events with none, exit 0. The
    earlier version stays, the report says the load failed, and a note names the column to map."""
    d = _shop(
        tmp_path, {"orders.csv": WOO_ORDERS, "products.csv": WOO_CATALOG, "shelfwise.toml": woo_map("SKU")}
    )
    good = Ingestor(tmp_path / "w").run(d).tables["events"]
    assert (good.rows_curated, good.curated_nothing, good.published) == (2, False, True)
    (d / "shelfwise.toml").write_text(woo_map("Product Id"))
    report = Ingestor(tmp_path / "w").run(d)
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.rows_quarantined) == (2, 0, 2) and ev.balanced
    assert (ev.curated_nothing, ev.published, ev.curated_version) == (True, False, good.curated_version)
    assert curated_rows(tmp_path / "w", "SELECT count(*) FROM curated.events") == [(2,)]
    assert any("NOT PUBLISHED" in w and "curated none of its 2 rows" in w for w in report.warnings)
    assert any("--map 'events.product_id=SKU'" in n for n in report.notes), report.notes
    # its lineage claims no new version of the table it kept (two runs claimed one version)
    import json

    done = [
        json.loads(x)
        for x in (tmp_path / "w" / "lineage" / "openlineage.jsonl").read_text().splitlines()
        if '"COMPLETE"' in x
    ]
    ours = [e for e in done if e["run"]["runId"] == report.run_id]
    assert ours and "curated.events" not in {o["name"] for o in ours[-1]["outputs"]}, ours


def test_a_first_load_that_curates_no_row_is_published_empty_and_failed(tmp_path: Path) -> None:
    shop = {"orders.csv": WOO_ORDERS, "products.csv": WOO_CATALOG, "shelfwise.toml": woo_map("Product Id")}
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, shop))
    ev = report.tables["events"]
    assert (ev.rows_curated, ev.curated_nothing, ev.published) == (0, True, True)
    assert any("published empty" in w for w in report.warnings)


def test_a_snapshot_whose_every_line_is_set_aside_is_published(tmp_path: Path) -> None:
    """Orders A1 and A2 loaded as completed, then the same orders sent again as cancelled: the
    snapshot holds no purchase, which is the shop's data, not a fault (a review: it was refused as
    a load that curated nothing, exit 1, and the cancelled orders stayed curated as purchases)."""
    header = "order_id,customer,sku,date,status\n"
    first = header + "A1,u1,P1,2024-03-01,completed\nA2,u2,P2,2024-03-02,completed\n"
    d = _shop(tmp_path, {"orders.csv": first, "shelfwise.toml": STATUS_MAP})
    assert Ingestor(tmp_path / "w").run(d).tables["events"].rows_curated == 2
    (d / "orders.csv").write_text(header + "A1,u1,P1,2024-03-01,cancelled\nA2,u2,P2,2024-03-02,cancelled\n")
    ev = Ingestor(tmp_path / "w").run(d).tables["events"]
    assert (ev.rows_curated, ev.rows_set_aside, ev.curated_nothing, ev.published) == (0, 2, False, True)
    assert curated_rows(tmp_path / "w", "SELECT count(*) FROM curated.events") == [(0,)]
