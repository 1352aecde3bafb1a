"""Serving benchmark (`make bench`): wrk on loopback against `shelfwise serve`, and against a
minimal FastAPI app that answers from a dict (the reference), measured in the same run.

Issue 5 targets, on 2 cores, a bundle trained on ~5,000 products and ~6,000 users:
/v1/recommendations >= 0.5x the dict app's throughput and p99 < 50 ms at 32 connections;
/v1/search p99 < 100 ms; /v1/events >= 5,000 events/s accepted durably (fsync before the reply);
no 5xx. One uvicorn worker (one core) serves; wrk takes the other core (one thread).

Issue 15 (search under uncached traffic): every request a different two-word query (pairs of the
shop's query-log words, none of them a logged query, each used once in the whole run, so no
request can be a page-cache hit; the server's cache counters are read before and after each run
to prove it), at 1, 8 and 32 connections, on the 5,000-product shop and on a 100,000-product
shop. Target: p99 <= 100 ms and no 5xx at 32 connections on the 5,000-product shop. Each run also
reports how the server answered (pages per pipeline level, degraded, shed) from /metrics, and
how the search queue batched them (misses per batch, queries per encoder call, queue wait).

Open loop (`search_open_loop`): wrk's closed loop lets the server set the pace (each connection
sends its next request only once answered), so a slower level serves fewer requests and its
latency hides in the rate. Beside it, at fixed OFFERED rates (`--open-loop-rates`, default
25/50/100/200 requests/s, on the 5,000-product shop), a client in a separate process sends
distinct uncached queries at seeded Poisson arrival times whatever the server does, and each
latency is counted from the request's scheduled time (a request the client could only send late
counts its lateness: no coordinated omission); p50/p99, 5xx, the share of pages served at each
level (from /metrics) and the client's own lag are reported per rate.

Worker memory (`worker_memory`): `shelfwise serve --workers 1` and `--workers 4` on the large shop
(the bundle's embeddings, faiss index and models' large arrays are memory-mapped; with several
workers the bundle is loaded once and the workers forked from it, and `--no-preload`, uvicorn's
own workers that each load the bundle, is measured beside it for comparison), each process's
RSS and PSS from /proc/PID/smaps_rollup once the workers are up, after `DISTINCT_SEARCHES` distinct
uncached searches per worker (each on a new connection, so the kernel spreads them over the
workers: what a worker's own pages grow by as it touches the index), and after a further mixed
load (wrk). PSS divides a shared page among the processes mapping it, so the total PSS is what
the workers take together. `--memory-only` measures just this and replaces that section of the
file (it carries its own provenance record); `--baseline-src DIR` measures 1 and 4 workers a
second time with another checkout's `src` (the same bundle: e.g. the commit before a change),
as `worker_memory.baseline`.
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
from _provenance import provenance

OPEN_LOOP_RATES = (25, 50, 100, 200)
TIMEOUT_S = 10.0  # an open-loop request not answered by then counts at this latency (see `_open_loop_client`)

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


def metric_values(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The server's Prometheus samples, by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        (smp.name, tuple(sorted(smp.labels.items()))): smp.value
        for fam in text_string_to_metric_families(text)
        for smp in fam.samples
    }


def search_counters(url: str) -> dict[str, float]:
    """What the server says about its search answers (cumulative)."""
    m = metric_values(url)

    def total(name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, lab), v in m.items() if n == name and want <= set(lab))

    out = {
        "cache_hits": total("shelfwise_cache_total", surface="search", outcome="hit"),
        "cache_misses": total("shelfwise_cache_total", surface="search", outcome="miss"),
        "degraded": total("shelfwise_search_degraded_total"),
        "shed": total("shelfwise_search_shed_total"),
    }
    for level in ("full", "fused", "lexical"):
        out[f"level_{level}"] = total("shelfwise_search_computed_total", level=level)
    # the search queue's batching (absent from a server without these metrics: zero)
    for name in ("batch_size", "encoder_batch_size", "queue_wait_seconds"):
        for part in ("sum", "count"):
            out[f"{name}_{part}"] = total(f"shelfwise_search_{name}_{part}")
    for le in ("1.0", "2.0", "4.0", "8.0", "16.0", "32.0", "64.0"):  # misses per batch, cumulative
        out[f"batch_size_le_{le[:-2]}"] = total("shelfwise_search_batch_size_bucket", le=le)
    return out


def server_delta(before: dict[str, float], after: dict[str, float]) -> dict:
    """What the server did between two `search_counters` readings: pages per level, degraded,
    shed, and how the queue batched the misses (mean misses per batch and queries per encoder
    call, mean queue wait, the histogram of batch sizes)."""
    d = {k: after[k] - before[k] for k in after}
    out: dict = {
        k: int(v) for k, v in d.items() if not k.startswith(("batch_size", "encoder_batch", "queue_wait"))
    }
    computed = out["level_full"] + out["level_fused"] + out["level_lexical"]
    out["levels_share"] = {
        lv: round(out[f"level_{lv}"] / computed, 3) if computed else None
        for lv in ("full", "fused", "lexical")
    }
    batches = d["batch_size_count"]
    out["batches"] = int(batches)
    out["mean_batch_size"] = round(d["batch_size_sum"] / batches, 2) if batches else None
    calls = d["encoder_batch_size_count"]
    out["encoder_calls"] = int(calls)
    out["mean_encoder_batch"] = round(d["encoder_batch_size_sum"] / calls, 2) if calls else None
    waits = d["queue_wait_seconds_count"]
    out["mean_queue_wait_ms"] = round(1000 * d["queue_wait_seconds_sum"] / waits, 2) if waits else None
    prev = 0.0
    hist = {}
    for le in ("1", "2", "4", "8", "16", "32", "64"):
        hist[f"<={le}"] = int(d[f"batch_size_le_{le}"] - prev)
        prev = d[f"batch_size_le_{le}"]
    out["batches_by_size"] = hist
    return out


def distinct_query_paths(queries: list[str], texts: list[str], n: int, seed: int) -> list[str]:
    """`n` different two-word queries (pairs of words shoppers typed, or the catalog's words
    when those run out; no logged query among them), as /v1/search paths, in a seeded order."""
    import urllib.parse

    from shelfwise.search import words

    logged = {" ".join(words(q)) for q in queries}
    typed = sorted({w for q in queries for w in words(q) if w.isalpha() and len(w) > 2})
    vocab = typed + sorted({w for t in texts for w in words(t) if w.isalpha() and len(w) > 2} - set(typed))
    if len(vocab) * (len(vocab) - 1) < 2 * n:
        raise SystemExit(f"{len(vocab)} words make too few distinct pairs for {n} queries")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        a, b = rng.sample(vocab[: max(len(typed), int(n**0.5) * 2)], 2)  # shoppers' words first
        q = f"{a} {b}"
        if q in seen or q in logged:
            continue
        seen.add(q)
        out.append(f"/v1/search?q={urllib.parse.quote(q)}&k=10")
    return out


def catalog_texts(data: Path) -> list[str]:
    """Every product's words: title, description, category, brand, attributes."""
    import csv

    fields = ("title", "description", "category", "brand", "attributes")
    with open(data / "products.csv", encoding="utf-8", errors="replace") as fh:
        return [" ".join(r.get(f) or "" for f in fields) for r in csv.DictReader(fh)]


