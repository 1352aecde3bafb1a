"""Curated versions and quarantine files another engine (Spark) wrote as Parquet, for the privacy
and retention commands that change or read rows in place.

A Spark-written version is recorded in `meta.table_versions` with its Parquet location as its
physical name (`<location>/curated/<table>/v<N>/*.parquet`); the quarantined rows of a Spark load
lie beside it (`<location>/quarantine/<table>/run=<run id>/*.parquet`) and are indexed in
`quarantine.rows`. Parquet files are immutable: a file holding rows to delete is rewritten
without them (to a temporary name, then moved over the original; Spark's stale checksum file
beside it is removed), and the version's recorded
size and content hash are recomputed, so a bundle trained afterwards names what it read.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ParquetVersion", "parquet_versions", "quarantine_dirs", "refresh_versions", "rewrite_files"]


@dataclass(frozen=True)
class ParquetVersion:
    table: str
    version: int
    physical: str  # the glob of its files

    @property
    def location(self) -> Path:
        """The engine's warehouse location (`<location>/curated/<table>/v<N>/*.parquet`)."""
        return Path(self.physical).parents[3]

    @property
    def files(self) -> list[Path]:
        return sorted(Path(f) for f in glob.glob(self.physical))


def parquet_versions(con: Any, table: str | None = None) -> list[ParquetVersion]:
    """The Parquet versions the catalog records (`con`: a `Warehouse` or a DuckDB connection)."""
    run = con.sql if hasattr(con, "sql") else con.execute
    rows = run(
        "SELECT table_name, version, physical_name FROM meta.table_versions "
        "WHERE physical_name LIKE '%/%.parquet' ORDER BY table_name, version"
    ).fetchall()
    return [ParquetVersion(t, int(v), p) for t, v, p in rows if table is None or t == table]


def quarantine_dirs(versions: list[ParquetVersion]) -> list[tuple[str, str, Path]]:
    """(table, run id, folder) of every Spark load's quarantine files beside these versions."""
    out = []
    for loc in sorted({v.location for v in versions}):
        for d in sorted((loc / "quarantine").glob("*/run=*")):
            if d.is_dir():
                out.append((d.parent.name, d.name.removeprefix("run="), d))
    return out


def rewrite_files(files: list[Path], column: str, drop: str, params: list[Any]) -> dict[str, int]:
    """Rewrite each file that has `column` and rows where `drop` (SQL over the file's columns,
    `$2`, `$3`... its parameters: `$1` is the file) holds, without those rows. Returns the rows
    taken out of each rewritten file. Runs in a connection of its own (UTC)."""
    import duckdb

    out: dict[str, int] = {}
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        for f in files:
            cols = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet($1)", [str(f)]).fetchall()}
            if column not in cols:
                continue
            row = con.execute(
                f"SELECT count(*) FROM read_parquet($1) WHERE {drop}", [str(f), *params]
            ).fetchone()
            n = int(row[0]) if row else 0
            if not n:
                continue
            tmp = f.with_name(f.name + ".rewriting")
            con.execute(
                f"COPY (SELECT * FROM read_parquet($1) WHERE NOT coalesce({drop}, false)) "
                f"TO '{tmp.as_posix()}' (FORMAT PARQUET)",
                [str(f), *params],
            )
            tmp.replace(f)
            # Spark's local file system keeps a checksum beside each file it wrote
            # (`.part-0.parquet.crc`); left stale, Spark refuses to read the rewritten file
            # ("ChecksumException"), so the next Spark load on this warehouse would fail.
            # Without it, Spark reads the file unchecked, as one written by another engine
            f.with_name(f".{f.name}.crc").unlink(missing_ok=True)
            out[str(f)] = n
    finally:
        con.close()
    return out


def refresh_versions(wh: Any, versions: list[ParquetVersion], changed: dict[str, int]) -> None:
    """The recorded size and content hash of each version some of whose files were rewritten."""
    for v in versions:
        if any(Path(f).parent == Path(v.physical).parent for f in changed):
            count, digest = wh.fingerprint(f"read_parquet('{v.physical}')")
            wh.sql(
                "UPDATE meta.table_versions SET row_count = ?, content_hash = ? WHERE physical_name = ?",
                [count, digest, v.physical],
            )
