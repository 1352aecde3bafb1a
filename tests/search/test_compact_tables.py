"""The search engine's memory-mapped tables (`search/_compact`): a loaded engine answers exactly as
the Python sets and dicts it replaced did, its tables are mapped from the bundle (not copied), a
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
from shelfwise.search._compact import TABLES_VERSION, Coded, RowIndex, Strings, TermSets, Vocabulary
from shelfwise.search._features import _bigrams, _postings, _title_idf
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
    """The match tables as Python sets, dicts and lists, made as `_prepare` made them before the
    compact tables (the reference the compact tables must answer exactly like)."""
    c = eng.catalog
    c = SearchCatalog(*(list(getattr(c, f)) for f in ("product_ids", "title", "brand", "category",
                                                      "description", "attributes")),
                      price=np.asarray(c.price), in_stock=np.asarray(c.in_stock))  # fmt: skip
    eng.catalog = c
    titles = [analyze(t) for t in c.title]
    eng._title_terms = [set(t) for t in titles]  # type: ignore[assignment]
    eng._title_bigrams = [_bigrams(t) for t in titles]
    eng._title_norm = [" ".join(t) for t in titles]
    eng._title_proc = [utils.default_process(t) for t in c.title]
    eng._title_measures = [measures(t) for t in c.title]
    eng._idf, eng._idf_unseen = _title_idf(eng._title_terms)  # type: ignore[arg-type]
    eng._title_rows = _postings(eng._title_terms)  # type: ignore[arg-type]
    eng._cjk = np.array([contains_cjk(t) for t in c.title], bool)
    eng._category_terms = [set(analyze(cat.replace(">", " "))) for cat in c.category]  # type: ignore[assignment]
    eng._profile_cols = ProfileColumns.of(c)
    eng._text_terms = [  # type: ignore[assignment]
        eng._title_terms[i]
        | set(analyze(" ".join([c.brand[i], c.category[i], c.description[i], c.attributes[i]])))
        for i in range(len(c))
    ]
    eng._index = {p: i for i, p in enumerate(c.product_ids)}
    eng._facet_codes = None


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
    assert TermSets(s)[3] == {"a", "b"} and TermSets(s)[0] == frozenset()
    empty = Strings.of([])
    assert len(empty) == 0 and list(empty) == []
    v = Vocabulary.of(["b", "a", "ä", "c"])
    assert [v.id(t) for t in ("a", "b", "c", "ä", "z", "")] == [0, 1, 2, 3, None, None]
    c = Coded.of(["x", "y", "x"], decode=str.upper)
    assert list(c) == ["X", "Y", "X"] and c.codes.tolist() == [0, 1, 0]
    ix = RowIndex.of(Strings.of(["p2", "p10", "p1"]))
    assert dict(ix) == {"p2": 0, "p10": 1, "p1": 2} and ix.get("p3") is None and ix.get(5) is None  # type: ignore[call-overload]
