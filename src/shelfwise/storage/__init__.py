"""Storage: the workdir's warehouse (DuckDB through Ibis), source-file staging, and the engine a
load runs on (DuckDB, or Spark with Parquet in a warehouse location)."""

from ._sources import StagedFile, file_sha256, find_table_file, outside_workdir, sniff_header, stage_file
from ._spark import ENGINES, DuckDBEngine, Engine, SparkEngine, engine_from
from ._warehouse import (
    LAYERS,
    TableVersion,
    Warehouse,
    raw_user_ids,
    read_only,
    relation_columns,
    tables_with_column,
    waiting_for_the_warehouse,
)

__all__ = [
    "ENGINES",
    "LAYERS",
    "DuckDBEngine",
    "Engine",
    "SparkEngine",
    "StagedFile",
    "TableVersion",
    "Warehouse",
    "engine_from",
    "file_sha256",
    "outside_workdir",
    "find_table_file",
    "raw_user_ids",
    "read_only",
    "waiting_for_the_warehouse",
    "relation_columns",
    "sniff_header",
    "stage_file",
    "tables_with_column",
]
