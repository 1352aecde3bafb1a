"""Judged queries as evidence for new ones (`_neighbours`): known answers on hand-made vectors,
out-of-fold exclusion, and the engine round trip (trained, saved, loaded, same features)."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import SearchCatalog, SearchEngine
from shelfwise.search._engine import FEATURES
from shelfwise.search._neighbours import NEIGHBOUR_FEATURES, QueryNeighbours

COL = {n: j for j, n in enumerate(NEIGHBOUR_FEATURES)}


def _unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def test_the_nearest_judged_queries_grade_the_candidates():
    # three judged queries: A (close to the query) judged rows 5 (gain 2) and 7 (gain 0);
    # B (farther) judged row 5 (gain 1) and row 9; C (opposite) judged row 8
    qn = QueryNeighbours.of(
        np.stack([_unit(1, 0.1), _unit(1, 1), _unit(-1, 0)]),
        [{5: 2.0, 7: 0.0}, {5: 1.0, 9: 1.5}, {8: 2.0}],
        [0, 1, 2],
    )
    vec = _unit(1, 0)
    sa, sb, sc = (float(qn.vectors[j] @ vec) for j in range(3))
    cands = np.array([9, 5, 7, 8, 1])  # any order
    f = qn.features(vec, cands)
    assert f[:, COL["nb_top_sim"]] == pytest.approx([sa] * 5)
    got = {int(d): f[j] for j, d in enumerate(cands)}
    assert got[5][COL["nb_sim"]] == pytest.approx(sa)
    assert got[5][COL["nb_gain"]] == pytest.approx((sa * 2 + sb * 1) / (sa + sb))
    assert got[5][COL["nb_first_gain"]] == pytest.approx(2.0)  # A's, the nearer one
    assert got[5][COL["nb_gain_sim"]] == pytest.approx(max(2 * sa, 1 * sb))
    assert got[7][COL["nb_gain"]] == pytest.approx(0.0) and got[7][COL["nb_first_gain"]] == 0.0
    assert got[9][COL["nb_sim"]] == pytest.approx(sb)
    # every judged query is consulted (k=20); an opposite one's cosine counts as none (0)
    assert got[8][COL["nb_sim"]] == 0.0 and sc < 0 and got[8][COL["nb_first_gain"]] == 2.0
    # a row no neighbour judged
    assert got[1].tolist() == pytest.approx([sa, 0.0, -1.0, -1.0, -1.0])


def test_a_training_query_does_not_see_its_own_fold():
    qn = QueryNeighbours.of(np.stack([_unit(1, 0), _unit(0, 1)]), [{3: 2.0}, {4: 1.0}], [0, 1])
    own = qn.features(_unit(1, 0), np.array([3, 4]), fold=0)
    assert own[0, COL["nb_sim"]] == 0.0 and own[0, COL["nb_gain"]] == -1.0  # its own judgment is gone
    assert own[1, COL["nb_first_gain"]] == 1.0
    assert own[0, COL["nb_top_sim"]] == pytest.approx(0.0)  # the other fold's query is orthogonal
    nothing = QueryNeighbours.of(np.stack([_unit(1, 0)]), [{3: 2.0}], [0]).features(
        _unit(1, 0), np.array([3]), fold=0
    )
    assert nothing.tolist() == [[0.0, 0.0, -1.0, -1.0, -1.0]]


def test_the_engine_trains_saves_and_loads_its_neighbours(tmp_path):
    ids = [f"p{i}" for i in range(8)]
    titles = [
        "Deck over paint 1 gal",
        "Wall paint 1 gal white",
        "Deck board 8 ft",
        "Garden hose 50 ft",
        "Cordless drill 18 volt",
        "Drill bit set",
        "Exterior wood stain",
        "Paint roller cover",
    ]
    eng = SearchEngine(tmp_path / "s", candidates=8).build(SearchCatalog(ids, titles))
    queries = {
        f"q{i}": t for i, t in enumerate(["deck paint", "wall paint", "garden hose", "drill", "wood stain"])
    }
    judg = {
        "q0": {"p0": 2.0, "p1": 0.5},
        "q1": {"p1": 2.0, "p7": 1.0},
        "q2": {"p3": 2.0},
        "q3": {"p4": 2.0, "p5": 1.0},
        "q4": {"p6": 2.0, "p0": 0.5},
    }
    eng.fit_ranker(queries, judg, holdout=0.0, always_keep=True)
    assert eng.neighbours_ is not None and len(eng.neighbours_) == 5
    col = {n: j for j, n in enumerate(FEATURES)}
    cands, x = eng._features(eng._query("garden hose"), None)
    row = {eng.catalog.product_ids[int(d)]: x[j] for j, d in enumerate(cands)}
    # a new query worded as a judged one: that query is its nearest neighbour (cosine ~1)
    assert row["p3"][col["nb_sim"]] == pytest.approx(1.0, abs=1e-3)
    assert row["p3"][col["nb_first_gain"]] == pytest.approx(2.0)
    eng.save()
    again = SearchEngine.load(tmp_path / "s")
    assert again.neighbours_ is not None
    _, x2 = again._features(again._query("garden hose"), None)
    assert np.allclose(x2, x, equal_nan=True)
    # before any training on judgments the columns are missing values (the ranker's NaN)
    fresh = SearchEngine(tmp_path / "t", candidates=8).build(SearchCatalog(ids, titles))
    _, x3 = fresh._features(fresh._query("garden hose"), None)
    assert np.isnan(x3[:, col["nb_sim"]]).all()
