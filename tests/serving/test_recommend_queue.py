"""Admission control for recommendations and similar items: a list that needs the model goes
through a bounded queue with a time limit; what cannot be answered in time is a 503 with Retry-After, counted in
/metrics. The mechanism is asserted (a limit of 0, a full queue, a job that waited too long),
never a wall-clock number."""

from __future__ import annotations

import asyncio
import time

import pytest

from shelfwise.serving._queue import Overloaded
from shelfwise.serving._recommend_queue import RecommendQueue, _Job
from tests.conftest import run_async

from .conftest import Server, catalog_products
from .test_http import ev


def test_admission_refuses_a_full_queue_and_a_predicted_answer_beyond_the_limit():
    async def run() -> None:
        q = RecommendQueue(lambda args: args, limit=2, max_wait_s=10.0, cost_s=0.001)
        q.submit("a")
        q.submit("b")  # the worker is not started: nothing leaves the queue
        with pytest.raises(Overloaded) as exc:
            q.submit("c")
        assert exc.value.kind == "queue_full" and exc.value.retry_after == "1"
        slow = RecommendQueue(lambda args: args, limit=100, max_wait_s=0.0025, cost_s=0.001)
        slow.submit("a")
        slow.submit("b")  # answered at 2 ms: admitted
        with pytest.raises(Overloaded) as exc:
            slow.submit("c")  # at 3 ms
        assert exc.value.kind == "too_slow"
        none = RecommendQueue(lambda args: args, max_wait_s=0.0)
        with pytest.raises(Overloaded):
            none.submit("a")

    run_async(run)


def test_the_worker_answers_in_order_and_refuses_what_waited_past_its_time():
    async def run() -> None:
        q = RecommendQueue(lambda args: args * 2, max_wait_s=60.0, cost_s=0.001)
        q.start()
        try:
            assert await asyncio.gather(*(q.submit(i) for i in range(5))) == [0, 2, 4, 6, 8]
            assert q.computed == 5 and q.depth() == 0
        finally:
            q.stop()
        # a job that arrived long ago (the estimate was optimistic): refused, not computed
        late = RecommendQueue(lambda args: pytest.fail("computed"), max_wait_s=0.5, cost_s=0.001)
        loop = asyncio.get_running_loop()
        job = _Job("x", time.monotonic() - 1.0, loop.create_future(), loop)
        late._answer(job)
        with pytest.raises(Overloaded) as exc:
            await job.future
        assert exc.value.kind == "expired"

    run_async(run)


def test_a_batch_whose_computation_fails_answers_every_job_with_the_error():
    """A queue whose `_compute` raises after answering one job: the others get the error (none
    is left waiting for ever) and the queue is empty once they are answered."""

    class Failing(RecommendQueue):
        def _take(self):
            return [self._jobs.popleft() for _ in range(len(self._jobs))]

        def _compute(self, jobs):
            self._finish(jobs[0], "first", None)
            raise RuntimeError("the model broke")

    async def run() -> None:
        q = Failing(lambda args: args)
        loop = asyncio.get_running_loop()
        jobs = [_Job(i, time.monotonic(), loop.create_future(), loop) for i in range(3)]
        for j in jobs:
            q._jobs.append(j)
        q.start()
        try:
            with q._cv:
                q._cv.notify()
            out = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
            assert out[0] == "first"
            assert [str(e) for e in out[1:]] == ["the model broke"] * 2
            assert q.depth() == 0
        finally:
            q.stop()

    run_async(run)


def _shed(metrics: str, reason: str, surface: str = "recommend") -> float:
    for line in metrics.splitlines():
        if line.startswith(f"shelfwise_{surface}_shed_total{{") and f'reason="{reason}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_over_http_a_list_that_needs_the_model_beyond_the_limit_is_a_503(served_workdir):
    _, work = served_workdir
    srv = Server(
        work,
        *("--absorb-seconds", "0", "--reload-seconds", "0"),
        *("--recommend-max-wait-ms", "0", "--similar-max-wait-ms", "0"),
    )
    try:
        c = srv.client
        # lookups need no model time: answered whatever the limit
        assert c.get("/v1/recommendations/a-new-visitor").status_code == 200
        assert c.get("/v1/recommendations/u3").status_code == 200  # precomputed
        # a shopper with events since the bundle: the model must run, and the limit is 0
        product = catalog_products(work)[0]
        assert c.post("/v1/events", json=[ev("u3", product, "view")]).status_code == 202
        r = c.get("/v1/recommendations/u3")
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) >= 1
        assert "overloaded" in r.json()["error"]
        assert _shed(c.get("/metrics").text, "too_slow") == 1.0
        queue = c.get("/readyz").json()["recommend_queue"]
        assert queue["max_wait_ms"] == 0.0 and queue["depth"] == 0
        # similar items of a product not asked for since the bundle: the model must run
        assert c.get("/v1/items/no-such-product/similar").status_code == 404  # before the queue
        r = c.get(f"/v1/items/{product}/similar")
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) >= 1 and "similar items" in r.json()["error"]
        metrics = c.get("/metrics").text
        assert _shed(metrics, "too_slow", "similar") == 1.0
        assert _shed(metrics, "too_slow") == 1.0  # a queue of its own: not counted as recommendations
        assert "shelfwise_similar_queue_depth" in metrics
        queue = c.get("/readyz").json()["similar_queue"]
        assert queue["max_wait_ms"] == 0.0 and queue["depth"] == 0
    finally:
        srv.stop()
    # with the default limit the same shopper is answered by the model
    srv = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        c = srv.client
        assert c.post("/v1/events", json=[ev("u3", product, "view")]).status_code == 202
        r = c.get("/v1/recommendations/u3")
        assert r.status_code == 200 and r.json()["items"]
        assert _shed(c.get("/metrics").text, "too_slow") == 0.0
        assert "shelfwise_recommend_queue_depth" in c.get("/metrics").text
        first = c.get(f"/v1/items/{product}/similar")  # computed in the queue, then cached
        assert first.status_code == 200 and first.json()["items"]
        assert c.get(f"/v1/items/{product}/similar").json()["items"] == first.json()["items"]
        assert _shed(c.get("/metrics").text, "too_slow", "similar") == 0.0
    finally:
        srv.stop()


def test_one_slow_list_does_not_refuse_every_later_one():
    """The cost estimate is only updated by lists computed: after one slow list (estimate now over
    the limit) an idle queue still admits, so the estimate can come back down."""

    async def run() -> None:
        q = RecommendQueue(lambda args: args, max_wait_s=0.2, cost_s=0.001)
        q.cost_s = 5.0  # as after a list that took seconds
        q.start()
        try:
            assert await q.submit("a") == "a"  # idle: admitted and computed
            assert q.computed == 1 and q.cost_s < 5.0
        finally:
            q.stop()

    run_async(run)
