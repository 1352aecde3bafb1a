"""Benchmarks (`make bench`): ingestion throughput and peak memory, written as JSON.

Each size runs in its own process so that peak memory (ru_maxrss) belongs to that size alone.
Target (issue 2): >= 200,000 event rows/s through the whole governed path on 2 cores, and memory
that does not grow with the row count.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from _provenance import provenance, write_report


def make_events(path: Path, rows: int, seed: int = 1) -> None:
    """N synthetic events written by DuckDB, fast and without Python loops. About 0.2% are
    defective: every 1009th row's event type ('hover', invalid_value) and every 1013th row's
    timestamp ('yesterday', unparseable_timestamp), 1,979 rows at 1M (row 0 has both). Every 997th
    row has an empty user_id: an anonymous row, curated and attributed to its session, not a
    defect. One row in five has its time as epoch seconds, valid too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.sql(f"SELECT setseed({seed / 10})")
    con.sql(f"""
        COPY (
          SELECT
            CASE WHEN i % 997 = 0 THEN '' ELSE 'C' || (hash(i * 7) % 200000)::VARCHAR END AS user_id,
            'P' || lpad(((hash(i * 13) % 50000))::VARCHAR, 6, '0') AS product_id,
            CASE WHEN i % 1009 = 0 THEN 'hover' ELSE ['view','view','view','click','add_to_cart','purchase'][1 + (i % 6)] END AS event_type,
            CASE WHEN i % 1013 = 0 THEN 'yesterday'
                 WHEN i % 5 = 0 THEN (1767225600 + (i * 37) % 7776000)::VARCHAR
                 ELSE strftime(to_timestamp(1767225600 + (i * 37) % 7776000), '%Y-%m-%dT%H:%M:%SZ') END AS timestamp,
            'S' || (i // 6)::VARCHAR AS session_id,
            CASE WHEN i % 50 = 0 THEN 'red shoes' END AS query,
            CASE WHEN i % 6 = 5 THEN round(10 + (hash(i) % 9000) / 100.0, 2)::VARCHAR END AS value,
            CASE WHEN i % 200 = 0 THEN 'great product, mail me at someone@example.com' END AS text
          FROM range({rows}) t(i)
        ) TO '{path.as_posix()}' (FORMAT CSV, HEADER)""")
    con.close()


def run_one(rows: int, work: Path) -> dict:
    # pandera is imported at the first validation: start-up, not ingestion, imported here before
    # the clock starts (the CLI's start-up, imports included, is what `cli_seconds` measures)
    import pandera.ibis  # noqa: F401

    from shelfwise.governance import ingest

    data = work / f"data-{rows}"
    make_events(data / "events.csv", rows)
    size = (data / "events.csv").stat().st_size
    w = work / f"w-{rows}"
    shutil.rmtree(w, ignore_errors=True)
    t0 = time.perf_counter()
    rep = ingest(data, w)
    secs = time.perf_counter() - t0
    ev = rep.tables["events"]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {
        "rows": rows,
        "file_mb": round(size / 1e6, 1),
        "seconds": round(secs, 2),
        "rows_per_second": round(rows / secs),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rows_curated": ev.rows_curated,
        "rows_quarantined": ev.rows_quarantined,
        "balanced": ev.balanced,
        "reasons": ev.reasons,
    }
    # the same load as a shop runs it: `shelfwise ingest` in a fresh process, start to exit
    # (imports, ingestion, HTML quality report)
    shutil.rmtree(w, ignore_errors=True)
    cli = Path(sys.executable).with_name("shelfwise")
    t0 = time.perf_counter()
    subprocess.run(
        [str(cli), "ingest", "--data", str(data), "--workdir", str(w), "--json"],
        check=True,
        capture_output=True,
    )
    cli_secs = time.perf_counter() - t0
    out["cli_seconds"] = round(cli_secs, 2)
    out["cli_rows_per_second"] = round(rows / cli_secs)
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(w, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results.json")
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--work", default="benchmarks/work")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    if args.one:
        print(json.dumps(run_one(args.one, work)))
        return
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--work", str(work)],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(res), flush=True)
        results.append(res)
    report = {
        **provenance(),
        "benchmark": "governed ingestion of events (CSV -> raw -> checks -> curated + quarantine, lineage)",
        "measures": "seconds: shelfwise.governance.ingest() in a process of its own; cli_seconds: "
        "`shelfwise ingest --json` from process start to exit (imports, the same ingestion, the HTML quality report)",
        "target_rows_per_second": 200_000,
        "ingestion": results,
        "memory_growth_ratio": round(results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"], 2)
        if len(results) > 1
        else None,
    }
    shutil.rmtree(work, ignore_errors=True)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
