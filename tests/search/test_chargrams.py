"""The character n-gram match features, with known answers on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from shelfwise.search import FEATURES, SearchCatalog, SearchEngine
from shelfwise.search._chargrams import CHAR_FEATURES, CharGrams

COL = {n: j for j, n in enumerate(FEATURES)}
TITLES = [
    "Behr DeckOver 1 gal. Wood Coating",
    "Deck over paint",
    "2 in. x 4 in. x 8 ft. Stud",
    "Garden hose",
    "",
]


@pytest.mark.parametrize("query", ["deckover paint", "2x4 stud", "hose hose", "zzzz", ""])
def test_the_match_equals_scikit_learns_tfidf_cosine_and_the_share_of_query_ngrams(query):
    got = CharGrams.build(TITLES).match(query, np.array([4, 2, 0, 1, 3]))
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    rows = vec.fit_transform(TITLES)[[4, 2, 0, 1, 3]]
    q = vec.transform([query])
    cos = (rows @ q.T).toarray().ravel()
    share = ((rows > 0).astype(float) @ (q > 0).astype(float).T).toarray().ravel() / max(q.nnz, 1)
    np.testing.assert_allclose(got[:, 0], cos, atol=1e-6)
    np.testing.assert_allclose(got[:, 1], cos - cos.max(), atol=1e-6)
    np.testing.assert_allclose(got[:, 2], share, atol=1e-6)


def test_words_written_together_or_apart_meet():
    m = CharGrams.build(TITLES).match("deckover", np.arange(len(TITLES)))
    # "DeckOver" (case aside) holds every n-gram of the query; "Deck over" some; the others none
    assert m[0, 2] == pytest.approx(1.0)
    assert 0 < m[1, 2] < 1 and not m[2:, 2].any()
    assert m[0, 1] == pytest.approx(0.0) and (m[1:, 1] < 0).all()
    assert CharGrams.build(["", "!!"]).match("abc", np.arange(2)).shape == (2, len(CHAR_FEATURES))


def test_the_engine_fills_the_columns_and_a_saved_engine_reads_the_same(tmp_path):
    ids = ["a", "b", "c", "d"]
    titles = ["Deckover paint 1 gal", "Wall paint 1 gal", "Deck board 8 ft", "Garden hose 50 ft"]
    eng = SearchEngine(tmp_path / "s", candidates=4).build(SearchCatalog(ids, titles))
    cands, x = eng._features(eng._query("deck over paint"), None)
    row = {eng.catalog.product_ids[int(d)]: x[j] for j, d in enumerate(cands)}
    assert max(row, key=lambda p: row[p][COL["char_cosine"]]) == "a"
    assert row["a"][COL["char_cosine_rel"]] == pytest.approx(0.0)
    eng.save()
    loaded = SearchEngine.load(tmp_path / "s")
    assert isinstance(loaded._char_grams.indices, np.ndarray)
    again = loaded._features(loaded._query("deck over paint"), cands)[1]
    cols = [COL[f] for f in CHAR_FEATURES]
    np.testing.assert_array_equal(again[:, cols], x[:, cols])
    # a bundle saved before the n-gram tables were kept fits them on its titles at load
    for f in (tmp_path / "s" / "tables").glob("char_*"):
        f.unlink()
    older = SearchEngine.load(tmp_path / "s")
    np.testing.assert_array_equal(
        older._features(older._query("deck over paint"), cands)[1][:, cols], x[:, cols]
    )
