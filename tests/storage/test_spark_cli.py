"""The Spark commands end to end, as a shop runs them (the CLI as a subprocess, its own local
Spark session): `train --engine spark` (ingestion and interactions on Spark, fitting here) gives
a bundle that recommends what the DuckDB-trained one recommends, and `recommend --engine spark
--no-rules` (the users ranked as a Spark job) writes, user for user, the one-node `recommend
--no-rules` lists, in the shop's own ids.

One small demo shop (its events alone) trained on both engines with one pseudonym key; three
models, no tuning.
Slow: each command starts a JVM, and the Spark ingestion runs ~10 jobs per table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from shelfwise.demo import generate_demo
from shelfwise.governance._privacy import SecretStore
from tests.cli.test_cli import sw as cli_sw
from tests.conftest import curated_rows
from tests.storage.conftest import skip_without_spark

pytestmark = pytest.mark.slow


def sw(*args: str, check: bool = True):
    """`shelfwise ARGS` as a subprocess (tests/cli's helper), with more time: a local Spark
    started on a busy 2-core machine takes minutes, not seconds."""
    return cli_sw(*args, check=check, timeout=1200)


skip_without_spark()

SMALL = [
    "--models",
    "popularity,itemknn,als",
    "--tune-seconds",
    "0",
    "--no-fusion",
    "--finetune-steps",
    "0",
    "--cross-encoder-steps",
    "0",
    "--seed",
    "3",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("spark-cli")
    data = base / "data"
    generate_demo(data, products=60, users=45, events=1500, days=20, seed=9)
    for extra in data.iterdir():  # events alone: one table on Spark, and no catalog text to index
        if extra.name != "events.csv":
            extra.unlink()
    duck, sprk = base / "duck", base / "spark"
    key = SecretStore(duck).pseudonym_key()
    (sprk / "secrets").mkdir(parents=True)
    (sprk / "secrets" / "pseudonym.key").write_text(key.hex())
    out = {}
    for work, engine in ((duck, []), (sprk, ["--engine", "spark", "--spark-master", "local[2]"])):
        proc = sw("train", "--data", str(data), "--workdir", str(work), "--json", *SMALL, *engine)
        out[work.name] = json.loads(proc.stdout)
    users = base / "users.csv"
    with open(data / "events.csv", newline="", encoding="utf-8") as fh:
        ids = sorted({(r["user_id"] or "").strip() for r in csv.DictReader(fh)} - {""})
    with open(users, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id"])
        w.writerows([[u] for u in [*ids, "never-seen-shopper"]])
    return data, duck, sprk, out, users


def _one_node(work: Path, users: Path, out: Path, *model: str, known: bool = False) -> dict[str, list[str]]:
    """The one-node `recommend --no-rules` lists (`known`: only the users the bundle knows)."""
    sw("recommend", "--workdir", str(work), "--users", str(users), "--out", str(out), "--no-rules", *model)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return {d["user_id"]: d["items"] for d in lines if not (known and d["source"] == "cold_start")}


def _ranked(folder: Path) -> dict[str, list[str]]:
    frame = pd.read_parquet(folder).sort_values(["user_id", "rank"])
    assert list(frame.columns) == ["user_id", "rank", "product_id", "score", "source"]
    return {u: list(g["product_id"]) for u, g in frame.groupby("user_id")}


def test_train_on_spark_recommends_what_the_duckdb_trained_bundle_does(trained, tmp_path):
    data, duck, sprk, out, users = trained
    assert out["spark"]["default_model"] == out["duck"]["default_model"]
    metrics = {w: {r["model"]: r["metrics"]["ndcg@10"] for r in o["results"]} for w, o in out.items()}
    assert metrics["spark"] == metrics["duck"]
    # the Spark workdir's curated events are a Parquet version (the interactions were read there)
    (physical,) = curated_rows(
        sprk,
        "SELECT physical_name FROM meta.table_versions WHERE table_name = 'events' ORDER BY version DESC LIMIT 1",
    )[0]
    assert str(physical).endswith(".parquet")
    a = _one_node(duck, users, tmp_path / "duck.jsonl")
    b = _one_node(sprk, users, tmp_path / "spark.jsonl")
    assert a == b
    assert len(a) > 40 and all(len(v) == 10 for v in a.values())


def test_recommend_on_spark_writes_the_one_node_lists(trained, tmp_path):
    data, duck, sprk, out, users = trained
    spark = ["--engine", "spark", "--spark-master", "local[2]"]
    # the default model (its lists precomputed in the bundle) for every user of the bundle, their
    # shop ids from the raw layer
    # (every user the bundle knows; one of them then withdraws consent to personalization: the
    # one-node path gives them a never-seen user's list, and so must the Spark job)
    bundle_users = set(_one_node(sprk, users, tmp_path / "before.jsonl", known=True))
    quiet = sorted(bundle_users)[0]
    sw("privacy", "consent", "--workdir", str(sprk), "--user", quiet, "--personalization", "no")
    one_node = _one_node(sprk, users, tmp_path / "one-node.jsonl")
    want = {u: one_node[u] for u in bundle_users}
    assert want[quiet] == one_node["never-seen-shopper"]
    every = tmp_path / "every"
    proc = sw("recommend", "--workdir", str(sprk), "--all-users", "--out", str(every), "--no-rules", *spark)
    assert "ranked on Spark" in proc.stdout
    got = _ranked(every)
    assert got == want
    # shop user ids beside their lists: the owner's only, as the one-node --out file
    assert every.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in every.iterdir()} == {0o600}
    sources = pd.read_parquet(every).groupby("user_id")["source"].agg(set)
    assert sources[quiet] == {"cold_start"}
    assert not any("cold_start" in s for s in sources.drop(quiet))
    # every customer's shop id went out: audited, with how many
    audit = [json.loads(x) for x in (sprk / "audit" / "audit.jsonl").read_text().splitlines()]
    (entry,) = [e for e in audit if e["action"] == "recommend.all_users"]
    assert entry["details"]["counts"]["users"] == len(got) and entry["details"]["out"] == str(every)
    assert "never-seen-shopper" not in got and len(got) > 35

    # another model (ranked by the broadcast model on the executors) for listed users, an
    # unknown one among them
    other = next(
        r["model"]
        for r in out["spark"]["results"]
        if r["model"] not in ("popularity", out["spark"]["default_model"])
    )
    want = _one_node(sprk, users, tmp_path / "other.jsonl", "--model", other)
    folder = tmp_path / "ranked"
    sw(
        "recommend",
        "--workdir",
        str(sprk),
        "--users",
        str(users),
        "--out",
        str(folder),
        "--no-rules",
        "--model",
        other,
        *spark,
    )
    assert _ranked(folder) == want
    frame = pd.read_parquet(folder)
    assert set(frame.loc[frame.user_id == "never-seen-shopper", "source"]) == {"cold_start"}
    # (the shop's robots and users whose every row was quarantined are unknown to the bundle too)
    assert set(frame["source"]) == {other, "cold_start"}
    assert frame.loc[frame.source == other, "user_id"].nunique() > 35
    assert frame["score"].notna().sum() > 300

    # the rules are the one-node path's: asked for on Spark, a clear refusal (before a JVM starts)
    refused = sw("recommend", "--workdir", str(sprk), "--all-users", "--out", str(every), *spark, check=False)
    assert refused.returncode != 0 and "--no-rules" in refused.stderr + refused.stdout


def test_the_server_and_the_console_read_a_spark_trained_workdir(trained, tmp_path, monkeypatch):
    """A shop trained on Spark is served and shown as any other: `shelfwise serve` answers what the
    batch CLI answers (business rules included), and the console's data page reads the curated
    Parquet versions' counts through the warehouse's catalog (a copy of the workdir: the console
    needs a person, and adding one would change the other tests' shop)."""
    import re
    import shutil

    import httpx

    from tests.serving.conftest import Server

    data, duck, sprk, out, users = trained
    work = tmp_path / "w"
    shutil.copytree(sprk, work, ignore=shutil.ignore_patterns("serve-*.log", "spool"))
    added = sw("users", "add", "--workdir", str(work), "--name", "ada", "--role", "admin", "--json")
    key = json.loads(added.stdout)["api_key"]
    monkeypatch.setenv("SHELFWISE_AS", "ada")  # the shop has people now: commands say who runs them
    monkeypatch.setenv("SHELFWISE_API_KEY", key)
    cli = tmp_path / "cli.jsonl"
    sw("recommend", "--workdir", str(work), "--users", str(users), "--out", str(cli))
    batch = {d["user_id"]: d["items"] for d in map(json.loads, cli.read_text().splitlines())}
    # counted before the server starts: its console refreshes figures in the background, holding
    # the warehouse while it reads (a read beside it may find the file locked)
    curated = curated_rows(work, "SELECT count(*) FROM curated.events")[0][0]
    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        for user in sorted(batch)[:8]:
            r = s.client.get(f"/v1/recommendations/{user}", params={"k": 10}, headers={"X-API-Key": key})
            assert r.status_code == 200, r.text
            assert r.json()["items"] == batch[user], user
        with httpx.Client(base_url=s.url, timeout=60, follow_redirects=True) as browser:
            form = browser.get("/console/login").text
            csrf = re.search(r'name="csrf" value="([^"]*)"', form).group(1)  # type: ignore[union-attr]
            r = browser.post(
                "/console/login", data={"csrf": csrf, "next": "/console/data", "name": "ada", "api_key": key}
            )
            assert r.status_code == 200 and "/console/data" in str(r.url), r.text[-2000:]
            assert curated > 1000 and f'<td class="n rows">{curated}</td>' in r.text  # the Parquet rows
    finally:
        s.stop()
