"""Storage: the workdir's warehouse (DuckDB through Ibis) and source-file staging."""

from ._sources import StagedFile, file_sha256, find_table_file, stage_file
from ._warehouse import LAYERS, TableVersion, Warehouse, read_only

__all__ = [
    "LAYERS",
    "StagedFile",
    "TableVersion",
    "Warehouse",
    "file_sha256",
    "find_table_file",
    "read_only",
    "stage_file",
]
