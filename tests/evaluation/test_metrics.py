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


def _hits_per_user(ids, t):
    """The per-user membership test `hits_matrix` replaced (the reference it must equal)."""
    hits = np.zeros(ids.shape, bool)
    for r in range(len(ids)):
        pos = t.indices[t.indptr[r] : t.indptr[r + 1]]
        if len(pos):
            hits[r] = np.isin(ids[r], pos)
    return hits


def test_hits_matrix_equals_a_membership_test_per_user():
    """The vectorized lookup gives the same hits as `np.isin` row by row: padding (-1) never
    hits, users without targets have none, several targets per user, ids past the targets'
    width, and so the same metrics to the last digit."""
    from shelfwise.evaluation import hits_matrix

    rng = np.random.default_rng(7)
    n, n_items, k = 300, 40, 12
    ids = rng.integers(-1, n_items + 3, (n, k))
    rows = [sorted(set(rng.integers(0, n_items, rng.integers(0, 4)).tolist())) for _ in range(n)]
    rows[0], rows[1] = [], [n_items - 1]
    ids[1, 3] = -1  # padding next to the last item of the previous row's key range
    rows[2] = [3, 5, 9]
    ids[2, :3] = [9, 3, 5]  # every target found
    t = targets(rows, n_items)
    assert np.array_equal(hits_matrix(ids, t), _hits_per_user(ids, t))
    assert hits_matrix(ids, t).any()
    assert not hits_matrix(ids[:0], t[:0]).any()
    assert not hits_matrix(ids, targets([[]] * n, n_items)).any()
    for cutoff in (1, 5, 12):
        got = per_user_metrics(ids, t, cutoff)
        hits = _hits_per_user(ids[:, :cutoff], t)
        discounts = 1.0 / np.log2(np.arange(2, cutoff + 2))
        n_pos = np.diff(t.indptr)
        ideal = np.array([discounts[: int(min(p, cutoff))].sum() for p in n_pos])
        dcg = (hits * discounts).sum(axis=1)
        want = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
        assert np.array_equal(got[f"ndcg@{cutoff}"], want)
        assert np.array_equal(got[f"hr@{cutoff}"], hits.any(axis=1).astype(np.float64))


def test_bootstrap_cis_draws_once_the_intervals_each_metric_gets_alone():
    from shelfwise.evaluation._metrics import bootstrap_cis

    def alone(v, seed):  # the interval as bootstrap_ci computed it, one draw per metric
        idx = np.random.default_rng(seed).integers(0, len(v), size=(200, len(v)))
        means = v[idx].mean(axis=1)
        return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))

    rng = np.random.default_rng(3)
    values = {"a": rng.random(400), "b": (rng.random(400) < 0.1).astype(float), "c": rng.random(90)}
    got = bootstrap_cis({**values, "empty": np.array([])}, rounds=200, seed=5)
    assert {m: got[m] for m in values} == {m: alone(v, 5) for m, v in values.items()}
    assert np.isnan(got["empty"]).all() and list(got) == ["a", "b", "c", "empty"]