def uncached_search(
    url: str, data: Path, tmp: Path, seconds: int, tag: str, rates: tuple[int, ...] = ()
) -> tuple[dict, dict]:
    """wrk at 1, 8 and 32 connections, then the open-loop client at each of `rates`
    requests/s (see `open_loop`); every request a query never sent before in this run."""
    per_run = 1_000 * seconds  # more than any run sends (checked: the cache counters, `uncached`)
    conns = (1, 8, 32)
    per_rate = [int(r * seconds * 1.2) + 100 for r in rates]  # Poisson: more than the mean
    paths = distinct_query_paths(
        logged_queries(data), catalog_texts(data), per_run * (len(conns) + 1) + sum(per_rate), seed=15
    )
    out: dict = {}
    for r, c in enumerate((8, *conns)):  # the first: a 2 s warm-up (first-call allocations)
        f = tmp / f"uncached_{tag}_{r}.txt"
        f.write_text("\n".join(paths[r * per_run : (r + 1) * per_run]) + "\n")
        before = search_counters(url)
        res = wrk(url, LUA_PATHS, {"WRK_PATHS": str(f)}, 2 if r == 0 else seconds, c)
        after = search_counters(url)
        if r == 0:
            continue
        res["server"] = server_delta(before, after)
        res["server"]["uncached"] = res["server"]["cache_hits"] == 0 and res["requests"] < per_run
        out[f"{c}_conns"] = res
    opened: dict = {}
    start = per_run * (len(conns) + 1)
    for rate, n in zip(rates, per_rate, strict=True):
        time.sleep(3)  # the queue forgets the closed-loop runs' depth (`SearchQueue.recent_peak`)
        f = tmp / f"open_{tag}_{rate}.txt"
        f.write_text("\n".join(paths[start : start + n]) + "\n")
        start += n
        before = search_counters(url)
        res = open_loop(url, f, rate, seconds)
        after = search_counters(url)
        res["server"] = server_delta(before, after)
        res["server"]["uncached"] = res["server"]["cache_hits"] == 0 and res["requests"] <= n
        opened[f"{rate}_rps"] = res
    return out, opened


