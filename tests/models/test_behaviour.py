"""Models must recover planted structure."""

import numpy as np
import pytest

from shelfwise.evaluation import ndcg_at_10
from shelfwise.features import leave_last_out
from shelfwise.models import ALS, BPR, EASE, Fusion, ItemKNN, Popularity, SASRec, Transitions

# a SASRec that learns the planted sequences in a few seconds
SMALL_SASREC = dict(
    epochs=40, dim=32, heads=1, layers=1, max_len=8, batch_size=64, lr=5e-3, dropout=0.0, eval_every=40
)


@pytest.mark.parametrize(
    "model",
    [ItemKNN(), ALS(factors=8, iterations=10), BPR(factors=8, iterations=200), EASE(l2=10.0)],
    ids=lambda m: m.name,
)
def test_taste_groups_are_recovered(model, groups):
    model.fit(groups)
    r = model.recommend(np.arange(groups.n_users), k=5)
    item_num = np.array([int(s[1:]) for s in groups.item_ids])
    user_num = np.array([int(s[1:]) for s in groups.user_ids])
    same = item_num[r.ids] % 2 == (user_num[:, None] % 2)
    assert same.mean() > 0.95, model.name


@pytest.mark.parametrize(
    "model",
    [
        Transitions(),
        SASRec(**SMALL_SASREC),
        # the sampled softmax of large catalogs (8 shared uniform negatives of 30 items)
        SASRec(
            epochs=40,
            dim=32,
            max_len=8,
            batch_size=64,
            lr=5e-3,
            dropout=0.0,
            loss="sampled",
            negatives=8,
        ),
        # eSASRec's LiGR blocks (gated residuals, SwiGLU feed-forward) instead of torch's layer
        SASRec(**SMALL_SASREC, block="ligr", ff_mult=4),
    ],
    ids=lambda m: f"{m.name}-{getattr(m, 'loss', '')}-{getattr(m, 'block', '')}",
)
def test_sequence_models_predict_the_next_step(model, cycles):
    split = leave_last_out(cycles)
    model.fit(split.train)
    score = ndcg_at_10(model, split.test)
    assert score > 0.9, (model.name, score)


def test_popularity_is_the_weak_baseline_on_sequences(cycles):
    split = leave_last_out(cycles)
    assert ndcg_at_10(Popularity().fit(split.train), split.test) < 0.3


def test_recent_window_popularity():
    from shelfwise.features import Interactions

    inter = Interactions.from_arrays(
        ["a", "b", "c", "d", "e"],
        ["old", "old", "old", "new", "new"],
        [0, 1, 2, 100 * 86400, 100 * 86400 + 5],
    )
    top = Popularity(window_days=7).fit(inter).recommend(np.array([0]), k=1, exclude_seen=False)
    assert inter.item_ids[top.ids[0, 0]] == "new"
    top = Popularity().fit(inter).recommend(np.array([0]), k=1, exclude_seen=False)
    assert inter.item_ids[top.ids[0, 0]] == "old"


def test_fusion_learns_which_generator_knows_the_next_step(cycles):
    """On cycles the next item is the one after the last: transitions know it, popularity does
    not. The ranker, trained on the validation fold, must follow transitions and stay far
    ahead of popularity on the test fold."""
    split = leave_last_out(cycles)
    gens = {"popularity": Popularity().fit(split.train), "transitions": Transitions().fit(split.train)}
    fusion = Fusion(trees=50, min_child_samples=5, candidates=10, holdout=0.2).fit(
        split.train, generators=gens, validation=split.validation
    )
    assert ndcg_at_10(fusion, split.test) > 0.9
    assert ndcg_at_10(gens["popularity"], split.test) < 0.3
    hold = fusion.ranker_report_["holdout_ndcg@10"]
    assert hold["fusion"] >= hold["popularity"] + 0.5
    # the per-user numbers those are the means of, the same users in the same order for each
    # (what the paired interval of train's comparison resamples)
    gains = fusion.holdout_gains_
    assert {g: float(v.mean()) for g, v in gains.items()} == pytest.approx(hold)
    assert {len(v) for v in gains.values()} == {fusion.ranker_report_["holdout_users"]}


def _without_step_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fusion's last-step features off (zeros, as for a fusion saved before them)."""
    from shelfwise.models import _fusion

    monkeypatch.setattr(_fusion, "_step_statistics", lambda interactions: (None,) * 4)


