"""A command that finds the warehouse held by another process (issue 15's walk: `shelfwise serve`
absorbs acknowledged events every 30 s and on its way out, and DuckDB lets no other process in
while one writes) says so in one line and exits 3, as `events absorb` does, instead of a DuckDB
traceback; once the other process lets go the same command works."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_cli import sw

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # a writer: what an absorb holds for a few seconds
print("held", flush=True)
sys.stdin.readline()
"""


def test_a_busy_warehouse_is_one_line_and_exit_3(tmp_path: Path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        + "".join(f"u{i % 3},p{i % 5},view,2026-01-0{1 + i % 9}T10:00:00\n" for i in range(30))
    )
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(work / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = sw(
            "export",
            "--workdir",
            str(work),
            "--table",
            "events",
            "--out",
            str(tmp_path / "e.csv"),
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("busy: "), proc.stderr
        assert str(work / "warehouse.duckdb") in lines[0] and f"PID {holder.pid}" in lines[0]
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
    time.sleep(0.1)
    sw("export", "--workdir", str(work), "--table", "events", "--out", str(tmp_path / "e.csv"))
    assert len((tmp_path / "e.csv").read_text().splitlines()) == 31
