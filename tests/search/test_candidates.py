"""The candidate depth (each retriever's top N, whose union the ranker re-ranks) is a setting of
the search pipeline: `train --search-candidates N` builds the index with it, the bundle's
search.json records it, and a loaded engine retrieves that deep."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from shelfwise.demo import generate_demo
from shelfwise.lifecycle import TrainSettings
from shelfwise.lifecycle._train import _build_search
from shelfwise.search import SearchCatalog, SearchEngine
from shelfwise.search._state import CANDIDATES
from tests.cli.test_cli import sw


def test_each_retriever_contributes_its_top_n_and_the_depth_round_trips(tmp_path):
    # 30 products with the query's word: BM25 alone could return all of them
    ids = [f"p{i:02d}" for i in range(30)]
    cat = SearchCatalog(ids, [f"widget number {i}" for i in range(30)])
    eng = SearchEngine(tmp_path / "s", candidates=4).build(cat)
    q = eng._query("widget")
    cands, found = eng._retrieve(q, eng.encode_queries([q.text])[0])
    assert [len(f) for f in found[:2]] == [4, 4]  # BM25's top 4, the encoder's top 4
    assert len(cands) == len(set(found[0]) | set(found[1])) <= 8
    eng.save()
    assert json.loads((tmp_path / "s" / "search.json").read_text())["candidates"] == 4
    again = SearchEngine.load(tmp_path / "s")
    assert again.candidates == 4
    deeper, _ = again._retrieve(q, again.encode_queries([q.text])[0], 12)
    assert set(map(int, cands)) < set(map(int, deeper))  # a deeper list holds the shallower one


@pytest.mark.parametrize("bad", [0, -5])
def test_a_depth_below_one_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match=f"at least 1 per retriever, got {bad}"):
        SearchEngine(tmp_path / "s", candidates=bad)


def test_the_train_setting_defaults_to_the_engines_depth():
    assert TrainSettings().search_candidates == CANDIDATES


@pytest.mark.slow
def test_train_builds_the_index_at_the_depth_it_is_given(tmp_path):
    demo = tmp_path / "demo"
    generate_demo(demo, products=60, users=10, events=100, seed=3, defects=False)
    data = tmp_path / "data"
    data.mkdir()
    for f in ("products.csv", "queries.csv", "judgments.csv"):
        shutil.copy(demo / f, data / f)
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    no_events = SimpleNamespace(item_ids=np.array([], object), item_counts=lambda: np.zeros(0))
    settings = TrainSettings(search_candidates=7, search_finetune_steps=0, search_cross_steps=0)
    path, info = _build_search(work, no_events, lambda _msg: None, [], settings)  # type: ignore[arg-type]
    assert path is not None and info is not None and info["candidates"] == 7
    assert json.loads((Path(path) / "search.json").read_text())["candidates"] == 7
    assert SearchEngine.load(path).candidates == 7


def test_train_takes_the_depth_as_a_flag():
    out = sw("train", "--help").stdout
    assert "--search-candidates" in out
