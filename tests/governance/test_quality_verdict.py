"""One quality verdict per load, said alike everywhere: the ingest report (`contract_check`, the
printed summary), the catalog, the governance report and the registry's `data_contracts` gate;
withheld rows (erased users') are not judged; a price feed's row of a product not curated yet
says why it needs a title."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.governance._catalog import catalog, governance_summary
from shelfwise.reporting import summary_lines
from tests.conftest import curated_rows

NEW_PRODUCT = "title: not in this file, and P888888 is not a curated product (a new product needs its title)"


def _full(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "products.csv").write_text(
        "product_id,title,price\n" + "".join(f"P{i:06d},Item {i},{i + 1}.00\n" for i in range(20))
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        + "".join(
            f"U{i % 5},P{i % 20:06d},view,2026-11-0{1 + i % 9}T10:{i % 60:02d}:00Z\n" for i in range(40)
        )
    )
    return d


def _price_feed(d: Path) -> Path:
    """Day 4's feed: 9 known products' prices and one of a product not curated (no title column)."""
    d.mkdir(parents=True)
    (d / "products.csv").write_text(
        "product_id,price\n" + "".join(f"P{i:06d},{i + 2}.50\n" for i in range(9)) + "P888888,4.99\n"
    )
    return d


def _data_gate(work: Path, data_versions: dict | None = None):
    """The registry's `data_contracts` gate of a bundle trained on the workdir's data now (its
    manifest's data versions as `train` records them; no model measured)."""
    from shelfwise.lifecycle._registry import Registry
    from shelfwise.lifecycle._train import _data_versions

    manifest = {
        "data_versions": data_versions or _data_versions(work),
        "default_model": "popularity",
        "metrics": {},
    }
    reg = Registry(work)
    reg.manifest = lambda version: manifest  # type: ignore[method-assign,assignment,return-value]
    return {g.name: g for g in reg.gates("1")}["data_contracts"]


def test_a_delivery_the_catalog_calls_failing_fails_in_the_report_the_summary_and_the_gate(tmp_path):
    """1 of 10 new rows quarantined (10%): the ingest said `[ok]` / contract_check passed and the
    gate "every curated input passed its contract" while the catalog said FAILING."""
    work = tmp_path / "w"
    Ingestor(work).run(_full(tmp_path / "day0"))
    assert _data_gate(work).passed  # a clean load: passed everywhere
    report = Ingestor(work, mode="append").run(_price_feed(tmp_path / "day4"))

    table = report.to_dict()["tables"]["products"]
    assert (table["rows_in"], table["rows_quarantined"], table["rows_updated"]) == (10, 1, 9)
    assert table["contract_check"] == "failed" and table["quarantined_share"] == 0.1
    assert report.tables["products"].contract_check == "failed"
    lines = summary_lines(report)
    products = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["products"])
    assert "[ok]" not in lines[products] and "[balanced]" in lines[products]  # the rows balance ...
    assert "check FAILING: 1 of 10 new rows quarantined (10.0%" in lines[products + 1]  # ... the check fails

    quality = {d["name"]: d["quality"] for d in catalog(work)["datasets"]}["curated.products"]
    assert (quality["passed"], quality["quarantined_share"]) == (False, 0.1)
    failing = governance_summary(work)["owners_with_failing_checks"]
    assert [f["dataset"] for f in failing] == ["curated.products"]

    # the gate says it (never "passed its contract" of it) without keeping the model from
    # serving: the quarantined rows were held back, the curated ones are valid
    gate = _data_gate(work)
    assert gate.passed and "passed" not in gate.detail, gate
    assert "failed its quality check" in gate.detail, gate.detail
    assert "products v2: products.csv (run " in gate.detail, gate.detail
    assert "FAILING: 1 of 10 new rows quarantined (10.0%" in gate.detail, gate.detail


def test_the_gate_judges_the_version_the_bundle_learned_from_not_a_later_delivery(tmp_path):
    """A bundle trained before the failing delivery learned from the clean version: its gate
    names no failing delivery; the version the delivery published does (the catalog said so)."""
    from shelfwise.lifecycle._train import _data_versions

    work = tmp_path / "w"
    Ingestor(work).run(_full(tmp_path / "day0"))
    before = _data_versions(work)
    Ingestor(work, mode="append").run(_price_feed(tmp_path / "day4"))
    assert "quality check" not in _data_gate(work, before).detail
    assert "products v2: products.csv" in _data_gate(work).detail


