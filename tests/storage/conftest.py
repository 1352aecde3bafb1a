"""The Spark tests' session (local[2], one per test process) and the skip when Spark cannot run here."""

from __future__ import annotations

import os
import shutil

import pytest

# The suite's JVMs (the Spark tests' session, the CLI's local sessions, the Connect server, the
# local cluster) live a minute and see tiny data: the C1 compiler alone warms up sooner than the
# tiered C2 (test_spark_cli + test_spark_lifecycle: 193 s instead of 220 s, one run each, load 8).
# Tests only: a shop's JVM keeps its defaults. (Each JVM notes the option on stderr.)
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")


# The suite's Spark work is many small queries on tiny tables: compiling each plan's generated
# Java (Janino) costs more than running it interpreted, and adaptive execution splits each
# query into more jobs. Measured on one parity scenario (two loads, after a warm-up one): 134
# jobs, 33 s of CPU with Spark's defaults; 115 jobs, 24-26 s with adaptive execution and code
# generation off. Tests only (a shop's Spark keeps its defaults, and the local-cluster and
# Connect tests run theirs): both are ways of executing the same plans, not what they compute.
# `PYSPARK_SUBMIT_ARGS` reaches every JVM pyspark launches here (this process's session and the
# CLI's); adaptive execution, which shelfwise's local sessions set themselves, is turned off on
# this process's session (`spark`).
os.environ.setdefault(
    "PYSPARK_SUBMIT_ARGS",
    "--conf spark.sql.codegen.wholeStage=false --conf spark.sql.codegen.factoryMode=NO_CODEGEN pyspark-shell",
)
TEST_SESSION_CONF = {"spark.sql.adaptive.enabled": "false"}


def skip_without_spark() -> None:
    """Skip the calling test module when Java or pyspark is missing (module level)."""
    if shutil.which("java") is None:
        pytest.skip(
            "no Java: the Spark engine needs Java 17 (scripts/system-deps.sh)", allow_module_level=True
        )
    pytest.importorskip("pyspark", reason="the `spark` extra is not installed (make install)")


@pytest.fixture(scope="session")
def spark_engine(tmp_path_factory):
    """One local[2] engine per test process, its session started on first use: a JVM start is
    10-20 s on a loaded machine, and the in-process Spark modules run on one xdist worker (one
    work unit in tests/conftest.py). A test that needs another master closes it first; the
    next `spark` starts it again."""
    from shelfwise.storage import SparkEngine

    engine = SparkEngine(tmp_path_factory.mktemp("spark"), master="local[2]")
    yield engine
    engine.close()


@pytest.fixture()
def spark(spark_engine):
    """The shared local[2] session (started again if a test stopped it)."""
    session = spark_engine.session
    for key, value in TEST_SESSION_CONF.items():
        session.conf.set(key, value)
    return session
