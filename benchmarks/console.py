"""Benchmark: the console's server time per page (the `Server-Timing: app;dur=` header each
page sends), on a trained shop served by `shelfwise serve` in single-user mode on loopback.

Copies of `--workdir` (a trained shop, e.g. the demo: `shelfwise demo --workdir W`; the JSON's
`shop` says which, with its tables' rows and the sizes of the files the console keeps) are
served three times, each time by a freshly started process:

- `after_train_ms`: a server on the workdir as training left it: each page read once right after
  /readyz; the warehouse figures train kept in `state/console/` are there.
- `first_ms`: a server on a copy without `state/console/`: each page read once right after
  /readyz (the console's warm-up runs in the background from then on: a page read meanwhile
  waits for the same computation).
- `restart_first_ms`: a second server on the same copy after the first stopped: the figures the
  first one kept are read instead of opening the warehouse.
- then, in the second server, each page is read `--rounds` times *cold* (after a change to
  the files it reads: an exposure line appended to the served log; and again after the
  warehouse file's mtime moved, as an absorb does) and *warm* (the same page again, nothing
  changed).

The load average is recorded beside each phase and round: on a shared machine it is the main
source of noise. Written as JSON.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _provenance import portable, provenance, write_report


def pages(user: str) -> list[str]:
    return ["/console/", "/console/models", "/console/data", "/console/data/quarantine", "/console/analytics",
            "/console/search?q=pillow", f"/console/users/{user}", "/console/audit", "/console/lineage",
            "/console/insights"]  # fmt: skip


def shop_of(work: Path, source: str) -> dict[str, object]:
    """Which shop was measured: the workdir given, its curated tables' rows (from the figures
    the console kept), the demo's generator settings when it is a `shelfwise demo` workdir, and
    the size of every file the console keeps in `state/console/`."""
    kept = work / "state" / "console"
    out: dict[str, object] = {"workdir": source}
    try:
        cat = json.loads((kept / "catalog.json").read_text())["value"]
        out["rows"] = {d["name"]: d["rows"] for d in cat["datasets"]}
    except (OSError, ValueError, KeyError):
        pass
    demo = work / "demo-data"
    if demo.is_dir():  # `shelfwise demo`: 5,000 products, 2,000 users, 200,000 events by default
        out["demo_data_lines"] = {
            f.name: sum(1 for _ in f.open("rb")) - 1 for f in sorted(demo.glob("*.csv"))
        }
    out["kept_bytes"] = (
        {f.name: f.stat().st_size for f in sorted(kept.glob("*.json"))} if kept.exists() else {}
    )
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(r: httpx.Response) -> float:
    r.raise_for_status()
    return float(r.headers["server-timing"].split("dur=")[1])


@contextmanager
def serving(work: Path) -> Iterator[tuple[httpx.Client, float]]:
    """A fresh `shelfwise serve` on `work`; yields a client once /readyz answers, and the
    seconds from start to ready."""
    port = _port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cmd = [sys.executable, "-m", "shelfwise.cli", "serve", "--workdir", str(work), "--port", str(port),
           "--absorb-seconds", "0", "--reload-seconds", "0"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(3000):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"shelfwise serve exited with {proc.returncode}")
            time.sleep(0.2)
        ready = time.perf_counter() - t0
        with httpx.Client(base_url=url, timeout=120) as c:
            yield c, ready
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--workdir",
        required=True,
        help="a trained shop, e.g. `shelfwise demo --workdir W` (copied, not changed)",
    )
    ap.add_argument("--user", default="C100011", help="a shopper's raw id for the shopper view")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/console.json")
    a = ap.parse_args()
    report = provenance()
    paths = pages(a.user)
    loads: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # as the training run left it: the figures it kept in state/console/ (`keep_figures`)
        trained = Path(tmp) / "trained"
        shutil.copytree(a.workdir, trained, ignore=shutil.ignore_patterns("serve-*.log"))
        loads["trained_server"] = round(os.getloadavg()[0], 2)
        with serving(trained) as (c, ready0):
            as_trained = {p: _ms(c.get(p)) for p in paths}
        work = Path(tmp) / "w"
        shutil.copytree(a.workdir, work, ignore=shutil.ignore_patterns("serve-*.log", "console"))
        loads["first_server"] = round(os.getloadavg()[0], 2)
        with serving(work) as (c, ready1):
            first = {p: _ms(c.get(p)) for p in paths}
            time.sleep(5)  # the warm-up finishes and keeps its figures before the stop
        loads["second_server"] = round(os.getloadavg()[0], 2)
        with serving(work) as (c, ready2):
            restart = {p: _ms(c.get(p)) for p in paths}
            spool = work / "spool" / "exposures"
            spool.mkdir(parents=True, exist_ok=True)
            cold: dict[str, list[float]] = {p: [] for p in paths}
            cold_wh: dict[str, list[float]] = {p: [] for p in paths}
            warm: dict[str, list[float]] = {p: [] for p in paths}
            per_round = []
            for i in range(a.rounds):
                for p in paths:
                    os.utime(work / "warehouse.duckdb")  # as an absorb would: warehouse data recomputed
                    cold_wh[p].append(_ms(c.get(p)))
                    with open(spool / "bench.jsonl", "a") as fh:  # a served list: inputs changed
                        fh.write(
                            json.dumps({"kind": "search", "id": f"b{i}", "query": "x", "items": []}) + "\n"
                        )
                    cold[p].append(_ms(c.get(p)))
                    warm[p].append(_ms(c.get(p)))
                per_round.append(round(os.getloadavg()[0], 2))
            loads["rounds"] = per_round
        shop = shop_of(work, portable(a.workdir))
    report["protocol"] = {
        "server_ms": "the page's Server-Timing app;dur (request in, response built), milliseconds",
        "after_train": "first read of the page in a freshly started server on the workdir as training left it, "
        "right after /readyz (the warehouse figures train kept in state/console/ are there)",
        "first": "first read of the page in the first freshly started server on the workdir without state/console/, "
        "right after /readyz (the console's warm-up started then: a page waits for the figures it needs)",
        "restart_first": "first read of the page in a second freshly started server on the same workdir "
        "(the figures the first server kept in state/console/ are there)",
        "cold": "after an exposure line was appended (a page shown: what the served log feeds recomputed)",
        "cold_warehouse": "after the warehouse file's mtime moved (as an absorb does: what the warehouse feeds recomputed)",
        "warm": "the same page again, nothing changed",
        "rounds": a.rounds,
    }
    report["shop"] = shop
    report["seconds_to_ready"] = {
        "trained_server": round(ready0, 1),
        "first_server": round(ready1, 1),
        "second_server": round(ready2, 1),
    }
    report["load_average_1m"] = loads
    report["pages"] = {
        p: {
            "after_train_ms": round(as_trained[p], 1),
            "first_ms": round(first[p], 1),
            "restart_first_ms": round(restart[p], 1),
            "cold_median_ms": round(statistics.median(cold[p]), 1),
            "cold_max_ms": round(max(cold[p]), 1),
            "cold_warehouse_median_ms": round(statistics.median(cold_wh[p]), 1),
            "cold_warehouse_max_ms": round(max(cold_wh[p]), 1),
            "warm_median_ms": round(statistics.median(warm[p]), 1),
        }
        for p in paths
    }
    write_report(a.out, report)
    print(json.dumps({"load_average_1m": loads, "pages": report["pages"]}, indent=1))


if __name__ == "__main__":
    main()