def test_the_gate_names_a_failing_delivery_behind_later_clean_ones(tmp_path):
    """A version made by appending holds every delivery appended since the last full load: a
    clean delivery after the failing one (an absorb of served events, the next price feed) hid
    it ("every curated input is valid"). A full load starts the table again: then it is gone."""
    work = tmp_path / "w"
    Ingestor(work).run(_full(tmp_path / "day0"))
    Ingestor(work, mode="append").run(_price_feed(tmp_path / "day4"))
    clean = tmp_path / "day5"
    clean.mkdir()
    (clean / "products.csv").write_text("product_id,price\nP000001,3.00\n")
    Ingestor(work, mode="append").run(clean)
    gate = _data_gate(work)
    assert "products v3: products.csv (run " in gate.detail and "FAILING: 1 of 10" in gate.detail, gate.detail
    Ingestor(work).run(_full(tmp_path / "day6"))
    assert "quality check" not in _data_gate(work).detail


def test_withheld_rows_of_erased_users_are_not_in_the_quality_share(tmp_path):
    """Rows of an erased user re-sent by a delivery are withheld, not judged: 1 bad row of 5
    judged is 20%, not 1 of 8 (12.5%), in the report and in the catalog alike."""
    from shelfwise.governance._erase import erase_user

    work = tmp_path / "w"
    Ingestor(work).run(_full(tmp_path / "day0"))
    erase_user(work, "U1")
    d = tmp_path / "day1"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        + "".join(f"U1,P{i:06d},view,2026-11-01T0{i}:00:00Z\n" for i in range(3))  # withheld
        + "".join(f"U2,P{i:06d},view,2026-11-10T0{i}:00:00Z\n" for i in range(4))
        + "U3,P000001,view,not a time\n"  # the one bad row
    )
    report = Ingestor(work, mode="append").run(d)
    events = report.tables["events"]
    assert (events.rows_in, events.rows_quarantined, events.rows_withheld) == (8, 1, 3)
    quality = {d["name"]: d["quality"] for d in catalog(work)["datasets"]}["curated.events"]
    assert quality["quarantined_share"] == 0.2 and not quality["passed"]  # it said 0.125
    trend = [x for x in governance_summary(work)["quality_trend"] if x["table"] == "events"]
    assert trend[-1]["quarantined_share"] == 0.2
    assert report.to_dict()["tables"]["events"]["quarantined_share"] == 0.2
    assert "1 of 5 new rows quarantined (20.0%" in events.check().describe()


def _new_product_detail(work: Path, engine=None) -> None:
    Ingestor(work, engine=engine(work) if engine else None).run(_full(work.parent / "day0"))
    report = Ingestor(work, engine=engine(work) if engine else None, mode="append").run(
        _price_feed(work.parent / "day4")
    )
    assert report.tables["products"].reasons == {"missing_required": 1}
    got = curated_rows(
        work, "SELECT source_line, reason, detail FROM quarantine.rows WHERE table_name = 'products'"
    )
    assert got == [(11, "missing_required", NEW_PRODUCT)], got
    # the known products kept their titles and took the new prices
    assert curated_rows(work, "SELECT title, price FROM curated.products WHERE product_id = 'P000003'") == [
        ("Item 3", 5.5)
    ]


def test_a_price_feed_row_of_a_product_not_curated_says_the_file_has_no_title(tmp_path):
    """It said "[missing_required] title: empty", of a file with no title column. (The same on
    Spark: tests/storage/test_spark_parity.py, on the Spark group's shared session.)"""
    _new_product_detail(tmp_path / "w")


def test_a_new_key_of_another_keyed_table_is_said_so_too(tmp_path):
    """Queries (a query needs its text) and judgments, keyed by two columns (both named)."""
    d = tmp_path / "day0"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,Blue Shoe\n")
    (d / "queries.csv").write_text("query_id,query\nQ1,red shoe\n")
    (d / "judgments.csv").write_text("query_id,product_id,relevance\nQ1,P1,2\n")
    work = tmp_path / "w"
    Ingestor(work).run(d)
    day1 = tmp_path / "day1"
    day1.mkdir()
    (day1 / "queries.csv").write_text("query_id\nQ1\nQ7\n")
    (day1 / "judgments.csv").write_text("query_id,product_id\nQ1,P1\nQ1,P2\n")
    Ingestor(work, mode="append").run(day1)
    got = dict(
        curated_rows(work, "SELECT table_name, detail FROM quarantine.rows WHERE reason = 'missing_required'")
    )
    assert got == {
        "queries": "query: not in this file, and Q7 is not a curated query (a new query needs its query)",
        "judgments": "relevance: not in this file, and (Q1, P2) is not a curated judgment "
        "(a new judgment needs its relevance)",
    }, got
