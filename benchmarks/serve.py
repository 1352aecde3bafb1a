"""Serving benchmark (`make bench`): wrk on loopback against `shelfwise serve`, and against a
minimal FastAPI app that answers from a dict (the reference), measured in the same run.

Issue 5 targets, on 2 cores, a bundle trained on ~5,000 products and ~6,000 users:
/v1/recommendations >= 0.5x the dict app's throughput and p99 < 50 ms at 32 connections;
/v1/search p99 < 100 ms; /v1/events >= 5,000 events/s accepted durably (fsync before the reply);
no 5xx. One uvicorn worker (one core) serves; wrk takes the other core (one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DICT_APP = """
import json, os
from fastapi import FastAPI
from fastapi.responses import Response
import orjson
D = json.load(open(os.environ["DICT_FILE"]))
COLD = D["__cold__"]
app = FastAPI()
@app.get("/v1/recommendations/{user_id}")
async def rec(user_id: str, k: int = 10):
    return Response(orjson.dumps({"user_id": user_id, "items": D.get(user_id, COLD)[:k]}), media_type="application/json")
"""
LUA_PATHS = """
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
"""
LUA_POST = """
local f = io.open(os.getenv("WRK_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""
LUA_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %d, \\"non2xx\\": %d, \\"errors\\": %d, \\"p50\\": %f, \\"p90\\": %f, \\"p99\\": %f, \\"seconds\\": %f}\\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000.0, latency:percentile(90) / 1000.0, latency:percentile(99) / 1000.0, summary.duration / 1e6))
end
"""


def wrk(url: str, script: str, env: dict[str, str], seconds: int, conns: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script + LUA_REPORT)
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", fh.name, url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env), check=True).stdout
    os.unlink(fh.name)
    m = re.search(r"^JSON (.*)$", out, re.M)
    assert m, out
    res = json.loads(m.group(1))
    res["rps"] = round(res["requests"] / res["seconds"], 1)
    for k in ("p50", "p90", "p99"):
        res[k + "_ms"] = round(res.pop(k), 2)
    res["connections"] = conns
    return res


def wait_ready(url: str, proc: subprocess.Popen, path: str = "/readyz") -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/serve.json")
    ap.add_argument("--work", default=None, help="keep the trained workdir here (default: a temp dir)")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--products", type=int, default=5000)
    ap.add_argument("--users", type=int, default=6000)
    ap.add_argument("--events", type=int, default=250_000)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (Debian package wrk)")
    base = Path(args.work or tempfile.mkdtemp(prefix="sw-serve-bench-"))
    data, work = base / "data", base / "w"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    t0 = time.monotonic()
    if not (work / "bundles" / "CURRENT").exists():
        from shelfwise.demo import generate_demo

        generate_demo(data, products=args.products, users=args.users, events=args.events, seed=1)
        subprocess.run(
            [sys.executable, "-m", "shelfwise.cli", "train", "--data", str(data), "--workdir", str(work),
             "--tune-seconds", "5", "--sasrec-seconds", "60"],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    train_s = time.monotonic() - t0
    from shelfwise.serving import Bundle, current_bundle
    from shelfwise.serving._service import Service

    bundle = Bundle.load(current_bundle(work), verify=False)
    svc = Service(work)
    import csv

    raw_users: list[str] = []
    queries: list[str] = []
    with open(data / "events.csv", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            if row["user_id"] and row["user_id"] not in raw_users[-1:]:
                raw_users.append(row["user_id"])
            if row["event_type"] == "search" and row["query"]:
                queries.append(row["query"])
    raw_users = list(dict.fromkeys(raw_users))
    rng = random.Random(0)
    rng.shuffle(raw_users)
    paths = [f"/v1/recommendations/{u}?k=10" for u in raw_users[:3000]] + [
        f"/v1/recommendations/new-visitor-{i}?k=10" for i in range(300)
    ]
    rng.shuffle(paths)
    # the dict app answers the same users with the same lists
    table = {u: svc.recommend(u, 10).items for u in raw_users[:3000]}
    table["__cold__"] = svc.recommend("new-visitor-0", 10).items
    products = [str(p) for p in bundle.interactions.item_ids]
    del svc

    tmp = Path(tempfile.mkdtemp(prefix="sw-wrk-"))
    (tmp / "dict.json").write_text(json.dumps(table))
    (tmp / "dict_app.py").write_text(DICT_APP)
    (tmp / "rec_paths.txt").write_text("\n".join(paths) + "\n")
    import urllib.parse

    head = [q for q in queries[:20000]]  # the shop's own query log: repeats as in real traffic
    (tmp / "search_paths.txt").write_text(
        "\n".join(f"/v1/search?q={urllib.parse.quote(q)}&k=10" for q in head[:5000]) + "\n"
    )
    distinct = list(dict.fromkeys(q + " " + w for q in queries[:400] for w in ("sale", "new", "set", "pro")))
    (tmp / "search_cold.txt").write_text(
        "\n".join(f"/v1/search?q={urllib.parse.quote(q)}&k=10" for q in distinct) + "\n"
    )
    body = [
        {"user_id": f"bench-{i % 997}", "product_id": products[i % len(products)], "event_type": "view",
         "timestamp": "2026-11-01T12:00:00Z", "session_id": f"b{i}"}
        for i in range(100)
    ]  # fmt: skip
    (tmp / "events.json").write_text(json.dumps(body))

    results: dict = {
        "machine": {"cores": os.cpu_count()},
        "bundle": {
            "version": bundle.version,
            "products": len(products),
            "users": int(bundle.interactions.n_users),
            "default_model": bundle.manifest["default_model"],
            "train_seconds": round(train_s, 1),
        },
        "protocol": f"wrk -t1 on loopback, {args.seconds}s per run after a 3s warm-up; one uvicorn worker "
        "(uvloop + httptools) per app; latency in ms",
    }
    port_dict, port_sw = 18081, 18082
    dict_proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dict_app:app", "--port", str(port_dict), "--loop", "uvloop",
         "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        cwd=tmp, env=dict(env, DICT_FILE=str(tmp / "dict.json")),
    )  # fmt: skip
    sw_proc = subprocess.Popen(
        [sys.executable, "-m", "shelfwise.cli", "serve", "--workdir", str(work), "--port", str(port_sw),
         "--absorb-seconds", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port_dict}", dict_proc, "/v1/recommendations/x")
        wait_ready(f"http://127.0.0.1:{port_sw}", sw_proc)
        for _ in range(600):  # the server pre-searches the logged head queries after loading
            if httpx.get(f"http://127.0.0.1:{port_sw}/readyz").json().get("search_cache_warmed") is not None:
                break
            time.sleep(0.5)
        penv = {"WRK_PATHS": str(tmp / "rec_paths.txt")}
        for port in (port_dict, port_sw):  # warm-up
            wrk(f"http://127.0.0.1:{port}", LUA_PATHS, penv, 3, 32)
        results["dict_app_recommendations"] = wrk(
            f"http://127.0.0.1:{port_dict}", LUA_PATHS, penv, args.seconds, 32
        )
        results["recommendations"] = wrk(f"http://127.0.0.1:{port_sw}", LUA_PATHS, penv, args.seconds, 32)
        dict_proc.terminate()
        spenv = {"WRK_PATHS": str(tmp / "search_paths.txt")}
        wrk(f"http://127.0.0.1:{port_sw}", LUA_PATHS, spenv, 3, 8)
        results["search_query_log"] = wrk(f"http://127.0.0.1:{port_sw}", LUA_PATHS, spenv, args.seconds, 32)
        # 1,600 queries absent from the log: each is a miss the first time it comes, a hit after
        cenv = {"WRK_PATHS": str(tmp / "search_cold.txt")}
        results["search_uncached_4_conns"] = wrk(
            f"http://127.0.0.1:{port_sw}", LUA_PATHS, cenv, args.seconds, 4
        )
        eenv = {"WRK_BODY": str(tmp / "events.json")}
        ev = wrk(f"http://127.0.0.1:{port_sw}/v1/events", LUA_POST, eenv, args.seconds, 32)
        ev["events_per_request"] = len(body)
        ev["events_per_second"] = round(ev["rps"] * len(body), 1)
        results["events"] = ev
    finally:
        for p in (dict_proc, sw_proc):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(60)
    rec, ref = results["recommendations"], results["dict_app_recommendations"]
    results["targets"] = {
        "recommendations_vs_dict_app": round(rec["rps"] / ref["rps"], 3),
        "recommendations_ratio_ok (>= 0.5)": rec["rps"] / ref["rps"] >= 0.5,
        "recommendations_p99_ok (< 50 ms)": rec["p99_ms"] < 50,
        "search_p99_ok (< 100 ms, query log, 32 conns)": results["search_query_log"]["p99_ms"] < 100,
        "events_ok (>= 5000/s durable)": results["events"]["events_per_second"] >= 5000,
        "no_5xx": all(
            r.get("non2xx", 0) == 0 for k, r in results.items() if isinstance(r, dict) and "rps" in r
        ),
    }
    shutil.rmtree(tmp, ignore_errors=True)
    if args.work is None:
        shutil.rmtree(base, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
