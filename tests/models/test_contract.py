"""One contract suite, run against every recommender in the registry."""

import copy

import numpy as np
import pytest

from shelfwise.features import Interactions, leave_last_out
from shelfwise.models import RECOMMENDERS, Content, Fusion, Recommender, Results, load_model
from tests.models.planted_data import planted_groups

SMALL = {
    "sasrec": dict(epochs=3, dim=16, heads=1, layers=1, max_len=10, batch_size=32),
    "bpr": dict(iterations=20, factors=8),
    "als": dict(factors=8, iterations=5),
    "ease": dict(l2=10.0),
}


def build(name: str, inter: Interactions) -> Recommender:
    if name == "fusion":
        split = leave_last_out(inter)
        gens = {n: RECOMMENDERS[n]().fit(split.train) for n in ("transitions", "itemknn")}
        return Fusion(trees=20, min_child_samples=2, candidates=10, holdout=0.0).fit(
            split.train, generators=gens, validation=split.validation
        )
    cls = RECOMMENDERS[name]
    model = cls(**SMALL.get(name, {}))
    if isinstance(model, Content):
        rng = np.random.default_rng(0)
        emb = rng.normal(size=(inter.n_items, 8)).astype(np.float32)
        return model.fit(inter, item_embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True))
    return model.fit(inter)


NAMES = sorted(RECOMMENDERS)


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return planted_groups()


@pytest.fixture(scope="module")
def fitted(inter):
    return {n: build(n, inter) for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_recommend_shape_and_seen_excluded(name, fitted, inter):
    model = fitted[name]
    users = np.arange(10)
    r = model.recommend(users, k=5)
    assert isinstance(r, Results)
    assert r.ids.shape == (10, 5) and r.scores.shape == (10, 5)
    seen = model.interactions_.seen()  # what the model was fitted on is its default history
    for row, u in enumerate(users):
        got = [i for i in r.ids[row] if i >= 0]
        assert not set(got) & set(seen[u].indices), name
        assert len(set(got)) == len(got)
        finite = r.scores[row][r.ids[row] >= 0]
        assert np.all(np.diff(finite) <= 1e-6), "scores are sorted best first"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name, inter, fitted):
    again = build(name, inter)
    a = fitted[name].recommend(np.arange(8), k=5)
    b = again.recommend(np.arange(8), k=5)
    np.testing.assert_array_equal(a.ids, b.ids)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, fitted, inter, tmp_path):
    # SASRec scores through its int8 export from the end of fit on, and is loaded to do the same
    model = fitted[name]
    model.save(tmp_path / name)
    gens = model.generators_ if isinstance(model, Fusion) else None
    loaded = load_model(tmp_path / name, model.interactions_, generators=gens)
    assert type(loaded) is type(model)
    a = model.recommend(np.arange(6), k=5)
    b = loaded.recommend(np.arange(6), k=5)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_similar_items_excludes_the_item(name, fitted):
    r = fitted[name].similar_items(np.array([0, 3]), k=4)
    assert r.ids.shape == (2, 4)
    assert 0 not in r.ids[0] and 3 not in r.ids[1]


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_model_raises(name):
    with pytest.raises(RuntimeError, match="not fitted"):
        RECOMMENDERS[name](**SMALL.get(name, {})).recommend(np.arange(2), k=3)


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_stored_unchanged(name):
    cls = RECOMMENDERS[name]
    params = cls(**SMALL.get(name, {})).get_params()
    assert cls(**params).get_params() == params


def test_query_time_history_changes_the_answer(fitted, inter):
    """A user who just acted is answered from the new history without refitting."""
    model = fitted["transitions"]
    probe = Interactions(
        np.zeros(1, np.int32),
        np.array([inter.item_idx[0]], np.int32),
        np.ones(1, np.float32),
        np.zeros(1, np.int64),
        np.array(["x"], dtype=object),
        inter.item_ids,
    )
    r = model.recommend(np.array([0]), k=3, history=probe)
    assert inter.item_idx[0] not in r.ids[0]


def _without(inter: Interactions, users: list[int]) -> Interactions:
    return inter.take(~np.isin(inter.user_idx, users))


@pytest.mark.parametrize("name", NAMES)
def test_forget_users_leaves_the_others_alone(name, fitted):
    model = copy.deepcopy(fitted[name])
    others = np.arange(1, 9)
    before = model.recommend(others, k=5)
    assert model.forget_users([0]) is model
    after = model.recommend(others, k=5)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)


@pytest.mark.parametrize("name", [n for n in NAMES if RECOMMENDERS[n].holds_user_state])
def test_a_forgotten_user_is_answered_as_one_with_no_history(name, fitted, inter, tmp_path):
    """What the model learnt about the user in particular is gone, saved and loaded too (the
    erasure path): asked with the history it was fitted on, it answers as for an empty one."""
    model = copy.deepcopy(fitted[name])
    stranger = _without(inter, [0])  # the user's steps gone: no history
    u = np.array([0])
    assert not np.allclose(model.score(u), model.score(u, history=stranger))
    model.forget_users([0])
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name, inter)
    np.testing.assert_allclose(loaded.score(u, history=inter), loaded.score(u, history=stranger), atol=1e-6)
    assert not np.any(loaded.score(u, history=inter))


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_are_typed_keywords_and_side_inputs_go_to_fit(name):
    """No config dicts (`**kwargs`), every hyperparameter typed with a default; nothing learnt
    or given is set through a setter (item embeddings, validation, generators are `fit`'s)."""
    import inspect

    cls = RECOMMENDERS[name]
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    for p in params:
        assert p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD, (name, p)
        assert p.annotation is not p.empty and p.default is not p.empty, (name, p.name)
    setters = [m for m in dir(cls) if m.startswith("set_")]
    assert not setters, (name, setters)