def open_loop(url: str, paths: Path, rate: int, seconds: int) -> dict:
    """The open-loop client (`_open_loop_client`) in a process of its own, at `rate` offered
    requests/s for `seconds`, over the paths in the file `paths` (one each, in order)."""
    spec = json.dumps({"url": url, "paths": str(paths), "rate": rate, "seconds": seconds, "seed": rate})
    out = subprocess.run(
        [sys.executable, __file__, "--open-loop-client", spec], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _open_loop_client(spec: dict) -> dict:
    """Send the paths at seeded Poisson arrival times (mean `rate` per second) for `seconds`,
    whatever the answers do: each request on its own task, over a kept-alive connection (a new
    one when none is idle), with a minimal HTTP/1.1 client (httpx's own work, at 200 requests/s
    on two shared cores, was seconds of latency that was not the server's), its latency
    counted from its scheduled time. Reports the offered rate and the achieved one (answers
    received over the time from the start to the last answer: `requests` is the arrivals
    sampled), p50/p90/p99 (ms; a request not answered within `TIMEOUT_S` (`timeout_s` of the spec) counts at that
    timeout, so an overloaded server cannot look fast by not answering), non-2xx answers,
    errors (connection and protocol failures and timeouts; `timeouts` of them), and the
    client's lag (how late a request was actually sent: a client that cannot keep up says so
    here). A connection error other than a timeout has no latency: it is counted, not timed."""
    import asyncio

    import numpy as np

    paths = Path(spec["paths"]).read_text().split()
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    timeout_s = float(spec.get("timeout_s", TIMEOUT_S))
    rng = random.Random(spec["seed"])
    times: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        times.append(t)
    if len(times) > len(paths):
        raise SystemExit(f"{len(times)} arrivals, {len(paths)} paths")
    latencies: list[float] = []
    lags: list[float] = []
    codes: list[int] = []
    errors = timeouts = 0
    done: list[float] = []  # when each answer was received (loop time)
    host, port = spec["url"].split("//")[1].split(":")
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def fetch(path: str) -> int:
        """One GET over a kept-alive connection (a new one when none is idle): minimal HTTP/1.1,
        no client library, so that the client's own work does not add to what it measures."""
        reader, writer = idle.pop() if idle else await asyncio.open_connection(host, int(port))
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        idle.append((reader, writer))
        return int(head[9:12])

    t0 = 0.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        nonlocal t0
        t0 = loop.time() + 0.2

        async def one(at: float, path: str) -> None:
            nonlocal errors, timeouts
            lags.append(loop.time() - at)
            try:
                code = await asyncio.wait_for(fetch(path), timeout_s)
            except TimeoutError:
                errors += 1
                timeouts += 1
                latencies.append(loop.time() - at)  # at least the timeout: in the percentiles
                return
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                errors += 1
                return
            codes.append(code)
            done.append(loop.time())
            latencies.append(done[-1] - at)

        tasks = []
        for when, path in zip(times, paths, strict=False):
            delay = t0 + when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(t0 + when, path)))
        await asyncio.gather(*tasks)
        for _, writer in idle:
            writer.close()

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
    lat = np.array(latencies) * 1000
    lag = np.array(lags) * 1000

    def pct(a: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(a, q)), 2) if len(a) else None

    return {
        "offered_rps": rate,
        "seconds": seconds,
        "requests": len(times),
        "completed": len(done),
        # 2xx answers over the whole run (to the last answer if later): a server that stalls or
        # sheds with 503s does not "achieve" the offered rate
        "achieved_rps": round(sum(c < 300 for c in codes) / (max(max(done), t0 + seconds) - t0), 1)
        if done
        else 0.0,
        "non2xx": sum(c >= 300 for c in codes),
        "status_5xx": sum(c >= 500 for c in codes),
        "errors": errors,
        "timeouts": timeouts,
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "max_ms": round(float(lat.max()), 2) if len(lat) else None,
        "client_lag_p99_ms": pct(lag, 99),
        "client_lag_max_ms": round(float(lag.max()), 2) if len(lag) else None,
    }


