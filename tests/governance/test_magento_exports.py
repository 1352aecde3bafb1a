"""Magento 2 exports (walk49b): a customers export's billing address and newsletter status, a
catalog_product export's store-view rows, visibility, status and stock, and its category paths;
an orders-only delivery beside a catalog."""

from __future__ import annotations

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

EVENTS = "user_id,product_id,event_type,timestamp\n1000,P1,purchase,2024-01-01T10:00:00Z\n"


def test_a_billing_address_never_reaches_the_curated_users(tmp_path):
    """Magento's `billing_full` (`1 Main St Providence Rhode Island 2908`) was kept as the
    profile column `x_billing_full` and reached the analyst export; a column named for nothing
    personal whose values are street addresses is left out too, and the note says so."""
    from shelfwise.governance._contracts import Classification, classify_extra_column

    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "user_id,billing_full,shipping_full,where_to,group_id\n"
        "1000,1 Main St Providence Rhode Island 2908,1 Main St Providence,12 Elm Road Leeds,1\n"
        "1001,221B Baker Street London,221B Baker Street,Hauptstr. 5 Berlin,2\n"
    )
    (d / "events.csv").write_text(EVENTS)
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert set(report.tables["users"].personal_columns_dropped) == {
        "billing_full",
        "shipping_full",
        "where_to",
    }
    rows = curated_rows(work, "SELECT * FROM curated.users")
    assert "Main St" not in str(rows) and "Baker" not in str(rows) and "Hauptstr" not in str(rows)
    assert sorted(curated_rows(work, "SELECT x_group_id FROM curated.users")) == [("1",), ("2",)]
    assert any("'where_to' holds street addresses" in n for n in report.notes)
    for personal in ("billing_full", "billing_address", "shipping_full", "street", "address_line_1",
                     "billing_street", "Shipping Address Line 2", "delivery_address"):  # fmt: skip
        assert classify_extra_column(personal) is Classification.PERSONAL, personal
    for kept in ("billing_cycle", "free_shipping_member", "billing_region", "Ship Mode", "full_price"):
        assert classify_extra_column(kept) is Classification.INTERNAL, kept


def test_an_orders_only_delivery_never_rewrites_the_catalogs_prices(tmp_path):
    """A day-2 delivery of order lines alone (no catalog file) rewrote 68 catalog prices with the
    lines' discounted median: the catalog's rows keep their fields, a product the catalog lacks
    is added from the lines, and a note counts both. Products derived from earlier order lines
    are updated by later ones as before."""
    day1, day2 = tmp_path / "d1", tmp_path / "d2"
    day1.mkdir()
    day2.mkdir()
    (day1 / "products.csv").write_text("product_id,title,price\nP1,Chair,130.98\nP2,Paper,6.47\n")
    (day1 / "users.csv").write_text("user_id,segment\n1000,gold\n")
    lines = "order_id,user_id,product_id,title,price,timestamp,segment\n"
    (day1 / "events.csv").write_text(lines + "O1,1000,P1,Chair,130.98,2024-01-01T10:00:00Z,gold\n")
    (day2 / "events.csv").write_text(
        lines + "O2,1000,P1,Chair sale,117.88,2024-01-02T10:00:00Z,silver\n"
        "O3,1001,P2,Paper,1.29,2024-01-02T11:00:00Z,bronze\nO3,1001,P3,Pen,2.50,2024-01-02T11:00:00Z,bronze\n"
    )
    work = tmp_path / "w"
    Ingestor(work).run(day1)
    report = Ingestor(work, mode="append").run(day2)
    assert curated_rows(work, "SELECT product_id, title, price FROM curated.products ORDER BY 1") == [
        ("P1", "Chair", 130.98),
        ("P2", "Paper", 6.47),
        ("P3", "Pen", 2.5),
    ]
    assert any("1 product(s) of these order lines not in curated.products added" in n for n in report.notes)
    # the users file's customer keeps its segment; the new customer is added
    assert sorted(curated_rows(work, "SELECT x_segment FROM curated.users")) == [("bronze",), ("gold",)]

    # products from order lines alone: a later delivery's lines update them
    derived = tmp_path / "d3"
    derived.mkdir()
    (derived / "events.csv").write_text(lines + "O1,1000,P1,Chair,130.98,2024-01-01T10:00:00Z,gold\n")
    work2 = tmp_path / "w2"
    Ingestor(work2).run(derived)
    Ingestor(work2, mode="append").run(day2)
    assert curated_rows(work2, "SELECT title, price FROM curated.products WHERE product_id = 'P1'") == [
        ("Chair sale", 117.88)
    ]


