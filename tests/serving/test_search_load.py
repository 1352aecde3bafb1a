"""Search under concurrent, uncached traffic, over real HTTP: the latency budget (stages skipped
and reported, metrics counted), load shedding (503 + Retry-After), the no-match answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import Server


def distinct_queries(workdir: Path, n: int) -> list[str]:
    """`n` different two-word queries made of catalog words (each has a keyword match)."""
    from shelfwise.search import SearchEngine
    from shelfwise.serving import current_bundle

    titles = SearchEngine.load(current_bundle(workdir) / "search").catalog.title
    words = sorted({w for t in titles for w in t.lower().split() if w.isalpha() and len(w) > 3})
    out: list[str] = []
    for i, a in enumerate(words):
        for b in words[i + 1 :: 7]:
            out.append(f"{a} {b}")
            if len(out) == n:
                return out
    raise AssertionError("catalog too small")


def burst(url: str, queries: list[str]) -> list[httpx.Response]:
    """All queries at once, one connection each (lined up on a barrier)."""
    gate = threading.Barrier(len(queries))

    def one(q: str) -> httpx.Response:
        gate.wait()
        return httpx.get(url + "/v1/search", params={"q": q, "k": 5}, timeout=60)

    with ThreadPoolExecutor(len(queries)) as pool:
        return list(pool.map(one, queries))


def metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = server.client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_a_burst_of_distinct_queries_is_answered_within_its_budget(served_workdir):
    """A zero budget: every miss is answered at the cheapest level (BM25 alone), says so, and
    the metrics count it; nothing is refused, nothing is cached."""
    _, work = served_workdir
    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0", "--search-budget-ms", "0")
    try:
        queries = distinct_queries(work, 24)
        answers = burst(s.url, queries)
        assert [r.status_code for r in answers] == [200] * len(queries)
        for r in answers:
            body = r.json()
            assert body["stages"] == ["lexical"] and body["degraded"] is True, body
            assert body["match"] == "keyword" and body["items"]
        m = metrics(s)
        assert m[("shelfwise_search_degraded_total", ())] == len(queries)
        assert m[("shelfwise_search_computed_total", (("level", "lexical"),))] == len(queries)
        assert m[("shelfwise_search_stage_skipped_total", (("stage", "semantic"),))] == len(queries)
        assert not any(name == "shelfwise_search_shed_total" and v for (name, _), v in m.items())
        assert m[("shelfwise_search_batch_size_sum", ())] == len(queries)  # each in some batch
        assert m[("shelfwise_search_encoder_batch_size_count", ())] == 0  # BM25 alone: no encoder
        ready = s.client.get("/readyz").json()["search_queue"]
        assert ready["budget_ms"] == 0 and ready["depth"] == 0 and ready["limit"] == 256
        # a degraded page is not cached: the same query is computed again when asked again
        again = s.client.get("/v1/search", params={"q": queries[0], "k": 5}).json()
        assert again["degraded"] is True
        assert metrics(s)[("shelfwise_search_computed_total", (("level", "lexical"),))] == len(queries) + 1
    finally:
        s.stop()


def test_overload_is_shed_with_retry_after_and_counted(served_workdir):
    """A generous budget (the whole pipeline for every miss) and room for one miss: a burst of
    distinct queries gets some answers and, for the rest, 503 with Retry-After; the metric
    counts every refusal. A query that matches nothing gets no results, only a fallback that
    says it is one."""
    _, work = served_workdir
    s = Server(
        work,
        "--absorb-seconds",
        "0",
        "--reload-seconds",
        "0",
        "--search-budget-ms",
        "60000",
        "--search-queue",
        "1",
    )
    try:
        one = s.client.get("/v1/search", params={"q": "asdkjhqwe", "k": 5}).json()
        assert one["degraded"] is False and one["stages"][:2] == ["lexical", "semantic"]
        assert one["match"] == "none" and one["total"] == 0
        assert one["fallback"] == "popular" and one["items"]  # the demo shop has sales
        queries = distinct_queries(work, 30)
        answers = burst(s.url, queries)
        codes = [r.status_code for r in answers]
        assert set(codes) == {200, 503}, codes
        for r in answers:
            if r.status_code == 503:
                assert int(r.headers["retry-after"]) >= 1 and "overloaded" in r.json()["error"]
            else:
                assert r.json()["degraded"] is False and "semantic" in r.json()["stages"]
        m = metrics(s)
        shed = sum(v for (name, _), v in m.items() if name == "shelfwise_search_shed_total")
        assert shed == codes.count(503)
        # every computed miss went through one batch of the queue (room for one: batches of 1),
        # and the full pipeline's queries through the encoder
        computed = 1 + codes.count(200)
        assert m[("shelfwise_search_batch_size_sum", ())] == computed
        assert m[("shelfwise_search_batch_size_count", ())] == computed
        assert m[("shelfwise_search_queue_wait_seconds_count", ())] == computed
        assert m[("shelfwise_search_encoder_batch_size_count", ())] >= 1
        assert ("shelfwise_search_queue_depth", ()) in m
        assert not any(name == "shelfwise_search_degraded_total" and v for (name, _), v in m.items())
    finally:
        s.stop()


def test_warm_queries_fill_the_cache_with_the_most_logged_queries(served_workdir):
    """`--warm-queries N` pre-searches the N most frequent logged queries after the bundle loads:
    /readyz says how many (0 with warming off, as every other test server runs), and the most
    logged query is then a cache hit."""
    from shelfwise.search import SearchEngine
    from shelfwise.serving import current_bundle

    _, work = served_workdir
    logged = [
        p
        for p, score in SearchEngine.load(current_bundle(work) / "search").autocomplete_.phrases
        if score > 1000.0
    ]
    assert len(logged) > 3, "the demo shop should have a query log"
    off = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        assert off.client.get("/readyz").json()["search_cache_warmed"] == 0
    finally:
        off.stop()
    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0", "--warm-queries", "3")
    try:
        deadline = time.monotonic() + 120
        while (warmed := s.client.get("/readyz").json()["search_cache_warmed"]) is None:
            assert time.monotonic() < deadline, "the warm-up did not end in 120 s"
            time.sleep(0.2)
        assert warmed == 3
        assert "search cache warmed with 3 logged queries" in s.logs()
        key = ("shelfwise_cache_total", (("outcome", "hit"), ("surface", "search")))
        before = metrics(s).get(key, 0.0)
        assert s.client.get("/v1/search", params={"q": logged[0], "k": 10}).status_code == 200
        assert metrics(s).get(key, 0.0) == before + 1
    finally:
        s.stop()
