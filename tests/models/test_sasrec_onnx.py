"""SASRec served without torch: the saved model's ONNX query graph (int8 or float32) and stored
item vectors score as the torch network does, for histories shorter and longer than max_len and
empty ones, and a process that loads and serves it never imports torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shelfwise.features import Interactions
from shelfwise.models import SASRec, load_model
from shelfwise.models._sasrec import ONNX_DIR, SCORING_ENV, TORCH_DIR
from tests.models.planted_data import planted_cycles

# a model trained and exported three times, and two fresh processes importing onnxruntime and torch
pytestmark = pytest.mark.slow

MAX_LEN = 8


@pytest.fixture(scope="module")
def trained() -> tuple[SASRec, Interactions]:
    inter = planted_cycles(n_users=120, length=14)
    # serving="torch": this model scores with torch, the reference its exports are compared with
    model = SASRec(
        epochs=8, dim=16, heads=2, layers=2, max_len=MAX_LEN, batch_size=32, dropout=0.1, serving="torch"
    )
    return model.fit(inter), inter


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory) -> dict[str, Path]:
    """The trained model saved for each serving mode."""
    model, _ = trained
    base = tmp_path_factory.mktemp("sasrec-onnx")
    out = {}
    for serving in ("onnx-int8", "onnx", "torch"):
        model.serving = serving
        model.save(base / serving)
        out[serving] = base / serving
    model.serving = "torch"
    return out


def test_a_fitted_model_scores_as_it_is_served(tmp_path):
    """After fit a model scores through the graph it saves (int8 by default): train's test numbers,
    the fusion's inputs, `evaluate` on the saved fit and serving read the same scores."""
    inter = planted_cycles(n_users=60, length=10)
    model = SASRec(epochs=2, dim=16, heads=1, layers=1, max_len=MAX_LEN, batch_size=32).fit(inter)
    assert model.onnx_.int8
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m", inter)
    assert getattr(loaded, "net_", None) is None
    users = np.arange(inter.n_users)
    np.testing.assert_allclose(model.score(users), loaded.score(users), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model.recommend(users, k=10).ids, loaded.recommend(users, k=10).ids)
    # a shopper's scores do not depend on who else is in the batch (int8 activations are scaled
    # per input): an evaluation over all users reads what each one is served alone
    alone = np.vstack([loaded.score(np.array([u])) for u in users])
    np.testing.assert_array_equal(loaded.score(users), alone)
    # a refit validates its own network, not the previous fit's graph
    seen = []
    model.fit(inter, validation=lambda m: seen.append(getattr(m, "onnx_", None)) or 0.0)
    assert seen and all(s is None for s in seen) and model.onnx_ is not None
    # the scorer travels whole (a Spark broadcast to another host): the graph's bytes with it
    import pickle

    copy = pickle.loads(pickle.dumps(loaded.onnx_))
    copy.directory = tmp_path / "elsewhere"
    np.testing.assert_array_equal(copy.score([inter.sequence(0)]), loaded.score(np.array([0])))


def test_many_histories_are_shared_out_with_the_scores_of_one_at_a_time(monkeypatch):
    """Many histories are scored by one single-threaded session per core, side by side: each
    history's scores are exactly those it gets alone (as a request is served)."""
    from shelfwise import _threads
    from shelfwise.models import _sasrec

    inter = planted_cycles(n_users=60, length=10)
    model = SASRec(epochs=2, dim=16, heads=1, layers=1, max_len=MAX_LEN, batch_size=32).fit(inter)
    users = np.arange(inter.n_users)
    alone = np.vstack([model.score(np.array([u])) for u in users])
    monkeypatch.delenv("SHELFWISE_ENCODER_THREADS", raising=False)
    monkeypatch.setattr(_threads, "available_cpus", lambda: 3)
    monkeypatch.setattr(_sasrec, "SHARD_MIN_HISTORIES", 8)
    shared = model.score(users)
    assert len(model.onnx_._workers) == 3  # three shards of 20 histories
    np.testing.assert_array_equal(shared, alone)
    made = list(model.onnx_._workers)
    # a shorter batch (two shards) uses the sessions already made; none is made again
    np.testing.assert_array_equal(model.score(users[:17]), alone[:17])
    assert model.onnx_._workers == made
    monkeypatch.setattr(_sasrec, "SHARD_MIN_HISTORIES", 40)  # 60 histories: one worker's worth
    np.testing.assert_array_equal(model.score(users), alone)


