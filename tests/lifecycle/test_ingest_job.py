"""The ingest job: quality report, and "unchanged" decided by the content hashes of the files."""

from __future__ import annotations

import json
import subprocess
import sys

from shelfwise.lifecycle import ingest_dataset
from shelfwise.storage import file_sha256
from tests.conftest import events_head


def test_an_unchanged_directory_is_not_ingested_again(demo_data, tmp_path):
    data = events_head(demo_data, tmp_path / "data", 300)
    lines = (data / "events.csv").read_bytes().split(b"\n")
    (data / "README.txt").write_text("not a table")
    w = tmp_path / "w"
    first = ingest_dataset(data, w)
    assert first is not None and first.html_report
    state = json.loads((w / "state" / "sources.json").read_text())[str(data.resolve())]
    assert len(state.pop("--tables")) == 64  # (the table versions the load left: a digest)
    # the hash taken while staging is the file's own
    assert state == {
        "events.csv": file_sha256(data / "events.csv"),
        "README.txt": file_sha256(data / "README.txt"),
    }
    assert ingest_dataset(data, w, skip_unchanged=True) is None
    (data / "events.csv").write_bytes(b"\n".join(lines[:200]) + b"\n")
    again = ingest_dataset(data, w, skip_unchanged=True)
    assert again is not None and again.tables["events"].rows_in < first.tables["events"].rows_in


def test_a_snapshot_a_later_delivery_superseded_is_ingested_again(demo_data, tmp_path):
    """`train --data DIR` (a full load) skips DIR only while the warehouse holds what DIR's load
    left: after a delivery appended on top, the same unchanged DIR is DIR's snapshot again,
    not the union (it printed "unchanged" and trained on the appended tables)."""
    data = events_head(demo_data, tmp_path / "data", 300)
    day2 = tmp_path / "day2"
    day2.mkdir()
    rows = (demo_data / "events.csv").read_bytes().split(b"\n")
    (day2 / "events.csv").write_bytes(b"\n".join([rows[0], *rows[400:500]]) + b"\n")
    w = tmp_path / "w"
    first = ingest_dataset(data, w)
    assert ingest_dataset(data, w, skip_unchanged=True) is None  # nothing since: skipped
    ingest_dataset(day2, w, append=True)
    assert ingest_dataset(day2, w, skip_unchanged=True, append=True) is None  # a delivery appended
    again = ingest_dataset(data, w, skip_unchanged=True)
    assert again is not None
    assert again.tables["events"].rows_curated == first.tables["events"].rows_curated
    assert ingest_dataset(data, w, skip_unchanged=True) is None


def test_ingesting_does_not_import_the_models():
    code = "import sys, shelfwise.cli, shelfwise.serving._feedback; from shelfwise.lifecycle import ingest_dataset; print(sorted(m for m in ('torch', 'implicit', 'shelfwise.models', 'shelfwise.lifecycle._train') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_plain_text_summary_does_not_import_the_charts():
    """`shelfwise ingest` prints its summary with `reporting.summary_lines`: importing it must not
    import matplotlib (imported first thing, it held every load up by ~0.6 s; the charts are
    drawn at the end, with matplotlib imported in the background meanwhile)."""
    code = "import sys; from shelfwise.reporting import summary_lines; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_long_tail_chart_labels_its_log_axes_in_plain_numbers():
    """The quality report's long-tail chart: tick labels 1, 10, 100, 1,000 as text, not TeX
    (10^n labels go through matplotlib's mathtext parser, a tenth of a second of every load)."""
    import re

    from shelfwise.reporting._charts import long_tail_chart

    svg = long_tail_chart(list(range(1, 5001)), "Popularity long tail", fast=True)
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)  # (text stays text: svg.fonttype none)
    assert not any("mathdefault" in s for s in labels), labels
    assert {"1", "10", "100", "1,000"} <= set(labels), labels


def test_a_folder_of_parts_is_hashed_once(demo_data, tmp_path, monkeypatch):
    """The parts' hashes taken while staging decide "unchanged": no part is read a second time."""
    import shelfwise.storage as storage

    src = events_head(demo_data, tmp_path / "src", 300)
    lines = (src / "events.csv").read_text().splitlines(keepends=True)
    data = tmp_path / "data"
    (data / "events").mkdir(parents=True)
    (data / "events" / "part-0.csv").write_text("".join(lines[:150]))
    (data / "events" / "part-1.csv").write_text(lines[0] + "".join(lines[150:]))
    (data / "README.txt").write_text("not a table")
    hashed = []
    real = storage.file_sha256
    monkeypatch.setattr(storage, "file_sha256", lambda p: hashed.append(p.name) or real(p))
    assert ingest_dataset(data, tmp_path / "w") is not None
    assert hashed == ["README.txt"]
    state = json.loads((tmp_path / "w" / "state" / "sources.json").read_text())[str(data.resolve())]
    state.pop("--tables")
    assert state == {
        "README.txt": real(data / "README.txt"),
        "events/part-0.csv": real(data / "events" / "part-0.csv"),
        "events/part-1.csv": real(data / "events" / "part-1.csv"),
    }


def test_a_chinese_label_is_drawn_as_written_without_a_warning():
    """matplotlib's bundled font has no Chinese glyphs: the label stays text in the SVG (the
    browser draws it) and no "Glyph ... missing" warning reaches the console."""
    import warnings

    from shelfwise.reporting._charts import bar_chart

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # whatever filters a caller (pytest, a CLI) set before
        svg = bar_chart(["灰色 水壶", "red kettle"], [3, 2], "Top queries", "searches", fast=True)
    assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    assert ">灰色 水壶</text>" in svg


def test_a_forecast_chart_over_years_of_weeks_draws_without_a_warning():
    """A demand report of a shop with four years of weekly history printed matplotlib's
    "AutoDateLocator was unable to pick an appropriate interval" once per chart."""
    import warnings

    import pandas as pd

    from shelfwise.reporting._charts import forecast_chart

    weeks = pd.date_range("2022-01-03", periods=200, freq="W-MON").strftime("%Y-%m-%d")
    ahead = pd.date_range(weeks[-1], periods=14, freq="W-MON")[1:].strftime("%Y-%m-%d")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        svg = forecast_chart([(w, 1.0) for w in weeks], [(w, 1.0, 0.5, 2.0) for w in ahead], "sales")
    assert svg.startswith("<svg") and not [str(w.message) for w in caught]


def test_the_same_files_read_with_another_mapping_are_ingested_again(tmp_path):
    """`train --data DIR --map events.timestamp='Ship Date'` after a load with 'Order Date' said
    "unchanged since its last load" and trained on the old dates: the `--map` flags are part of
    what decides "unchanged"."""
    import duckdb

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,Red Shoe\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,Order Date,Ship Date\nU1,P1,purchase,2026-01-01,2026-01-04\n"
    )
    w = tmp_path / "w"
    order, ship = ("events.timestamp=Order Date",), ("events.timestamp=Ship Date",)
    assert ingest_dataset(data, w, skip_unchanged=True, map_flags=order) is not None
    assert ingest_dataset(data, w, skip_unchanged=True, map_flags=order) is None
    assert ingest_dataset(data, w, skip_unchanged=True, map_flags=ship) is not None
    with duckdb.connect(str(w / "warehouse.duckdb"), read_only=True) as con:
        (day,) = con.sql('SELECT "timestamp"::DATE::VARCHAR FROM curated.events').fetchone()
    assert day == "2026-01-04"
    assert ingest_dataset(data, w, skip_unchanged=True, map_flags=ship) is None