def test_magentos_newsletter_status_is_read_as_marketing_consent(tmp_path):
    """`newsletter_subscription_status` was kept as a profile column: every customer had the
    shop's default consent, and an audience export held the Unsubscribed and Not Subscribed.
    Only `Subscribed` is a yes; `Unsubscribed` is no refusal read as a yes."""
    from shelfwise.governance._compile import parse_bool

    d = tmp_path / "d"
    d.mkdir()
    statuses = ["Subscribed", "Not Subscribed", "Unsubscribed", "Not Activated", "Unconfirmed"]
    (d / "users.csv").write_text(
        "user_id,newsletter_subscription_status\n"
        + "".join(f"{1000 + i},{s}\n" for i, s in enumerate(statuses))
    )
    (d / "events.csv").write_text(EVENTS)
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert report.tables["users"].column_mapping["newsletter_subscription_status"] == "consent_marketing"
    assert sorted(curated_rows(work, "SELECT consent_marketing FROM curated.users")) == [(False,)] * 4 + [
        (True,)
    ]
    assert not any("looks like a consent" in w for w in report.warnings)
    assert [parse_bool(s) for s in statuses] == [True, False, False, False, False]


def test_a_store_view_row_never_replaces_the_default_product(tmp_path):
    """Magento's catalog_product export repeats a product on a row per store view (`de`, a German
    name, the other fields empty): the last row of an id won, so the German row was the product
    (no category, description or price). It is kept aside as `store_view_row`, counted."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "sku,store_view_code,categories,name,price\n"
        "P1,,Office Supplies,Easy-staple paper,12.28\n"
        "P1,de,,DE: Easy-staple paper (Bürobedarf),\n"
        "P2,,Furniture,Chair,130.98\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n1000,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    (d / "shelfwise.toml").write_text('[map.products]\nproduct_id = "sku"\ntitle = "name"\n')
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT product_id, title, price FROM curated.products ORDER BY 1") == [
        ("P1", "Easy-staple paper", 12.28),
        ("P2", "Chair", 130.98),
    ]
    products = report.tables["products"]
    assert products.reasons == {"store_view_row": 1}
    assert "store_view_code" not in products.ignored_columns
    assert any("1 store-view row(s) of a product with a default row" in n for n in report.notes)


def test_a_row_of_its_own_with_a_store_column_is_a_product(tmp_path):
    """A marketplace catalog: the shop's own products with `store_view` empty, a vendor's with it
    set and no default row of theirs. Each store-set row was set aside as a translation (a
    review: 2 of 3 products gone); only a row whose product has a default row is one."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "product_id,title,store_view\nP1,Chair,\nP2,Lamp,Outlet Berlin\nP3,Desk,Outlet Berlin\nP1,Stuhl,de\n"
    )
    report = Ingestor(tmp_path / "w").run(d)
    assert sorted(r[0] for r in curated_rows(tmp_path / "w", "SELECT product_id FROM curated.products")) == [
        "P1", "P2", "P3",
    ]  # fmt: skip
    assert report.tables["products"].reasons == {"store_view_row": 1}


