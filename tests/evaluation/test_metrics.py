import numpy as np
import pytest
import scipy.sparse as sp

from shelfwise.evaluation import bootstrap_ci, coverage, novelty, per_user_metrics


def targets(rows, n_items=10):
    r = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    c = np.concatenate([np.array(x, int) for x in rows]) if rows else np.array([], int)
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def test_single_target_hand_computed():
    ids = np.array([[3, 1, 2], [5, 6, 7], [9, 8, 4]])
    t = targets([[1], [0], [4]])
    m = per_user_metrics(ids, t, 3)
    assert m["hr@3"].tolist() == [1, 0, 1]
    np.testing.assert_allclose(m["ndcg@3"], [1 / np.log2(3), 0, 1 / np.log2(4)])
    np.testing.assert_allclose(m["mrr@3"], [1 / 2, 0, 1 / 3])
    np.testing.assert_allclose(m["map@3"], [1 / 2, 0, 1 / 3])
    np.testing.assert_allclose(m["recall@3"], [1, 0, 1])
    np.testing.assert_allclose(m["precision@3"], [1 / 3, 0, 1 / 3])


def test_multiple_targets_hand_computed():
    ids = np.array([[1, 2, 3, 4]])
    t = targets([[1, 3, 9]])
    m = per_user_metrics(ids, t, 4)
    dcg = 1 + 1 / np.log2(4)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["ndcg@4"][0] == pytest.approx(dcg / idcg)
    assert m["recall@4"][0] == pytest.approx(2 / 3)
    assert m["map@4"][0] == pytest.approx((1 / 1 + 2 / 3) / 3)


def test_cutoff_and_padding():
    ids = np.array([[-1, -1, 2]])
    m = per_user_metrics(ids, targets([[2]]), 2)
    assert m["hr@2"][0] == 0
    m = per_user_metrics(ids, targets([[2]]), 3)
    assert m["ndcg@3"][0] == pytest.approx(0.5)


def test_bootstrap_ci_contains_mean_and_is_deterministic():
    v = np.random.default_rng(1).random(500)
    lo, hi = bootstrap_ci(v, seed=3)
    assert lo < v.mean() < hi
    assert (lo, hi) == bootstrap_ci(v, seed=3)


def test_coverage_and_novelty():
    ids = np.array([[0, 1], [0, 2]])
    assert coverage(ids, 10, 2) == pytest.approx(0.3)
    counts = np.array([100, 1, 1, 0])
    assert novelty(np.array([[1]]), counts, 1) > novelty(np.array([[0]]), counts, 1)


def test_a_fold_with_no_users_has_no_value_and_no_error():
    """A shop with a handful of events: nobody has >= 3 steps, so the folds are empty."""
    import warnings

    from shelfwise.evaluation import evaluate_all, ndcg_at_10
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Popularity

    split = leave_last_out(Interactions.from_arrays(["a", "a", "b"], ["x", "y", "x"], [1, 2, 3]))
    model = Popularity().fit(split.train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" either
        assert np.isnan(ndcg_at_10(model, split.validation))
        protocol, (result,) = evaluate_all({"popularity": model}, split)
    assert protocol.users == 0 and np.isnan(result.metrics["ndcg@10"])
    assert all(np.isnan(v).all() for v in result.ci.values())


def test_wilson_interval_known_answers() -> None:
    from shelfwise.evaluation import wilson_interval

    # 30 of 200: statsmodels' proportion_confint(30, 200, method="wilson") = (0.10714, 0.20606)
    lo, hi = wilson_interval(30, 200)
    assert lo == pytest.approx(0.107136, abs=1e-5) and hi == pytest.approx(0.206056, abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 0.0)
    lo, hi = wilson_interval(0, 10)  # no success: the lower bound is 0, the upper one is not
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.27753, abs=1e-4)
