"""Governed ingestion against a bare DuckDB load of the same file (issue 20, part 0), as JSON.

For each size one events CSV is written (`run.make_events`: synthetic, 8 columns, about 0.2%
defective rows: a bad event type or timestamp; another 0.1% are anonymous rows, an empty user_id,
curated), then loaded, in the same run and alternately:

- bare: a fresh Python process that imports DuckDB and runs `CREATE TABLE events AS SELECT * FROM
  read_csv(file)` into a new database file (auto-detected types, no checks), start to exit;
- shelfwise: `shelfwise ingest --data DIR --workdir NEW --json`, start to exit (imports, staging,
  raw, row and set checks, pseudonyms, quarantine, publishing, lineage, audit, the HTML report).

- spark (with `--engines duckdb,spark`): the same command with `--engine spark --spark-master
  local[2]` (a local JVM started by the command, counted in its wall time; the rows' checks and
  publishing run in Spark, the curated table and quarantine are written as Parquet).

With `--carry-spark-from FILE` (a DuckDB-only run after a change that does not touch the Spark
path), the Spark fields of each size this run does not measure on Spark are copied from FILE's
row of the same size (an earlier report, usually the `--out` being replaced), each such row
saying where they came from in `spark_from` (its commit, date, command, load and the bare load
its `spark_ratio` was computed against, and that run's own DuckDB counts, `duckdb_rows_curated`
and `duckdb_reasons`): a DuckDB-only rerun no longer drops them. A carried row's
`spark_same_counts` compares its Spark counts with this run's DuckDB counts; where they differ
and that run's own did not, a rule changed between the two commits (not an engine), and the run
says so on stderr: measure that size on Spark again.

Wall time is the median of `--repeat` runs of each; peak memory is each child's own maximum
resident set (`os.wait4`). The ingest report's per-stage seconds say where the time goes. Target:
`ratio` (shelfwise / bare) at most 3. The machine may be shared: its load average is recorded at
the start and after each size, and a loaded machine stretches both sides of the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _provenance import provenance, write_report
from run import make_events

BARE = """
import sys, duckdb
con = duckdb.connect(sys.argv[2])
con.sql("SET enable_progress_bar = false")
con.sql(f"CREATE TABLE events AS SELECT * FROM read_csv('{sys.argv[1]}')")
print(con.sql("SELECT count(*) FROM events").fetchone()[0])
con.close()
"""


def timed(cmd: list[str]) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS in MB, stdout, CPU seconds: user + system, every thread) of one
    child process, start to exit."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        secs = time.perf_counter() - t0
        err = proc.stderr.read().decode() if proc.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
        out.seek(0)
        return secs, usage.ru_maxrss / 1024, out.read().decode(), usage.ru_utime + usage.ru_stime


def measure_spark(data: Path, work: Path, rows: int) -> dict:
    """One `ingest --engine spark` run (the wall time includes the JVM's start). Peak RSS and
    CPU are the Python driver's: the JVM it starts is not waited for as its child."""
    w = work / f"w-spark-{rows}"
    shutil.rmtree(w, ignore_errors=True)
    cli = [
        sys.executable,
        "-m",
        "shelfwise.cli",
        "ingest",
        "--data",
        str(data),
        "--workdir",
        str(w),
        "--json",
    ]
    s, mb, out, cpu = timed([*cli, "--engine", "spark", "--spark-master", "local[2]"])
    ev = json.loads(out)["tables"]["events"]
    shutil.rmtree(w, ignore_errors=True)
    return {
        "spark_ingest_seconds": round(s, 2),
        "spark_peak_rss_mb": round(mb, 1),
        # the Python driver's alone: the JVM pyspark starts is not waited for as a child, so
        # neither its CPU nor its memory is in these two (no CPU ratio is made of them)
        "spark_driver_cpu_seconds": round(cpu, 2),
        "spark_stage_seconds": ev.get("stage_seconds", {}),
        "spark_rows_curated": ev["rows_curated"],
        "spark_reasons": ev["reasons"],
    }


def measure(rows: int, work: Path, repeat: int, engines: tuple[str, ...] = ("duckdb",)) -> dict:
    data = work / f"data-{rows}"
    make_events(data / "events.csv", rows)
    csv = data / "events.csv"
    file_mb = round(csv.stat().st_size / 1e6, 1)
    cli = [sys.executable, "-m", "shelfwise.cli"]
    bare_s, bare_mb, ours_s, ours_mb, bare_cpu, ours_cpu = [], [], [], [], [], []
    report: dict = {}
    for _ in range(repeat):
        db = work / "bare.duckdb"
        db.unlink(missing_ok=True)
        s, mb, out, cpu = timed([sys.executable, "-c", BARE, csv.as_posix(), db.as_posix()])
        assert int(out.strip()) == rows, out
        bare_s.append(s)
        bare_cpu.append(cpu)
        bare_mb.append(mb)
        db.unlink(missing_ok=True)
        w = work / f"w-{rows}"
        shutil.rmtree(w, ignore_errors=True)
        s, mb, out, cpu = timed([*cli, "ingest", "--data", str(data), "--workdir", str(w), "--json"])
        ours_s.append(s)
        ours_cpu.append(cpu)
        ours_mb.append(mb)
        report = json.loads(out)
        shutil.rmtree(w, ignore_errors=True)
    ev = report["tables"]["events"]
    bare, ours = statistics.median(bare_s), statistics.median(ours_s)
    spark: dict = {}
    if "spark" in engines:
        spark = measure_spark(data, work, rows)
        spark["spark_ratio"] = round(spark["spark_ingest_seconds"] / bare, 2)
        # the same rows and reasons on both engines, or the timing compares different work
        spark["spark_same_counts"] = (spark["spark_rows_curated"], spark["spark_reasons"]) == (
            ev["rows_curated"],
            ev["reasons"],
        )
    shutil.rmtree(data, ignore_errors=True)
    return {
        "rows": rows,
        "file_mb": file_mb,
        "bare_seconds": round(bare, 2),
        "bare_peak_rss_mb": round(max(bare_mb), 1),
        "ingest_seconds": round(ours, 2),
        "ingest_peak_rss_mb": round(max(ours_mb), 1),
        "ratio": round(ours / bare, 2),
        # CPU seconds (all threads) are less stretched than wall time by other work on a shared
        # machine; a bare load uses every core, so the CPU ratio is not the wall ratio of a quiet one
        "bare_cpu_seconds": round(statistics.median(bare_cpu), 2),
        "ingest_cpu_seconds": round(statistics.median(ours_cpu), 2),
        "cpu_ratio": round(statistics.median(ours_cpu) / statistics.median(bare_cpu), 2),
        "runs": {
            "bare_seconds": [round(x, 2) for x in bare_s],
            "ingest_seconds": [round(x, 2) for x in ours_s],
        },
        "ingest_stage_seconds": ev.get("stage_seconds", {}),
        "ingest_in_process_seconds": report.get("seconds"),
        "rows_curated": ev["rows_curated"],
        "rows_quarantined": ev["rows_quarantined"],
        "reasons": ev["reasons"],
        "balanced": ev["balanced"],
        **spark,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def spark_rows(path: Path) -> dict[int, dict]:
    """Per size, the Spark fields of an earlier report, with where they were measured (a row
    carried before keeps its first origin)."""
    old = json.loads(path.read_text())
    origin = {
        "commit": old.get("commit"),
        "date": old.get("date"),
        "command": old.get("command"),
        "load_average_at_start": old.get("machine", {}).get("load_average_at_start"),
    }
    out: dict[int, dict] = {}
    for row in old.get("ingestion", []):
        if "spark_ingest_seconds" not in row:
            continue
        fields = {k: v for k, v in row.items() if k.startswith("spark_")}
        # a report written before the driver-only CPU was named so: the JVM was never waited for
        # as a child, so its `spark_cpu_seconds` was the driver's alone and its CPU ratio meant nothing
        if "spark_cpu_seconds" in fields:
            fields["spark_driver_cpu_seconds"] = fields.pop("spark_cpu_seconds")
        fields.pop("spark_cpu_ratio", None)
        # (the counts the Spark ones were compared with in their own run: a later change of the
        # rules shows as this run's DuckDB counts differing where those did not)
        fields["spark_from"] = row.get("spark_from") or {
            **origin,
            "bare_seconds": row.get("bare_seconds"),
            "duckdb_rows_curated": row.get("rows_curated"),
            "duckdb_reasons": row.get("reasons"),
        }
        out[int(row["rows"])] = fields
    return out


def stale_warning(row: dict) -> str:
    """Why a carried row's Spark counts differ from this run's DuckDB counts: a rule changed since
    the commit they were measured at (its own DuckDB load agreed), or the engines disagree."""
    origin = row["spark_from"]
    then = (origin.get("duckdb_rows_curated"), origin.get("duckdb_reasons"))
    at = f"{row['rows']} rows: the Spark counts carried from {str(origin.get('commit'))[:7]}"
    if then == (row["spark_rows_curated"], row["spark_reasons"]):
        return (
            f"{at} agreed with that commit's DuckDB load but not with this one's (a rule changed "
            f"since): measure it on Spark again (--engines duckdb,spark --spark-sizes {row['rows']})"
        )
    return (
        f"{at} differ from this run's DuckDB counts (that run's own DuckDB counts unknown or different too)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/ingest_speed.json")
    ap.add_argument(
        "--sizes", default="1000000,2000000", help="comma-separated row counts (10000000 optional)"
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of each side per size (the median is reported)"
    )
    ap.add_argument("--work", default="benchmarks/work-ingest-speed")
    ap.add_argument("--engines", default="duckdb", help="duckdb, or duckdb,spark")
    ap.add_argument(
        "--spark-sizes",
        default="",
        help="comma-separated row counts Spark runs at (default: every size; a 10M load on local[2] "
        "takes long)",
    )
    ap.add_argument(
        "--carry-spark-from",
        default="",
        help="an earlier report (JSON) whose Spark fields are kept for the sizes not run on Spark now",
    )
    args = ap.parse_args()
    carried = spark_rows(Path(args.carry_spark_from)) if args.carry_spark_from else {}
    prov = provenance()  # (the machine's load average as the run starts)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    sizes = [int(s) for s in args.sizes.split(",")]
    planned = [int(s) for s in args.spark_sizes.split(",")] if args.spark_sizes else sizes
    spark_sizes = sorted(set(planned if "spark" in args.engines else []) | (set(carried) & set(sizes)))

    def report(complete: bool) -> None:
        # written after every size: a run stopped early (a 10M load on a busy machine) still
        # leaves the sizes it measured, marked incomplete
        write_report(
            args.out,
            {
                **prov,
                "benchmark": "`shelfwise ingest` against a bare DuckDB read_csv load of the same events CSV",
                "measures": "wall seconds from process start to exit (median of the runs), CPU seconds (user + "
                "system, all threads) and each process's peak RSS; ratio = ingest_seconds / bare_seconds, "
                "cpu_ratio likewise; ingest_stage_seconds from the ingest report; spark_*: one `ingest "
                "--engine spark --spark-master local[2]` run, start to exit (JVM start included); its peak "
                "RSS and driver CPU are the Python process's alone, the JVM's not counted; a row with "
                "spark_from has its spark_* fields from the earlier run named there (spark_ratio against "
                "that run's bare load; spark_from's duckdb_* are that run's own DuckDB counts)",
                "target_ratio": 3.0,
                "sizes": sizes,
                "spark_sizes": spark_sizes,
                "complete": complete,
                "ingestion": results,
            },
        )

    try:
        for n in sizes:
            engines = tuple(args.engines.split(","))
            if args.spark_sizes and str(n) not in args.spark_sizes.split(","):
                engines = tuple(e for e in engines if e != "spark")
            res = measure(n, work, args.repeat, engines)
            if "spark" not in engines and n in carried:
                res.update(carried[n])
                # (the same rows and reasons as this run's DuckDB load of the same synthetic file)
                res["spark_same_counts"] = (res["spark_rows_curated"], res["spark_reasons"]) == (
                    res["rows_curated"],
                    res["reasons"],
                )
                if not res["spark_same_counts"]:
                    print(stale_warning(res), file=sys.stderr, flush=True)
            print(json.dumps({k: v for k, v in res.items() if k != "reasons"}), flush=True)
            results.append(res)
            report(complete=len(results) == len(sizes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
