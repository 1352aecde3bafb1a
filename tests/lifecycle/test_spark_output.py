"""`recommend --engine spark`'s guards, checked without starting Spark: the output folder (Spark's
overwrite deletes the whole folder it writes) and who may list every customer's shop id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shelfwise import Shop
from shelfwise.errors import AccessDenied, ShelfwiseError
from shelfwise.governance import People
from shelfwise.lifecycle._spark_jobs import check_output_folder


def test_the_output_folder_is_never_the_workdir_nor_a_folder_with_other_files(tmp_path: Path):
    work = tmp_path / "shop"
    (work / "bundles").mkdir(parents=True)
    (work / "warehouse.duckdb").write_bytes(b"")
    for bad in (work, work / "bundles", work / "out", tmp_path):  # itself, inside, above
        with pytest.raises(ShelfwiseError, match="workdir"):
            check_output_folder(bad, work)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "part-00000.parquet").write_bytes(b"")
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(ShelfwiseError, match="'notes.txt'"):
        check_output_folder(mixed, work)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ShelfwiseError, match="is a file"):
        check_output_folder(tmp_path / "a-file", work)
    earlier = tmp_path / "earlier"  # what an earlier run wrote may be replaced
    earlier.mkdir()
    for name in (
        "part-00000-x.snappy.parquet",
        ".part-00000-x.snappy.parquet.crc",
        "_SUCCESS",
        "._SUCCESS.crc",
    ):
        (earlier / name).write_bytes(b"")
    assert check_output_folder(earlier, work) == earlier.resolve().as_posix()
    (tmp_path / "empty").mkdir()
    assert check_output_folder(tmp_path / "empty", work).endswith("/empty")
    assert check_output_folder(tmp_path / "new", work).endswith("/new")
    assert check_output_folder("s3a://bucket/recs/2026-12-02", work) == "s3a://bucket/recs/2026-12-02"


@pytest.fixture
def governed(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    work = tmp_path / "shop"
    work.mkdir()
    (work / "warehouse.duckdb").write_bytes(b"")  # the guards run before the warehouse is read
    people = People(work)
    keys = {"ann": people.add("ann", "admin")}
    keys["eve"] = people.add("eve", "engineer", people.load()["ann"])
    return work, keys


def test_listing_every_customer_needs_the_role_that_may_see_shop_ids(governed, tmp_path: Path):
    work, keys = governed
    eve = Shop(work, as_="eve", api_key=keys["eve"])
    with pytest.raises(AccessDenied, match=r"recommend\.all_users"):
        eve.recommend_on_spark(None, tmp_path / "out", None)  # refused before any engine is used
    denied = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    assert any(e["action"] == "access.denied" and "recommend.all_users" in json.dumps(e) for e in denied)


def test_the_cli_refuses_before_reading_the_users_or_starting_spark(governed, tmp_path: Path):
    work, keys = governed
    env = dict(os.environ, SHELFWISE_AS="eve", SHELFWISE_API_KEY=keys["eve"])
    base = [sys.executable, "-m", "shelfwise.cli", "recommend", "--workdir", str(work), "--engine", "spark"]
    proc = subprocess.run(
        [*base, "--no-rules", "--all-users", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 4 and "recommend.all_users" in proc.stderr, proc.stderr
    assert "spark" not in proc.stderr.lower().replace("--engine spark", "")  # no session started
    proc = subprocess.run(  # an --out that would replace the workdir: refused, nothing started
        [*base, "--no-rules", "--users", str(tmp_path / "absent.csv"), "--out", str(work)],
        capture_output=True,
        text=True,
        env=dict(os.environ, SHELFWISE_AS="ann", SHELFWISE_API_KEY=keys["ann"]),
        timeout=300,
    )
    assert proc.returncode != 0 and "workdir" in proc.stderr and (work / "warehouse.duckdb").exists()
