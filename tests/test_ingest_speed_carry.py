"""benchmarks/ingest_speed.py's carried Spark rows keep the DuckDB counts of the run they were
measured in, so that a later DuckDB-only run tells a rule changed since (the Spark rows then
agreed with their own DuckDB load) from engines that disagree. The 1M/2M rows of
benchmarks/ingest_speed.json read `spark_same_counts: false` for the first reason: measured at
7be5f32, before rows with no user but a session became anonymous browsing (curated), both
engines had quarantined those rows as `missing_required`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest_speed import spark_rows, stale_warning  # noqa: E402

OLD_RULE = {"missing_required": 1004, "invalid_value": 991, "unparseable_timestamp": 987}
NEW_RULE = {"invalid_value": 992, "unparseable_timestamp": 987}


def _report(path: Path, row: dict) -> Path:
    path.write_text(
        json.dumps(
            {
                "commit": "7be5f327fad943063e4408e27fa4fc85180bb45c",
                "date": "2026-12-02T09:40:20+00:00",
                "command": "python benchmarks/ingest_speed.py --engines duckdb,spark",
                "machine": {"load_average_at_start": [1.0, 1.0, 1.0]},
                "ingestion": [row],
            }
        )
    )
    return path


def _measured_row() -> dict:
    # a row measured on both engines in one run: the same counts on both
    return {
        "rows": 1000000,
        "bare_seconds": 12.13,
        "rows_curated": 997018,
        "reasons": OLD_RULE,
        "spark_ingest_seconds": 262.82,
        "spark_rows_curated": 997018,
        "spark_reasons": OLD_RULE,
        "spark_same_counts": True,
    }


def test_a_carried_row_keeps_its_own_runs_duckdb_counts(tmp_path):
    carried = spark_rows(_report(tmp_path / "old.json", _measured_row()))[1000000]
    origin = carried["spark_from"]
    assert origin["commit"].startswith("7be5f32") and origin["bare_seconds"] == 12.13
    assert (origin["duckdb_rows_curated"], origin["duckdb_reasons"]) == (997018, OLD_RULE)
    # carried again by a later run: still the first origin, its counts with it
    again = {"rows": 1000000, "rows_curated": 998021, "reasons": NEW_RULE, **carried}
    assert spark_rows(_report(tmp_path / "later.json", again))[1000000]["spark_from"] == origin


def test_a_changed_rule_is_told_from_engines_that_disagree(tmp_path):
    carried = spark_rows(_report(tmp_path / "old.json", _measured_row()))[1000000]
    row = {"rows": 1000000, "rows_curated": 998021, "reasons": NEW_RULE, **carried}
    said = stale_warning(row)
    assert "agreed with that commit's DuckDB load" in said and "--spark-sizes 1000000" in said
    # an engine that disagreed with its own run's DuckDB load is not excused as a rule change
    bad = {**_measured_row(), "spark_rows_curated": 997017}
    row = {"rows": 1000000, **spark_rows(_report(tmp_path / "bad.json", bad))[1000000]}
    row.update(rows_curated=998021, reasons=NEW_RULE)
    assert "agreed" not in stale_warning(row)
