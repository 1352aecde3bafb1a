"""Fast paths that change no number: `top_k` on rows whose best k + 1 scores are distinct
ranks exactly as the selection over the whole row it replaced, ties included (those rows
still take that path); EASE's weights are row-major, from a Cholesky inverse equal to the exact
inverse to float32 precision (LU, bit for bit as before, when Cholesky refuses)."""

import numpy as np
import pytest

from shelfwise.models._base import TOPK_BLOCK, Results, _distinct_top, top_k


def _reference(scores: np.ndarray, k: int) -> Results:
    """top_k as it was: np.argpartition over every row, then a stable sort of the k."""
    n, m = scores.shape
    k_eff = min(k, m)
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    ids[~np.isfinite(sc)] = -1
    if k_eff < k:
        ids = np.pad(ids, ((0, 0), (0, k - k_eff)), constant_values=-1)
        sc = np.pad(sc, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return Results(ids, sc)


def _scores(seed: int = 0, n: int = 120, m: int = 40 * TOPK_BLOCK + 17) -> np.ndarray:
    """Rows of every kind a model produces: distinct floats, seen items at -inf, sparse rows
    of mostly zeros, coarse (tied) values, one popularity row for all, NaN, +inf, too few
    finite scores."""
    rng = np.random.default_rng(seed)
    s = rng.random((n, m), dtype=np.float32)
    s[rng.random(s.shape) < 0.01] = -np.inf  # seen items
    s[10:20] = np.where(rng.random((10, m)) < 0.02, rng.random((10, m)), 0).astype(np.float32)
    s[20:30] = np.round(s[20:30] * 8) / 8  # many ties at the top
    s[30:40] = np.sort(rng.integers(0, 500, m)).astype(np.float32)  # counts, sorted, tied
    s[40, 7] = np.nan
    s[41, :] = -np.inf
    s[41, :5] = [3, 1, 2, 2, 0.5]  # fewer finite scores than k
    s[42, 100:140] = np.inf
    s[43, [5, 900]] = 2.0  # a tie at the very top
    s[44, :] = 0.0
    s[45] = rng.standard_normal(m).astype(np.float32)
    return s


@pytest.mark.parametrize("k", [1, 3, 10, 20, 39, 40, 50])
def test_top_k_ranks_exactly_as_a_selection_over_the_row(k: int) -> None:
    for seed in (0, 1):
        s = _scores(seed)
        got, want = top_k(s, k), _reference(s, k)
        assert np.array_equal(got.ids, want.ids)
        assert np.array_equal(got.scores, want.scores, equal_nan=True)
        assert got.ids.dtype == want.ids.dtype and got.scores.dtype == want.scores.dtype


def test_the_fast_path_takes_the_untied_rows_and_leaves_the_tied_ones() -> None:
    s = _scores()
    ids = np.empty((len(s), 10), np.int64)
    done = _distinct_top(s, 10, ids)
    assert done[:10].all() and done[45]  # distinct floats (with seen items at -inf)
    assert not done[[40, 41, 43, 44]].any()  # NaN, too few finite scores, a tie, all equal
    assert not done[30:40].any()  # tied counts
    want = _reference(s, 10).ids
    assert np.array_equal(ids[done], want[done])


@pytest.mark.parametrize("shape,k", [((5, 7), 3), ((5, 7), 7), ((5, 7), 9), ((0, 300), 5), ((4, 1), 2)])
def test_small_and_degenerate_shapes(shape: tuple[int, int], k: int) -> None:
    s = np.random.default_rng(2).integers(0, 4, shape).astype(np.float32)
    got, want = top_k(s, k), _reference(s, k) if shape[0] else top_k(s, k)
    assert np.array_equal(got.ids, want.ids) and np.array_equal(got.scores, want.scores)
    assert got.ids.shape == (shape[0], k)


def test_float64_and_broadcast_scores() -> None:
    row = np.random.default_rng(3).random(50 * TOPK_BLOCK)
    s = np.broadcast_to(row, (6, len(row)))  # a popularity model's scores, float64
    got, want = top_k(s, 25), _reference(np.array(s), 25)
    assert np.array_equal(got.ids, want.ids) and np.array_equal(got.scores, want.scores)


def test_ease_weights_are_row_major_and_score_as_before(monkeypatch) -> None:
    """EASE's item weights are kept row-major (scoring a batch no longer copies the whole
    items x items matrix). They come from the Cholesky inverse, equal to the exact inverse to
    float32 precision; a Gram matrix Cholesky refuses goes through LU as before, bit for bit."""
    from shelfwise.features import Interactions
    from shelfwise.models import EASE, _factorization
    from shelfwise.models._factorization import _row_major_in_place, _spd_inverse

    rng = np.random.default_rng(0)
    f = np.asfortranarray(rng.random((1100, 1100), dtype=np.float32))
    want = np.ascontiguousarray(f)
    got = _row_major_in_place(f, block=256)
    assert got.flags.c_contiguous and np.array_equal(got, want)
    assert np.shares_memory(got, f)
    c = rng.random((7, 9))
    assert np.array_equal(_row_major_in_place(c), c)

    users = rng.integers(0, 300, 3000).astype(str)
    items = rng.integers(0, 200, 3000).astype(str)
    inter = Interactions.from_arrays(users, items, np.arange(3000))
    model = EASE(l2=50.0).fit(inter)
    assert model.weights_.flags.c_contiguous
    import scipy.linalg

    x = inter.seen()[:, model.items_]
    g = (x.T @ x).toarray().astype(np.float32)
    g[np.diag_indices_from(g)] += np.float32(50.0)
    exact = np.linalg.inv(g.astype(np.float64))
    exact /= -np.diag(exact)
    exact[np.diag_indices_from(exact)] = 0.0
    np.testing.assert_allclose(model.weights_, exact, rtol=0, atol=1e-6 * np.abs(exact).max())
    users_asked = np.arange(inter.n_users)
    scores = model.score(users_asked)
    h = inter.seen()[users_asked][:, model.items_]
    direct = np.zeros_like(scores)
    direct[:, model.items_] = h @ model.weights_
    assert np.array_equal(scores, direct)

    # the inverse in the Gram matrix's own buffer, both triangles, whichever its memory order
    # (blocks smaller than the matrix, the last one short: the off-diagonal blocks mirrored)
    want = np.linalg.inv(g.astype(np.float64))
    for order in ("C", "F"):
        a = np.array(g, order=order)
        inv = _spd_inverse(a, block=64)
        assert inv is not None and inv.flags.c_contiguous and np.shares_memory(inv, a)
        assert len(inv) % 64 and np.array_equal(inv, inv.T)
        np.testing.assert_allclose(inv, want, rtol=0, atol=1e-6 * np.abs(want).max())
    assert _spd_inverse(np.zeros((0, 0), np.float32)) is not None  # no item: nothing to invert
    assert _spd_inverse(np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)) is None  # not positive definite

    # Cholesky refused: the LU inverse, as every fit before it
    monkeypatch.setattr(_factorization, "_spd_inverse", lambda a, block=512: None)
    lu = scipy.linalg.inv(g.copy(), overwrite_a=True, check_finite=False)
    lu /= -np.diag(lu)
    lu[np.diag_indices_from(lu)] = 0.0
    fallback = EASE(l2=50.0).fit(inter)
    assert fallback.weights_.flags.c_contiguous and np.array_equal(fallback.weights_, lu)


