"""`--engine spark` gives what DuckDB gives: the same dirty data (the demo shop's injected defects
and a spreadsheet's export) ingested on both engines yields the same counts per table and per
reason, the same quarantined lines with the same reasons and details, and the same curated rows.
Both workdirs share one pseudonym key, so even the pseudonymized user ids must be equal.

One Spark session (local[2]) for the module; skipped with a message where Java or pyspark is
missing (scripts/system-deps.sh installs Java 17, `make install` the `spark` extra)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from shelfwise.demo import generate_demo
from shelfwise.governance import Ingestor
from shelfwise.governance._compile import SPARK, compile_contract
from shelfwise.governance._contracts import CONTRACTS
from shelfwise.governance._privacy import SecretStore
from shelfwise.storage import SparkEngine, engine_from
from tests.cli.test_cli import sw
from tests.conftest import curated_rows
from tests.governance.test_dirty_exports import _write as write_dirty_export
from tests.storage.conftest import skip_without_spark

pytestmark = pytest.mark.slow

skip_without_spark()


def _ingest_both(spark, data: Path, root: Path):
    duck, sprk = root / "duck", root / "spark"
    key = SecretStore(duck).pseudonym_key()
    (sprk / "secrets").mkdir(parents=True)
    (sprk / "secrets" / "pseudonym.key").write_text(key.hex())
    reports = {
        "duckdb": Ingestor(duck).run(data),
        "spark": Ingestor(sprk, engine=SparkEngine(sprk, master="local[2]")).run(data),
    }
    return duck, sprk, reports


def _counts(report):
    return {
        t: (r.rows_in, r.rows_curated, r.rows_quarantined, r.rows_withheld, r.reasons, r.balanced)
        for t, r in report.tables.items()
    }


def _quarantine(work: Path):
    return sorted(
        curated_rows(
            work,
            "SELECT table_name, source_line, reason, reasons, detail, raw::VARCHAR, status FROM quarantine.rows",
        ),
        key=repr,
    )


def _curated(work: Path, table: str):
    return curated_rows(work, f'SELECT * FROM curated."{table}"')


def _assert_same(duck: Path, sprk: Path, reports) -> None:
    assert reports["spark"].engine == "spark" and reports["duckdb"].engine == "duckdb"
    assert _counts(reports["spark"]) == _counts(reports["duckdb"])
    assert _quarantine(sprk) == _quarantine(duck)
    for table in reports["duckdb"].tables:
        d, s = _curated(duck, table), _curated(sprk, table)
        assert len(s) == len(d), table
        if table == "events":  # published in time order on both (ties: by source line)
            assert s == d
        else:
            assert sorted(s, key=repr) == sorted(d, key=repr), table


def test_demo_shop_defects_same_on_both_engines(spark, tmp_path):
    data = tmp_path / "data"
    shop = generate_demo(data, products=150, users=80, events=4000, days=20, seed=11)
    assert shop.defects  # the demo injects bad rows of every kind
    # (the search tables are left out: each table costs Spark ~10 jobs, and they add no new check)
    for extra in ("queries.csv", "judgments.csv"):
        (data / extra).unlink(missing_ok=True)
    duck, sprk, reports = _ingest_both(spark, data, tmp_path)
    quarantined = reports["duckdb"].tables["events"].reasons
    # the parity below is about something: several kinds of defects were caught
    assert len(quarantined) >= 4, quarantined
    _assert_same(duck, sprk, reports)
    # the Spark tables are Parquet in the warehouse location, read through the catalog's views
    assert list((sprk / "spark-warehouse" / "curated" / "events" / "v1").glob("*.parquet"))
    assert list((sprk / "spark-warehouse" / "quarantine" / "events").glob("run=*/*.parquet"))

    # erasure reaches the Parquet versions and quarantine files too (both engines alike)
    import duckdb

    from shelfwise.governance._erase import erase_user

    # the busiest shopper (robots aside): rows in curated and in quarantine on both engines
    raw_id = curated_rows(
        duck,
        "SELECT user_id FROM raw.events WHERE user_id NOT LIKE 'BOT%' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )[0][0]
    pseudo = None
    erased = {}
    for work in (duck, sprk):
        erased[work] = erase_user(work, raw_id)
        pseudo = erased[work]["pseudonym"]
    # one report on either engine: versions named alike (Spark's listed its Parquet part files)
    curated_counts = {
        w: {k: n for k, n in erased[w]["warehouse"].items() if k.startswith("curated.") and n}
        for w in (duck, sprk)
    }
    assert curated_counts[sprk] == curated_counts[duck] and curated_counts[duck], curated_counts
    assert not any("/" in k for k in erased[sprk]["warehouse"])
    assert erased[sprk]["warehouse"]["quarantine.parquet"] > 0
    assert _curated(sprk, "events") == _curated(duck, "events")
    assert not curated_rows(sprk, f"SELECT * FROM curated.events WHERE user_id = '{pseudo}'")
    quarantine_files = str(sprk / "spark-warehouse" / "quarantine" / "*" / "*" / "*.parquet")
    left = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{quarantine_files}') WHERE raw LIKE '%\"{raw_id}\"%'"
    ).fetchone()
    assert left == (0,)


def test_a_dirty_export_through_the_cli_on_both_engines(spark, tmp_path):
    """`shelfwise ingest --engine spark` (its own local session, as a shop runs it), then
    `export` and `catalog` read the Parquet tables through the workdir's catalog."""
    data = tmp_path / "data"
    write_dirty_export(data)
    duck, sprk = tmp_path / "duck", tmp_path / "spark"
    key = SecretStore(duck).pseudonym_key()
    (sprk / "secrets").mkdir(parents=True)
    (sprk / "secrets" / "pseudonym.key").write_text(key.hex())
    proc = sw(
        "ingest", "--data", str(data), "--workdir", str(sprk), "--json", "--engine", "spark",
        "--spark-master", "local[1]",
    )  # fmt: skip
    out = {"duckdb": Ingestor(duck).run(data).to_dict(), "spark": json.loads(proc.stdout)}
    # a clean console: no Java stack traces (the row checks' whole-stage code outgrew the JVM's
    # 64 KB method limit, and Spark printed the compiler's error), no progress bars, no warnings
    assert not re.search(r"Exception|ERROR|WARN |\[Stage \d", proc.stderr), proc.stderr[-3000:]
    # nor the JVM's start-up notes: they go to the workdir's log
    assert not re.search(r"incubator|default log level|setLogLevel", proc.stderr), proc.stderr[-3000:]
    assert "incubator" in "".join(p.read_text() for p in (sprk / "logs").glob("spark-*.log"))
    keys = ("rows_in", "rows_curated", "rows_quarantined", "rows_withheld", "reasons", "balanced")
    counts = {e: {t: [r[k] for k in keys] for t, r in o["tables"].items()} for e, o in out.items()}
    assert counts["spark"] == counts["duckdb"]
    assert out["spark"]["engine"] == "spark" and counts["spark"]["products"][4] == {"invalid_type": 1}
    assert _quarantine(sprk) == _quarantine(duck)
    for table in out["duckdb"]["tables"]:
        assert sorted(_curated(sprk, table), key=repr) == sorted(_curated(duck, table), key=repr)
    exported = tmp_path / "events.csv"
    sw("export", "--table", "events", "--out", str(exported), "--workdir", str(sprk))
    assert len(exported.read_text().splitlines()) == 1 + out["duckdb"]["tables"]["events"]["rows_curated"]
    catalog = json.loads(sw("catalog", "--workdir", str(sprk), "--json").stdout)
    rows = {d["name"]: d["rows"] for d in catalog["datasets"]}
    assert rows["curated.events"] == out["duckdb"]["tables"]["events"]["rows_curated"]


