"""`--spark-remote`: the commands through Spark Connect, as a shop points them at a cluster. A
Spark Connect server (a local[2] Spark with the Connect plugin, in its own process and JVM)
stands in for the cluster; the commands are the CLI as a subprocess, Spark Connect clients with
no JVM of their own. `ingest --engine spark --spark-remote sc://HOST:PORT --warehouse PATH`
(a location outside the workdir) curates and quarantines what DuckDB does (one pseudonym key: the same rows, pseudonyms included), `train`
reads the interactions through it, and `recommend --all-users` ranks every user there (the model
travels with the function: a Connect session has no broadcast variables; a model other than
the default, so that the one named is seen to travel) with the one-node lists.

Skipped where the Connect client's packages (grpcio: the `spark` extra installs
pyspark[connect]) or Java are missing. Slow: a JVM and five commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shelfwise.demo import generate_demo
from shelfwise.governance._privacy import SecretStore
from tests.storage.conftest import skip_without_spark
from tests.storage.test_spark_cli import SMALL, _one_node, _ranked, sw
from tests.storage.test_spark_parity import _curated, _quarantine

pytestmark = pytest.mark.slow

skip_without_spark()
pytest.importorskip("grpc", reason="the Spark Connect client needs grpcio (the `spark` extra, make install)")

SERVER = """
import sys, time
from pyspark.sql import SparkSession
SparkSession.builder.master("local[2]").appName("connect-server").config(
    "spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin"
).config("spark.connect.grpc.binding.address", "127.0.0.1").config(
    "spark.connect.grpc.binding.port", sys.argv[1]
).config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory):
    """A Spark Connect server's address (sc://127.0.0.1:PORT); its executors run this Python,
    which imports shelfwise as a cluster's executors must (the UDFs and the model's code)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # the JVM it starts ends with its process group
        )
    try:
        # (a cap, not a measurement: a JVM start on a loaded 2-core machine can take minutes)
        for _ in range(600):
            if "ready" in log.read_text() or server.poll() is not None:
                break
            time.sleep(0.5)
        assert server.poll() is None and "ready" in log.read_text(), log.read_text()[-3000:]
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_ingest_train_and_recommend_through_spark_connect(remote, tmp_path):
    data = tmp_path / "data"
    generate_demo(data, products=60, users=45, events=1500, days=20, seed=9)
    for extra in data.iterdir():  # the events and products: a keyed table and its references
        if extra.name not in ("events.csv", "products.csv"):
            extra.unlink()
    duck, sprk = tmp_path / "duck", tmp_path / "spark"
    key = SecretStore(duck).pseudonym_key()
    (sprk / "secrets").mkdir(parents=True)
    (sprk / "secrets" / "pseudonym.key").write_text(key.hex())
    connect = ["--engine", "spark", "--spark-remote", remote]
    shared = tmp_path / "shared-warehouse"
    out = {
        "duckdb": json.loads(sw("ingest", "--data", str(data), "--workdir", str(duck), "--json").stdout),
        "spark": json.loads(
            # (a warehouse location outside the workdir, as a cluster's shared storage is)
            sw(
                "ingest",
                "--data",
                str(data),
                "--workdir",
                str(sprk),
                "--json",
                *connect,
                "--warehouse",
                str(shared),
            ).stdout  # fmt: skip
        ),
    }
    keys = ("rows_in", "rows_curated", "rows_quarantined", "rows_withheld", "reasons", "balanced")
    counts = {e: {t: [r[k] for k in keys] for t, r in o["tables"].items()} for e, o in out.items()}
    assert out["spark"]["engine"] == "spark"
    assert counts["spark"] == counts["duckdb"]
    assert counts["duckdb"]["events"][2] > 0  # the demo's defects were quarantined: parity is about something
    assert _quarantine(sprk) == _quarantine(duck)
    assert _curated(sprk, "events") == _curated(duck, "events")
    assert sorted(_curated(sprk, "products"), key=repr) == sorted(_curated(duck, "products"), key=repr)
    # written by the server's executors as Parquet in the warehouse location
    assert list((shared / "curated" / "events" / "v1").glob("*.parquet"))
    assert list((shared / "quarantine" / "events").glob("run=*/*.parquet"))
    assert not (sprk / "spark-warehouse").exists()
    # lineage and audit as with DuckDB: the run's outputs (names, columns, content versions)
    assert _lineage(sprk, out["spark"]["run_id"]) == _lineage(duck, out["duckdb"]["run_id"])
    for work, o in ((duck, out["duckdb"]), (sprk, out["spark"])):
        audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
        assert [e["details"]["run_id"] for e in audit if e["action"] == "ingest"] == [o["run_id"]]

    trained = json.loads(sw("train", "--workdir", str(sprk), "--json", *SMALL, *connect).stdout)
    assert {r["model"] for r in trained["results"]} >= {"itemknn", "als"}
    # every user, ranked on the server's executors by a model shipped with the function (not
    # the default one: the model named is the one that travels), as the one node ranks them
    other = next(
        r["model"] for r in trained["results"] if r["model"] not in ("popularity", trained["default_model"])
    )
    every = tmp_path / "every"
    proc = sw(
        "recommend", "--workdir", str(sprk), "--all-users", "--out", str(every), "--no-rules", "--model", other,
        *connect,
    )  # fmt: skip
    assert "ranked on Spark" in proc.stdout
    got = _ranked(every)
    assert len(got) > 35
    listed = tmp_path / "listed.csv"
    listed.write_text("user_id\n" + "\n".join(sorted(got)) + "\n")
    assert got == _one_node(sprk, listed, tmp_path / "one-node.jsonl", "--model", other)


def _lineage(work: Path, run_id: str) -> dict[str, dict]:
    """The ingest run's COMPLETE event's outputs: name -> facets."""
    events = [json.loads(x) for x in (work / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    (done,) = [e for e in events if e["run"]["runId"] == run_id and e["eventType"] == "COMPLETE"]
    return {
        o["name"]: {k: v for k, v in o["facets"].items() if not k.startswith("_")} for o in done["outputs"]
    }
