"""The search queue's planner and admission, without a server (known costs, no clock races)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from shelfwise.serving._search_queue import Overloaded, SearchQueue, _Job
from tests.conftest import run_async

COSTS = {"full": 0.010, "fused": 0.003, "lexical": 0.0005}


def queue(**kw) -> SearchQueue:
    q = SearchQueue(lambda jobs: [], lambda: ("full", "fused", "lexical"), **kw)
    q.cost_s = dict(COSTS)
    return q


def jobs(deadlines: list[float]) -> list[_Job]:
    return [_Job(i, d, None, None) for i, d in enumerate(deadlines)]  # type: ignore[arg-type]


def test_the_plan_gives_the_richest_level_that_leaves_everyone_their_budget():
    q = queue(budget_s=0.040)
    alone = jobs([0.040])
    q.plan(alone, now=0.0)
    assert alone[0].level == "full"
    # misses that arrived together: the first ones get richer levels as long as every miss
    # behind can still finish at BM25 alone (+ 1 ms of HTTP each) within the budget
    for n, first in ((18, "full"), (30, "lexical")):
        burst = jobs([0.040] * n)
        q.plan(burst, now=0.0)
        levels = [j.level for j in burst]
        assert levels[0] == first and "lexical" in levels, levels
        assert sum(COSTS[lv] for lv in levels) <= 0.040  # all of them done within the budget
    # already late: the cheapest, whatever waits
    late = jobs([-0.001, 0.040])
    q.plan(late, now=0.0)
    assert [j.level for j in late] == ["lexical", "full"]
    # a zero budget: always the cheapest
    q0 = queue(budget_s=0.0)
    zero = jobs([0.0, 0.0])
    q0.plan(zero, now=0.0)
    assert [j.level for j in zero] == ["lexical", "lexical"]


def test_costs_follow_what_the_levels_took_and_an_unused_level_is_tried_again():
    q = queue()
    answers = [SimpleNamespace(extra={"level": "lexical", "cost_s": 0.0015})]
    q._learn(jobs([1.0]), answers, 0.0)  # type: ignore[arg-type]
    assert COSTS["lexical"] < q.cost_s["lexical"] < 0.0015
    assert q.cost_s["full"] < COSTS["full"] and q.cost_s["fused"] < COSTS["fused"]  # idle: decays
    for _ in range(10_000):
        q._learn(jobs([1.0]), answers, 0.0)  # type: ignore[arg-type]
    assert q.cost_s["full"] >= q.cost_s["fused"] >= q.cost_s["lexical"]  # never below the cheaper


def test_admission_refuses_beyond_the_limit_or_the_predicted_wait():
    async def run() -> None:
        q = queue(limit=3, max_wait_s=10.0)
        for _ in range(3):
            q.submit("a miss")
        with pytest.raises(Overloaded) as exc:
            q.submit("one too many")
        assert exc.value.kind == "queue_full" and exc.value.retry_after == "1"
        slow = queue(limit=1000, max_wait_s=0.002)
        slow.cost_s["lexical"] = 0.001
        for _ in range(3):
            slow.submit("a miss")
        with pytest.raises(Overloaded) as exc:
            slow.submit("too slow")
        assert exc.value.kind == "too_slow" and int(exc.value.retry_after) >= 1

    # the worker is not started: nothing leaves the queue
    run_async(run)


def answered(level: str, cost: float) -> list[SimpleNamespace]:
    return [SimpleNamespace(extra={"level": level, "cost_s": cost})]


def test_one_slow_query_does_not_reprice_a_level_but_a_slower_machine_does():
    """A lone miss whose full pipeline takes 20 ms fits a 40 ms budget. One query that took
    300 ms (preempted by another process, a garbage collection) must not send the next lone
    misses down a level; costs that stay high do."""
    q = queue(budget_s=0.040)
    q.cost_s["full"] = 0.020
    for _ in range(10):
        q._learn(jobs([1.0]), answered("full", 0.020), 0.0)  # type: ignore[arg-type]
    q._learn(jobs([1.0]), answered("full", 0.300), 0.0)  # type: ignore[arg-type]
    assert q.cost_s["full"] == pytest.approx(0.020)
    alone = jobs([0.040])
    q.plan(alone, now=0.0)
    assert alone[0].level == "full"
    for _ in range(20):  # the machine got slower: most recent full queries take 60 ms
        q._learn(jobs([1.0]), answered("full", 0.060), 0.0)  # type: ignore[arg-type]
    assert q.cost_s["full"] == pytest.approx(0.060)
    alone = jobs([0.040])
    q.plan(alone, now=0.0)
    assert alone[0].level == "fused"


def test_a_decayed_level_is_not_repriced_by_its_stale_measurements():
    """A level priced out on a busy moment decays while unused; when it runs again at its
    normal cost, the old high measurements (decayed with the estimate) do not bring it back."""
    q = queue(budget_s=0.040)
    for _ in range(20):
        q._learn(jobs([1.0]), answered("full", 0.080), 0.0)  # type: ignore[arg-type]
    assert q.cost_s["full"] == pytest.approx(0.080)
    while q.cost_s["full"] > 0.035:  # idle batches of other levels: the estimate decays
        q._learn(jobs([1.0]), answered("lexical", 0.0005), 0.0)  # type: ignore[arg-type]
    q._learn(jobs([1.0]), answered("full", 0.020), 0.0)  # type: ignore[arg-type]
    assert q.cost_s["full"] <= 0.035


def test_misses_waiting_together_are_computed_as_one_batch_and_reported():
    """Misses queued while the worker is busy are taken at once: one `run_batch` call (one
    encoder call for their queries), and `on_batch` (the server's metrics) sees its size and
    each miss's wait."""
    computed: list[list[tuple[object, str]]] = []
    told: list[tuple[int, list[str], list[float]]] = []

    def run_batch(js: list[tuple[object, str]]) -> list[SimpleNamespace]:
        computed.append(js)
        return [SimpleNamespace(extra={"level": level, "cost_s": 0.001}) for _, level in js]

    def on_batch(batch: list[_Job], started: float) -> None:
        told.append((len(batch), [j.level for j in batch], [started - j.arrived for j in batch]))

    async def run() -> None:
        q = SearchQueue(run_batch, lambda: ("full", "fused", "lexical"), budget_s=10.0, on_batch=on_batch)
        q.cost_s = dict(COSTS)
        futures = [q.submit(f"query {i}") for i in range(5)]  # the worker is not started yet
        q.start()
        try:
            answers = await asyncio.wait_for(asyncio.gather(*futures), 30)
        finally:
            q.stop()
        assert len(answers) == 5

    run_async(run)
    assert [len(js) for js in computed] == [5]
    assert [args for args, _ in computed[0]] == [f"query {i}" for i in range(5)]
    ((size, levels, waits),) = told
    assert size == 5 and levels == ["full"] * 5 and all(w >= 0 for w in waits)


def test_misses_of_one_batch_share_their_level_s_encoder_call():
    """Full costs 10 ms for a query encoded alone, 6 ms of it the encoder call's fixed part:
    six misses that arrived together all fit a 40 ms budget at full when the plan counts the
    call once (10 + 5 x 4 = 30 ms); priced as six separate calls they do not."""
    shared = queue(budget_s=0.040)
    shared.encoder_s = {"full": (0.006, 0.001), "fused": (0.002, 0.0005)}
    batch = jobs([0.040] * 6)
    shared.plan(batch, now=0.0)
    assert [j.level for j in batch] == ["full"] * 6
    alone = queue(budget_s=0.040)  # no encoder model: every query pays a whole call
    batch = jobs([0.040] * 6)
    alone.plan(batch, now=0.0)
    assert [j.level for j in batch].count("full") < 6


def test_costs_learned_from_a_shared_call_are_priced_as_if_encoded_alone():
    """A full query that took 5 ms in a call of 8 (its share 1.5 ms of the call's 12 ms) costs
    3.5 ms besides the encoder: alone it would cost 3.5 + 6 + 1 = 10.5 ms. The call took what
    the calibration predicts (6 + 8 x 0.75 = 12 ms): the encoder's scale stays 1."""
    q = queue()
    q.encoder_s = {"full": (0.006, 0.00075)}
    extra = {"level": "full", "cost_s": 0.005, "encoder_s": 0.0015, "encoder_batch": 8}
    answers = [SimpleNamespace(extra=dict(extra)) for _ in range(8)]
    for _ in range(3):
        q._learn(jobs([1.0] * 8), answers, 0.0)  # type: ignore[arg-type]
    assert q.cost_s["full"] == pytest.approx(0.005 - 0.0015 + 0.006 + 0.00075)
    assert q._encoder("full") == pytest.approx((0.006, 0.00075))
    slow = [SimpleNamespace(extra=dict(extra, encoder_s=0.003)) for _ in range(8)]  # calls 2x slower
    for _ in range(40):
        q._learn(jobs([1.0] * 8), slow, 0.0)  # type: ignore[arg-type]
    assert q._encoder("full") == pytest.approx((0.012, 0.0015))


def test_calls_that_found_every_vector_cached_do_not_reprice_the_encoder():
    """A fake encoder costs 6 ms per call + 1 ms per query, the engine 4 ms per query: a fresh
    full query costs 11 ms encoded alone. Calls that encoded nothing (every vector cached) are
    reported with `encoder_batch` 0: after 16 of them and 15 fresh calls of 8 the estimate is
    still 11 ms and the encoder's scale 1 (counted as calls of 8 that took ~0 ms, they scaled
    the encoder down to nothing and the estimate fell to the engine's 4 ms)."""
    q = queue()
    q.encoder_s = {"full": (0.006, 0.001)}
    fresh = {"level": "full", "cost_s": 0.004 + 0.014 / 8, "encoder_s": 0.014 / 8, "encoder_batch": 8}
    cached = {"level": "full", "cost_s": 0.004, "encoder_s": 0.0, "encoder_batch": 0}
    for i in range(31):
        extra = cached if i % 2 == 0 else fresh
        q._learn(jobs([1.0] * 8), [SimpleNamespace(extra=dict(extra)) for _ in range(8)], 0.0)  # type: ignore[arg-type]
    assert q._encoder("full") == pytest.approx((0.006, 0.001))
    assert q.cost_s["full"] == pytest.approx(0.011)


class _FakeEncoderEngine:
    """An engine whose query encoder costs 6 ms per call + 1 ms per new text on a fake clock,
    and caches vectors as `SearchEngine.encode_queries` does."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cached: set[str] = set()
        self.catalog = SimpleNamespace(title=[f"word{i} thing{i}" for i in range(50)])

    def encode_queries(self, texts, multilingual=True, encoded=None):
        new = set(texts) - self.cached
        if new:
            self.now += 0.006 + 0.001 * len(new)
        self.cached |= new
        if encoded is not None:
            encoded.append(len(new))
        return [None] * len(texts)


def test_encoder_calibration_encodes_new_texts_at_every_level(monkeypatch):
    """Calibrating "full" then "fused" on one engine: each level's calls encode texts not in the
    vector cache, so both measure the encoder (6 ms per call, 1 ms per query), not lookups."""
    from shelfwise.serving import _service

    eng = _FakeEncoderEngine()
    monkeypatch.setattr(_service, "time", SimpleNamespace(perf_counter=lambda: eng.now))
    service = SimpleNamespace(snapshot=SimpleNamespace(search=eng))
    for level in ("full", "fused", "full"):
        fixed, per_query = _service.Service.calibrate_encoder(service, level)  # type: ignore[arg-type]
        assert (fixed, per_query) == pytest.approx((0.006, 0.001)), level