def test_an_ease_saved_column_major_loads_row_major(tmp_path) -> None:
    """A bundle written before the fix keeps its weights column-major on disk: loading makes
    them row-major once, with the same values and scores."""
    from shelfwise.features import Interactions
    from shelfwise.models import EASE

    rng = np.random.default_rng(1)
    inter = Interactions.from_arrays(
        rng.integers(0, 200, 2000).astype(str), rng.integers(0, 150, 2000).astype(str), np.arange(2000)
    )
    model = EASE(l2=20.0).fit(inter)
    model.weights_ = np.asfortranarray(model.weights_)  # as the old fit left it
    model.save(tmp_path / "ease")
    loaded = EASE.load(tmp_path / "ease", inter)
    assert loaded.weights_.flags.c_contiguous
    assert np.array_equal(loaded.weights_, model.weights_)
    users = np.arange(inter.n_users)
    assert np.array_equal(loaded.score(users), model.score(users))


@pytest.mark.parametrize("k", [10, 50, 100])
def test_top_k_on_a_catalog_of_many_groups(k: int) -> None:
    """Many groups (the strided groups `_distinct_top` bounds the top k with), a short last
    group, seen items, ties and a row the bound cannot narrow: the same ranking as the whole
    row's selection."""
    s = _scores(seed=k, n=64, m=200 * TOPK_BLOCK + 5)
    s[50:55, -5:] = 5.0  # the best items in the short last group (ties among them)
    s[55, -1] = 7.0  # the best item alone in the last column
    got, want = top_k(s, k), _reference(s, k)
    assert np.array_equal(got.ids, want.ids)
    assert np.array_equal(got.scores, want.scores, equal_nan=True)
    ids = np.empty((len(s), k), np.int64)
    assert _distinct_top(s, k, ids)[:10].all()  # the fast path took the plain rows


def test_integer_scores_rank_as_the_selection_without_a_warning() -> None:
    import warnings

    s = np.random.default_rng(5).integers(-1000, 1000, (8, 50 * TOPK_BLOCK + 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a -inf fill cast to int warned)
        got = top_k(s, 10)
    want = _reference(s.astype(np.float64), 10)
    assert np.array_equal(got.ids, want.ids) and np.array_equal(got.scores, want.scores)
