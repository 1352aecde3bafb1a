"""A workdir whose curated versions are Parquet files (written by `--engine spark` in its own
`spark-warehouse/`) still reads them after it was moved, copied elsewhere or loaded with a relative
`--workdir`: the catalog's locations are rebased on this workdir's files, never left pointing
at another copy. Parquet versions written here by DuckDB stand in for Spark's (no JVM needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from shelfwise.storage import Warehouse, engine_from, read_only
from shelfwise.storage._warehouse import SPARK_DIR


def _spark_like_version(workdir: Path, rows: int, *, recorded: str | None = None) -> None:
    """A curated `events` version as Spark writes one: Parquet part files in
    spark-warehouse/curated/events/v1/, recorded in the catalog by its glob."""
    folder = workdir / SPARK_DIR / "curated" / "events" / "v1"
    folder.mkdir(parents=True)
    duckdb.sql(
        f"COPY (SELECT range AS n, 'u' || range AS user_id FROM range({rows})) "
        f"TO '{(folder / 'part-00000.parquet').as_posix()}' (FORMAT PARQUET)"
    )
    with Warehouse(workdir) as wh:
        wh.publish_parquet("events", recorded or f"{folder.as_posix()}/*.parquet", "run-1", "1.0")


def _read(workdir: Path) -> tuple[int, str]:
    with read_only(workdir) as (con, curated):
        assert "events" in curated
        (count,) = con.execute("SELECT count(*) FROM curated.events").fetchone()
        (physical,) = con.execute("SELECT physical_name FROM meta.table_versions").fetchone()
    return count, physical


def test_a_moved_workdir_reads_its_parquet_versions(tmp_path):
    _spark_like_version(tmp_path / "a", 7)
    shutil.move(tmp_path / "a", tmp_path / "b")
    count, physical = _read(tmp_path / "b")
    assert count == 7
    assert physical == f"{(tmp_path / 'b').as_posix()}/{SPARK_DIR}/curated/events/v1/*.parquet"
    with Warehouse(tmp_path / "b") as wh:  # the writer's connection agrees, and nothing moves twice
        assert wh.rebase_parquet_versions() == 0
        assert wh.sql("SELECT count(*) FROM curated.events").fetchone() == (7,)


def test_a_copy_reads_and_owns_its_own_files_not_the_original(tmp_path):
    _spark_like_version(tmp_path / "a", 5)
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    # the original changes after the copy: the copy must not see it
    original = tmp_path / "a" / SPARK_DIR / "curated" / "events" / "v1" / "part-00000.parquet"
    duckdb.sql(f"COPY (SELECT 1 AS n, 'x' AS user_id) TO '{original.as_posix()}' (FORMAT PARQUET)")
    count, physical = _read(tmp_path / "copy")
    assert count == 5
    assert physical.startswith((tmp_path / "copy").as_posix() + "/")
    assert _read(tmp_path / "a") == (
        1,
        f"{(tmp_path / 'a').as_posix()}/{SPARK_DIR}/curated/events/v1/*.parquet",
    )


def test_a_version_recorded_relative_to_the_loads_directory_reads_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _spark_like_version(Path("shop"), 3, recorded=f"shop/{SPARK_DIR}/curated/events/v1/*.parquet")
    monkeypatch.chdir(tmp_path / "shop")  # elsewhere: the relative location no longer resolves
    count, physical = _read(tmp_path / "shop")
    assert count == 3
    assert physical == f"{(tmp_path / 'shop').as_posix()}/{SPARK_DIR}/curated/events/v1/*.parquet"


def test_files_that_are_not_here_and_a_warehouse_outside_the_workdir_stay_as_recorded(tmp_path):
    outside = tmp_path / "lake" / "curated" / "events" / "v1"
    outside.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 1 AS n) TO '{(outside / 'p.parquet').as_posix()}' (FORMAT PARQUET)")
    gone = f"/nonexistent/{SPARK_DIR}/curated/orders/v1/*.parquet"
    with Warehouse(tmp_path / "w") as wh:
        wh.publish_parquet("events", f"{outside.as_posix()}/*.parquet", "run-1", "1.0")
        wh.sql(
            "INSERT INTO meta.table_versions VALUES ('orders', 1, 'r', now()::TIMESTAMP, 0, '', '1', ?)",
            [gone],
        )
    with Warehouse(tmp_path / "w") as wh:
        assert wh.rebase_parquet_versions() == 0
        assert sorted(v.physical_name for v in wh.versions()) == sorted(
            [f"{outside.as_posix()}/*.parquet", gone]
        )


def test_spark_writes_under_an_absolute_location_whatever_the_workdir_was_given_as(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = engine_from("spark", "shop", master="local[1]")
    assert engine.location == tmp_path / "shop" / SPARK_DIR  # (no session is started)