TRICKY = {
    "price": [
        "12,99",
        "1.299,00",
        "$1,299.00",
        "1 299,00",
        "EUR 5",
        "1d",
        "2f",
        "inf",
        "nan",
        "N/A",
        "abc",
        "-0",
    ],
    "timestamp": [
        "2024-01-05T10:00:00Z",
        "2024-01-05T10:00:00+02:00",
        "2024-01-05T10:05Z",
        "2024-01-05T10:05+02:00",
        "2024-01-05 10:00:00 +0200",
        "2024-01-05T10:00:00.250 -05:00",
        "2024-01-05 10:05 -05",
        "2024-01-05 -0500",
        "2024-01-05 10:00:00",
        "2024-01",
        "2024",
        "1704448800",
        "1704448800000",
        "20240105",
        "20240105101112",
        "05/01/2024 10:00",
        "05/01/24",
        "5/1/24 10:00",
        "24-01-05",
        "Jan 05, 2024",
        "Fri, 05 Jan 2024 10:00:00 +0200",
        "Fri Jan 05 10:00:00 2024",
        "05.01.2024",
        "yesterday",
        "1850-01-01",
    ],
}


def test_compiled_checks_agree_value_by_value(spark):
    """The tricky values of numbers and dates, through both dialects' compiled SQL."""
    contract = CONTRACTS["events"]
    rows = [
        {
            "event_id": None,
            "user_id": "u1",
            "product_id": "p1",
            "event_type": "purchase",
            "timestamp": ts,
            "value": price,
        }
        for ts in TRICKY["timestamp"]
        for price in TRICKY["price"]
    ]
    # anonymous browsing (no user, a session: attributed to it; an empty user is how a CSV writer
    # quotes a missing one, as benchmarks/run.py's events have it), neither, the reserved prefix
    rows += [
        {"user_id": u, "session_id": sid, "product_id": "p1", "event_type": "view", "timestamp": "1709287200"}
        for u, sid in ((None, "S1"), ("", "S2"), ("NA", "7.0"), (None, None), ("~anonymous:S1", "S1"))
    ]
    # a guest checkout's placeholder id beside a session (its order) is that session's; without
    # one it is read as written
    rows += [
        {"user_id": u, "session_id": sid, "product_id": "p1", "event_type": "view", "timestamp": "1709287200"}
        for u, sid in (("0", "5001"), ("Guest", "S3"), ("0.0", "S4"), ("-1", "S5"), ("0", None), ("10", "S6"))
    ]
    # ids trimmed of the Unicode spaces only (Spark's own trim() removes the ASCII space alone)
    rows += [
        {"user_id": u, "product_id": "\u00a0p1 ", "event_type": "view", "timestamp": "1709287200"}
        for u in ("\u00a0u7\u3000", " u8\u2009", "u9\t")
    ]
    # a purchase line's quantity: a whole number of units, 1 or more (events contract 1.3.0)
    rows += [
        {
            "user_id": "u1",
            "product_id": "p1",
            "event_type": "purchase",
            "timestamp": "1709287200",
            "quantity": q,
        }
        for q in ("3", "3.0", "2.5", "0", "", "1e3", "-1")
    ]
    cols = contract.column_names
    table = [{c: r.get(c) for c in cols} | {"_source_line": i} for i, r in enumerate(rows)]
    duck, sprk = _through_both(spark, contract, table)
    by_line = {r[-1]: r for r in sprk}
    for d in duck:
        s = by_line[d[-1]]
        assert tuple(s[:-3]) == tuple(d[:-3]) and list(s[-3]) == list(d[-3]) and s[-2] == d[-2], (d, s)
    # the guest ids beside a session are anonymous sessions' on both (the same, above)
    guests = {r.get("session_id"): i for i, r in enumerate(rows) if r.get("user_id") in ("0", "Guest", "10")}
    duck_by_line = {d[-1]: d for d in duck}
    assert "~anonymous:5001" in duck_by_line[guests["5001"]] and "~anonymous:S3" in duck_by_line[guests["S3"]]
    assert "0" in duck_by_line[guests[None]] and "10" in duck_by_line[guests["S6"]]
    # ... and "2.5" is refused as a fraction on both
    fraction = len(rows) - 5
    assert any("quantity: not a whole number: 2.5" in str(x) for x in by_line[fraction]), by_line[fraction]