def test_fusion_reads_the_last_steps(monkeypatch, tmp_path):
    """On cycles (60 items) the next item is the one after the last; the only generator
    (popularity) does not know it. The ranker learns it from its own last-step features (what
    followed the last item in the training sequences) and far outranks itself without them."""
    from tests.models.planted_data import planted_cycles

    split = leave_last_out(planted_cycles(n_items=60))
    gens = {"popularity": Popularity().fit(split.train)}

    def fused() -> Fusion:
        return Fusion(trees=50, min_child_samples=5, candidates=split.train.n_items, holdout=0.2).fit(
            split.train, generators=gens, validation=split.validation
        )

    with_steps = fused()
    assert ndcg_at_10(with_steps, split.test) > 0.9
    importance = with_steps.ranker_report_["feature_importance"]
    assert (
        importance["followed_last"] + importance["followed_last_share"] + importance["window_from_last"] > 0
    )
    # the served rankers: three seeds on every validation user, for the chosen rounds scaled up
    report = with_steps.ranker_report_
    assert len(with_steps.rankers_) == report["bag"] == 3
    assert report["final_rounds"] >= report["best_iteration"]
    # saved and loaded, it scores as before (the step statistics are part of its state)
    with_steps.save(tmp_path / "fusion")
    loaded = Fusion.load(tmp_path / "fusion", split.train, generators=gens)
    users = np.arange(20)
    np.testing.assert_array_equal(loaded.score(users, split.train), with_steps.score(users, split.train))
    _without_step_statistics(monkeypatch)
    assert ndcg_at_10(fused(), split.test) < 0.6  # 0.44: popularity's counts hint at the starts


def test_smoothed_best_round():
    """The held-out curve's top after a moving average: one noisy early spike does not win
    against a long plateau."""
    from shelfwise.models._fusion import _smoothed_best

    curve = np.concatenate([np.linspace(0.1, 0.5, 50), np.full(100, 0.6), np.linspace(0.6, 0.4, 50)])
    curve[10] = 0.9  # a spike: the raw argmax
    assert int(np.argmax(curve)) + 1 == 11
    assert 50 < _smoothed_best(curve) <= 150
    assert _smoothed_best(np.array([0.1, 0.3, 0.2])) == 2  # shorter than the window: the raw top


def test_fusion_reads_item_attributes(tmp_path, monkeypatch):
    """Each user keeps to one of four attribute groups (10 items each) and no generator knows
    it (popularity over near-uniform counts; the last-step features, which would see the groups
    in the sequences, are off): with the items' attributes the ranker finds the group through
    the candidates' cosine with the history, and far outranks itself without."""
    from shelfwise.features import Interactions
    from shelfwise.models._sasrec import attribute_matrix

    _without_step_statistics(monkeypatch)

    rng = np.random.default_rng(0)
    users, items, ts = [], [], []
    for u in range(400):
        g = u % 4
        for t, i in enumerate(rng.choice(np.arange(g * 10, g * 10 + 10), 6, replace=False)):
            users.append(f"u{u}")
            items.append(f"i{i:03d}")
            ts.append(t)
    split = leave_last_out(Interactions.from_arrays(users, items, ts))
    group = [f"group:{int(i[1:]) // 10}" for i in split.train.item_ids]
    attributes = attribute_matrix([[g] for g in group])
    gens = {"popularity": Popularity().fit(split.train)}

    def fused(attrs):  # type: ignore[no-untyped-def]
        return Fusion(trees=50, min_child_samples=5, candidates=40, holdout=0.2).fit(
            split.train, generators=gens, validation=split.validation, item_attributes=attrs
        )

    with_attributes, without = fused(attributes), fused(None)
    assert ndcg_at_10(with_attributes, split.test) > ndcg_at_10(without, split.test) + 0.2
    importance = with_attributes.ranker_report_["feature_importance"]
    assert importance["attribute_cosine_to_history"] + importance["attribute_cosine_to_last"] > 0
    # saved and loaded, it scores as before (the attributes are part of its state)
    with_attributes.save(tmp_path / "fusion")
    loaded = Fusion.load(tmp_path / "fusion", split.train, generators=gens)
    users = np.arange(20)
    np.testing.assert_array_equal(loaded.score(users, split.train), with_attributes.score(users, split.train))


def test_fusion_reads_the_users_popularity_level(cycles):
    """Two columns say how popular a user's items are: the mean log count of their history's
    items, and the candidate's log count less that level (0 level for an empty history)."""
    split = leave_last_out(cycles)
    gens = {"popularity": Popularity().fit(split.train), "transitions": Transitions().fit(split.train)}
    fusion = Fusion(trees=20, min_child_samples=5, candidates=10, holdout=0.2).fit(
        split.train, generators=gens, validation=split.validation
    )
    names = fusion.feature_names()
    users = np.arange(12)
    rows, cols, x = fusion._candidate_features(users, split.train)
    level = x[:, names.index("user_mean_log_count")]
    gap = x[:, names.index("log_count_gap_to_user")]
    off = split.train.offsets
    for j in range(0, len(rows), 7):
        u = users[rows[j]]
        items = split.train.item_idx[off[u] : off[u + 1]]
        want = fusion.item_log_count_[items].mean() if len(items) else 0.0
        assert level[j] == pytest.approx(want, rel=1e-6)
        assert gap[j] == pytest.approx(fusion.item_log_count_[cols[j]] - want, rel=1e-5, abs=1e-6)
    assert len(set(level.tolist())) > 1  # users differ