def test_magentos_visibility_status_and_stock_are_read(tmp_path):
    """`product_online` (1 enabled, 2 disabled), `visibility` (`Not Visible Individually`: a
    configurable's child), `is_in_stock` and `qty` were ignored: disabled, hidden and sold-out
    products were served. `product_online` is read as published, and a row either column says
    is not shown is not published; `is_in_stock` is in_stock, `qty` stock."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "sku,name,visibility,qty,is_in_stock,product_online\n"
        'P1,Chair,"Catalog, Search",115.0000,1,1\n'
        "P2,Red chair,Not Visible Individually,3.0000,1,1\n"
        'P3,Paper,"Catalog, Search",0.0000,0,2\n'
        "P4,Pen,Search,5.0000,1,1\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n1000,P1,view,2024-01-01T10:00:00Z\n"
    )
    (d / "shelfwise.toml").write_text('[map.products]\nproduct_id = "sku"\ntitle = "name"\n')
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(
        work, "SELECT product_id, published, in_stock, stock FROM curated.products ORDER BY 1"
    ) == [
        ("P1", True, True, 115.0),
        ("P2", False, True, 3.0),
        ("P3", False, False, 0.0),
        ("P4", True, True, 5.0),
    ]
    assert not report.tables["products"].ignored_columns
    assert any("1 row(s) 'Not Visible Individually'" in n for n in report.notes)

    # visibility alone is read as published
    (d / "products.csv").write_text(
        "sku,name,visibility\nP1,Chair,Catalog\nP2,Red chair,Not Visible Individually\n"
    )
    Ingestor(work).run(d)
    assert curated_rows(work, "SELECT product_id, published FROM curated.products ORDER BY 1") == [
        ("P1", True),
        ("P2", False),
    ]


def test_magentos_category_paths_are_read_under_its_root(tmp_path):
    """`Default Category/Furniture/Chairs` was one category of that name, and several paths
    joined by `,` one more: the root is no category, `/` separates the levels, the first path is
    kept and the rows with several counted. A name holding a `/` outside that root stays whole."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "product_id,title,category\n"
        "P1,Chair,Default Category/Furniture/Chairs\n"
        'P2,Box,"Default Category/Office Supplies/Storage,Default Category/Sale"\n'
        "P3,Tee,T-Shirts/Tops\n"
        "P4,Desk,Furniture > Tables\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n1000,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT product_id, category FROM curated.products ORDER BY 1") == [
        ("P1", "Furniture > Chairs"),
        ("P2", "Office Supplies > Storage"),
        ("P3", "T-Shirts/Tops"),
        ("P4", "Furniture > Tables"),
    ]
    assert any("1 row(s) give several category paths" in w for w in report.warnings)


def test_a_catalog_loaded_alone_is_not_rewritten_by_the_first_orders(tmp_path):
    """The order a new shop follows: its catalog (and customers) alone, then its first orders
    appended. No events were curated yet, and the orders rewrote the catalog's titles and
    prices (a review: the origin was recorded as a file, never consulted)."""
    day1, day2 = tmp_path / "d1", tmp_path / "d2"
    day1.mkdir()
    day2.mkdir()
    (day1 / "products.csv").write_text("product_id,title,price\nP1,Chair,130.98\nP2,Paper,6.47\n")
    (day1 / "users.csv").write_text("user_id,segment\n1000,gold\n")
    (day2 / "events.csv").write_text(
        "order_id,user_id,product_id,title,price,timestamp,segment\n"
        "O2,1000,P1,Chair sale,117.88,2024-01-02T10:00:00Z,silver\nO3,1001,P2,Paper,1.29,2024-01-02T11:00:00Z,bronze\n"
    )
    work = tmp_path / "w"
    Ingestor(work).run(day1)
    Ingestor(work, mode="append").run(day2)
    assert curated_rows(work, "SELECT product_id, title, price FROM curated.products ORDER BY 1") == [
        ("P1", "Chair", 130.98),
        ("P2", "Paper", 6.47),
    ]
    assert sorted(curated_rows(work, "SELECT x_segment FROM curated.users")) == [("bronze",), ("gold",)]


def test_a_catalogs_own_status_words_never_quarantine_its_products(tmp_path):
    """`status` is read as `published`; a catalog whose status says `Enabled`/`Disabled` (Magento
    1, PrestaShop) or `new`/`sale` had every such row quarantined (a review: a whole catalog
    empty). `Enabled`/`Disabled` are read; a word shelfwise does not know is shown, counted."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text(
        "product_id,title,status\nP1,Chair,Enabled\nP2,Desk,Disabled\nP3,Lamp,new\nP4,Mug,sale\nP5,Pen,draft\n"
    )
    report = Ingestor(tmp_path / "w").run(data)
    pr = report.tables["products"]
    assert (pr.rows_curated, pr.rows_quarantined) == (5, 0)
    assert curated_rows(tmp_path / "w", "SELECT product_id, published FROM curated.products ORDER BY 1") == [
        ("P1", True), ("P2", False), ("P3", True), ("P4", True), ("P5", False),
    ]  # fmt: skip
    said = [n for n in report.notes if "no yes or no shelfwise knows" in n]
    assert len(said) == 1 and "2 row(s)" in said[0], report.notes
