"""The search engine's memory-mapped tables (`search/_compact`): a loaded engine answers exactly as
the Python sets and dicts it replaced did, the ranking features read from them all at once equal
the row-at-a-time Python sets' bit for bit, its tables are mapped from the bundle (not copied), a
bundle saved before the tables were kept still loads, and jieba stays unloaded for Latin text."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from rapidfuzz import utils

from shelfwise.search import Filters, SearchCatalog, SearchEngine, analyze
from shelfwise.search._analyze import contains_cjk
from shelfwise.search._compact import TABLES_VERSION, Coded, RowIndex, Strings, Vocabulary
from shelfwise.search._features import _COLUMN, _MEASURES, _OVERLAP, _bigrams, _fuzzy, _postings, _title_idf
from shelfwise.search._personal import ProfileColumns
from shelfwise.search._units import measures

NOUNS = ["shoe", "sock", "knife", "hose", "bracket", "drill", "lamp", "kettle", "paint", "cable"]
ADJS = ["red", "blue", "steel", "garden", "12 in.", "cordless", "LED", "deck over", "heavy duty", "mini"]
BRANDS = ["Acme", "Zoom", "Blade", "", "Gärtner"]
CATS = ["Sport > Shoes", "Home > Kitchen", "Garden > Hoses", "Tools > Power", "", "Lighting"]
QUERIES = [
    "red shoe",
    "cordless drill 12 in",
    "steel knife set",
    "garden hose",
    "deck over paint",
    "led lamp mini",
    "runnning shoes",  # corrected
    "蓝牙耳机",
    "kettle blue gärtner",
    "asdkjhqwe",
    "",
    # sizes (the measures' words, numbers and pairs), a repeated term, a phrase across rows
    '12 in. steel 1/2" hose 50 ft',
    "red red shoe",
    "model 12",
    "12 in cordless",
]


def _catalog() -> SearchCatalog:
    rng = np.random.default_rng(7)
    ids, titles, brands, cats, descs, attrs = [], [], [], [], [], []
    for i in range(60):
        a, b, n = rng.choice(ADJS), rng.choice(ADJS), rng.choice(NOUNS)
        ids.append(f"p{i:03d}")
        titles.append(f"{a} {n} {b} model {i}" if i % 7 else f"{n} {a}")
        brands.append(BRANDS[i % len(BRANDS)])
        cats.append(CATS[i % len(CATS)])
        descs.append(f"A {b} {n} for every day. {a}" if i % 3 else "")
        attrs.append(f"color: {rng.choice(['red', 'black'])}" if i % 2 else "")
    titles[5], titles[6] = "无线蓝牙耳机 降噪", "蓝牙音箱 便携 mini"  # Chinese rows
    price = rng.uniform(5, 200, len(ids)).round(2)
    price[3] = np.nan
    return SearchCatalog(
        ids, titles, brands, cats, descs, attrs, price=price, in_stock=np.arange(len(ids)) % 5 != 0
    )


def _legacy_tables(eng: SearchEngine) -> None:
    """The catalog, IDF, postings, profile columns and id index as Python lists and dicts, made
    as `_prepare` made them before the compact tables (the reference the mapped tables must
    answer exactly like); the per-row match tables are built in memory by `_prepare` (the
    features read them only through `Strings.gather`, checked against Python sets per row by
    `test_features_read_at_once_equal_the_row_at_a_time_sets`)."""
    c = eng.catalog
    c = SearchCatalog(*(list(getattr(c, f)) for f in ("product_ids", "title", "brand", "category",
                                                      "description", "attributes")),
                      price=np.asarray(c.price), in_stock=np.asarray(c.in_stock))  # fmt: skip
    eng.catalog = c
    eng._prepare()
    title_terms = [set(analyze(t)) for t in c.title]
    eng._idf, eng._idf_unseen = _title_idf(title_terms)  # type: ignore[arg-type]
    eng._title_rows = _postings(title_terms)  # type: ignore[arg-type]
    eng._cjk = np.array([contains_cjk(t) for t in c.title], bool)
    eng._profile_cols = ProfileColumns.of(c)
    eng._index = {p: i for i, p in enumerate(c.product_ids)}
    eng._facet_codes = None


def _row_at_a_time(eng: SearchEngine, text: str, cands: np.ndarray) -> np.ndarray:
    """The set-overlap, fuzzy and measure columns of `_features` computed independently, as
    they were before the vectorised reads: a Python set (or `Measures`) per candidate made from
    the catalog's own text, one candidate at a time."""
    c, q = eng.catalog, eng._query(text)
    terms = q.terms
    tset, qbig, qnorm = set(terms), _bigrams(terms), " ".join(terms)
    nums = {t for t in terms if t[:1].isdecimal()}
    nt, nb, nn = max(len(tset), 1), max(len(qbig), 1), max(len(nums), 1)
    first = terms[0] if terms else None
    qm = measures(q.text)
    qpairs = set(qm.pairs)
    overlap, sizes = [], []
    for d in map(int, cands):
        title = analyze(c.title[d])
        ts = set(title)
        other = " ".join([c.brand[d], c.category[d], c.description[d], c.attributes[d]])
        text_terms = ts | set(analyze(other))
        category = set(analyze(c.category[d].replace(">", " ")))
        overlap.append(
            (
                len(ts),
                len(tset & ts) / nt,
                len(tset & text_terms) / nt,
                len(qbig & _bigrams(title)) / nb,
                float(bool(qnorm) and qnorm in " ".join(title)),
                float(first is not None and first in ts),
                len(nums & ts) / nn if nums else -1.0,
                len(tset & category) / nt,
            )
        )
        m = measures(c.title[d])
        sizes.append(
            (
                len(qm.words & m.words) / max(len(qm.words), 1),
                len(qm.numbers & m.numbers) / len(qm.numbers) if qm.numbers else -1.0,
                len(qpairs & m.pairs) / len(qpairs) if qpairs else -1.0,
            )
        )
    x = np.full((len(cands), len(_COLUMN)), np.nan, np.float32)
    x[:, _OVERLAP] = np.array(overlap, np.float64).reshape(-1, len(_OVERLAP))
    x[:, _MEASURES] = np.array(sizes, np.float64).reshape(-1, len(_MEASURES))
    fz = _fuzzy(q.text, [utils.default_process(c.title[d]) for d in map(int, cands)])
    x[:, _COLUMN["fuzzy_token_set"]], x[:, _COLUMN["fuzzy_partial"]] = fz
    return x


