"""Learning to rank from search clicks, with and without the display positions."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import SearchCatalog, SearchEngine
from shelfwise.search._clicks import ClickGroup

N = 30


def _catalog() -> SearchCatalog:
    # "tool i": BM25 prefers the short "tool i kit" (a_i); shoppers prefer "pro tool i ..." (b_i)
    ids, titles = [], []
    for i in range(N):
        ids += [f"a{i}", f"b{i}"]
        titles += [f"tool {i} kit", f"pro tool {i} heavy duty grade"]
    return SearchCatalog(ids, titles)


EXAMINE = {1: 1.0, 2: 0.2}  # shoppers look at position 2 a fifth as often as at position 1
LIKE = {"a": 0.35, "b": 0.8}  # and like b_i more than twice as much as a_i


def _served_clicks(seed: int = 0) -> dict[str, ClickGroup]:
    """Served pages of "tool i": the old ranking showed a_i first on 90% of the pages (b_i first
    on the rest: an earlier ranker, an experiment). P(click) = P(look at the position) x
    P(like the product). Raw click rates favour a_i (0.32 against 0.22); corrected
    for position, b_i wins."""
    rng = np.random.default_rng(seed)
    groups = {}
    for i in range(N):
        for j in range(60):
            order = ["a", "b"] if rng.random() < 0.9 else ["b", "a"]
            pos = {f"{x}{i}": r + 1 for r, x in enumerate(order)}
            labels = {p: 1.0 for p, r in pos.items() if rng.random() < EXAMINE[r] * LIKE[p[0]]}
            groups[f"s{i}-{j}"] = ClickGroup(f"tool {i}", labels, pos, "served")  # clicked or not
    return groups


def _b_first(eng: SearchEngine) -> float:
    return float(np.mean([eng.search(f"tool {i}", k=1)[0][0] == f"b{i}" for i in range(N)]))


@pytest.fixture(scope="module")
def catalog_engine(tmp_path_factory):
    return SearchEngine(tmp_path_factory.mktemp("clk") / "s", candidates=10).build(_catalog())


def test_position_bias_correction_recovers_what_shoppers_prefer(catalog_engine):
    eng = catalog_engine
    clicks = _served_clicks()
    # the same clicks without their positions: every clicked page as a logged search
    raw = {g: ClickGroup(c.query, c.labels, {}, "logged") for g, c in clicks.items() if c.labels}
    naive = eng.fit_ranker({}, {}, clicks=raw, always_keep=True)
    assert naive["position_bias_correction"] is False and naive["click_groups"] == len(raw)
    naive_b = _b_first(eng)
    debiased = eng.fit_ranker({}, {}, clicks=clicks, always_keep=True)
    assert debiased["position_bias_correction"] is True and debiased["served_pages"] == len(clicks)
    assert debiased["served_queries"] == N and debiased["holdout_label"] == "clicks"
    # the examination propensity of position 2 is recovered from the swapped pages
    assert 0.12 < debiased["propensity"]["2"] < 0.3, debiased["propensity"]
    debiased_b = _b_first(eng)
    # clicks taken at face value keep a_i on top; corrected for position, b_i comes first
    assert naive_b <= 0.2 and debiased_b >= 0.8, (naive_b, debiased_b)


def test_clicks_and_judgments_train_together(catalog_engine):
    eng = catalog_engine
    queries = {f"q{i}": f"tool {i}" for i in range(N)}
    gains = {f"q{i}": {f"b{i}": 2.0, f"a{i}": 0.0} for i in range(N)}
    info = eng.fit_ranker(queries, gains, clicks=_served_clicks(1), holdout=0.3, seed=2)
    assert info["holdout_label"] == "judgments" and info["click_groups"] > 0
    assert info["kept"] and _b_first(eng) >= 0.9
