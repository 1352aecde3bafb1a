"""Rows deleted in place from Parquet files another engine wrote (erasure, retention): the file
is rewritten without them, and Spark's checksum file beside it goes, since a stale checksum makes
Spark refuse the rewritten file on the next load (found when retention was followed by an
append on Spark: `ChecksumException`)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from shelfwise.governance._parquet_versions import rewrite_files


def _parquet(path: Path, users: list[str]) -> Path:
    con = duckdb.connect()
    values = ", ".join(f"('{u}', {i})" for i, u in enumerate(users))
    con.execute(
        f"COPY (SELECT * FROM (VALUES {values}) t(user_id, n)) TO '{path.as_posix()}' (FORMAT PARQUET)"
    )
    con.close()
    return path


def test_a_rewritten_file_loses_the_rows_and_its_stale_checksum_and_the_others_keep_theirs(tmp_path):
    hit = _parquet(tmp_path / "part-00000.snappy.parquet", ["a", "b", "a", "c"])
    miss = _parquet(tmp_path / "part-00001.snappy.parquet", ["c", "d"])
    for f in (hit, miss):  # what Spark's local file system writes beside each file
        (tmp_path / f".{f.name}.crc").write_bytes(b"crc\x00\x00\x02\x00stale")
    out = rewrite_files([hit, miss], "user_id", "user_id = $2", ["a"])
    assert out == {str(hit): 2}
    rows = duckdb.sql(f"SELECT user_id FROM read_parquet('{hit.as_posix()}') ORDER BY n").fetchall()
    assert rows == [("b",), ("c",)]
    assert not (tmp_path / f".{hit.name}.crc").exists()
    assert (tmp_path / f".{miss.name}.crc").exists()  # untouched file, valid checksum
