"""The warehouse: one DuckDB file in the workdir, reached in SQL through its DuckDB connection
(`Warehouse.db`) and through Ibis over that same connection (`Warehouse.con`, `table`).

Layers are DuckDB schemas: `raw` (rows as received, strings, steward-only), `curated` (cleaned,
pseudonymized, versioned), `quarantine` (rejected rows with reasons) and `meta` (table versions,
runs). A curated table is written as an immutable version `curated.<name>__v<N>` and the view
`curated.<name>` points at the newest one, so every version stays readable and names the run
that made it (but the events table's versions beyond `curated_versions_kept`, governance's
retention setting, that no kept bundle learned from: `drop_versions`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ShelfwiseError

if TYPE_CHECKING:
    import duckdb
    import ibis
    from ibis.backends.duckdb import Backend

LAYERS = ("raw", "curated", "quarantine", "meta")
WAREHOUSE_FILE = "warehouse.duckdb"
# where `--engine spark` writes Parquet versions unless `--warehouse PATH` says otherwise
SPARK_DIR = "spark-warehouse"


@dataclass(frozen=True)
class TableVersion:
    table: str
    version: int
    run_id: str
    created_at: str
    row_count: int
    content_hash: str
    contract_version: str
    physical_name: str


class Warehouse:
    """The workdir's DuckDB warehouse (embedded default; Ibis keeps the expressions portable)."""

    def __init__(self, workdir: str | Path, *, memory_limit: str = "2GB", threads: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path = self.workdir / WAREHOUSE_FILE
        if not self.path.exists():
            _close_to_others(self.workdir)
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        import duckdb

        # The DuckDB connection (what the checks and publishing run on, in SQL); Ibis (`con`,
        # `table`: the pandera validation's tables) is made over it on first use, so that a
        # load does not wait for Ibis's import (~0.3 s CPU): `shelfwise ingest` imports it in
        # the background while the warehouse reads.
        self.db: duckdb.DuckDBPyConnection = duckdb.connect(str(self.path.absolute()))
        self._ibis: Backend | None = None
        # a transaction open on the connection (`begin`): a whole ingest run is one, and the
        # steps inside it that are atomic on their own (`publish`) take part in it
        self.in_transaction = False
        # as Ibis sets it on every connection it makes: a query's names are tables, never
        # Python variables of the caller (an Arrow table is read only once registered)
        self.sql("SET python_enable_replacements=false")
        # memory_limit + temp_directory: large inputs spill to disk instead of growing the process.
        self.sql(f"SET memory_limit='{memory_limit}'")
        self.sql(f"SET temp_directory='{tmp.as_posix()}'")
        self.sql("SET TimeZone='UTC'")
        self.sql("SET preserve_insertion_order=true")
        self.sql("SET enable_progress_bar=false")
        # the legacy dictionary compression's analysis dominates writing wide string tables
        # (the raw layer): without it a million raw events are written in 1.5 s instead of 2.5 s,
        # in 43.8 MB instead of 40.9 MB (dict_fsst, FSST, RLE and the rest stay on). Files written
        # before keep their encoding and read as they did.
        self.sql("SET disabled_compression_methods='dictionary'")
        if threads:
            self.sql(f"SET threads={int(threads)}")
        for layer in LAYERS:
            self.sql(f"CREATE SCHEMA IF NOT EXISTS {layer}")
        self.sql(
            """CREATE TABLE IF NOT EXISTS meta.table_versions (
                table_name VARCHAR, version INTEGER, run_id VARCHAR, created_at TIMESTAMP,
                row_count BIGINT, content_hash VARCHAR, contract_version VARCHAR, physical_name VARCHAR)"""
        )
        # one row per file loaded into the raw layer: raw rows carry only the small `_load` id
        # (writing the run id and file name into every row cost ~0.35 s per million rows)
        self.sql(
            """CREATE TABLE IF NOT EXISTS meta.raw_loads (
                load_id INTEGER, run_id VARCHAR, table_name VARCHAR, source_file VARCHAR,
                source_sha256 VARCHAR, loaded_at TIMESTAMP)"""
        )
        self.sql(
            """CREATE TABLE IF NOT EXISTS meta.runs (
                run_id VARCHAR PRIMARY KEY, job VARCHAR, started_at TIMESTAMP, ended_at TIMESTAMP,
                status VARCHAR, report JSON)"""
        )
        self.rebase_parquet_versions()

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def con(self) -> Backend:
        """The warehouse through Ibis (over the same DuckDB connection, `db`), made on first use."""
        if self._ibis is None:
            import ibis

            self._ibis = ibis.duckdb.from_connection(self.db)
        return self._ibis

    def sql(self, query: str, params: list[Any] | None = None) -> Any:
        """Run SQL on the underlying DuckDB connection (for what Ibis does not express)."""
        return self.db.execute(query, params) if params is not None else self.db.execute(query)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exists(self, layer: str, name: str) -> bool:
        return has_table(self.sql, layer, name)

    def columns(self, name: str, layer: str = "curated") -> list[str]:
        """A table's (or view's) column names, in order (no Ibis needed)."""
        return relation_columns(self, f'{layer}."{name}"')

    def table(self, name: str, layer: str = "curated") -> ibis.Table:
        if not self.exists(layer, name):
            raise ShelfwiseError(
                f"no table {layer}.{name} in {self.path} (ingest data first: `Shop.ingest(DIR)` or `shelfwise ingest`)"
            )
        return self.con.table(name, database=layer)

    # -- curated versions -----------------------------------------------------------------------
    def versions(self, table: str | None = None) -> list[TableVersion]:
        q = "SELECT * FROM meta.table_versions"
        params: list[Any] = []
        if table:
            q += " WHERE table_name = ?"
            params.append(table)
        q += " ORDER BY table_name, version"
        rows = self.sql(q, params).fetchall()
        return [TableVersion(r[0], r[1], r[2], str(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def latest_version(self, table: str) -> TableVersion | None:
        vs = self.versions(table)
        return vs[-1] if vs else None

    def publish(
        self, table: str, source_sql: str, run_id: str, contract_version: str, *, same_keeps: bool = False
    ) -> TableVersion:
        """Materialize `source_sql` as the next version of curated `table` and point the view at it.
        `same_keeps` (a delivery added to the table): when the result holds exactly the rows of
        the current version, no version is made and the current one is returned (a re-sent day
        or a quarantine re-processing that curated nothing copied the whole table as a new
        version, and a model trained after it read as trained on other data)."""
        prev = self.latest_version(table)
        version = (prev.version + 1) if prev else 1
        physical = f"{table}__v{version}"
        # a table of this name is recorded nowhere (the next version's number comes from
        # meta.table_versions): the half-made version of a publish that crashed before this
        # code cleaned up after itself. It is replaced, not fatal: it wedged every later load
        # ("Table ... already exists", walk48b F0)
        self.sql(f'DROP TABLE IF EXISTS curated."{physical}"')
        try:
            self.sql(f'CREATE TABLE curated."{physical}" AS {source_sql}')
            count, digest = self.fingerprint(f'curated."{physical}"')
            if same_keeps and _unchanged(prev, count, digest, contract_version):
                self.sql(f'DROP TABLE curated."{physical}"')
                return prev  # type: ignore[return-value]
            tv = TableVersion(
                table,
                version,
                run_id,
                datetime.now(UTC).replace(tzinfo=None).isoformat(),
                count,
                digest,
                contract_version,
                physical,
            )
            with self.atomic():  # the view and the version's record: neither without the other
                self.sql(f'CREATE OR REPLACE VIEW curated."{table}" AS SELECT * FROM curated."{physical}"')
                self._record_version(tv)
            return tv
        except BaseException:
            # a failed publish (out of memory while the version was hashed, a full disk) leaves
            # no half-made version: the table stays at `prev` and the next load tries again
            _drop_quietly(self, f'curated."{physical}"')
            raise

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction, or a part of the one already open (a whole ingest run holds its
        publishes): DuckDB nests none."""
        if self.in_transaction:
            yield
            return
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self) -> None:
        """Open a transaction on the warehouse's connection (one at a time: DuckDB nests none)."""
        self.sql("BEGIN TRANSACTION")
        self.in_transaction = True

    def commit(self) -> None:
        self.in_transaction = False
        self.sql("COMMIT")

    def rollback(self) -> None:
        """Undo the open transaction; quiet when none is open (it never began, or DuckDB ended
        it with the error that brought us here)."""
        self.in_transaction = False
        try:
            self.sql("ROLLBACK")
        except Exception:  # noqa: BLE001 - no transaction left to roll back
            pass

    def drop_versions(self, table: str, keep: int, pinned: set[int]) -> list[int]:
        """Drop the DuckDB-written versions of curated `table` older than its last `keep`, but
        those in `pinned` (what a kept bundle learned from); their rows in meta.table_versions
        stay (the lineage says a version existed). Returns the versions dropped."""
        versions = [v for v in self.versions(table) if "/" not in v.physical_name]
        existing = {
            r[0]
            for r in self.sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'curated' "
                "AND table_type = 'BASE TABLE'"
            ).fetchall()
        }
        dropped = []
        for v in versions[: max(len(versions) - max(keep, 1), 0)]:
            if v.version in pinned or v.physical_name not in existing:
                continue
            self.sql(f'DROP TABLE curated."{v.physical_name}"')
            dropped.append(v.version)
        return dropped

    def publish_parquet(
        self, table: str, files: str, run_id: str, contract_version: str, *, same_keeps: bool = False
    ) -> TableVersion:
        """Record a version another engine (Spark) wrote as Parquet (`files`: a glob): the view
        `curated.<name>` reads it, so readers need not know which engine wrote a table. The
        version's physical name is its Parquet location. `same_keeps`: as `publish` (the
        current version is returned; the caller removes the files it wrote)."""
        prev = self.latest_version(table)
        version = (prev.version + 1) if prev else 1
        relation = f"read_parquet('{files}')"
        count, digest = self.fingerprint(relation)
        if same_keeps and _unchanged(prev, count, digest, contract_version):
            return prev  # type: ignore[return-value]
        self.sql(f'CREATE OR REPLACE VIEW curated."{table}" AS SELECT * FROM {relation}')
        tv = TableVersion(
            table,
            version,
            run_id,
            datetime.now(UTC).replace(tzinfo=None).isoformat(),
            count,
            digest,
            contract_version,
            files,
        )
        return self._record_version(tv)

    def _record_version(self, tv: TableVersion) -> TableVersion:
        """One row of meta.table_versions, whichever engine wrote the version."""
        self.sql(
            "INSERT INTO meta.table_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                tv.table,
                tv.version,
                tv.run_id,
                tv.created_at,
                tv.row_count,
                tv.content_hash,
                tv.contract_version,
                tv.physical_name,
            ],
        )
        return tv

    def rebase_parquet_versions(self) -> int:
        """Point the Parquet versions Spark wrote in the workdir's own `spark-warehouse/` at this
        workdir's copy when the catalog names them under another path: the workdir was moved or
        restored elsewhere (a copy then reads and erases its own files, never the original's), or
        a load given a relative `--workdir` recorded them relative to its current directory. The
        versions and the curated views that read them are rewritten; a version whose files are
        not here, or that lives in a `--warehouse PATH` outside the workdir, is left as it is.
        Returns how many versions moved."""
        moves = _parquet_moves(self.db, self.workdir)
        for old, new in moves.items():
            self.sql("UPDATE meta.table_versions SET physical_name = ? WHERE physical_name = ?", [new, old])
        if moves:
            for table in {v.table for v in self.versions() if v.physical_name in moves.values()}:
                latest = self.latest_version(table)
                if latest is not None and latest.physical_name in moves.values():
                    self.sql(
                        f'CREATE OR REPLACE VIEW curated."{table}" AS '
                        f"SELECT * FROM read_parquet('{latest.physical_name}')"
                    )
        return len(moves)

    def fingerprint(self, relation: str) -> tuple[int, str]:
        """Row count and an order-independent content hash of a relation."""
        row = self.sql(
            f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0), coalesce(bit_xor(hash(t)), 0) FROM {relation} AS t"
        ).fetchone()
        assert row is not None
        return int(row[0]), f"{int(row[1]) & ((1 << 64) - 1):016x}{int(row[2]):016x}"

    def refresh_version(self, physical_name: str) -> None:
        """After rows were deleted in place from a curated version (erasure, retention): its
        recorded size and content hash describe what it now holds, so the catalog and a bundle
        trained afterwards state the rows it has."""
        count, digest = self.fingerprint(f'curated."{physical_name}"')
        self.sql(
            "UPDATE meta.table_versions SET row_count = ?, content_hash = ? WHERE physical_name = ?",
            [count, digest, physical_name],
        )

    def curated_tables(self) -> list[str]:
        rows = self.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='curated' AND table_type='VIEW' ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def record_run(
        self, run_id: str, job: str, started: datetime, status: str, report: dict[str, Any]
    ) -> None:
        self.sql(
            "INSERT OR REPLACE INTO meta.runs VALUES (?, ?, ?, ?, ?, ?)",
            [
                run_id,
                job,
                started.replace(tzinfo=None),
                datetime.now(UTC).replace(tzinfo=None),
                status,
                json.dumps(report, default=str),
            ],
        )

    # -- export ---------------------------------------------------------------------------------
    def export(self, table: str, out: str | Path, whole: Sequence[str] = ()) -> int:
        """Write a curated table (pseudonymized, masked) to CSV, Parquet or JSON lines."""
        return export_curated(self.sql, self.curated_tables(), table, out, whole)


def _drop_quietly(wh: Warehouse, relation: str) -> None:
    """Drop `relation` while another error is on its way out (that error is what is said)."""
    try:
        wh.sql(f"DROP TABLE IF EXISTS {relation}")
    except Exception:  # noqa: BLE001 - the connection may be unusable; the next publish drops it
        pass


def _close_to_others(folder: Path) -> None:
    """A new workdir will hold personal data (shop ids in raw, the spool, the feedback archive):
    others (neither its owner nor its group) lose their access to it, whatever mode each file
    inside gets (files made under the process's umask were world-readable, 0644). Only those
    bits go: a shared 2770 or a private 700 stays as it was made; a folder this process does not
    own is left to its owner."""
    try:
        st = folder.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o007:
            os.chmod(folder, stat.S_IMODE(st.st_mode) & ~0o007)
    except OSError:
        pass


def has_table(sql: Any, layer: str, name: str) -> bool:
    """Whether the warehouse holds table `layer.name`, through `sql` (a `Warehouse`'s, or a
    read-only connection's `sql`/`execute`: the names are the code's own, written in the query)."""
    for v in (layer, name):
        if not v.replace("_", "").isalnum():
            raise ValueError(f"not a table name: {v!r}")
    row = sql(
        "SELECT count(*) FROM information_schema.tables "
        f"WHERE table_schema = '{layer}' AND table_name = '{name}'"
    ).fetchone()
    return bool(row and row[0])


def tables_with_column(
    sql: Any, column: str, layers: Sequence[str] = ("raw", "curated"), *, base_tables: bool = False
) -> list[tuple[str, str]]:
    """The (layer, table) pairs of `layers` with a column `column`, sorted, through `sql` (a
    `Warehouse`'s, or a read-only connection's `sql`: the names are the code's own, written in
    the query); `base_tables`: tables only, not views (what a deletion may touch)."""
    for v in (column, *layers):
        if not v.replace("_", "").isalnum():
            raise ValueError(f"not a column or layer name: {v!r}")
    listed = ", ".join(f"'{layer}'" for layer in layers)
    query = (
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c "
        + ("JOIN information_schema.tables t USING (table_schema, table_name) " if base_tables else "")
        + f"WHERE c.column_name = '{column}' AND c.table_schema IN ({listed}) "
        + ("AND t.table_type = 'BASE TABLE' " if base_tables else "")
        + "ORDER BY 1, 2"
    )
    return [(r[0], r[1]) for r in sql(query).fetchall()]


def relation_columns(con: Any, relation: str) -> list[str]:
    """The column names, in order, of `relation` (a table or view such as `curated.events`, or
    any relation expression: `read_parquet('...')`, a version's relation) on `con`, a DuckDB
    connection or a `Warehouse`: what a reader checks before it names an optional column."""
    return [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def export_curated(
    sql: Any,
    curated: list[str],
    table: str,
    out: str | Path,
    whole: Sequence[str] = (),
    select: str | None = None,
) -> int:
    """Write a curated table (pseudonymized, masked) to CSV, Parquet or JSON lines through `sql`
    (a read-write or a read-only connection's). `whole`: columns the contract holds to whole
    numbers (stored as DOUBLE), written as such (`3`, not `3.0`). `select`: a query of the table
    to write instead of the table as stored (the users with the consent in force now)."""
    out = Path(out)
    if table not in curated:
        known = ", ".join(curated) or "none yet"
        raise ShelfwiseError(f"no curated table {table!r} (curated tables: {known})")
    suffix = out.suffix.lower()
    fmt = {
        ".csv": "CSV, HEADER",
        ".parquet": "PARQUET",
        ".jsonl": "JSON",
        ".ndjson": "JSON",
        ".json": "JSON",
    }.get(suffix)
    if fmt is None:
        raise ShelfwiseError(f"{out}: unknown export format {suffix!r} (use .csv, .parquet, .jsonl or .json)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # pseudonyms and masked text are still a person's data: its owner's from the first byte.
    # DuckDB makes the file anew under the process's umask (0644), so it is written in a folder
    # only its owner can enter, made 0600 there, then renamed over `out`
    import tempfile

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        part = Path(tmp) / out.name
        source = f"({select})" if select else f'curated."{table}"'
        have = {r[0] for r in sql(f"DESCRIBE SELECT * FROM {source}").fetchall()} if whole else set()
        casts = [f'CAST("{c}" AS BIGINT) AS "{c}"' for c in whole if c in have]
        columns = f"* REPLACE ({', '.join(casts)})" if casts else "*"
        sql(f"COPY (SELECT {columns} FROM {source}) TO '{part.as_posix()}' (FORMAT {fmt})")
        os.chmod(part, 0o600)
        os.replace(part, out)
    row = sql(f'SELECT count(*) FROM curated."{table}"').fetchone()
    return int(row[0]) if row else 0


@contextmanager
def read_only(workdir: str | Path) -> Iterator[tuple[Any, set[str]]]:
    """A read-only DuckDB connection to the workdir's warehouse and the names of its curated
    tables: for readers (training, search building) that must not take the write lock. While
    another process writes it, waits as long as `waiting_for_the_warehouse` says (0: the
    caller is told at once)."""
    import duckdb

    path = Path(workdir) / WAREHOUSE_FILE
    if not path.exists():
        raise ShelfwiseError(
            f"{workdir}: no warehouse; run `shelfwise ingest` or `shelfwise train --data` first"
        )
    deadline = time.monotonic() + _read_wait()
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except duckdb.IOException as exc:
            # another process holds the write lock (a server's absorb: seconds); a long run
            # waits for it instead of losing its work at its last read
            if not writer_holds_it(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    if _parquet_moves(con, Path(workdir)):  # moved: rebased once, by a writer's connection
        con.close()
        try:
            Warehouse(workdir).close()
        except duckdb.IOException:
            pass  # another process has it open (a writer rebases it when it opens it)
        con = duckdb.connect(str(path), read_only=True)
    try:
        curated = {
            r[0]
            for r in con.sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='curated'"
            ).fetchall()
        }
        yield con, curated
    finally:
        con.close()


_LOCK_HELD = re.compile(
    r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is held in .*?\(PID (?P<pid>\d+)\)'
)


def busy_message(exc: BaseException) -> str | None:
    """The one-line answer when `exc` is DuckDB refusing a database file because another process
    holds it: DuckDB lets no other process in while one writes, and a running `shelfwise serve`
    writes the warehouse for a few seconds every `--absorb-seconds` and on its way out.

    Only `exc` itself counts, a `duckdb.IOException` carrying DuckDB's lock-conflict text: not
    an error raised while handling one (its `__context__`), nor one raised `from None`, which
    must keep their own message and traceback. The file named is the one DuckDB named."""
    import sys

    duckdb = sys.modules.get("duckdb")  # not imported: no DuckDB error can have been raised
    if duckdb is None or not isinstance(exc, duckdb.IOException):
        return None
    m = _LOCK_HELD.search(str(exc))
    if m is None:
        return None
    if Path(m["path"]).name != WAREHOUSE_FILE:  # another DuckDB file: named as it is, no guess who
        return f"busy: the file {m['path']} is in use by another process (PID {m['pid']}); try again when it is done"
    holder = process_named(int(m["pid"]))
    if holder is None:
        who = "a running `shelfwise serve` absorbing events, which takes seconds, or another command"
    elif " serve" in f" {holder}":
        who = f"`{holder}`, which absorbs events for a few seconds at a time"
    else:
        who = f"`{holder}`"
    return (
        f"busy: the warehouse {m['path']} is in use by another process (PID {m['pid']}: {who}); "
        "try again when it is done"
    )


def process_named(pid: int) -> str | None:
    """The command a local process runs, as `shelfwise ingest` (its words, not its options; its
    Python and `-m` left out) or another program's name, from /proc; None where it cannot be
    read (another OS, gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not args:
        return None
    for i, a in enumerate(args):  # `python -m shelfwise ...` or a `shelfwise` script
        if (
            a == "shelfwise"
            or a.endswith("/shelfwise")
            or (a == "-m" and args[i + 1 : i + 2] == ["shelfwise"])
        ):
            rest = args[i + 2 :] if a == "-m" else args[i + 1 :]
            words: list[str] = []  # the command's words, not its options (a URL may hold a password)
            for w in rest:
                if w.startswith("-") or "/" in w or len(words) == 2:
                    break
                words.append(w)
            return " ".join(["shelfwise", *words])
    return Path(args[0]).name[:80]  # another program: its name (its arguments may be code, secrets)


def writer_holds_it(exc: BaseException) -> bool:
    """Whether `exc` is DuckDB's refusal while another process holds the warehouse's write lock
    ("Could not set lock on file ...: Conflicting lock is held"): a wait, not a fault."""
    text = str(exc).lower()
    return "lock" in text and "conflict" in text


# how long `read_only` waits for a writer to finish: the longest of the waits open now (seconds;
# process-wide: the readers of a run are on several threads). Each open wait is its own entry,
# so waits that end out of order (two runs on two threads) leave none behind: a saved-and-restored
# value was put back by the later exit, and every read of the process then waited two minutes
_WAITS: dict[object, float] = {}
_WAITS_LOCK = threading.Lock()


def _read_wait() -> float:
    with _WAITS_LOCK:
        return max(_WAITS.values(), default=0.0)


@contextmanager
def waiting_for_the_warehouse(seconds: float) -> Iterator[None]:
    """Within it, `read_only` waits up to `seconds` for another process's write lock (a
    training run beside a server that absorbs events every 30 s: each absorb holds the lock for
    seconds, and a run of minutes failed at whichever read met one)."""
    token = object()
    with _WAITS_LOCK:
        _WAITS[token] = float(seconds)
    try:
        yield
    finally:
        with _WAITS_LOCK:
            del _WAITS[token]


def raw_user_ids(
    workdir: str | Path, *, missing: Sequence[str] = (), reserved_prefix: str | None = None
) -> list[str]:
    """Every shop user id the raw layer holds, sorted (the `user_id` of every raw table, as
    delivered, trimmed as curation trims ids; blanks, the spellings in `missing` and ids
    beginning `reserved_prefix` left out): where the workdir keeps the shop's own ids
    (pseudonyms are not reversible). Governance says which ids name customers
    (`governance.shop_user_ids`)."""
    with read_only(workdir) as (con, _):
        tables = [t for _, t in tables_with_column(con.sql, "user_id", ("raw",))]
        if not tables:
            return []
        union = " UNION ".join(
            f"SELECT DISTINCT nullif(trim(user_id), '') AS u FROM raw.\"{t}\"" for t in tables
        )
        where = ["u IS NOT NULL"]
        params: list[Any] = []
        if missing:
            where.append("NOT list_contains(?, u)")
            params.append(list(missing))
        if reserved_prefix:
            where.append("NOT starts_with(u, ?)")
            params.append(reserved_prefix)
        sql = f"SELECT u FROM ({union}) WHERE {' AND '.join(where)} ORDER BY u"
        return [r[0] for r in con.execute(sql, params).fetchall()]


def _parquet_moves(con: Any, workdir: Path) -> dict[str, str]:
    """{recorded location: this workdir's location} of the Parquet versions recorded under a
    `spark-warehouse/` that is not this workdir's although this workdir holds their files (see
    `Warehouse.rebase_parquet_versions`)."""
    here = workdir.absolute()
    rows = con.execute(
        "SELECT DISTINCT physical_name FROM meta.table_versions WHERE contains(physical_name, ?)",
        [SPARK_DIR + "/"],
    ).fetchall()
    moves: dict[str, str] = {}
    for (name,) in rows:
        # "<workdir>/spark-warehouse/curated/...", the workdir absolute, relative or empty
        head, _, tail = name.rpartition(SPARK_DIR + "/")
        if not tail.startswith("curated/") or (head and not head.endswith("/")):
            continue
        if name.startswith("/") and Path(head).resolve() == here.resolve():
            continue  # where it belongs
        moved = (here / SPARK_DIR / tail).as_posix()
        folder = Path(moved).parent if "*" in Path(moved).name else Path(moved)
        if folder.is_dir():
            moves[name] = moved
    return moves


def _unchanged(prev: TableVersion | None, count: int, digest: str, contract_version: str) -> bool:
    """Whether a new version would hold exactly `prev`'s rows under the same contract (one checked
    under another contract since is a version of its own, that says so)."""
    return prev is not None and (count, digest, contract_version) == (
        prev.row_count,
        prev.content_hash,
        prev.contract_version,
    )


def compact_warehouse(workdir: str | Path, *, tries: int = 5) -> dict[str, Any]:
    """Rewrite the warehouse into a fresh file and put it in place of the old one. A DELETE frees
    DuckDB's blocks without clearing them (they are reused, not wiped), so rows an erasure took
    out of every table stayed readable in the file's bytes (an erased user's pseudonym 332 times,
    their shop id 3; `CHECKPOINT` changes nothing): the fresh file (`COPY FROM DATABASE`: every
    schema, table, view, sequence and key) holds only the live rows. The old file is held
    read-only from the copy to the swap, so no load can write to it meanwhile (one that tries is
    told the warehouse is busy, as when another load runs; readers go on); a process that opens
    it after the swap opens the fresh file. Returns `{"before_bytes", "after_bytes"}`, or
    `{"skipped": why}` when another process held it for writing through every try."""
    import time

    import duckdb

    workdir = Path(workdir)
    path = workdir / WAREHOUSE_FILE
    wal = Path(f"{path}.wal")
    tmp = workdir / "tmp" / f"compact-{os.getpid()}.duckdb"
    why = ""
    for attempt in range(tries):
        if attempt:
            time.sleep(0.5 * attempt)
        for f in (tmp, Path(f"{tmp}.wal")):
            f.unlink(missing_ok=True)
        try:
            old = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:  # a load (or a server's absorb) writes it now
            why = str(exc).splitlines()[0][:200]
            continue
        try:
            if wal.exists() and wal.stat().st_size:
                # changes a writer left in its log: checkpointed first (a read-only copy would
                # leave the log beside the fresh file, replayed onto it at the next open)
                old.close()
                try:
                    duckdb.connect(str(path)).execute("CHECKPOINT").close()
                except duckdb.IOException as exc:
                    why = str(exc).splitlines()[0][:200]
                continue
            tmp.parent.mkdir(parents=True, exist_ok=True)
            before = path.stat().st_size
            name = old.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
            old.execute(f"ATTACH '{tmp.as_posix()}' AS _compact (READ_WRITE)")
            old.execute(f'COPY FROM DATABASE "{name}" TO _compact')
            old.execute("DETACH _compact")  # (checkpointed: the fresh file is whole)
            st = path.stat()
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            try:  # (an admin rewriting a service's workdir as root leaves it the service's)
                os.chown(tmp, st.st_uid, st.st_gid)
            except OSError:
                pass
            os.replace(tmp, path)
            return {"before_bytes": before, "after_bytes": path.stat().st_size}
        finally:
            old.close()
            for f in (tmp, Path(f"{tmp}.wal")):
                f.unlink(missing_ok=True)
    return {"skipped": f"the warehouse was held for writing by another process through {tries} tries ({why})"}
