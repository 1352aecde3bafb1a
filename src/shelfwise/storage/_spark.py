"""The engine seam: where a load's data work runs. DuckDB in the workdir (the default) or Apache
Spark (`--engine spark`), reached through pyspark: a local master (`local[2]`) or Spark Connect
(`sc://HOST:PORT`, a standalone cluster, Kubernetes or a managed Spark).

On Spark the curated tables and the quarantine are Parquet in a warehouse location (the
workdir's `spark-warehouse/`, or `--warehouse PATH`: a path every executor can read and write).
The workdir's DuckDB file stays the catalog: table versions, runs, raw loads, and views over the
Parquet versions, so every single-node reader (`export`, `catalog`, `train`, serving) reads a
Spark-written table as it reads a DuckDB one.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ShelfwiseError

__all__ = ["ENGINES", "DuckDBEngine", "Engine", "SparkEngine", "engine_from"]

ENGINES = ("duckdb", "spark")
REMOTE_ENV = "SHELFWISE_SPARK_REMOTE"
MASTER_ENV = "SHELFWISE_SPARK_MASTER"

# what every shelfwise Spark session sets: the contract SQL reads timestamps as UTC wall-clock
# time and expects failed casts to be NULL (governance/_compile.SparkDialect)
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
# a local master only (a cluster's own settings are its operators')
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "1g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # a clean console: no per-stage progress bars, and Spark's log at ERROR from the start (the
    # default profile prints start-up warnings before `setLogLevel` can act)
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={Path(__file__).with_name('spark-log4j2.properties').as_uri()}",
}


@dataclass
class DuckDBEngine:
    """The default: every stage runs in the workdir's DuckDB warehouse."""

    name: str = "duckdb"

    def describe(self) -> str:
        return "duckdb (the workdir's warehouse)"

    def close(self) -> None:
        pass


@dataclass
class SparkEngine:
    """A Spark session (created on first use) and the warehouse location it writes."""

    workdir: Path
    remote: str | None = None
    master: str | None = None
    warehouse: Path | None = None
    name: str = "spark"
    _session: Any = field(default=None, repr=False)
    _owned: bool = field(default=False, repr=False)

    @property
    def location(self) -> Path:
        return Path(self.warehouse) if self.warehouse else Path(self.workdir) / "spark-warehouse"

    def describe(self) -> str:
        return f"spark ({_target(self.remote, self.master)}), warehouse {self.location}"

    @property
    def session(self) -> Any:
        if self._session is None:
            self._session, self._owned = _session(self.remote, self.master, self.location, self.workdir)
        return self._session

    def read_parquet(self, path: str | Path) -> Any:
        return self.session.read.parquet(str(path))

    def close(self) -> None:
        """Stops the session only when this engine started it (a test's shared one stays)."""
        if self._session is not None and self._owned:
            self._session.stop()
        self._session = None


Engine = DuckDBEngine | SparkEngine


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """This process's stderr (file descriptor 2) goes to `path` meanwhile: a process started
    then (the local Spark JVM) keeps it as its own stderr for its whole life."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def _session(
    remote: str | None, master: str | None, location: Path, workdir: Path | None = None
) -> tuple[Any, bool]:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ShelfwiseError(
            "--engine spark needs pyspark: pip install 'shelfwise[spark]' (pyspark 4.0 and Java 17)"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None and remote is None:
        for key, value in SESSION_CONF.items():
            active.conf.set(key, value)
        return active, False
    if remote:
        answers(remote)
        builder = SparkSession.builder.remote(remote)
    else:
        master = _check_master(master)
        # a local JVM: loopback only, executors run this very Python (the UDFs import shelfwise)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.master(master or "local[2]").appName("shelfwise")
        for key, value in LOCAL_CONF.items():
            builder = builder.config(key, value)
        builder = builder.config("spark.sql.warehouse.dir", str(location / "_spark_sql"))
        builder = builder.config("spark.local.dir", str(location / "_tmp"))
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    # a local JVM's own output (its start-up notes: "Using incubator modules", log4j's profile;
    # later Spark errors, which reach Python as exceptions too) goes to the workdir's log, not
    # the shop's console
    # (to the microsecond: a second attempt within the second writes its own log, whose first
    # exception is its own)
    jvm_log = Path(workdir or location) / "logs" / f"spark-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.log"
    try:
        with nullcontext() if remote else _stderr_to(jvm_log):
            session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no Java, no cluster: say which
        said = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        if not remote:
            cause = _jvm_cause(jvm_log)  # (the JVM's own reason: a missing HADOOP_CONF_DIR, ...)
            if cause:
                said = cause
            elif not _java_found():
                said += "; no Java found: a local master needs Java 17 (Debian: openjdk-17-jre-headless)"
            if "UnsupportedClassVersionError" in said:  # (an older Java than Spark's)
                said += "; Spark 4 needs Java 17 or newer (Debian: openjdk-17-jre-headless)"
        raise ShelfwiseError(
            f"cannot start Spark ({_target(remote, master)}): {said}"
            + ("" if remote else f" (the JVM's output: {jvm_log})")
        ) from exc
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    return session, True


# the master URLs Spark parses (SparkContext's local[N], local[N,F], local[*], local-cluster,
# yarn) and any cluster manager's URL (spark://, k8s://, a plugin's scheme://)
_MASTER = re.compile(
    r"local(\[\s*([1-9]\d*|\*)\s*(,\s*\d+\s*)?\])?"
    r"|local-cluster\[\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\]|yarn|[a-z][a-z0-9+.-]*://\S+"
)


def _check_master(master: str | None) -> str | None:
    """The master URL (trimmed) when Spark knows its form, before a JVM starts (`local[x]`
    printed a Java stack trace and blamed Java 17); a ShelfwiseError otherwise."""
    if master is None:
        return None
    if not _MASTER.fullmatch(master.strip()):
        raise ShelfwiseError(
            f"--spark-master {master!r}: not a Spark master (local, local[N], local[*], "
            "local-cluster[N,C,M], spark://HOST:PORT, yarn, k8s://...)"
        )
    return master.strip()


def _java_found() -> bool:
    """Whether the launcher finds a Java: `$JAVA_HOME/bin/java` when JAVA_HOME is set (it
    prefers it), else `java` on the PATH."""
    import shutil

    home = os.environ.get("JAVA_HOME")
    if home:
        return (Path(home) / "bin" / "java").exists()
    return shutil.which("java") is not None


def _jvm_cause(log: Path) -> str | None:
    """The first exception the JVM logged (its reason: `SparkException: When running with master
    'yarn' either HADOOP_CONF_DIR or YARN_CONF_DIR must be set`), or None."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        m = re.search(r"((?:[\w$]+\.)+\w*(?:Exception|Error)): (.+)", line)
        if m:
            return f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2).strip()[:300]}"
    return None