def test_items_serving_never_shows_are_never_ranked_and_their_targets_are_misses():
    """A product known from events whose catalog row was quarantined (`listed` false) is never
    served, so the evaluation does not rank it either: each list is the model's ranking over the
    listed items (the same as masking the unlisted ones' scores), a target on an unlisted item is
    a miss, coverage counts listed items and the protocol says what was ranked."""
    from shelfwise.evaluation import evaluate_all
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import ItemKNN, Popularity

    rng = np.random.default_rng(3)
    users, items, ts = [], [], []
    for u in range(120):
        # the best seller "p0", which the catalog does not list: the first step of half the
        # users and the last (the test target) of the other half
        steps = [*rng.choice(np.arange(1, 30), 5, replace=False)]
        for t, i in enumerate([0, *steps] if u < 60 else [*steps, 0]):
            users.append(f"u{u}")
            items.append(f"p{i}")
            ts.append(t)
    split = leave_last_out(Interactions.from_arrays(users, items, ts))
    listed = np.asarray(split.train.item_ids) != "p0"
    models = {"popularity": Popularity().fit(split.train), "itemknn": ItemKNN().fit(split.train)}
    protocol, results = evaluate_all(models, split, bootstrap_rounds=10, listed=listed)
    plain_protocol, plain = evaluate_all(models, split, bootstrap_rounds=10)
    assert protocol.unlisted_items == 1 and plain_protocol.unlisted_items == 0
    assert protocol.candidates == f"full ranking (the {len(listed) - 1:,} listed items)"
    assert plain_protocol.candidates == "full ranking (all items)"
    by_name = {r.model: r for r in results}
    test_on_p0 = np.asarray(split.test.targets[:, 0].todense()).ravel() > 0
    assert test_on_p0.sum() == 60
    # p0 is the first recommendation of every user who has not seen it: with it unlisted those
    # are misses; before, every such user counted a hit at rank 1
    assert {r.model: r.metrics["hr@10"] for r in plain}["popularity"] >= 0.5
    assert by_name["popularity"].metrics["hr@10"] < 0.5
    # the lists are the rankings over listed items, as masking the unlisted scores gives (the
    # same scores rank by rank: equal counts may come in another order)
    from shelfwise.evaluation._harness import _listed_top
    from shelfwise.models import top_k

    for name, m in models.items():
        got = _listed_top(m, split.test.users, 10, split.test, ~listed)
        s = np.array(m.score(split.test.users, split.test.history), dtype=np.float32, copy=True)
        seen = split.test.history.seen()[split.test.users]
        s[np.repeat(np.arange(len(s)), np.diff(seen.indptr)), seen.indices] = -np.inf
        s[:, ~listed] = -np.inf
        want = top_k(s, 10).scores
        assert np.isfinite(want).all()
        assert np.array_equal(np.take_along_axis(s, got, axis=1), want), name
        assert not np.isin(np.flatnonzero(~listed), got).any()
    assert 0 < by_name["itemknn"].metrics["coverage@10"] <= 1.0
    sampled_protocol, (sampled,) = evaluate_all(
        {"popularity": models["popularity"]}, split, sampled=20, bootstrap_rounds=10, listed=listed
    )
    assert "listed items only" in sampled_protocol.candidates
    assert sampled.metrics["hr@50"] == 0.5  # each list holds its target, but for p0's 60 users
    # fewer negatives than the largest cutoff (50), and more than the catalog holds: no error
    for n in (20, 500):
        _, (plain_sampled,) = evaluate_all(
            {"popularity": models["popularity"]}, split, sampled=n, bootstrap_rounds=10
        )
        assert plain_sampled.metrics["hr@50"] == 1.0


def test_a_target_already_in_the_history_is_a_miss_under_both_protocols():
    """Leave-last-out's last step may return to an item the user had before: seen items are
    excluded from every list, so no model can hit it, and the sampled protocol (which put the
    target among its candidates whether seen or not) must not either. The protocol counts them."""
    from shelfwise.evaluation import evaluate_all
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Popularity

    steps = {
        "u0": ["p", "q", "r", "p"],  # back to p: a repeat target
        "u1": ["q", "r", "s", "q"],  # back to q: a repeat target
        "u2": ["p", "q", "r", "s"],  # s: new to u2
        "u3": ["q", "r", "s", "p"],  # p: new to u3
    }
    rows = [(u, item, t) for u, items in steps.items() for t, item in enumerate(items)]
    split = leave_last_out(Interactions.from_arrays(*zip(*rows, strict=True)))
    models = {"popularity": Popularity().fit(split.train)}
    full_protocol, (full,) = evaluate_all(models, split, bootstrap_rounds=10)
    sampled_protocol, (sampled,) = evaluate_all(models, split, sampled=20, bootstrap_rounds=10)
    # 4 items: every list holds every unseen item, so each new target is a hit at 50, each
    # repeat target a miss; before, the sampled protocol ranked p and q too (hr@50 1.0)
    assert full.metrics["hr@50"] == 0.5
    assert sampled.metrics["hr@50"] == 0.5
    for protocol in (full_protocol, sampled_protocol):
        assert protocol.exclude_seen and protocol.repeat_targets == 2 and protocol.users == 4
        assert protocol.as_dict()["repeat_targets"] == 2


