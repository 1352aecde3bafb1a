"""Fine-tuning MiniLM on a shop's judgments: a planted shop word the shipped encoder cannot know."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import SearchCatalog, SearchEngine
from shelfwise.search._finetune import FinetuneSettings, training_pairs

pytestmark = pytest.mark.slow

N = 60


def _shop():
    # in this shop "zorp" is the house word for a phone charger and "blick" for a garden hose:
    # "zorp 7" means charger model 7, "blick 7" hose model 7. Every model number exists as both,
    # so an encoder that does not know the two words ranks both queries the same way.
    ids, titles = [], []
    for i in range(N):
        ids += [f"c{i}", f"h{i}"]
        titles += [f"phone charger model {i}", f"garden hose model {i}"]
    queries = {f"z{i}": f"zorp {i}" for i in range(N)} | {f"b{i}": f"blick {i}" for i in range(N)}
    gains = {f"z{i}": {f"c{i}": 2.0, f"h{i}": 0.0} for i in range(N)}
    gains |= {f"b{i}": {f"h{i}": 2.0, f"c{i}": 0.0} for i in range(N)}
    return SearchCatalog(ids, titles), queries, gains


def test_pairs_take_the_top_of_the_scale_as_positive_and_the_bottom_as_hard_negative():
    pairs = training_pairs(
        {"q": "x"}, {"q": {"a": 2.0, "b": 1.0, "c": 0.0}}, {"a": "A", "b": "B", "c": "C"}, ["q"]
    )
    assert pairs == [("x", "A", "C")]


def test_finetuned_encoder_learns_the_shop_word_and_is_served(tmp_path):
    catalog, queries, gains = _shop()
    eng = SearchEngine(tmp_path / "s", candidates=20).build(catalog)
    # a budget far beyond need: training ends by its epochs, so a busy machine cannot cut it short
    settings = FinetuneSettings(budget_s=900, epochs=6, batch_size=16, learning_rate=1e-4, min_pairs=20)
    info = eng.finetune_encoder(queries, gains, holdout=0.25, seed=3, settings=settings)
    assert info["kept"], info
    assert info["validation_ndcg@10_tuned"] > info["validation_ndcg@10_untuned"] + 0.05
    assert eng.semantic_.encoder == "encoder-tuned.onnx" and (tmp_path / "s" / "encoder-tuned.onnx").exists()
    # ~90 training queries, too few to share: the encoder learned from all, no cosine is left out
    assert 60 < info["tuned_queries"] < 120 and info["ranker_only_queries"] == 0 and not eng.tuned_on_
    # every query (held-out ones included): the tuned encoder puts the meant product first
    wins = 0
    for q, text in queries.items():
        top = catalog.product_ids[eng.semantic_.search(text, 1).ids[0][0]]
        wins += top == ("c" if q[0] == "z" else "h") + q[1:]
    assert wins >= 0.9 * len(queries)
    eng.save()
    again = SearchEngine.load(tmp_path / "s")
    assert again.semantic_.encoder == "encoder-tuned.onnx"
    assert again.search("zorp 11", k=3) == eng.search("zorp 11", k=3)


def test_too_few_pairs_means_no_finetuning(tmp_path):
    catalog, queries, gains = _shop()
    eng = SearchEngine(tmp_path / "s", candidates=20).build(catalog)
    info = eng.finetune_encoder(queries, gains, settings=FinetuneSettings(min_pairs=10_000))
    assert not info["kept"] and "skipped" in info and eng.semantic_.encoder == "minilm"


def test_cross_encoder_learns_the_shop_words_and_reorders_the_top(tmp_path):
    from shelfwise.search._cross import CrossSettings

    catalog, queries, gains = _shop()
    eng = SearchEngine(tmp_path / "s", candidates=20).build(catalog)
    eng.fit_ranker(queries, gains, holdout=0.25, seed=3)
    settings = CrossSettings(
        budget_s=900, epochs=4, batch_size=16, learning_rate=1e-4, min_pairs=20, top=5, negatives_per_query=1
    )
    info = eng.fit_cross_encoder(queries, gains, holdout=0.25, seed=3, settings=settings)
    assert info["kept"], info
    # what is served is the blend (the cross-encoder alone need not beat the LightGBM stage, which
    # on this shop is strong: 0.96); the blend must beat the pipeline where it was decided
    h = info["holdout_ndcg@10"]
    assert h["blend_weight"] > 0 and h["decision_half"]["blend"] > h["decision_half"]["pipeline"]
    wins = sum(
        eng.search(text, k=1)[0][0] == ("c" if q[0] == "z" else "h") + q[1:] for q, text in queries.items()
    )
    assert wins >= 0.9 * len(queries)
    eng.save()
    again = SearchEngine.load(tmp_path / "s")
    assert again.cross_top_ == 5 and again.search("blick 17", k=3) == eng.search("blick 17", k=3)


def test_blend_of_pipeline_and_cross_encoder_scores():
    from shelfwise.search._engine import _blend

    pipeline = np.array([3.0, 2.0, 1.0])  # the pipeline's order: 0, 1, 2
    cross = np.array([-5.0, 0.0, 9.0])  # the cross-encoder's: 2, 1, 0
    assert _blend(pipeline, cross, 0.0).tolist() == [0, 1, 2]
    assert _blend(pipeline, cross, 1.0).tolist() == [2, 1, 0]
    # scales do not matter (standardized within the head), only the weight does
    assert _blend(pipeline * 100, cross / 100, 0.4).tolist() == _blend(pipeline, cross, 0.4).tolist()
    assert _blend(np.ones(3), cross, 0.2).tolist() == [2, 1, 0]  # a flat pipeline defers


def test_with_enough_queries_the_encoder_learns_from_half_and_the_ranker_knows_which(tmp_path, monkeypatch):
    import shelfwise.search._finetune as ft
    from shelfwise.search._training import _query_key, _split_queries, _tune_split

    ids = [f"p{i}" for i in range(40)]
    eng = SearchEngine(tmp_path / "s", candidates=10).build(SearchCatalog(ids, [f"tool {i}" for i in ids]))
    queries = {f"q{i:04d}": f"tool p{i % 40} size {i}" for i in range(1000)}
    gains = {q: {f"p{i % 40}": 2.0} for i, q in enumerate(queries)}
    seen = {}

    def fake(model_dir, out_dir, queries_, gains_, texts, train_q, valid_q, settings):
        seen["train"], seen["valid"] = list(train_q), list(valid_q)
        return {"kept": True}  # as if it won (nothing is exported: the test stops before)

    class Served:  # the tuned encoder as served, without exporting one
        encoder = "encoder-tuned.onnx"

        def __init__(self, *a, **kw):
            pass

        def index(self, catalog):
            return self

    monkeypatch.setattr(ft, "finetune_biencoder", fake)
    monkeypatch.setattr("shelfwise.features._text_encoder.export_onnx", lambda *a: None)
    monkeypatch.setattr("shelfwise.features._text_encoder.quantize_int8", lambda src, dst: dst)
    monkeypatch.setattr("shelfwise.search._training.SemanticRetriever", Served)
    info = eng.finetune_encoder(queries, gains, seed=4)
    assert info["tuned_queries"] == len(seen["train"]) and info["ranker_only_queries"] > 0
    qids, is_hold = _split_queries(queries, gains, 0.2, 4)
    train = [q for q in qids if not is_hold[q]]
    assert seen["train"] == _tune_split(train, 0.5, 4) and not set(seen["train"]) & set(seen["valid"])
    assert eng.tuned_on_ == {_query_key(queries[q]) for q in seen["train"]}
