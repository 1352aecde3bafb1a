"""Benchmark (`make bench`): the cost of a daily delivery (`shelfwise ingest --append`).

A warehouse of N events (default 1M) is loaded once; then a delivery of M events (default 100k)
is appended: a share of them (default 10%) re-sent from the end of the warehouse's data (an
at-least-once export re-sending part of yesterday), the rest new, the next day. Measured, each in
a process of its own: the full load of the warehouse, the appended delivery (the cross-load
duplicate check against every curated event of the delivery's time range, the upsert, a new
curated version), and, for reference, the same delivery as a full load into an empty workdir
(what the governed path costs without the cross-load work). Written as JSON.
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

T0 = 1767225600  # 2026-01-01
STEP_S = 7  # one event every 7 s: the data runs in time order, as a shop's exports do


def _events_sql(start: int, stop: int, offset_s: int = 0) -> str:
    """Events `start..stop-1` (row i is the same row in every file that holds it)."""
    return f"""
        SELECT 'C' || (hash(i * 7) % 200000)::VARCHAR AS user_id,
               'P' || lpad(((hash(i * 13) % 50000))::VARCHAR, 6, '0') AS product_id,
               ['view','view','view','click','add_to_cart','purchase'][1 + (i % 6)] AS event_type,
               strftime(to_timestamp({T0 + offset_s} + i * {STEP_S}), '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
               'S' || (i // 6)::VARCHAR AS session_id,
               CASE WHEN i % 6 = 5 THEN round(10 + (hash(i) % 9000) / 100.0, 2)::VARCHAR END AS value
        FROM range({start}, {stop}) t(i)"""


def make_files(work: Path, base: int, delivery: int, resent_share: float) -> tuple[Path, Path, int]:
    resent = int(delivery * resent_share)
    day1, day2 = work / "day1", work / "day2"
    for d in (day1, day2):
        d.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.sql(f"COPY ({_events_sql(0, base)}) TO '{(day1 / 'events.csv').as_posix()}' (FORMAT CSV, HEADER)")
    # the delivery: the last `resent` rows of day 1 again, then new rows continuing in time
    con.sql(
        f"COPY ({_events_sql(base - resent, base)} UNION ALL {_events_sql(base, base + delivery - resent)}) "
        f"TO '{(day2 / 'events.csv').as_posix()}' (FORMAT CSV, HEADER)"
    )
    con.close()
    return day1, day2, resent


def run_step(step: str, data: Path, work: Path) -> dict:
    import pandera.ibis  # noqa: F401 - imported before the clock starts (see run.py)

    from shelfwise.governance import ingest

    t0 = time.perf_counter()
    rep = ingest(data, work, append=step == "append")
    secs = time.perf_counter() - t0
    ev = rep.tables["events"]
    return {
        "step": step,
        "seconds": round(secs, 2),
        "rows_in": ev.rows_in,
        "rows_added": ev.rows_curated,
        "rows_unchanged": ev.rows_unchanged,
        "rows_total": ev.rows_total,
        "reasons": ev.reasons,
        "balanced": ev.balanced,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(step: str, data: Path, work: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--step", step, "--data", str(data), "--workdir", str(work)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/deliveries.json")
    ap.add_argument("--base", type=int, default=1_000_000)
    ap.add_argument("--delivery", type=int, default=100_000)
    ap.add_argument("--resent", type=float, default=0.1, help="share of the delivery re-sent from day 1")
    ap.add_argument("--work", default="benchmarks/work-deliveries")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, Path(args.data), Path(args.workdir))))
        return
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    day1, day2, resent = make_files(work, args.base, args.delivery, args.resent)
    base = _child("full", day1, work / "w")
    print(json.dumps(base), flush=True)
    append = _child("append", day2, work / "w")
    print(json.dumps(append), flush=True)
    alone = _child("full", day2, work / "w-alone")
    print(json.dumps(alone), flush=True)
    assert append["rows_unchanged"] == resent and append["rows_added"] == args.delivery - resent, append
    report = {
        **provenance(),
        "benchmark": "a daily delivery appended to a warehouse (ingest --append)",
        "measures": "seconds of shelfwise.governance.ingest() in a process of its own: the warehouse's full "
        "load, the delivery appended to it, and the same delivery as a full load into an empty workdir",
        "warehouse_events": args.base,
        "delivery_events": args.delivery,
        "delivery_resent": resent,
        "full_load": base,
        "append": append,
        "delivery_as_full_load": alone,
        "append_overhead_seconds": round(append["seconds"] - alone["seconds"], 2),
    }
    shutil.rmtree(work, ignore_errors=True)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
