"""Online state (one contract, two implementations) and experiment bucketing."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.serving import MemoryState, RedisState
from shelfwise.serving._experiments import parse_experiments
from shelfwise.serving._online import RECENT_MAX


@pytest.fixture(params=["memory", "redis"])
def state(request):
    if request.param == "memory":
        return MemoryState()
    import redis

    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    client.flushdb()
    return RedisState(client, prefix="test:")


def test_online_state_contract(state):
    assert state.recent("u1") == (0, [])
    state.record([("u1", "A", "view", 1.0), ("u1", "B", "purchase", 2.0), ("u2", "C", "click", 3.0)])
    v1, items = state.recent("u1")
    assert items == ["A", "B"] and v1 > 0
    assert state.purchases("u1") == {"B": 2.0} and state.purchases("u2") == {}
    state.record([("u1", "", "search", 4.0)])  # no product: nothing to remember
    assert state.recent("u1") == (v1, ["A", "B"])
    state.record([("u1", f"P{i}", "view", 5.0) for i in range(RECENT_MAX + 5)])
    v2, items = state.recent("u1")
    assert v2 > v1 and len(items) == RECENT_MAX and items[-1] == f"P{RECENT_MAX + 4}"
    state.forget("u1")
    assert state.recent("u1") == (0, []) and state.purchases("u1") == {}
    assert state.recent("u2")[1] == ["C"]


def test_online_state_takes_only_the_types_training_learns_from(state):
    """A `return`, a `no_sale` and a purchase of 0 or fewer units (which the row check turns
    into those) are no interest in the product: training leaves them out, and so must the
    online state, or a returned product becomes the shopper's freshest signal."""
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._row_check import check_record
    from shelfwise.serving._service import online_event

    state.record([("u1", "A", "view", 1.0)])
    before = state.recent("u1")
    for etype, qty in (("return", "1"), ("purchase", "-1"), ("purchase", "0"), ("no_sale", "0")):
        rec = {"user_id": "u1", "product_id": f"P-{etype}-{qty}", "event_type": etype}
        rec |= {"timestamp": "2024-03-05T10:00:00Z", "quantity": qty}
        check = check_record(EVENTS, rec)
        assert not check.failures
        e = online_event(check.values, rec["timestamp"])
        state.record([("u1", e["product_id"], e["_type"], e["_ts"])])
    assert state.recent("u1") == before and state.purchases("u1") == {}


DOC = {
    "experiments": [
        {"name": "e1", "salt": "x", "variants": [{"name": "a", "weight": 70}, {"name": "b", "weight": 30}]}
    ]
}


def test_bucketing_is_deterministic_across_processes_and_follows_weights():
    (exp,) = parse_experiments(DOC)
    users = [f"user-{i}" for i in range(4000)]
    here = [exp.assign(u).name for u in users[:50]]
    code = (
        "from shelfwise.serving._experiments import parse_experiments;"
        f"(e,) = parse_experiments({DOC!r});"
        "print(','.join(e.assign(f'user-{i}').name for i in range(50)))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there.split(",")
    share = Counter(exp.assign(u).name for u in users)["a"] / len(users)
    assert 0.67 < share < 0.73
    # a different salt re-shuffles users
    (other,) = parse_experiments({"experiments": [{**DOC["experiments"][0], "salt": "y"}]})
    assert [other.assign(u).name for u in users[:200]] != [exp.assign(u).name for u in users[:200]]


@pytest.mark.parametrize(
    "doc",
    [
        {"experiments": [{"name": "e", "variants": [{"name": "a"}]}]},
        {"experiments": [{"name": "e", "variants": [{"name": "a", "weight": -1}, {"name": "b"}]}]},
        {"experiments": [{"name": "e", "surface": "email", "variants": [{"name": "a"}, {"name": "b"}]}]},
        {"experiments": [{"variants": []}]},
        [],
    ],
)
def test_bad_experiment_files_are_clear_errors(doc):
    with pytest.raises(ShelfwiseError):
        parse_experiments(doc)