def _through_both(spark, contract, table: list[dict], **options) -> tuple[list[tuple], list[tuple]]:
    """`table` (string columns + _source_line) through the contract's compiled SQL on DuckDB
    and on Spark, with the warehouse's text functions registered on each."""
    import duckdb
    import pyarrow as pa

    from shelfwise.governance._compile import NORMALIZE_LINES_UDF, NORMALIZE_UDF
    from shelfwise.governance._load_spark import register_udfs
    from shelfwise.governance._text import normalize_flat_array, normalize_lines_array

    cols = contract.column_names
    arrow = pa.Table.from_pylist(
        table, pa.schema([(c, pa.string()) for c in cols] + [("_source_line", pa.int64())])
    )
    con = duckdb.connect()
    con.register("src", arrow)
    for name, fn in ((NORMALIZE_UDF, normalize_flat_array), (NORMALIZE_LINES_UDF, normalize_lines_array)):
        con.create_function(name, fn, ["VARCHAR"], "VARCHAR", type="arrow", null_handling="special")
    con.execute("SET TimeZone='UTC'")
    duck = con.sql(compile_contract(contract, **options).query("src", [])).fetchall()
    register_udfs(spark)
    schema = ", ".join(f"`{c}` string" for c in cols) + ", _source_line bigint"
    spark.createDataFrame([tuple(r.values()) for r in table], schema).createOrReplaceTempView("src")
    sprk = [
        tuple(r)
        for r in spark.sql(compile_contract(contract, dialect=SPARK, **options).query("src", [])).collect()
    ]
    return duck, sprk


def test_faq_text_as_written_on_both_engines(spark):
    """The shop's FAQ is curated as written on both engines: its contact details unmasked, an
    answer's lines kept (spaces collapsed within them), markup gone; a review is still masked."""
    answer = "Call  +1 800 555 0199 or help@shop.example.\r\n\r\n\r\n1. Pack it<br>2. Send &amp; wait "
    table = [{"faq_id": "F1", "question": "Return  by\nphone?", "answer": answer, "_source_line": 0}]
    duck, sprk = _through_both(spark, CONTRACTS["faq"], table)
    want = (
        "F1",
        "Return by phone?",
        "Call +1 800 555 0199 or help@shop.example.\n\n1. Pack it\n2. Send & wait",
    )
    assert tuple(duck[0][:3]) == want and tuple(sprk[0][:3]) == want


def test_engine_choice(tmp_path, monkeypatch):
    monkeypatch.delenv("SHELFWISE_SPARK_REMOTE", raising=False)
    monkeypatch.setenv("SHELFWISE_SPARK_MASTER", "local[1]")
    engine = engine_from("spark", tmp_path)
    assert isinstance(engine, SparkEngine) and engine.master == "local[1]"
    assert engine.location == tmp_path / "spark-warehouse"
    assert engine_from(None, tmp_path).name == "duckdb"
    monkeypatch.delenv("SHELFWISE_SPARK_MASTER")
    with pytest.raises(Exception, match="sc://"):
        engine_from("spark", tmp_path, remote="localhost:15002")


