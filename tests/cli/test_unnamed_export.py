"""A shop's export as downloaded, under a name no table has (issue 15's walk: Tableau's
"Sample - Superstore.csv" not renamed `orders.csv`): the error names the file and says exactly
what to write in `shelfwise.toml` to read it; the lines it suggests, written as they are, load it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.test_cli import sw

HEADER = (
    "Row ID,Order ID,Order Date,Ship Date,Ship Mode,Customer ID,Customer Name,Segment,Country,City,"
    "State,Postal Code,Region,Product ID,Category,Sub-Category,Product Name,Sales,Quantity,Discount,Profit\n"
)
LINES = [
    "1,CA-2016-152156,11/8/2016,11/11/2016,Second Class,CG-12520,Claire Gute,Consumer,United States,"
    "Henderson,Kentucky,42420,South,FUR-BO-10001798,Furniture,Bookcases,Bush Somerset Bookcase,261.96,2,0,41.9\n",
    "2,CA-2016-152156,11/8/2016,11/11/2016,Second Class,CG-12520,Claire Gute,Consumer,United States,"
    "Henderson,Kentucky,42420,South,FUR-CH-10000454,Furniture,Chairs,Hon Stacking Chairs,731.94,3,0,219.6\n",
    "3,CA-2016-138688,6/12/2016,6/16/2016,Second Class,DV-13045,Darrin Van Huff,Corporate,United States,"
    "Los Angeles,California,90036,West,OFF-LA-10000240,Office Supplies,Labels,Self-Adhesive Labels,14.62,2,0,6.9\n",
]


def test_an_export_under_its_own_name_gets_the_toml_lines_that_read_it(tmp_path: Path):
    data = tmp_path / "downloads"
    data.mkdir()
    (data / "Sample - Superstore.csv").write_text(HEADER + "".join(LINES))
    (data / "README.txt").write_text("downloaded from the Tableau community\n")  # not offered as a table
    work = tmp_path / "w"
    proc = sw("ingest", "--data", str(data), "--workdir", str(work), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Sample - Superstore.csv" in proc.stderr
    assert str(data / "shelfwise.toml") in proc.stderr
    # the suggested TOML, copied from the message as a user would
    toml = re.search(r"^\s*\[files\]\n(?:\s+\w+ = .+\n?)+", proc.stderr, re.M)
    assert toml and "README.txt" not in toml.group(0), proc.stderr
    (data / "shelfwise.toml").write_text(
        "\n".join(line.strip() for line in toml.group(0).splitlines()) + "\n"
    )
    out = json.loads(sw("ingest", "--data", str(data), "--workdir", str(work), "--json").stdout)
    assert out["tables"]["events"]["rows_curated"] == 3
    assert out["tables"]["products"]["rows_curated"] == 3  # the order lines' products


def test_a_dated_delivery_gets_the_lines_too_and_appends(tmp_path: Path):
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    day1.mkdir()
    day2.mkdir()
    (day1 / "orders.csv").write_text(HEADER + "".join(LINES[:2]))
    (day2 / "orders_2026-12-02.csv").write_text(HEADER + "".join(LINES[1:]))  # re-sends line 2
    work = tmp_path / "w"
    sw("ingest", "--data", str(day1), "--workdir", str(work))
    proc = sw("ingest", "--data", str(day2), "--workdir", str(work), "--append", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    toml = re.search(r"^\s*\[files\]\n(?:\s+\w+ = .+\n?)+", proc.stderr, re.M)
    assert toml and 'events = "orders_2026-12-02.csv"' in toml.group(0), proc.stderr
    (day2 / "shelfwise.toml").write_text(
        "\n".join(line.strip() for line in toml.group(0).splitlines()) + "\n"
    )
    out = json.loads(sw("ingest", "--data", str(day2), "--workdir", str(work), "--append", "--json").stdout)
    ev = out["tables"]["events"]
    assert (ev["rows_in"], ev["rows_inserted"], ev["reasons"]) == (2, 1, {"duplicate_row": 1})


# the suggested lines are TOML whatever the file is called: JSON's escapes are not (json.dumps
# writes 📦 as a surrogate pair, which tomllib rejects: "not a Unicode scalar value")
NAMES = ["orders 📦.csv", "Ventes été.csv", 'a"b.csv', "tab\tname.csv", "back\\slash.csv", "del\x7f.csv"]


def _hinted_toml(message: str) -> str:
    block = re.search(r"^\s*\[files\]\n(?:\s+\w+ = .+\n?)+", message, re.M)
    assert block, message
    return "\n".join(line.strip() for line in block.group(0).splitlines()) + "\n"


@pytest.mark.parametrize("name", NAMES)
def test_the_hinted_lines_are_toml_that_names_the_file(tmp_path: Path, name: str):
    import tomllib

    from shelfwise.governance._ingest import _declare_hint

    (tmp_path / name).write_text(HEADER + LINES[0])
    assert tomllib.loads(_hinted_toml(_declare_hint(tmp_path))) == {"files": {"events": name}}


def test_an_export_named_beyond_the_bmp_loads_with_the_hinted_lines(tmp_path: Path):
    data = tmp_path / "downloads"
    data.mkdir()
    (data / "orders 📦.csv").write_text(HEADER + "".join(LINES))
    work = tmp_path / "w"
    proc = sw("ingest", "--data", str(data), "--workdir", str(work), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (data / "shelfwise.toml").write_text(_hinted_toml(proc.stderr), encoding="utf-8")
    out = json.loads(sw("ingest", "--data", str(data), "--workdir", str(work), "--json").stdout)
    assert out["tables"]["events"]["rows_curated"] == 3


@pytest.mark.parametrize(
    ("name", "text", "tabular"),
    [
        ("README.txt", "Hello, world\n", False),  # a README's first line with a comma
        ("README.txt", "Hello, world\nThese files come from the Tableau community, as is.\n", False),
        ("notes.txt", "Sales, as exported on Monday, were checked by the shop manager and found ok\n", False),
        ("notes.txt", "downloaded from the Tableau community\n", False),
        ("notes.txt", "Superstore,2016\ndownloaded from the Tableau community\n", False),
        ("export.txt", "order_id,sku,qty\nA1,p1,2\n", True),
        ("export.txt", "order_id;sku;qty\nA1;p1;2\n", True),
        ("export.txt", "order_id\tsku\tqty\nA1\tp1\t2\n", True),
        ("export.txt", '"Order ID","Product Name"\n"A1","Bush Somerset Bookcase, oak"\n', True),
        ("header_only.csv", "order_id,sku,qty\n", True),  # a .csv says it is a table
        ("one_column.csv", "order_id\nA1\n", False),
        ("empty.csv", "", False),
        ("data.json", "Hello, world\n", True),  # taken as it is
    ],
)
def test_only_a_file_that_starts_like_a_table_is_offered(tmp_path: Path, name: str, text: str, tabular: bool):
    from shelfwise.governance._ingest import _declare_hint, _looks_tabular

    (tmp_path / name).write_text(text)
    assert _looks_tabular(tmp_path / name) is tabular
    assert (name in _declare_hint(tmp_path)) is tabular


@pytest.mark.parametrize(
    ("header", "table"),
    [
        ("Topic,Question,Answer\n", "faq"),  # the Flipkart help centre's export
        ("query_id\tquery\tquery_class\n", "queries"),  # WANDS
        ("search_term,product_uid,relevance\n", "judgments"),
        ("Order ID,Order Date,Customer ID,Product Name,Sales\n", "events"),
        # behaviour logs that hold a query (from a review: read as queries or judgments)
        ("User ID,Query,Date\n", "events"),
        ("customer_id,query,created_at,clicked_product\n", "events"),
        ("session_id,query,product_id,label,timestamp\n", "events"),
    ],
)
def test_the_hint_names_the_table_its_header_reads_as(tmp_path: Path, header: str, table: str):
    """An FAQ export was offered as `events = "flipkart_helpcentre.csv"`."""
    import tomllib

    from shelfwise.governance._ingest import _declare_hint

    (tmp_path / "export.csv").write_text(header + "a,b,c\n")
    hint = _declare_hint(tmp_path)
    assert tomllib.loads(_hinted_toml(hint)) == {"files": {table: "export.csv"}}
    assert ("also needs its catalog or its events" in hint) is (table not in ("events", "products"))


def test_a_gzipped_faq_export_is_named_by_its_header(tmp_path: Path):
    import gzip
    import tomllib

    from shelfwise.governance._ingest import _declare_hint

    with gzip.open(tmp_path / "help.csv.gz", "wt") as fh:  # (more than the 4 KB read)
        fh.write("question,answer\n" + "how do I pay?,by card\n" * 5000)
    assert tomllib.loads(_hinted_toml(_declare_hint(tmp_path))) == {"files": {"faq": "help.csv.gz"}}