def train_shop(base: Path, products: int, users: int, events: int, light: bool, env: dict) -> float:
    """Generate and train a demo shop under `base` (kept: a second run reuses it)."""
    data, work = base / "data", base / "w"
    if (work / "bundles" / "CURRENT").exists():
        return 0.0
    from shelfwise.demo import generate_demo

    t0 = time.monotonic()
    generate_demo(data, products=products, users=users, events=events, seed=1)
    extra = ["--tune-seconds", "5", "--sasrec-seconds", "60"]
    if light:  # the large shop is for search: one cheap recommender, no fine-tuning
        extra = ["--models", "popularity,itemknn", "--tune-seconds", "0", "--sasrec-seconds", "0",
                 "--finetune-seconds", "0", "--cross-encoder-seconds", "0", "--refit-seconds", "0"]  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", "train", "--data", str(data), "--workdir", str(work), *extra],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.monotonic() - t0


def logged_queries(data: Path) -> list[str]:
    import csv

    with open(data / "events.csv", encoding="utf-8", errors="replace") as fh:
        return [r["query"] for r in csv.DictReader(fh) if r["event_type"] == "search" and r["query"]]


def smaps_rollup(pid: int) -> dict[str, int]:
    """A process's memory from /proc/PID/smaps_rollup, in MiB: `rss` (every resident page it
    maps, shared ones in full), `pss` (shared pages divided among the processes mapping them:
    the sum over processes is what they take together), `anonymous` (its private heap)."""
    fields = {"Rss": "rss", "Pss": "pss", "Anonymous": "anonymous"}
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            out[fields[name]] = round(int(rest.split()[0]) / 1024)
    return out


DISTINCT_SEARCHES = 200  # per worker, before the mixed load (see `worker_memory`)