def test_interactions_and_batch_scoring_on_spark_match_the_one_node_path(spark, tmp_path):
    """`train --engine spark`: the interactions read on Spark from the curated events' Parquet
    version are the ones DuckDB reads from it (same steps, weights, times and index maps; the
    version spread over many files), and `recommend` for all users as a Spark job (the fitted
    model broadcast, `mapInPandas` over partitions of users) gives each user the top 10 the
    one-node path ranks."""
    from types import SimpleNamespace

    from shelfwise.features import load_interactions
    from shelfwise.lifecycle._spark_jobs import recommend_all_spark, spark_events_reader
    from shelfwise.models import ALS, ItemKNN
    from shelfwise.storage import Warehouse

    data, work = tmp_path / "data", tmp_path / "w"
    generate_demo(data, products=80, users=60, events=2000, days=20, seed=11)
    Ingestor(work).run(data)
    engine = SimpleNamespace(name="spark", session=spark)
    assert spark_events_reader(engine, work)[0] is None  # a DuckDB version: read by DuckDB
    parts = tmp_path / "events-v2"
    with Warehouse(work) as wh:  # the version as Spark would write it: Parquet, in many files
        wh.sql("CREATE TEMP TABLE _ev AS SELECT *, row_number() OVER () AS _n FROM curated.events")
        parts.mkdir()
        total = wh.sql("SELECT count(*) FROM _ev").fetchone()[0]
        cuts = [total * k * k // 144 for k in range(13)]  # parts growing in size: Spark plans
        for k in range(12):  # the largest first, DuckDB reads them by name
            wh.sql(
                f"COPY (SELECT * EXCLUDE (_n) FROM _ev WHERE _n > {cuts[k]} AND _n <= {cuts[k + 1]} ORDER BY _n) "
                f"TO '{parts}/part-{k:02d}.parquet' (FORMAT parquet)"
            )
        wh.publish_parquet("events", f"{parts}/*.parquet", "test-run", "1")
    assert len(list(parts.glob("*.parquet"))) > 10
    reader, how = spark_events_reader(engine, work)
    assert reader is not None and "read on Spark" in how
    inter, _ = load_interactions(work)
    on_spark, _ = load_interactions(work, events=reader)
    for field in ("user_idx", "item_idx", "weight", "timestamp", "user_ids", "item_ids"):
        assert np.array_equal(getattr(on_spark, field), getattr(inter, field)), field
    assert len(inter) > 1000

    for model in (ItemKNN(neighbours=20), ALS(factors=8, iterations=3, seed=1)):
        model.fit(inter)
        one_node = model.recommend(np.arange(inter.n_users), 10)
        want = {
            str(inter.user_ids[u]): [str(inter.item_ids[i]) for i in row if i >= 0]
            for u, row in enumerate(one_node.ids)
        }
        got = {
            r["user_id"]: list(r["items"])
            for r in recommend_all_spark(spark, model, 10, partitions=3).collect()
        }
        assert got == want, model.name
        assert len(got) == inter.n_users > 50


def test_anonymous_sessions_on_spark_redelivery_count_and_linked_erasure(spark, tmp_path):
    """On Spark as on DuckDB: an appended re-delivery counts no anonymous row, and erasing a
    customer erases the anonymous rows of their session from the Parquet versions and the
    quarantine files (tests/governance/test_anonymous.py holds the DuckDB cases)."""
    import duckdb

    from shelfwise.governance._erase import erase_user
    from shelfwise.governance._privacy import Pseudonymizer, anonymous_user_id
    from tests.governance.test_anonymous import LINKED, _shop

    data, work = _shop(tmp_path)
    (data / "events.csv").write_text(LINKED)
    first = Ingestor(work, engine=SparkEngine(work, master="local[2]"), mode="append").run(data)
    assert first.tables["events"].anonymous_rows == 3
    again = Ingestor(work, engine=SparkEngine(work, master="local[2]"), mode="append").run(data)
    ev = again.tables["events"]
    assert (ev.rows_curated, ev.anonymous_rows, ev.reasons) == (
        0,
        0,
        {"duplicate_row": 5, "invalid_value": 1},
    )
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    rep = erase_user(work, "u9")
    assert rep["anonymous_sessions"] == 1
    users = {r[0] for r in curated_rows(work, "SELECT DISTINCT user_id FROM curated.events")}
    assert users == {pseudo("u1"), pseudo(anonymous_user_id("S8"))}
    quarantine_files = str(work / "spark-warehouse" / "quarantine" / "*" / "*" / "*.parquet")
    left = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{quarantine_files}') WHERE raw LIKE '%S7%'"
    ).fetchone()
    assert left == (0,)


def test_partial_deliveries_on_spark_as_on_duckdb(spark, tmp_path):
    """A partial keyed delivery keeps the columns it does not send, and a re-sent event with a
    column more or less is a duplicate, on Spark as on DuckDB (tests/governance/test_deliveries)."""
    from tests.governance.test_deliveries import check_partial_deliveries, partial_deliveries

    day1, day2 = partial_deliveries(tmp_path)
    work = tmp_path / "w"
    engine = SparkEngine(work, master="local[2]")
    reports = [Ingestor(work, engine=engine).run(day1)]
    reports += [
        Ingestor(work, engine=engine, mode="append").run(d)
        for d in (day2, tmp_path / "day2b", tmp_path / "day3")
    ]
    check_partial_deliveries(work, reports)


def test_personal_data_in_profile_columns_is_masked_on_spark_too(spark, tmp_path):
    from tests.governance.test_deliveries import (
        test_personal_data_in_a_kept_profile_column_is_masked as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_long_numbers_that_are_no_card_numbers_are_kept_on_spark_too(spark, tmp_path):
    from tests.governance.test_deliveries import test_long_numbers_that_are_no_card_numbers_are_kept as check

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_a_failed_load_publishes_nothing_on_spark_too(spark, tmp_path):
    from tests.governance.test_deliveries import test_a_failed_load_publishes_nothing as check

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))
    # (the failed run's Parquet went with it: its quarantined rows held the raw rows)
    runs = curated_rows(tmp_path / "w", "SELECT run_id FROM meta.runs WHERE status = 'COMPLETE'")
    held = (tmp_path / "w" / "spark-warehouse" / "quarantine" / "products").iterdir()
    assert [p.name for p in held] == [f"run={runs[0][0]}"]


