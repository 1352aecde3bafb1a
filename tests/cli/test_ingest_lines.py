"""What `shelfwise ingest` and `shelfwise quarantine list` print for a person: a delivery's
inserted / updated / unchanged rows (a price feed "added" none), whether its rows balance and -
a separate fact - whether it passed its quality check, as the catalog says; a listing that
selects nothing says so."""

from __future__ import annotations

import json

from shelfwise.cli import main
from tests._price_feed import price_feed_shop as _shop


def _row(lines: list[str], table: str) -> int:
    return next(i for i, ln in enumerate(lines) if ln.split()[:1] == [table])


def test_a_price_feed_prints_updated_rows_and_the_failing_check_not_ok(tmp_path, capsys) -> None:
    day0, day4 = _shop(tmp_path)
    work = tmp_path / "w"
    assert main(["ingest", "--data", str(day0), "--workdir", str(work)]) == 0
    capsys.readouterr()
    assert main(["ingest", "--data", str(day4), "--workdir", str(work), "--append"]) == 0
    lines = capsys.readouterr().out.splitlines()
    i = _row(lines, "products")
    words = lines[i].split()
    # it printed "added 9" (the table kept its 20 rows: nothing was added) and "[ok]"
    assert "added" not in words and "[ok]" not in words, lines[i]
    assert words[words.index("inserted") + 1] == "0" and words[words.index("updated") + 1] == "9", lines[i]
    assert words[words.index("re-sent") + 1] == "0" and words[-1] == "[balanced]", lines[i]
    # the load's verdict, the catalog's: FAILING (1 of 10 new rows, over 5%)
    assert lines[i + 1].split()[:2] == ["check", "FAILING:"] and "(10.0%" in lines[i + 1], lines[i + 1]
    assert "the table now has 20 rows" in lines[i + 1]
    html = (work / "reports" / "quality.html").read_text()
    assert "FAILING: 1 of 10 new rows quarantined (10.0%" in html  # the HTML report says it too
    assert main(["catalog", "--workdir", str(work)]) == 0
    said = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("curated.products")]
    assert "FAILING (10.0% quarantined" in said[0], said


def test_the_json_report_keeps_its_fields_and_says_the_same_verdict(tmp_path, capsys) -> None:
    day0, day4 = _shop(tmp_path)
    work = tmp_path / "w"
    assert main(["ingest", "--data", str(day0), "--workdir", str(work), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["tables"]["products"]
    assert main(["ingest", "--data", str(day4), "--workdir", str(work), "--append", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)["tables"]["products"]
    assert (first["contract_check"], table["contract_check"]) == ("passed", "failed")  # it said passed
    assert {"rows_in", "rows_curated", "rows_quarantined", "rows_inserted", "rows_updated"} <= set(table)
    assert (table["rows_inserted"], table["rows_updated"], table["rows_curated"]) == (0, 9, 9)
    assert (first["quarantined_share"], table["quarantined_share"], table["balanced"]) == (0.0, 0.1, True)


def test_quarantine_list_with_nothing_selected_says_so(tmp_path, capsys) -> None:
    """It printed one blank line."""
    day0, day4 = _shop(tmp_path)
    work = tmp_path / "w"
    assert main(["ingest", "--data", str(day0), "--workdir", str(work)]) == 0
    capsys.readouterr()
    assert main(["quarantine", "list", "--workdir", str(work)]) == 0
    assert capsys.readouterr().out.splitlines() == ["nothing quarantined"]
    assert main(["ingest", "--data", str(day4), "--workdir", str(work), "--append"]) == 0
    capsys.readouterr()
    assert main(["quarantine", "list", "--workdir", str(work), "--status", "released"]) == 0
    assert capsys.readouterr().out.splitlines() == ["0 released rows (1 in other statuses: --status all)"]
    assert main(["quarantine", "list", "--workdir", str(work), "--table", "users"]) == 0
    assert capsys.readouterr().out.splitlines() == ["nothing quarantined for --table users"]
    assert main(["quarantine", "list", "--workdir", str(work)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["products", "missing_required", "open", "1"] and out[1] == ""
    assert out[2].endswith(  # (with its folder: every day's file is products.csv)
        f"{day4.name}/products.csv:11 [missing_required] title: not in this file, and P888888 is not a curated "
        "product (a new product needs its title)"
    ), out


def test_the_summary_names_the_columns_the_contract_does_not_know(tmp_path, capsys) -> None:
    """A file's columns outside the contract are left out of the load: the JSON report listed
    them (`ignored_columns`), the printed summary said nothing, so a shop whose `Supplier Code`
    or unmapped `Order Date` was not read never saw it. The summary names them per table."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text(
        "product_id,title,price,Supplier Code\nP1,Red mug,9.5,S-1\nP2,Blue mug,9.5,S-2\n"
    )
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,Order Date,Till\n"
        "C1,P1,view,2024-03-01T10:00:00,2024-03-01,4\nC2,P2,view,2024-03-01T11:00:00,2024-03-01,4\n"
    )
    work = tmp_path / "w"
    assert main(["ingest", "--data", str(data), "--workdir", str(work)]) == 0
    lines = capsys.readouterr().out.splitlines()
    products = lines[_row(lines, "products") :]
    assert any("'Supplier Code'" in ln and "products contract" in ln for ln in products[:6]), lines
    events = lines[_row(lines, "events") :]
    assert any("'Order Date', 'Till'" in ln and "events contract" in ln for ln in events[:6]), lines
    assert "--map products.COLUMN=HEADER" in "\n".join(lines)
    assert "Supplier Code" in (work / "reports" / "quality.html").read_text()
    assert main(["ingest", "--data", str(data), "--workdir", str(tmp_path / "w2"), "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)["tables"]
    assert (tables["products"]["ignored_columns"], tables["events"]["ignored_columns"]) == (
        ["Supplier Code"],
        ["Order Date", "Till"],
    )