def _host_port(remote: str) -> tuple[str, int]:
    """HOST and PORT of a Spark Connect address, sc://HOST[:PORT][/;param=value;...] (Spark
    Connect's default port 15002)."""
    netloc = remote.split("://", 1)[-1].split("/", 1)[0].split(";", 1)[0]
    try:
        parsed = urlsplit(f"//{netloc}")
        host, port = parsed.hostname, parsed.port or 15002
    except ValueError as exc:
        raise ShelfwiseError(f"--spark-remote {shown_remote(remote)!r}: {exc}") from exc
    if not host:
        raise ShelfwiseError(f"--spark-remote {shown_remote(remote)!r}: no host (sc://HOST:PORT)")
    return host, port


def _target(remote: str | None, master: str | None) -> str:
    """Where the Spark work runs, as messages show it (a Connect address without its parameters)."""
    return shown_remote(remote) if remote else master or "local[2]"


def shown_remote(remote: str) -> str:
    """A Spark Connect address as logs and reports may show it: its parameters (a token, a
    user) are left out, sc://HOST:PORT/;token=... -> sc://HOST:PORT/;..."""
    head, sep, _ = remote.partition(";")
    return head + (";..." if sep else "")


def answers(remote: str, timeout: float = 10.0) -> None:
    """Fail at once when nothing listens at a Spark Connect address: the client would retry an
    unanswered address with growing back-offs for about ten minutes before it fails."""
    host, port = _host_port(remote)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ShelfwiseError(
            f"--spark-remote {shown_remote(remote)}: no Spark Connect server answers at {host}:{port} ({exc})"
        ) from exc


def engine_from(
    name: str | None,
    workdir: str | Path,
    *,
    remote: str | None = None,
    master: str | None = None,
    warehouse: str | Path | None = None,
) -> Engine:
    """The engine a command asked for (`--engine`, `--spark-remote`, `--spark-master`,
    `--warehouse`; the Spark address also from SHELFWISE_SPARK_REMOTE / SHELFWISE_SPARK_MASTER)."""
    name = (name or "duckdb").lower()
    if name not in ENGINES:
        raise ShelfwiseError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
    remote = remote or os.environ.get(REMOTE_ENV) or None
    master = master or os.environ.get(MASTER_ENV) or None
    if name == "duckdb":
        if remote or master or warehouse:
            given = "--spark-remote" if remote else "--spark-master" if master else "--warehouse"
            if warehouse or not (os.environ.get(REMOTE_ENV) or os.environ.get(MASTER_ENV)):
                raise ShelfwiseError(f"{given} is for --engine spark")
        return DuckDBEngine()
    if remote and master:
        raise ShelfwiseError("give --spark-remote or --spark-master, not both")
    if remote and not remote.startswith("sc://"):
        raise ShelfwiseError(
            f"--spark-remote {shown_remote(remote)!r}: a Spark Connect address looks like sc://HOST:PORT"
        )
    if remote:
        _host_port(remote)  # (a malformed address is refused before any work)
    return SparkEngine(
        # absolute: the Parquet locations recorded in the catalog must not depend on the
        # directory the command ran in
        Path(workdir).absolute(),
        remote=remote,
        master=master,
        warehouse=Path(warehouse).resolve() if warehouse else None,
    )