def worker_memory(
    work: Path, data: Path, port: int, env: dict, workers: int, seconds: int, preload: bool = True
) -> dict:
    """`shelfwise serve --workers N`: each process's RSS and PSS after the workers have answered
    searches and recommendations for `seconds` (wrk, 8 connections: the pages they touch are
    mapped), and the total. With one worker uvicorn serves from its own process; with several a
    master process supervises the workers."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, "-m", "shelfwise.cli", "serve", "--workdir", str(work), "--port", str(port),
         "--absorb-seconds", "0", "--workers", str(workers), *([] if preload else ["--no-preload"])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        master = psutil.Process(proc.pid)
        deadline = time.monotonic() + 600
        while workers > 1 and time.monotonic() < deadline:  # every worker has loaded its bundle
            kids = [c for c in master.children() if "resource_tracker" not in " ".join(c.cmdline())]
            if (
                len(kids) == workers
                and all(smaps_rollup(c.pid).get("anonymous", 0) > 100 for c in kids)
                and _steady(kids)
            ):
                break
            time.sleep(1)
        kids = [c for c in master.children() if "resource_tracker" not in " ".join(c.cmdline())]
        worker_pids = [c.pid for c in kids] if workers > 1 else [proc.pid]
        started = [smaps_rollup(pid) for pid in worker_pids]
        queries = logged_queries(data)
        distinct = distinct_query_paths(queries, catalog_texts(data), DISTINCT_SEARCHES * workers, seed=16)
        failed = 0
        for path in distinct:  # one connection each: the kernel hands them to the workers in turn
            failed += httpx.get(url + path, timeout=60, headers={"Connection": "close"}).status_code >= 500
        searched = [smaps_rollup(pid) for pid in worker_pids]
        tmp = Path(tempfile.mkdtemp(prefix="sw-mem-"))
        queries = queries[:2000]
        import urllib.parse

        (tmp / "paths.txt").write_text(
            "\n".join(f"/v1/search?q={urllib.parse.quote(q)}&k=10" for q in queries)
            + "\n"
            + "\n".join(f"/v1/recommendations/mem-{i}?k=10" for i in range(500))
            + "\n"
        )
        load = wrk(url, LUA_PATHS, {"WRK_PATHS": str(tmp / "paths.txt")}, seconds, 8)
        shutil.rmtree(tmp, ignore_errors=True)
        kids = [c for c in master.children() if "resource_tracker" not in " ".join(c.cmdline())]
        procs = [("worker", c.pid) for c in kids] if workers > 1 else [("worker", proc.pid)]
        if workers > 1:
            procs.insert(0, ("master", proc.pid))
        each = [{"role": role, **smaps_rollup(pid)} for role, pid in procs]
        ws = [e for e in each if e["role"] == "worker"]
        return {
            "workers": workers,
            "preload": preload,
            "worker_pss_mib_started": round(sum(e["pss"] for e in started) / len(started)),
            f"worker_pss_mib_after_{DISTINCT_SEARCHES}_distinct_searches": round(
                sum(e["pss"] for e in searched) / len(searched)
            ),
            f"worker_anonymous_mib_growth_over_{DISTINCT_SEARCHES}_distinct_searches": round(
                sum(b["anonymous"] - a["anonymous"] for a, b in zip(started, searched, strict=True))
                / len(searched)
            ),
            f"total_pss_mib_after_{DISTINCT_SEARCHES}_distinct_searches": sum(e["pss"] for e in searched)
            + (smaps_rollup(proc.pid)["pss"] if workers > 1 else 0),
            "distinct_searches_5xx": failed,
            "processes": each,
            "worker_rss_mib_mean": round(sum(e["rss"] for e in ws) / len(ws)),
            "worker_pss_mib_mean": round(sum(e["pss"] for e in ws) / len(ws)),
            "total_pss_mib": sum(e["pss"] for e in each),
            "total_rss_mib": sum(e["rss"] for e in each),
            "requests_answered": load["requests"],
            "non2xx": load["non2xx"],
        }
    finally:
        stop(proc)


def _steady(procs: list) -> bool:
    """Whether the processes' private memory stopped growing (their bundles are loaded)."""
    before = [smaps_rollup(p.pid).get("anonymous", 0) for p in procs]
    time.sleep(2)
    after = [smaps_rollup(p.pid).get("anonymous", 0) for p in procs]
    return all(abs(a - b) <= 2 for a, b in zip(before, after, strict=True))


