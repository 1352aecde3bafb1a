"""Benchmark: the console's server time per page (the `Server-Timing: app;dur=` header each
page sends), on a trained shop served by `shelfwise serve` in single-user mode on loopback.

A copy of `--workdir` (a trained shop, e.g. the demo: `shelfwise demo --workdir W`) is served;
each page is read `--rounds` times *cold* (after a change to the files it reads: an exposure
line appended to the served log; and again after the warehouse file's mtime moved, as an
absorb does) and *warm* (the same page again, nothing changed). The first read of
each page in the fresh process is reported apart ("first"): it includes the process's first
imports of what that page needs. The load average is recorded beside each round: on a shared
machine it is the main source of noise. Written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _provenance import provenance, write_report

PAGES = ["/console/", "/console/models", "/console/data", "/console/analytics", "/console/search?q=pillow",
         "/console/audit", "/console/lineage"]  # fmt: skip


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(r: httpx.Response) -> float:
    return float(r.headers["server-timing"].split("dur=")[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, help="a trained shop (copied, not changed)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/console.json")
    a = ap.parse_args()
    report = provenance()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        shutil.copytree(a.workdir, work, ignore=shutil.ignore_patterns("serve-*.log"))
        port = _port()
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        cmd = [sys.executable, "-m", "shelfwise.cli", "serve", "--workdir", str(work), "--port", str(port),
               "--absorb-seconds", "0", "--reload-seconds", "0"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            spool = work / "spool" / "exposures"
            spool.mkdir(parents=True, exist_ok=True)
            with httpx.Client(base_url=url, timeout=60) as c:
                first = {p: _ms(c.get(p)) for p in PAGES}
                cold: dict[str, list[float]] = {p: [] for p in PAGES}
                cold_wh: dict[str, list[float]] = {p: [] for p in PAGES}
                warm: dict[str, list[float]] = {p: [] for p in PAGES}
                loads = []
                for i in range(a.rounds):
                    for p in PAGES:
                        os.utime(work / "warehouse.duckdb")  # as an absorb would: warehouse data recomputed
                        cold_wh[p].append(_ms(c.get(p)))
                        with open(spool / "bench.jsonl", "a") as fh:  # a served list: inputs changed
                            fh.write(
                                json.dumps({"kind": "search", "id": f"b{i}", "query": "x", "items": []})
                                + "\n"
                            )
                        cold[p].append(_ms(c.get(p)))
                        warm[p].append(_ms(c.get(p)))
                    loads.append(round(os.getloadavg()[0], 2))
        finally:
            proc.terminate()
            proc.wait(30)
    report["protocol"] = {
        "server_ms": "the page's Server-Timing app;dur (request in, response built), milliseconds",
        "first": "first read of the page in a fresh serving process",
        "cold": "after an exposure line was appended (a page shown: what the served log feeds recomputed)",
        "cold_warehouse": "after the warehouse file's mtime moved (as an absorb does: what the warehouse feeds recomputed)",
        "warm": "the same page again, nothing changed",
        "rounds": a.rounds,
    }
    report["load_average_1m_per_round"] = loads
    report["pages"] = {
        p: {
            "first_ms": round(first[p], 1),
            "cold_median_ms": round(statistics.median(cold[p]), 1),
            "cold_max_ms": round(max(cold[p]), 1),
            "cold_warehouse_median_ms": round(statistics.median(cold_wh[p]), 1),
            "cold_warehouse_max_ms": round(max(cold_wh[p]), 1),
            "warm_median_ms": round(statistics.median(warm[p]), 1),
        }
        for p in PAGES
    }
    write_report(a.out, report)
    print(json.dumps(report["pages"], indent=1))


if __name__ == "__main__":
    main()