def _answers(eng: SearchEngine) -> list:
    out: list = []
    for q in QUERIES:
        query = eng._query(q)
        cands, x = eng._features(query, None)
        out.append(("features", q, cands.tolist(), x))
        out.append(("search", q, eng.search(q, k=20)))
        out.append(("candidates", q, eng.search(q, k=5, candidates=["p010", "zzz", "p003", "p001"])))
        for level in eng.levels():
            out.append(("query", q, level, eng.query(q, k=15, level=level)))
        out.append(("filtered", q, eng.query(q, k=5, filters=Filters(brand="acme", price_max=150))))
    prof = eng.profile(["p001", "p002", "p017", "unknown"])
    out.append(("profile", eng.query("red shoe", k=10, profile=prof)))
    return out


def _same(a: object, b: object, where: str = "") -> None:
    if isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, np.asarray(b), rtol=0, atol=1e-6, err_msg=where)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-6, nan_ok=True), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("compact") / "search"
    eng = SearchEngine(path, candidates=12).build(
        _catalog(),
        popularity=np.arange(60, dtype=np.float32) % 7,
        query_log=["red shoe", "garden hose"],
        multilingual=False,  # the Chinese rows through MiniLM and jieba (the multilingual encoder: slow)
    )
    eng.save()
    return path


def test_mapped_tables_answer_exactly_as_the_python_tables(saved):
    mapped = SearchEngine.load(saved)
    legacy = SearchEngine.load(saved)
    _legacy_tables(legacy)
    assert isinstance(mapped.catalog.title, Strings)
    assert isinstance(legacy.catalog.title, list)
    got, want = _answers(mapped), _answers(legacy)
    _same(got, want, "answers")
    # a personal profile reads the coded profile columns as it read the lists
    assert mapped.profile(["p001", "p017"]) == legacy.profile(["p001", "p017"])


def test_features_read_at_once_equal_the_row_at_a_time_sets(saved, tmp_path):
    checked = [*_OVERLAP, *_MEASURES, _COLUMN["fuzzy_token_set"], _COLUMN["fuzzy_partial"]]
    # the mapped tables, and a bundle saved before `title_sizes` was kept (derived from the postings)
    older = tmp_path / "search"
    shutil.copytree(saved, older)
    (older / "tables" / "title_sizes.npy").unlink()
    for eng in (SearchEngine.load(saved), SearchEngine.load(older)):
        every = np.arange(len(eng.catalog), dtype=np.int64)
        for text in QUERIES:
            q = eng._query(text)
            for given in (None, every, every[::-1][:7], every[:0]):
                cands, x = eng._features(q, given)
                want = _row_at_a_time(eng, text, cands)
                assert np.array_equal(x[:, checked], want[:, checked]), (text, given is None)
    assert isinstance(SearchEngine.load(saved)._title_sizes, np.memmap)