def memory_report(
    work: Path, data: Path, port: int, env: dict, seconds: int, baseline_src: str | None = None
) -> dict:
    """Memory of 1 and 4 workers serving the same bundle (see `worker_memory`); with
    `baseline_src`, 1 and 4 workers of that source tree too (`baseline`)."""
    from shelfwise.serving import current_bundle

    bundle = current_bundle(work)
    mapped = sorted(str(f.relative_to(bundle)) for f in bundle.rglob("*") if f.suffix in (".npy", ".faiss"))
    out: dict = {
        **provenance(),
        "bundle": bundle.name,
        "products": len(json.loads((bundle / "catalog.json").read_text())["category"]),
        "memory_mapped_files": {
            "count": len(mapped),
            "mib": round(sum((bundle / f).stat().st_size for f in mapped) / 2**20, 1),
        },
        "protocol": "shelfwise serve --workers N, wrk 8 connections for the stated seconds (logged "
        "queries and recommendations), then /proc/PID/smaps_rollup of every process; MiB",
    }
    for n in (1, 4):
        out[f"{n}_workers"] = worker_memory(work, data, port, env, n, seconds)
    # uvicorn's own workers (each loads the bundle itself), in the same run for comparison
    out["4_workers_no_preload"] = worker_memory(work, data, port, env, 4, seconds, preload=False)
    one, four = out["1_workers"], out["4_workers"]
    out["four_vs_one_total_pss"] = round(four["total_pss_mib"] / one["total_pss_mib"], 2)
    out["four_no_preload_vs_one_total_pss"] = round(
        out["4_workers_no_preload"]["total_pss_mib"] / one["total_pss_mib"], 2
    )
    if baseline_src:
        src = str(Path(baseline_src).resolve())
        base_env = dict(env, PYTHONPATH=src)
        commit = subprocess.run(
            ["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        # the folder's last two parts, not this machine's absolute path (readers elsewhere);
        # the commit when the folder is a checkout
        out["baseline"] = {"src": "/".join(Path(src).parts[-2:]), "commit": commit or None}
        for n in (1, 4):
            out["baseline"][f"{n}_workers"] = worker_memory(work, data, port, base_env, n, seconds)
    return out


def start_server(work: Path, port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shelfwise.cli", "serve", "--workdir", str(work), "--port", str(port),
         "--absorb-seconds", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    for _ in range(600):  # the server pre-searches the logged head queries after loading
        if httpx.get(url + "/readyz").json().get("search_cache_warmed") is not None:
            break
        time.sleep(0.5)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/serve.json")
    ap.add_argument("--work", default=None, help="keep the trained shops here (default: a temp dir)")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--products", type=int, default=5000)
    ap.add_argument("--users", type=int, default=6000)
    ap.add_argument("--events", type=int, default=250_000)
    ap.add_argument("--large-products", type=int, default=100_000, help="the second shop (0: skip)")
    ap.add_argument(
        "--search-only",
        action="store_true",
        help="measure search only (computing the dict app's table takes minutes): the file then "
        "holds no recommendation or event results, since every number in it comes from this run",
    )
    ap.add_argument(
        "--memory-only",
        action="store_true",
        help="measure only the memory of 1 and 4 workers on the large shop (the 5k shop with "
        "--large-products 0) and replace the `worker_memory` section of --out, which carries its "
        "own provenance record (the file's other sections keep theirs)",
    )
    ap.add_argument(
        "--baseline-src",
        default=None,
        help="with --memory-only: also measure 1 and 4 workers with this checkout's src directory "
        "(PYTHONPATH; e.g. a worktree at the commit before a change) on the same bundle",
    )
    ap.add_argument(
        "--open-loop-rates",
        default=",".join(map(str, OPEN_LOOP_RATES)),
        help="offered requests/s of the open-loop runs on the first shop (comma-separated; '' for none)",
    )
    ap.add_argument(
        "--keep-memory",
        action="store_true",
        help="do not measure worker memory: keep the `worker_memory` section of --out as it is "
        "(it carries its own provenance record)",
    )
    ap.add_argument("--open-loop-client", default=None, help=argparse.SUPPRESS)  # the client process
    args = ap.parse_args()
    if args.open_loop_client is not None:
        print(json.dumps(_open_loop_client(json.loads(args.open_loop_client))))
        return
    rates = tuple(int(r) for r in args.open_loop_rates.split(",") if r.strip())
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (Debian package wrk)")
    root = Path(args.work or tempfile.mkdtemp(prefix="sw-serve-bench-"))
    if args.memory_only:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        size = args.large_products or args.products
        shop = root / f"shop{size}"
        if args.large_products:
            train_shop(shop, size, 3000, 60_000, light=True, env=env)
        else:
            train_shop(shop, size, args.users, args.events, light=False, env=env)
        out = Path(args.out)
        results = json.loads(out.read_text()) if out.exists() else provenance()
        results["worker_memory"] = memory_report(
            shop / "w", shop / "data", 18083, env, args.seconds, args.baseline_src
        )
        out.write_text(json.dumps(results, indent=2))
        print(json.dumps(results["worker_memory"], indent=2))
        return
    base = root / f"shop{args.products}"
    data, work = base / "data", base / "w"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    results: dict = provenance()
    out_file = Path(args.out)
    if args.keep_memory and out_file.exists():  # measured by another run, with its own provenance
        kept = json.loads(out_file.read_text()).get("worker_memory")
        if kept is not None:
            results["worker_memory"] = kept
    train_s = train_shop(base, args.products, args.users, args.events, light=False, env=env)
    from shelfwise.serving import Bundle, current_bundle
    from shelfwise.serving._service import Service

    bundle = Bundle.load(current_bundle(work), verify=False)
    svc = Service(work)
    import csv

    raw_users: list[str] = []
    with open(data / "events.csv", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            if row["user_id"] and row["user_id"] not in raw_users[-1:]:
                raw_users.append(row["user_id"])
    queries = logged_queries(data)
    raw_users = list(dict.fromkeys(raw_users))
    rng = random.Random(0)
    rng.shuffle(raw_users)
    paths = [f"/v1/recommendations/{u}?k=10" for u in raw_users[:3000]] + [
        f"/v1/recommendations/new-visitor-{i}?k=10" for i in range(300)
    ]
    rng.shuffle(paths)
    # the dict app answers the same users with the same lists
    table = {} if args.search_only else {u: svc.recommend(u, 10).items for u in raw_users[:3000]}
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
    body = [
        {"user_id": f"bench-{i % 997}", "product_id": products[i % len(products)], "event_type": "view",
         "timestamp": "2026-11-01T12:00:00Z", "session_id": f"b{i}"}
        for i in range(100)
    ]  # fmt: skip
    (tmp / "events.json").write_text(json.dumps(body))

    results["bundle"] = {
        "version": bundle.version,
        "products": len(products),
        "users": int(bundle.interactions.n_users),
        "default_model": bundle.manifest["default_model"],
        "train_seconds": round(train_s, 1),
    }
    results["protocol"] = (
        f"wrk -t1 on loopback, {args.seconds}s per run after a warm-up; one uvicorn worker "
        "(uvloop + httptools) per app; the client shares the machine's cores; latency in ms"
    )
    port_dict, port_sw = 18081, 18082
    dict_proc = None
    if not args.search_only:
        dict_proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "dict_app:app", "--port", str(port_dict), "--loop", "uvloop",
             "--http", "httptools", "--no-access-log", "--log-level", "warning"],
            cwd=tmp, env=dict(env, DICT_FILE=str(tmp / "dict.json")),
        )  # fmt: skip
    sw_proc = None
    url = f"http://127.0.0.1:{port_sw}"
    try:
        sw_proc = start_server(work, port_sw, env)
        if dict_proc is not None:
            wait_ready(f"http://127.0.0.1:{port_dict}", dict_proc, "/v1/recommendations/x")
            penv = {"WRK_PATHS": str(tmp / "rec_paths.txt")}
            for port in (port_dict, port_sw):  # warm-up
                wrk(f"http://127.0.0.1:{port}", LUA_PATHS, penv, 3, 32)
            results["dict_app_recommendations"] = wrk(
                f"http://127.0.0.1:{port_dict}", LUA_PATHS, penv, args.seconds, 32
            )
            results["recommendations"] = wrk(url, LUA_PATHS, penv, args.seconds, 32)
            dict_proc.terminate()
        else:
            results["not_measured"] = ["dict_app_recommendations", "recommendations", "events"]
        spenv = {"WRK_PATHS": str(tmp / "search_paths.txt")}
        wrk(url, LUA_PATHS, spenv, 3, 8)
        results["search_query_log"] = wrk(url, LUA_PATHS, spenv, args.seconds, 32)
        closed, opened = uncached_search(url, data, tmp, args.seconds, "s", rates)
        results["search_uncached"] = {str(len(products)): closed}
        if rates:
            results["search_open_loop"] = {
                "products": len(products),
                "protocol": "a client process sends distinct uncached queries at seeded Poisson "
                "arrival times at the offered rate for the stated seconds, one request per task over "
                "kept-alive connections (minimal HTTP/1.1 on asyncio/uvloop); latency from each "
                "request's scheduled time; "
                "levels from /metrics; one uvicorn worker serves",
                **opened,
            }
        if not args.search_only:
            eenv = {"WRK_BODY": str(tmp / "events.json")}
            ev = wrk(f"{url}/v1/events", LUA_POST, eenv, args.seconds, 32)
            ev["events_per_request"] = len(body)
            ev["events_per_second"] = round(ev["rps"] * len(body), 1)
            results["events"] = ev
        stop(sw_proc)
        if args.large_products:
            big = root / f"shop{args.large_products}"
            big_s = train_shop(big, args.large_products, 3000, 60_000, light=True, env=env)
            results["large_bundle"] = {"products": args.large_products, "train_seconds": round(big_s, 1)}
            sw_proc = start_server(big / "w", port_sw, env)
            results["search_uncached"][str(args.large_products)] = uncached_search(
                url, big / "data", tmp, args.seconds, "l"
            )[0]
            stop(sw_proc)
            if not args.keep_memory:
                results["worker_memory"] = memory_report(big / "w", big / "data", port_sw, env, args.seconds)
    finally:
        for p in (dict_proc, sw_proc):
            if p is not None:
                stop(p)
    small = results["search_uncached"][str(len(products))]["32_conns"]
    targets: dict = {}
    if not args.search_only:
        rec, ref = results["recommendations"], results["dict_app_recommendations"]
        targets = {
            "recommendations_vs_dict_app": round(rec["rps"] / ref["rps"], 3),
            "recommendations_ratio_ok (>= 0.5)": rec["rps"] / ref["rps"] >= 0.5,
            "recommendations_p99_ok (< 50 ms)": rec["p99_ms"] < 50,
            "events_ok (>= 5000/s durable)": results["events"]["events_per_second"] >= 5000,
        }
    results["targets"] = {
        **targets,
        "search_p99_ok (< 100 ms, query log, 32 conns)": results["search_query_log"]["p99_ms"] < 100,
        "search_uncached_p99_ok (<= 100 ms, every query different, 32 conns, 5k products)": small["p99_ms"]
        <= 100,
        "search_uncached_really_uncached": all(
            r["server"]["uncached"] for shop in results["search_uncached"].values() for r in shop.values()
        ),
        "no_5xx": all(r.get("non2xx", 0) == 0 for r in _runs(results)),
        "uncached_5xx_at_32_conns": {
            shop: r["32_conns"]["non2xx"] for shop, r in results["search_uncached"].items()
        },
    }
    if "search_open_loop" in results:
        results["targets"]["open_loop_5xx"] = {
            k: v["status_5xx"] for k, v in results["search_open_loop"].items() if isinstance(v, dict)
        }
    shutil.rmtree(tmp, ignore_errors=True)
    if args.work is None:
        shutil.rmtree(root, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def _runs(results: dict) -> list[dict]:
    """Every wrk result in `results`, however deep."""
    out: list[dict] = []
    for v in results.values():
        if isinstance(v, dict):
            out += [v] if "rps" in v else _runs(v)
    return out


if __name__ == "__main__":
    main()
