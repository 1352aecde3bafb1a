"""`[files]` in `shelfwise.toml`: a table read from a file named the shop's way, through the CLI."""

from __future__ import annotations

import json

from tests.cli.test_cli import sw
from tests.conftest import curated_rows

EVENTS = (
    "Buyer Ref,Article,Kind,Happened\n"
    "c1,a1,view,2026-05-01 10:00:00\nc2,a1,purchase,2026-05-02 10:00:00\nc1,a2,view,2026-05-03 10:00:00\n"
)
PRODUCTS = "product_id,title,category\na1,Blue mug,Kitchen > Cups\na2,Steel pan,Kitchen > Pots\n"
MAP = '[map.events]\nuser_id = "Buyer Ref"\nproduct_id = "Article"\nevent_type = "Kind"\ntimestamp = "Happened"\n'


def test_declared_files_are_read_as_their_tables(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "orders_2026.csv").write_text(EVENTS)
    (d / "catalog export.csv").write_text(PRODUCTS)
    (d / "shelfwise.toml").write_text(
        '[files]\nevents = "orders_2026.csv"\nproducts = "catalog export.csv"\n\n' + MAP
    )
    out = json.loads(sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), "--json").stdout)
    ev, pr = out["tables"]["events"], out["tables"]["products"]
    assert (ev["rows_in"], ev["rows_curated"]) == (3, 3)
    assert (pr["rows_in"], pr["rows_curated"]) == (2, 2)
    assert not any("not read" in n for n in out["notes"]), out["notes"]
    w = tmp_path / "w"
    assert curated_rows(w, "SELECT product_id, title FROM curated.products ORDER BY 1") == [
        ("a1", "Blue mug"),
        ("a2", "Steel pan"),
    ]
    assert curated_rows(w, "SELECT count(*) FROM curated.events") == [(3,)]


def test_a_declared_file_that_is_not_there_is_named_in_the_error(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "orders_2026.csv").write_text(EVENTS)
    (d / "shelfwise.toml").write_text('[files]\nevents = "orders_2027.csv"\n\n' + MAP)
    proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "orders_2027.csv" in proc.stderr and "[files]" in proc.stderr
    assert "orders_2026.csv" in proc.stderr  # what is there instead
    for bad, message in (
        ('evnts = "orders_2026.csv"', "unknown table 'evnts' (did you mean 'events'?)"),
        ('events = "../orders_2026.csv"', "name a file of the data directory itself"),
        ("events = 3", "must name a file of the data directory"),
    ):
        (d / "shelfwise.toml").write_text(f"[files]\n{bad}\n")
        proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_declared_file_may_be_a_pattern_for_dated_deliveries(tmp_path):
    """`events = "orders_*.csv"`: the nightly export named after its day needs no edit of the
    toml; a pattern matching two files is refused, naming them; one matching none is not found."""
    d = tmp_path / "shop"
    d.mkdir()
    (d / "orders_2026-12-02.csv").write_text(EVENTS)
    (d / "catalog export.csv").write_text(PRODUCTS)
    (d / "shelfwise.toml").write_text('[files]\nevents = "orders_*.csv"\nproducts = "catalog*.csv"\n\n' + MAP)
    out = json.loads(sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), "--json").stdout)
    assert out["tables"]["events"]["rows_curated"] == 3 and out["tables"]["products"]["rows_curated"] == 2
    assert out["tables"]["events"]["source_file"].endswith("orders_2026-12-02.csv")
    (d / "orders_2026-12-03.csv").write_text(EVENTS)
    proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w2"), check=False)
    assert (
        proc.returncode == 2 and "matches 2 files" in proc.stderr and "orders_2026-12-03.csv" in proc.stderr
    )
    for f in d.glob("orders_*"):
        f.unlink()
    proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w3"), check=False)
    assert proc.returncode == 2 and "orders_*.csv" in proc.stderr and "not found" in proc.stderr
