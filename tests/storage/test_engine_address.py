"""A Spark Connect address (`--spark-remote`): parsed, refused when malformed, checked for a
listener before the client starts (the Connect client retries an unanswered address for about
ten minutes), and shown without its parameters (a token) in messages and the ingest report.
No Spark runs here."""

from __future__ import annotations

import socket

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.storage import SparkEngine, engine_from
from shelfwise.storage._spark import _host_port, answers, shown_remote
from tests.cli.test_cli import sw


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_addresses_parse_and_their_parameters_are_never_shown(tmp_path, monkeypatch):
    assert _host_port("sc://spark.example:443/;token=abc;use_ssl=true") == ("spark.example", 443)
    assert _host_port("sc://10.0.0.7") == ("10.0.0.7", 15002)
    assert _host_port("sc://[::1]:15003") == ("::1", 15003)
    secret = "sc://spark.example:443/;token=SECRET-TOKEN;user_id=ops"
    assert shown_remote(secret) == "sc://spark.example:443/;..."
    assert shown_remote("sc://h:15002") == "sc://h:15002"
    monkeypatch.delenv("SHELFWISE_SPARK_MASTER", raising=False)
    engine = engine_from("spark", tmp_path, remote=secret)
    assert isinstance(engine, SparkEngine) and engine.remote == secret
    assert "SECRET" not in engine.describe() and "spark.example:443" in engine.describe()
    monkeypatch.setenv("SHELFWISE_SPARK_REMOTE", "sc://from-env:15010")  # (the flag wins over it)
    assert engine_from("spark", tmp_path).remote == "sc://from-env:15010"
    assert engine_from("spark", tmp_path, remote=secret).remote == secret
    monkeypatch.delenv("SHELFWISE_SPARK_REMOTE")
    for bad in ("sc://host:port", "sc://:15002", "sc://host:99999"):
        with pytest.raises(ShelfwiseError, match="--spark-remote"):
            engine_from("spark", tmp_path, remote=bad)
    with pytest.raises(ShelfwiseError) as caught:
        engine_from("spark", tmp_path, remote="sc://host:port/;token=SECRET")
    assert "SECRET" not in str(caught.value)


def test_an_address_nobody_answers_fails_at_once_naming_it():
    port = _closed_port()
    with pytest.raises(ShelfwiseError, match=f"no Spark Connect server answers at 127.0.0.1:{port}"):
        answers(f"sc://127.0.0.1:{port}/;token=SECRET")
    with socket.socket() as listening:  # something listening: the check passes
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        answers(f"sc://127.0.0.1:{listening.getsockname()[1]}")


def test_ingest_against_an_address_nobody_answers_is_a_clear_error(tmp_path):
    """Through the CLI: a non-zero exit naming the address (its token left out), no traceback,
    and no ten minutes of retries (sw's 300 s limit)."""
    pytest.importorskip("pyspark", reason="the `spark` extra is not installed (make install)")
    from shelfwise.demo import generate_demo

    data = tmp_path / "data"
    generate_demo(data, products=30, users=20, events=500, days=5, seed=1)
    port = _closed_port()
    proc = sw(
        "ingest", "--data", str(data), "--workdir", str(tmp_path / "w"), "--engine", "spark",
        "--spark-remote", f"sc://127.0.0.1:{port}/;token=SECRET", check=False,
    )  # fmt: skip
    said = proc.stderr + proc.stdout
    assert proc.returncode != 0, said
    assert f"127.0.0.1:{port}" in said and "SECRET" not in said and "Traceback" not in said, said


def test_a_local_jvm_that_cannot_start_is_said_with_its_log(tmp_path):
    """The local JVM's own output goes to the workdir's log (its start-up notes are no news to
    a shop); when it cannot start, the one-line error names that log, the launcher's complaint
    is in it, and the console is this process's again (the error itself is printed)."""
    import os
    import subprocess
    import sys

    import pytest

    pytest.importorskip("pyspark", reason="the `spark` extra is not installed (make install)")
    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,Red Shoe\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2026-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}
    proc = subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", "ingest", "--data", str(data), "--workdir", str(work),
         "--engine", "spark"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "cannot start Spark" in proc.stderr and "the JVM's output:" in proc.stderr, proc.stderr
    logs = list((work / "logs").glob("spark-*.log"))
    assert len(logs) == 1 and str(logs[0]) in proc.stderr
    assert "no-java" in logs[0].read_text()  # the launcher's own complaint
    assert "no Java found" in proc.stderr


def test_a_master_spark_does_not_know_is_refused_before_a_jvm_and_the_jvms_reason_is_said(tmp_path):
    """`--spark-master 'local[x]'` printed a Java stack trace and blamed Java 17; `yarn` without
    HADOOP_CONF_DIR blamed Java too, its reason only in the log."""
    from shelfwise.storage._spark import _check_master, _jvm_cause

    for good in ("local", "local[2]", "local[*]", "local[4,2]", "local[4, 2]", "local-cluster[2,1,1024]",
                 "local-cluster[2, 1, 1024]", "spark://h:7077", "spark://h1:7077,h2:7077", "yarn",
                 "k8s://https://k:443", "local[*,3]"):  # fmt: skip
        assert _check_master(good) == good
    assert _check_master(" local[2] ") == "local[2]"  # (handed to Spark trimmed)
    for bad in ("local[x]", "locl", "yarn-client ", "spark:/h", "local[0]"):
        with pytest.raises(ShelfwiseError, match="not a Spark master"):
            _check_master(bad)
    log = tmp_path / "spark.log"
    log.write_text(
        "WARNING: Using incubator modules\n"
        "Exception in thread \"main\" org.apache.spark.SparkException: When running with master 'yarn' "
        "either HADOOP_CONF_DIR or YARN_CONF_DIR must be set in the environment.\n\tat org.apache...\n"
    )
    assert _jvm_cause(log) == (
        "SparkException: When running with master 'yarn' either HADOOP_CONF_DIR or YARN_CONF_DIR must be set "
        "in the environment."
    )
    assert _jvm_cause(tmp_path / "absent.log") is None