def _histories(inter: Interactions) -> Interactions:
    """User u keeps its first u % 14 steps: lengths 0 (empty) to 13, below and above max_len."""
    keep = np.zeros(len(inter), bool)
    for u in range(inter.n_users):
        rows = np.flatnonzero(inter.user_idx == u)
        rows = rows[np.argsort(inter.timestamp[rows], kind="stable")]
        keep[rows[: u % 14]] = True
    return inter.take(keep)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


def test_a_loaded_model_scores_through_onnx_int8_close_to_torch(trained, saved):
    model, inter = trained
    loaded = load_model(saved["onnx-int8"], inter)
    assert getattr(loaded, "net_", None) is None and loaded.onnx_ is not None
    users = np.arange(inter.n_users)
    ref, got = model.score(users), loaded.score(users)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    a, b = model.recommend(users, k=10).ids, loaded.recommend(users, k=10).ids
    assert _overlap(a, b) >= 0.9
    np.testing.assert_array_equal(a[:, 0], b[:, 0])  # the cycle's next item: learnt, and kept


def test_the_float32_graph_matches_torch_at_every_history_length(trained, saved):
    """Left-padded to max_len in the graph, trimmed to the batch's longest in torch: the same
    states for histories of 1 to max_len + 5 items; an empty history scores 0 in both."""
    model, inter = trained
    hist = _histories(inter)
    loaded = load_model(saved["onnx"], inter)
    users = np.arange(inter.n_users)
    ref, got = model.score(users, history=hist), loaded.score(users, history=hist)
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
    empty = users % 14 == 0
    assert empty.any() and not np.any(got[empty]) and not np.any(ref[empty])
    lengths = {u % 14 for u in users}
    assert min(lengths - {0}) < MAX_LEN < max(lengths)
    # one user at a time (a batch of one, as a request) answers as the whole batch did
    for u in (1, 5, 13):
        np.testing.assert_allclose(loaded.score(np.array([u]), history=hist)[0], got[u], atol=1e-5)
    int8 = load_model(saved["onnx-int8"], inter).recommend(users, k=10, history=hist).ids
    assert _overlap(int8[~empty], model.recommend(users, k=10, history=hist).ids[~empty]) >= 0.9


def test_a_ligr_model_is_served_through_onnx_as_it_scores_with_torch(tmp_path):
    """The LiGR blocks (block="ligr") export as torch's layers do: the float32 graph gives the
    torch scores, the int8 graph still predicts the planted cycle's next step."""
    from shelfwise.evaluation import ndcg_at_10
    from shelfwise.features import leave_last_out

    split = leave_last_out(planted_cycles(n_users=120, length=14))
    model = SASRec(
        epochs=30,
        dim=16,
        heads=2,
        layers=2,
        max_len=MAX_LEN,
        batch_size=32,
        lr=5e-3,
        dropout=0.0,
        block="ligr",
        ff_mult=4,
        serving="torch",
    ).fit(split.train)
    users = np.arange(split.train.n_users)
    ref = model.score(users)
    model.serving = "onnx"
    model.save(tmp_path / "fp32")
    np.testing.assert_allclose(
        load_model(tmp_path / "fp32", split.train).score(users), ref, atol=1e-4 * np.abs(ref).max()
    )
    model.serving = "onnx-int8"
    model.save(tmp_path / "int8")
    int8 = load_model(tmp_path / "int8", split.train)
    assert getattr(int8, "net_", None) is None
    assert ndcg_at_10(int8, split.test) > 0.9
    with pytest.raises(ValueError, match="block"):
        SASRec(epochs=1, block="mamba").fit(split.train)