def test_gathered_rows_find_tokens_substrings_and_parts():
    s = Strings.of(["a bc", "", "bc a|x y|1:in", "蓝牙 bca", "abc bc", "x|a|bc"])
    g = s.gather(np.array([0, 2, 3, 4, 1, 5]), delims=" |")
    assert g.texts() == ["a bc", "bc a|x y|1:in", "蓝牙 bca", "abc bc", "", "x|a|bc"]
    # a token: bounded by a delimiter or the row's ends on both sides (never "bca", "abc")
    assert g.holding("bc").tolist() == [True, True, False, True, False, True]
    assert g.holding("a").tolist() == [True, True, False, False, False, True]
    assert g.holding("蓝牙").tolist() == [False, False, True, False, False, False]
    assert g.holding("1:in", part=2).tolist() == [False, True, False, False, False, False]
    # in a part: the i-th of the "|"-separated parts only
    assert g.holding("a", part=0).tolist() == [True, True, False, False, False, False]
    assert g.holding("a", part=1).tolist() == [False, False, False, False, False, True]
    assert g.count(["a", "bc", "zz"]).tolist() == [2, 2, 0, 1, 0, 2]
    # a substring: anywhere in a row, never across two rows ("bc" + "a" of the next row's start)
    assert g.containing("c a").tolist() == [False, True, False, False, False, False]
    assert g.containing("bca").tolist() == [False, False, True, False, False, False]
    assert g.containing("bc" + "bc").tolist() == [False] * 6
    empty = s.gather(np.zeros(0, np.int64))
    assert empty.texts() == [] and empty.holding("a").shape == (0,) and s.take(np.array([1])) == [""]
    c = Coded.of(["x y", "y", "x y"], decode=lambda v: frozenset(v.split()))
    assert c.map(np.array([2, 1, 0, 1]), len).tolist() == [2.0, 1.0, 2.0, 1.0]
    assert c.map(np.zeros(0, np.int64), len).shape == (0,)


def test_tables_are_memory_mapped_from_the_bundle(saved):
    eng = SearchEngine.load(saved)
    assert json.loads((saved / "search.json").read_text())["tables"] == TABLES_VERSION
    for arr in (eng.catalog.price, eng._cjk, eng._tables["title_norm"].blob, eng._tables["postings"].rows):
        assert isinstance(arr, np.memmap) and str(saved / "tables") in str(arr.filename)
    assert not isinstance(eng._index, dict) and eng._index["p007"] == 7 and "nope" not in eng._index


def test_an_index_saved_before_the_tables_loads_and_answers_alike(saved, tmp_path):
    old = tmp_path / "search"
    shutil.copytree(saved, old)
    shutil.rmtree(old / "tables")
    meta = json.loads((old / "search.json").read_text())
    del meta["tables"]
    (old / "search.json").write_text(json.dumps(meta))
    legacy, mapped = SearchEngine.load(old), SearchEngine.load(saved)
    assert not isinstance(legacy.catalog.price, np.memmap)  # built in memory from catalog.json
    _same(_answers(legacy), _answers(mapped), "answers")
    legacy.save()  # saving it again writes the tables
    assert (old / "tables" / "title_norm.bytes.npy").exists()


def test_jieba_is_loaded_only_for_chinese_text(saved, tmp_path, monkeypatch):
    # a catalog without Chinese titles: jieba waits for the first Chinese query
    latin = tmp_path / "latin"
    shutil.copytree(saved, latin)
    np.save(latin / "tables" / "cjk.npy", np.zeros(60, bool))
    code = (
        "import sys; from shelfwise.search import SearchEngine; "
        f"e = SearchEngine.load({str(latin)!r}); e.query('red shoe cordless'); "
        "print('jieba' in sys.modules); e.query('蓝牙耳机'); print('jieba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    # a catalog with Chinese titles: loaded with the engine (before a server forks its workers)
    loads: list[int] = []
    monkeypatch.setattr("shelfwise.search._index.load_segmenter", lambda: loads.append(1))
    SearchEngine.load(saved)
    SearchEngine.load(latin)
    assert loads == [1]


def test_views_behave_like_the_lists_and_dicts_they_replace():
    s = Strings.of(["", "héllo wörld", "蓝牙", "a b a"])
    assert list(s) == ["", "héllo wörld", "蓝牙", "a b a"] and s[-1] == "a b a" and s[1:3] == s[1:3]
    assert s == ["", "héllo wörld", "蓝牙", "a b a"] and len(s) == 4
    with pytest.raises(IndexError):
        s[4]
    empty = Strings.of([])
    assert len(empty) == 0 and list(empty) == []
    v = Vocabulary.of(["b", "a", "ä", "c"])
    assert [v.id(t) for t in ("a", "b", "c", "ä", "z", "")] == [0, 1, 2, 3, None, None]
    c = Coded.of(["x", "y", "x"], decode=str.upper)
    assert list(c) == ["X", "Y", "X"] and c.codes.tolist() == [0, 1, 0]
    ix = RowIndex.of(Strings.of(["p2", "p10", "p1"]))
    assert dict(ix) == {"p2": 0, "p10": 1, "p1": 2} and ix.get("p3") is None and ix.get(5) is None  # type: ignore[call-overload]