def test_the_tuning_objective_ranks_only_listed_items_too():
    """Tuning and early stopping score models with `ndcg_at_10`: with `listed`, it agrees with
    the evaluation's lists (an unlisted best seller is neither ranked nor a hit), so a model is
    not chosen for hits serving never shows."""
    from shelfwise.evaluation import evaluate_all, ndcg_at_10
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Popularity

    rng = np.random.default_rng(4)
    users, items, ts = [], [], []
    for u in range(80):
        steps = [*rng.choice(np.arange(1, 25), 4, replace=False)]
        for t, i in enumerate([*steps, 0] if u % 2 else [0, *steps]):  # p0: unlisted best seller
            users.append(f"u{u}")
            items.append(f"p{i}")
            ts.append(t)
    split = leave_last_out(Interactions.from_arrays(users, items, ts))
    listed = np.asarray(split.train.item_ids) != "p0"
    model = Popularity().fit(split.train)
    plain = ndcg_at_10(model, split.test)
    honest = ndcg_at_10(model, split.test, listed=listed)
    assert honest < plain  # half the users' only hit was p0 at rank 1
    _, (result,) = evaluate_all({"popularity": model}, split, bootstrap_rounds=10, listed=listed)
    assert honest == pytest.approx(result.metrics["ndcg@10"])
    assert ndcg_at_10(model, split.test, listed=np.ones(len(listed), bool)) == pytest.approx(plain)


def test_a_sampled_ranking_breaks_ties_at_random_not_in_the_targets_favour():
    """A model that scores every item 0 ranks the target among N negatives at random: hr@10 near
    10 / (N + 1), not 1 (the target came first and a stable sort kept it there on every tie)."""
    from shelfwise.evaluation import evaluate_all
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Popularity

    class Blind(Popularity):
        def score(self, users, history=None):
            return np.zeros((len(users), self.n_items_), np.float32)

    rng = np.random.default_rng(6)
    users, items, ts = [], [], []
    for u in range(400):
        for t, i in enumerate(rng.choice(200, 4, replace=False)):
            users.append(f"u{u}")
            items.append(f"p{i}")
            ts.append(t)
    split = leave_last_out(Interactions.from_arrays(users, items, ts))
    model = Blind().fit(split.train)
    protocol, (result,) = evaluate_all({"blind": model}, split, sampled=49, bootstrap_rounds=10)
    assert "ties broken at random" in protocol.candidates
    assert 0.12 < result.metrics["hr@10"] < 0.28, result.metrics  # 10 / 50 = 0.2 expected


def test_a_sample_as_large_as_the_catalog_says_it_ranks_every_unseen_item():
    """`evaluate --sampled 5000` on a 1,682-item catalog drew every unseen item: the full
    ranking's numbers, labelled "sampled (5000 random unseen negatives per target)". The label
    says every unseen item was a candidate; a smaller sample keeps its label."""
    from shelfwise.evaluation import evaluate_all
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Popularity

    rng = np.random.default_rng(2)
    users, items, ts = [], [], []
    for u in range(100):
        for t, i in enumerate(rng.choice(50, 4, replace=False)):
            users.append(f"u{u}")
            items.append(f"p{i}")
            ts.append(t)
    split = leave_last_out(Interactions.from_arrays(users, items, ts))
    model = Popularity().fit(split.train)
    protocol, _ = evaluate_all({"popularity": model}, split, sampled=5000, bootstrap_rounds=10)
    assert protocol.candidates.startswith(
        "sampled (5000 negatives asked, as many as the 50 items or more: every unseen"
    )
    protocol, _ = evaluate_all({"popularity": model}, split, sampled=20, bootstrap_rounds=10)
    assert protocol.candidates.startswith("sampled (20 random unseen negatives per target")


def test_places_a_model_has_no_evidence_for_are_evaluated_as_the_popular_fill_serving_shows():
    """Item-kNN and transitions leave no-evidence places empty and serving fills them from its
    popular list: the offline list is filled alike (unseen, most popular first), so the number
    measures the list shoppers get, not a miss per empty place."""
    from shelfwise.evaluation._harness import _listed_top
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Transitions

    users, items, ts = [], [], []
    for u in range(30):  # u0..u29: p0 then p1; p2..p5 popular among the others
        for t, i in enumerate([0, 1] if u < 10 else [2, 3, 4, 5][u % 4 :] + [u % 4 + 6]):
            users.append(f"u{u}")
            items.append(f"p{i}")
            ts.append(t)
    split = leave_last_out(Interactions.from_arrays(users, items, ts))
    model = Transitions().fit(split.train)
    raw = model.recommend(split.test.users, 5, exclude_seen=True, history=split.test.history).ids
    got = _listed_top(model, split.test.users, 5, split.test, None)
    assert (raw < 0).any() and not (got < 0).any()
    assert (got[raw >= 0] == raw[raw >= 0]).all()  # the model's own places stay
    seen = split.test.history.seen()
    for r, u in enumerate(split.test.users):
        assert not set(got[r].tolist()) & set(seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist())


