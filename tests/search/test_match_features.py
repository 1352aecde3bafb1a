"""The fuzzy and within-query relative ranker features, with known answers on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
from rapidfuzz import utils

from shelfwise.search import FEATURES, SearchCatalog, SearchEngine
from shelfwise.search._features import _fuzzy

COL = {n: j for j, n in enumerate(FEATURES)}


def test_fuzzy_scores_words_in_any_order_and_words_written_together():
    titles = [utils.default_process(t) for t in ("Paint Deck Over 1 gal.", "Deckover paint", "Garden hose")]
    token_set, partial = _fuzzy("deck over paint", titles)
    assert token_set[0] == pytest.approx(1.0)  # every query word, in another order
    assert token_set[0] > token_set[1] > token_set[2]
    # "deckover" read inside "deck over paint" (and back): far above an unrelated title
    assert partial[1] > 0.8 > partial[2]
    assert not _fuzzy("", titles).any() and _fuzzy("x", []).shape == (2, 0)


def test_engine_fills_the_fuzzy_and_relative_columns(tmp_path):
    ids = ["a", "b", "c", "d"]
    titles = ["Deck over paint 1 gal", "Wall paint 1 gal", "Deck board 8 ft", "Garden hose 50 ft"]
    eng = SearchEngine(tmp_path / "s", candidates=4).build(SearchCatalog(ids, titles))
    cands, x = eng._features(eng._query("deck paint"), None)
    row = {eng.catalog.product_ids[int(d)]: x[j] for j, d in enumerate(cands)}
    assert row["a"][COL["fuzzy_token_set"]] == pytest.approx(1.0)
    assert row["a"][COL["fuzzy_rel"]] == pytest.approx(0.0) and row["d"][COL["fuzzy_rel"]] < 0
    # only "a" holds the query's whole IDF mass: it is the best row, the others are below it
    assert row["a"][COL["idf_coverage_rel"]] == pytest.approx(0.0)
    assert all(row[p][COL["idf_coverage_rel"]] < 0 for p in "bcd" if p in row)
    assert np.allclose(x[:, COL["full_matches"]], np.log1p(1))
    assert max(x[:, COL["bm25_title_rel"]]) == pytest.approx(1.0)
