"""What an uncached search costs, stage by stage, as the server's search queue computes it
(`Service.search_batch`: the queries of a batch encoded in one encoder call), for batches of 1,
8 and 32 distinct queries (what the queue takes at once under that many concurrent misses) at
each pipeline level. In-process, one thread, the server's thread settings (one intra-op thread
for onnxruntime, OMP_NUM_THREADS=1).

Each stage's time is exclusive (a stage's own time, not the stages it calls), per query, in ms:
`encoder` (the query encoder calls: MiniLM, and the multilingual encoder when the catalog has
one), `lexical` (tantivy BM25), `faiss` (the vector indexes), `ranker` (LightGBM), `features`
(the rest of building the ranker's features, fusion included), `facets`, and `other` (spelling,
the page, the business rules, the cache). `total_ms` is the wall time per query of the batch,
`cpu_ms` the thread's CPU time per query (what the machine's other processes do not inflate).

    python benchmarks/search_stages.py --work W [--queries 96] [--out benchmarks/search-stages.json]
        [--candidates N] [--levels full,...]

`--candidates N` prices another candidate depth (each retriever's top N, the engine's
`candidates`, instead of the bundle's; the ranker stays the bundle's, whose cost per candidate
does not depend on the depth it was trained at); `--levels` measures only those levels. Each
batch's wall time is kept too: `p50_ms`/`p99_ms` are per batch (per query at batch 1).

W: a trained workdir (e.g. `benchmarks/serve.py --work DIR` keeps its shop at DIR/shop5000/w;
its data at DIR/shop5000/data gives the query words).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("SHELFWISE_ENCODER_THREADS", "1")  # as `shelfwise serve` sets them
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _provenance import provenance  # noqa: E402

BATCHES = (1, 8, 32)

_spent: dict[str, float] = defaultdict(float)
_stack: list[list[float]] = []  # per open stage: [start, time spent in stages it called]


def _timed(stage: str, fn: Any) -> Any:
    def wrapper(*a: Any, **kw: Any) -> Any:
        _stack.append([time.perf_counter(), 0.0])
        try:
            return fn(*a, **kw)
        finally:
            start, inner = _stack.pop()
            took = time.perf_counter() - start
            _spent[stage] += took - inner
            if _stack:
                _stack[-1][1] += took

    return wrapper


def instrument() -> None:
    """Time the stages by wrapping the methods that do them (class-level, this process only)."""
    from shelfwise.search import _engine, _features, _index, _retrievers

    patches = [
        (_retrievers.SemanticRetriever, "encode_queries", "encoder"),
        (_retrievers.SemanticRetriever, "search_vectors", "faiss"),
        (_retrievers.LexicalRetriever, "search_terms", "lexical"),
        (_index._BoosterRanker, "predict", "ranker"),
        (_features.RankingFeatures, "_features", "features"),
        (_engine.SearchEngine, "_fuse", "features"),
        (_engine.SearchEngine, "_facets", "facets"),
    ]
    for cls, name, stage in patches:
        setattr(cls, name, _timed(stage, getattr(cls, name)))


def distinct_queries(data: Path, n: int) -> list[str]:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import urllib.parse

    from serve import catalog_texts, distinct_query_paths, logged_queries

    paths = distinct_query_paths(logged_queries(data), catalog_texts(data), n, seed=17)
    return [urllib.parse.unquote(p.split("q=")[1].split("&")[0]) for p in paths]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, help="a trained workdir")
    ap.add_argument("--data", default=None, help="its data (default: WORK/../data)")
    ap.add_argument("--queries", type=int, default=96, help="distinct queries per level and batch size")
    ap.add_argument("--out", default="benchmarks/search-stages.json")
    ap.add_argument("--shop", default=None, help="what the workdir is (recorded: how to make it again)")
    ap.add_argument("--candidates", type=int, default=None, help="retriever depth (default: the bundle's)")
    ap.add_argument("--levels", default=None, help="comma-separated levels to measure (default: all)")
    args = ap.parse_args()
    work = Path(args.work)
    data = Path(args.data) if args.data else work.parent / "data"
    results: dict = provenance()
    instrument()
    from shelfwise.search import Filters
    from shelfwise.serving._service import SearchArgs, Service

    svc = Service(work)
    engine = svc.snapshot.search
    assert engine is not None, "the bundle has no search index"
    levels = engine.levels()
    if args.levels:
        levels = tuple(level for level in levels if level in args.levels.split(","))
    if args.candidates:
        engine.candidates = args.candidates
    n = args.queries - args.queries % max(BATCHES)
    queries = distinct_queries(data, n * len(levels) * len(BATCHES) + 8)
    for q in queries[:8]:  # warm-up: first-call allocations, the no-match threshold's vectors
        svc.search_batch([(SearchArgs(q, 10, Filters()), "full" if "full" in levels else levels[0])])
    queries = queries[8:]
    results["shop"] = args.shop
    results["bundle"] = svc.snapshot.version
    results["products"] = len(engine.catalog)
    results["candidates"] = engine.candidates
    results["protocol"] = (
        f"Service.search_batch over {n} distinct uncached two-word queries per level and batch "
        "size (batches of that many queries), one thread, one onnxruntime intra-op thread; "
        "exclusive ms per query by stage, wall and thread CPU ms per query"
    )
    results["levels"] = {}
    for level in levels:
        per: dict = {}
        for b in BATCHES:
            batch_q, queries = queries[:n], queries[n:]
            _spent.clear()
            t0, c0 = time.perf_counter(), time.thread_time()
            computed = 0
            took = []
            for i in range(0, n, b):
                t1 = time.perf_counter()
                answers = svc.search_batch(
                    [(SearchArgs(q, 10, Filters()), level) for q in batch_q[i : i + b]]
                )
                took.append(1000 * (time.perf_counter() - t1))
                computed += sum(a.extra.get("level") is not None for a in answers)
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            stages = {k: round(1000 * v / n, 3) for k, v in sorted(_spent.items())}
            stages["other"] = round(1000 * wall / n - sum(stages.values()), 3)
            per[f"batch_{b}"] = {
                "total_ms": round(1000 * wall / n, 3),
                "cpu_ms": round(1000 * cpu / n, 3),
                "stages_ms": stages,
                "computed": computed,
                "p50_ms": round(float(statistics.median(took)), 3),
                "p99_ms": round(float(statistics.quantiles(took, n=100)[98]), 3) if len(took) > 1 else None,
            }
        results["levels"][level] = per
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