def test_a_session_shops_fold_says_which_test_users_are_sessions_without_a_login():
    """Diginetica's sessions without a login (pseudonyms `a_...`) were counted as "users" beside
    the customers: leave-last-out held out the next item of one visit for them and the next
    across visits for customers, under one number without a word. The protocol counts them and
    the results part the two (segments `anonymous_sessions` and `customers`); a shop of
    customers only has neither."""
    from shelfwise.evaluation import evaluate_all, sessions_said
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Popularity

    users = ["a_s1"] * 3 + ["a_s2"] * 3 + ["u_c1"] * 4
    items = ["x", "y", "z", "x", "y", "w", "y", "x", "z", "w"]
    split = leave_last_out(Interactions.from_arrays(users, items, list(range(10))))
    protocol, results = evaluate_all(
        {"popularity": Popularity().fit(split.train)}, split, bootstrap_rounds=10
    )
    assert (protocol.users, protocol.anonymous_sessions) == (3, 2)
    seg = results[0].segments
    assert (seg["anonymous_sessions"]["users"], seg["customers"]["users"]) == (2, 1)
    said = sessions_said(protocol.as_dict())
    assert said.startswith("2 of 3 test users (66.7%) are sessions without a login"), said
    customers = leave_last_out(
        Interactions.from_arrays([u.replace("a_", "u_") for u in users], items, list(range(10)))
    )
    p2, r2 = evaluate_all({"popularity": Popularity().fit(customers.train)}, customers, bootstrap_rounds=10)
    assert (
        p2.anonymous_sessions == 0 and "customers" not in r2[0].segments and sessions_said(p2.as_dict()) == ""
    )


def test_a_sampled_report_counts_the_targets_a_model_left_unscored():
    """A fusion scores only its generators' candidates (-inf elsewhere): under the sampled
    protocol its other targets tie with the negatives at the floor and are placed by the random
    tie-break. Each model's share of such targets is counted: here a model scoring only the
    items of index < 100 leaves exactly the targets of index >= 100 unscored; one scoring every
    item 0 leaves all of them; full ranking counts nothing."""
    from shelfwise.evaluation import evaluate_all, sampled_unscored_said
    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Popularity

    class Blind(Popularity):
        def score(self, users, history=None):
            return np.zeros((len(users), self.n_items_), np.float32)

    class Candidates(Popularity):  # a fusion in small: finite scores for its candidates only
        def score(self, users, history=None):
            s = np.full((len(users), self.n_items_), -np.inf, np.float32)
            s[:, :100] = np.arange(100, 0, -1)
            return s

    rng = np.random.default_rng(6)
    users, items, ts = [], [], []
    for u in range(400):
        for t, i in enumerate(rng.choice(200, 4, replace=False)):
            users.append(f"u{u}")
            items.append(f"p{i}")
            ts.append(t)
    split = leave_last_out(Interactions.from_arrays(users, items, ts))
    models = {"candidates": Candidates().fit(split.train), "blind": Blind().fit(split.train)}
    protocol, (cands, blind) = evaluate_all(models, split, sampled=49, bootstrap_rounds=10)
    assert "sampled_unscored_targets" in protocol.candidates  # the protocol says what a tie means
    f = split.test
    tgt = f.targets.indices[f.targets.indptr[:-1]]
    seen = np.array([tgt[r] in f.history.seen()[u].indices for r, u in enumerate(f.users)])
    expected = float((tgt[~seen] >= 100).mean())
    assert 0.3 < expected < 0.7
    assert cands.extra["sampled_ranked_target_users"] == int((~seen).sum())
    assert cands.extra["sampled_unscored_targets"] == pytest.approx(expected)
    assert cands.extra["sampled_unscored_target_users"] == int((tgt[~seen] >= 100).sum())
    assert blind.extra["sampled_unscored_targets"] == 1.0
    assert "sampled_unscored_targets" in blind.as_dict()  # a field of the results (JSON)
    assert sampled_unscored_said(blind.as_dict()).startswith("blind: 100.0% of its sampled targets")
    _, (full,) = evaluate_all({"blind": models["blind"]}, split, bootstrap_rounds=10)
    assert "sampled_unscored_targets" not in full.as_dict()