def test_serving_modes_and_the_torch_override(trained, saved, monkeypatch):
    model, inter = trained
    assert not (saved["torch"] / ONNX_DIR).exists()
    assert json.loads((saved["onnx-int8"] / ONNX_DIR / "onnx.json").read_text())["weights"].startswith("int8")
    import onnx

    graph = onnx.load(str(saved["onnx-int8"] / ONNX_DIR / "query.onnx")).graph
    int8 = [tuple(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert (16, inter.n_items) in int8  # the item vectors of the final product, (dim, n_items)
    assert "MatMulInteger" in {n.op_type for n in graph.node}
    users = np.arange(20)
    as_torch = load_model(saved["torch"], inter)
    np.testing.assert_array_equal(as_torch.score(users), model.score(users))
    monkeypatch.setenv(SCORING_ENV, "torch")
    forced = load_model(saved["onnx-int8"], inter)
    assert forced.net_ is not None
    np.testing.assert_array_equal(forced.score(users), model.score(users))
    forced.save(saved["onnx-int8"].parent / "resaved")  # a torch-loaded model saves (exports) again
    monkeypatch.delenv(SCORING_ENV)
    with pytest.raises(RuntimeError, match=SCORING_ENV):
        load_model(saved["onnx-int8"], inter).save(saved["onnx-int8"].parent / "nowhere")
    with pytest.raises(ValueError, match="serving"):
        SASRec(epochs=1, serving="tflite").fit(inter)


def test_a_bundle_saved_before_the_export_still_loads_and_scores_with_torch(trained, saved, tmp_path):
    """Before 0.13 the network was pickled inside state.pkl (and its class lived in _sasrec)."""
    from shelfwise.models._base import load_state, save_state

    model, inter = trained
    old = tmp_path / "old"
    shutil.copytree(saved["torch"], old)
    state = load_state(old) | load_state(old / TORCH_DIR)
    shutil.rmtree(old / TORCH_DIR)
    save_state(state, old)
    loaded = load_model(old, inter)
    np.testing.assert_array_equal(loaded.score(np.arange(10)), model.score(np.arange(10)))


SERVE = """
import json, sys
import numpy as np
from shelfwise.features import Interactions
from shelfwise.models import load_models
inter = Interactions.load(sys.argv[1])
m = load_models({"sasrec": sys.argv[2]}, inter)["sasrec"]
ids = m.recommend(np.arange(10), k=10).ids.tolist()
similar = m.similar_items(np.array([0, 3]), k=5).ids.tolist()
print(json.dumps({"torch": "torch" in sys.modules, "ids": ids, "similar": similar}))
"""


def _serve(inter_path: Path, model_dir: Path, **env: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SERVE, str(inter_path), str(model_dir)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != SCORING_ENV} | env,
    )
    return json.loads(proc.stdout)


def test_a_process_serving_the_exported_model_never_imports_torch(trained, saved, tmp_path):
    model, inter = trained
    inter.save(tmp_path / "inter.npz")
    served = _serve(tmp_path / "inter.npz", saved["onnx-int8"])
    assert served["torch"] is False
    in_process = load_model(saved["onnx-int8"], inter)
    assert served["ids"] == in_process.recommend(np.arange(10), k=10).ids.tolist()
    assert served["similar"] == in_process.similar_items(np.array([0, 3]), k=5).ids.tolist()
    # the override: the same bundle scored by torch, as trained
    forced = _serve(tmp_path / "inter.npz", saved["onnx-int8"], **{SCORING_ENV: "torch"})
    assert forced["torch"] is True and forced["ids"] == model.recommend(np.arange(10), k=10).ids.tolist()