def test_shopifys_consent_and_a_users_table_on_another_key_on_spark_too(spark, tmp_path):
    from tests.governance.test_consent import (
        test_shopifys_marketing_consent_is_read_and_a_users_table_on_another_key_is_warned_of as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_resent_rows_are_redeliveries_on_spark_too(spark, tmp_path):
    from tests.governance.test_reprocess import (
        test_resent_bad_rows_and_resent_event_ids_are_redeliveries_not_failures as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_a_later_refund_takes_the_curated_purchase_out_on_spark_too(spark, tmp_path):
    """An --append delivery that refunds or cancels an order curated as a purchase takes its
    curated lines out on Spark as on DuckDB (the order's latest status wins)."""
    from tests.governance.test_order_status_append import (
        test_a_later_refund_or_cancellation_takes_the_curated_purchase_out as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_an_old_delivery_run_again_changes_no_order_on_spark_too(spark, tmp_path):
    """Day 1 run again after day 2: no paid order taken out, no refunded one curated again
    (the lines taken out are compared with as delivered), on Spark as on DuckDB."""
    from tests.governance.test_order_status_append import (
        test_an_old_delivery_run_again_changes_no_order as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_a_robots_events_sent_again_on_spark_as_on_duckdb(spark, tmp_path):
    """A re-sent part of a robot's burst is robot traffic on Spark as on DuckDB."""
    from tests.governance.test_deliveries import check_robot_deliveries, robot_deliveries

    day1, day2 = robot_deliveries(tmp_path)
    work = tmp_path / "w"
    engine = SparkEngine(work, master="local[2]")
    reports = [Ingestor(work, engine=engine, mode="append").run(d) for d in (day1, day2)]
    check_robot_deliveries(work, reports)


def test_a_robots_burst_split_across_deliveries_on_spark_as_on_duckdb(spark, tmp_path):
    """A robot's burst split across two deliveries is one burst on Spark as on DuckDB."""
    from tests.governance.test_deliveries import check_split_burst, split_burst_deliveries

    days = split_burst_deliveries(tmp_path)
    work = tmp_path / "w"
    engine = SparkEngine(work, master="local[2]")
    check_split_burst(work, [Ingestor(work, engine=engine, mode="append").run(d) for d in days])


def test_an_event_sent_twice_in_one_load_on_spark_as_on_duckdb(spark, tmp_path):
    from tests.governance.test_reprocess import (
        test_an_event_sent_twice_in_one_load_is_a_redelivery_not_an_open_fault as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_an_id_the_server_gave_on_spark_as_on_duckdb(spark, tmp_path):
    from tests.governance.test_reprocess import (
        test_an_id_the_server_gave_does_not_make_a_retried_event_another as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_events_past_the_retention_policy_are_withheld_on_spark_too(spark, tmp_path):
    from tests.governance.test_retention_deliveries import (
        test_events_past_the_retention_policy_never_come_back as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_a_price_feed_row_of_a_product_not_curated_says_so_on_spark_too(spark, tmp_path):
    """The Spark path checks the same load view (`_load_raw._define_load`): the same detail as
    DuckDB's (tests/governance/test_quality_verdict.py). Here, not there: on the session the
    Spark group shares, not a JVM of its own started on whichever worker ran that module."""
    from tests.governance.test_quality_verdict import _new_product_detail

    _new_product_detail(tmp_path / "w", engine=lambda work: SparkEngine(work, master="local[2]"))


def test_no_sale_rows_and_returns_on_spark_as_on_duckdb(spark, tmp_path):
    """A daily export's 0 and negative quantities: no-sale rows and returns, counted, on Spark too."""
    from tests.governance.test_no_sales_and_returns import (
        test_zero_and_negative_quantities_are_no_sales_and_returns_not_faults as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_a_products_published_column_reads_alike_on_both_engines(spark):
    """WooCommerce's `Published` 1 / 0 / -1 and Shopify's TRUE / active / draft / archived read
    as published or not on both engines (-1 is a draft, not a yes), Magento 1's Enabled / Disabled
    too; another word is shown, on both (a catalog's own status words quarantined whole catalogs)."""
    contract = CONTRACTS["products"]
    values = [
        "1",
        "0",
        "-1",
        "TRUE",
        "false",
        "active",
        "Draft",
        "archived",
        "private",
        "publish",
        "Enabled",
        "Disabled",
        "",
        "maybe",
    ]
    cols = contract.column_names
    table = [
        {c: None for c in cols} | {"product_id": f"p{i}", "title": "T", "published": v, "_source_line": i}
        for i, v in enumerate(values)
    ]
    duck, sprk = _through_both(spark, contract, table)
    at = cols.index("published")
    for d, s in zip(sorted(duck, key=lambda r: r[-1]), sorted(sprk, key=lambda r: r[-1]), strict=True):
        assert d[at] == s[at] and list(d[-3]) == list(s[-3]), (d, s)
    got = [r[at] for r in sorted(duck, key=lambda r: r[-1])]
    assert got == [True, False, False, True, False, True, False, False, False, True, True, False, None, True]
    assert all(not list(r[-3]) for r in duck), duck  # no row quarantined


def test_in_stock_from_a_stock_figure_reads_alike_on_both_engines(spark):
    """A row without in_stock but with a stock figure is in stock above 0 on both engines; a
    given in_stock wins; neither stays unknown."""
    contract = CONTRACTS["products"]
    pairs = [(None, "0"), (None, "5"), (None, None), ("true", "0"), ("false", "3"), ("", "0")]
    cols = contract.column_names
    table = [
        {c: None for c in cols}
        | {"product_id": f"p{i}", "title": "T", "in_stock": flag, "stock": stock, "_source_line": i}
        for i, (flag, stock) in enumerate(pairs)
    ]
    duck, sprk = _through_both(spark, contract, table)
    at = cols.index("in_stock")
    got = [r[at] for r in sorted(duck, key=lambda r: r[-1])]
    assert (
        got == [r[at] for r in sorted(sprk, key=lambda r: r[-1])] == [False, True, None, True, False, False]
    )


def test_several_category_paths_in_one_cell_read_alike_on_both_engines(spark):
    """WooCommerce's `Categories` (`Furniture > Tables, Sale`, `\\,` a name's comma): the first
    path on both engines; a name with a comma and no `>` is kept whole."""
    contract = CONTRACTS["products"]
    values = ["Furniture > Tables, Sale", "Kitchen > Mugs\\, Cups", "Bed, Bath", "A > B, C > D, E", "A|B"]
    cols = contract.column_names
    table = [
        {c: None for c in cols} | {"product_id": f"p{i}", "title": "T", "category": v, "_source_line": i}
        for i, v in enumerate(values)
    ]
    duck, sprk = _through_both(spark, contract, table, several_paths=True)  # (a `Categories` column)
    at = cols.index("category")
    got = [r[at] for r in sorted(duck, key=lambda r: r[-1])]
    assert got == [r[at] for r in sorted(sprk, key=lambda r: r[-1])]
    assert got == ["Furniture > Tables", "Kitchen > Mugs, Cups", "Bed, Bath", "A > B", "A > B"]
    # a `Category` column's ", " after a `>` is part of a name (`Clothing > Shirts, Tops`)
    duck, sprk = _through_both(spark, contract, table)
    one = [r[at] for r in sorted(duck, key=lambda r: r[-1])]
    assert one == [r[at] for r in sorted(sprk, key=lambda r: r[-1])]
    assert one[0] == "Furniture > Tables, Sale" and one[3] == "A > B, C > D, E"


def test_bigcommerce_slash_category_paths_read_alike_on_both_engines(spark):
    """BigCommerce's `Category` (`Furniture/Chairs;Sale`): `/` separates levels, `;` categories
    (the first kept), on both engines."""
    contract = CONTRACTS["products"]
    values = ["Furniture/Chairs;Sale", "Office Supplies/Paper", "Sale", "A / B ; C/D", "Default Category/X/Y"]
    cols = contract.column_names
    table = [
        {c: None for c in cols} | {"product_id": f"p{i}", "title": "T", "category": v, "_source_line": i}
        for i, v in enumerate(values)
    ]
    duck, sprk = _through_both(spark, contract, table, slash_paths=True)
    at = cols.index("category")
    got = [r[at] for r in sorted(duck, key=lambda r: r[-1])]
    assert got == [r[at] for r in sorted(sprk, key=lambda r: r[-1])]
    assert got == ["Furniture > Chairs", "Office Supplies > Paper", "Sale", "A > B", "X > Y"]


def test_a_lines_unit_price_times_its_quantity_on_both_engines(spark):
    """events.unit_price (`Item Cost`): a line without a value is worth unit price x quantity (1
    unit where none is given), a value given wins, a return's is what was refunded, on both."""
    contract = CONTRACTS["events"]
    cases = [("25", "2", None), ("5", None, None), ("5", "3", "12"), ("4", "-2", None), (None, "2", None)]
    cols = contract.column_names
    table = [
        {c: None for c in cols}
        | {"user_id": "u1", "product_id": "p1", "event_type": "purchase", "timestamp": "1709287200"}
        | {"unit_price": u, "quantity": n, "value": v, "_source_line": i}
        for i, (u, n, v) in enumerate(cases)
    ]
    duck, sprk = _through_both(spark, contract, table)
    at = cols.index("value")
    got = [r[at] for r in sorted(duck, key=lambda r: r[-1])]
    assert got == [r[at] for r in sorted(sprk, key=lambda r: r[-1])]
    assert got == [50.0, 5.0, 12.0, 8.0, None]


def test_magento_catalog_reads_alike_on_spark(spark, tmp_path):
    """walk49b: Magento's category paths under its root, store-view rows and product_online /
    visibility read the same on both engines."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text(
        "sku,store_view_code,categories,name,visibility,product_online,is_in_stock,qty\n"
        'P1,,"Default Category/Furniture/Chairs,Default Category/Sale",Chair,"Catalog, Search",1,1,3\n'
        "P1,de,,DE: Stuhl,,,,\n"
        "P2,,T-Shirts/Tops,Tee,Not Visible Individually,1,1,2\n"
        'P3,,Default Category/Office Supplies/Paper,Paper,"Catalog, Search",2,0,0\n'
    )
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    (data / "shelfwise.toml").write_text('[map.products]\nproduct_id = "sku"\ntitle = "name"\n')
    duck, sprk, reports = _ingest_both(spark, data, tmp_path)
    sql = "SELECT product_id, title, category, published, in_stock, stock FROM curated.products ORDER BY 1"
    assert (
        curated_rows(duck, sql)
        == curated_rows(sprk, sql)
        == [
            ("P1", "Chair", "Furniture > Chairs", True, True, 3.0),
            ("P2", "Tee", "T-Shirts/Tops", False, True, 2.0),
            ("P3", "Paper", "Office Supplies > Paper", False, False, 0.0),
        ]
    )
    assert _counts(reports["duckdb"]) == _counts(reports["spark"])


def test_a_cut_last_line_completed_later_on_spark_as_on_duckdb(spark, tmp_path):
    from tests.governance.test_cut_deliveries import check_cut_then_complete

    check_cut_then_complete(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_a_day_appended_twice_on_spark_as_on_duckdb(spark, tmp_path):
    from tests.governance.test_doubled_delivery import check_doubled_day

    check_doubled_day(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_a_resent_text_that_lost_its_letters_keeps_the_curated_text_on_spark_too(spark, tmp_path):
    from tests.governance.test_deliveries import (
        test_a_resent_text_that_lost_its_letters_to_an_encoding_error_keeps_the_curated_text as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_an_all_zero_stock_column_is_no_figure_on_spark_too(spark, tmp_path):
    w = tmp_path / "w"
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("id,name,price,quantity\nP1,Binder,5,0\nP2,Stapler,9,0\n")
    report = Ingestor(w, engine=SparkEngine(w, master="local[2]")).run(d)
    got = curated_rows(w, "SELECT product_id, stock, in_stock FROM curated.products ORDER BY 1")
    assert got == [("P1", None, None), ("P2", None, None)]
    assert [m for m in report.warnings if "'quantity' is 0 or empty on every row" in m]


def test_rows_disagreeing_on_consent_keep_the_opt_out_on_spark_too(spark, tmp_path):
    from tests.governance.test_consent import (
        test_rows_of_one_user_that_disagree_on_consent_keep_the_opt_out as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_an_opt_out_and_an_empty_answer_keep_the_opt_out_on_spark_too(spark, tmp_path):
    from tests.governance.test_consent import (
        test_an_opt_out_and_an_empty_answer_on_one_users_rows_keep_the_opt_out as check,
    )

    check(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


def test_an_unknown_currency_loses_no_sale_on_spark_too(spark, tmp_path):
    """And a row's empty currency cell is read from its money's own sign or code, as on DuckDB."""
    from tests.governance.test_currency import (
        test_a_withdrawn_code_and_a_common_spelling_are_read_and_an_unknown_one_loses_no_sale as check,
    )
    from tests.governance.test_currency import (
        test_an_empty_currency_cell_is_read_from_its_rows_own_money as empty,
    )

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    check(tmp_path / "a", engine=lambda work: SparkEngine(work, master="local[2]"))
    empty(tmp_path / "b", engine=lambda work: SparkEngine(work, master="local[2]"))


def test_keyed_deliveries_merge_attributes_and_keep_the_newest_row_on_spark_too(spark, tmp_path):
    """An appended delivery's attribute columns merged into the curated attributes key by key,
    and a product row older than its curated version (`updated_at`) kept out as `stale_row`."""
    from tests.governance.test_google_shopping_feed import (
        test_an_appended_feed_with_a_size_column_merges_into_the_curated_attributes as merge,
    )
    from tests.governance.test_out_of_order_rows import (
        test_an_older_product_row_delivered_later_does_not_replace_the_newer as newest,
    )

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    merge(tmp_path / "a", engine=lambda work: SparkEngine(work, master="local[2]"))
    newest(tmp_path / "b", engine=lambda work: SparkEngine(work, master="local[2]"))


def test_an_appended_attribute_keeps_its_json_types_on_spark_too(spark, tmp_path):
    """The merged attributes' text on Spark is DuckDB's, value types kept (they came back as
    JSON text, `{"size": 40}` merged as `{"size":"40"}`), and a re-sent key's curated text
    value is no change."""
    from tests.governance.test_google_shopping_feed import (
        test_an_appended_attribute_keeps_the_json_types_of_the_curated_ones as typed,
    )

    typed(tmp_path, engine=lambda work: SparkEngine(work, master="local[2]"))


# (curated object, delivered object): numbers, booleans, nested objects merged recursively, a
# null deleting a key, a text "1" beside a number 1, NULLs and a curated value that is no object
JSON_PAIRS = [
    (
        '{"a": 1, "b": true, "c": {"x": 1, "y": [1, 2]}, "d": "t"}',
        '{"c": {"x": null, "z": false}, "d": null}',
    ),
    ('{"a": 1}', '{"e": 1.50, "f": 1e3, "g": -0.0, "h": 12345678901234567890}'),
    ('{"n": 1}', '{"n": "1"}'),
    ('{"n": "1"}', '{"n": 1}'),
    ('{"n": 1}', '{"n": 1}'),
    ('{"n": 1.0}', '{"n": 1}'),
    ('{"n": true}', '{"n": "true"}'),
    ('{"n": {"x": 1}}', '{"n": {"x": 1}}'),
    ('{"n": {"x": 1, "y": 2}}', '{"n": {"x": 1}}'),
    ('{"n": [1, 2]}', '{"n": "[1, 2]"}'),
    ('{"n": null}', '{"n": null}'),
    ('{"n": 1}', '{"m": null}'),
    ('{"a": "\\u00e9 \\ud83d\\ude00", "b": "x\\"y"}', '{"c": "\\n"}'),
    ('{"a": 1, "a": 2}', '{"b": 3}'),
    ('{"size": "M", "color": "red"}', '{"size": "M"}'),
    ('{"a": 1}', "{}"),
    ("{}", '{"a": [1, {"b": null}]}'),
    ('{"a": 1}', None),
    (None, '{"a": 1}'),
    (None, None),
    ("[1, 2]", '{"a": 1}'),
    ('"text"', '{"a": 1}'),
    ("12", '{"a": 1}'),
    # keys a JSON path cannot hold as written (`$."in"ch"` failed the load): read by JSON Pointer
    ('{"in\\"ch": 1, "a/b": 2, "t~x": 3}', '{"in\\"ch": 1, "a/b": 2, "t~x": 3}'),
    ('{"in\\"ch": 1, "a/b": 2, "t~x": 3}', '{"in\\"ch": 1, "a/b": 2, "t~x": 4}'),
]


def test_json_merge_and_its_no_change_verdict_agree_value_by_value(spark):
    """`SparkDialect.json_merge` / `json_covered` give DuckDB's text and verdict pair by pair: a
    merged number, boolean or nested object stays one (Spark's map<string,string> made each
    JSON text), a null in the delivered object deletes the key, nested objects merge key by key,
    and `{"n": "1"}` over `{"n": 1}` is a change on both (Spark's text map read them equal)."""
    import duckdb
    import pyarrow as pa

    from shelfwise.governance._compile import DUCKDB
    from shelfwise.governance._load_spark import register_udfs

    sql = "SELECT i, {}, {} FROM pairs ORDER BY i"
    table = pa.table(
        {
            "i": list(range(len(JSON_PAIRS))),
            "o": [o for o, _ in JSON_PAIRS],
            "n": [n for _, n in JSON_PAIRS],
        }
    )
    con = duckdb.connect()
    con.register("pairs", table)
    duck = con.sql(sql.format(DUCKDB.json_merge("o", "n"), DUCKDB.json_covered("n", "o"))).fetchall()
    register_udfs(spark)
    spark.createDataFrame(
        [(i, o, n) for i, (o, n) in enumerate(JSON_PAIRS)], "i int, o string, n string"
    ).createOrReplaceTempView("pairs")
    sprk = [
        tuple(r)
        for r in spark.sql(sql.format(SPARK.json_merge("o", "n"), SPARK.json_covered("n", "o"))).collect()
    ]
    assert sprk == duck
    merged = {i: m for i, m, _ in duck}
    assert merged[0] == '{"a":1,"b":true,"c":{"y":[1,2],"z":false}}'
    assert [c for _, _, c in duck][2:6] == [False, False, True, False]
    assert [c for _, _, c in duck][-2:] == [True, False]  # (`"`, `/`, `~` in the keys)


# JSON cells the two engines' readers could disagree on (DuckDB's reader, yyjson, accepts a
# trailing comma, NaN / Infinity and a bare `nan`, and refuses a lone surrogate; Python's
# json.loads the other way round, and it fails on deep nesting)
TRICKY_JSON = [
    '{"a": 1,}',
    "[1, 2,]",
    '{"a": NaN}',
    '{"a": Infinity, "b": -Infinity}',
    "nan",
    '"\\ud800"',
    '{"a": "\\ud800"}',
    '{"a": "\\ud83d\\ude00 \\u00e9"}',
    '{"a": 1, "a": 2}',
    "[" * 3000 + "]" * 3000,
    '{"a": 1.5e-7, "b": 1E+400, "c": -0}',
    '{"a": 01}',
    '{"a": .5}',
    '{"a": +1}',
    '{"a": 0x10}',
    '{"a": 1} trailing',
    "{a: 1}",
    "{'a': 1}",
    '{"a": "\x01"}',
    '  {"a": 1}  ',
    "null",
    "true",
    '"text"',
    "12",
    "{}",
]


def test_tricky_json_cells_are_curated_or_quarantined_alike(spark):
    """Each tricky JSON cell is valid or not (curated or quarantined as `invalid_type`, with the
    same detail) on both engines: Spark asks DuckDB's own json_valid."""
    contract = CONTRACTS["products"]
    cols = contract.column_names
    rows = [{"product_id": f"P{i}", "title": "T", "attributes": cell} for i, cell in enumerate(TRICKY_JSON)]
    table = [{c: r.get(c) for c in cols} | {"_source_line": i} for i, r in enumerate(rows)]
    duck, sprk = _through_both(spark, contract, table)
    by_line = {r[-1]: r for r in sprk}
    for d in duck:
        s = by_line[d[-1]]
        assert tuple(s[:-3]) == tuple(d[:-3]) and list(s[-3]) == list(d[-3]) and s[-2] == d[-2], (
            TRICKY_JSON[d[-1]][:40],
            d[-3:],
            s[-3:],
        )
    bad = {TRICKY_JSON[d[-1]][:20] for d in duck if d[-3]}
    assert '{"a": 1,}' not in bad and '"\\ud800"' in bad and "[" * 20 not in bad and "{a: 1}" in bad
