"""The bundle manifest schema: typed, versioned, older versions read in one place; models saved
by an older shelfwise load, or fail naming the bundle to retrain."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.models import (
    SCHEMA_VERSION,
    BundleManifest,
    SASRec,
    Transitions,
    load_model,
    load_models,
    read_manifest,
    write_manifest,
)
from tests.models.planted_data import planted_cycles

V1 = {  # a 0.9 bundle's manifest: no schema_version, no evaluated fits kept
    "version": "20260101T000000000000Z",
    "created_at": "2026-01-01T00:00:00+00:00",
    "default_model": "itemknn",
    "models": ["als", "itemknn", "popularity"],
    "refit": {"models": ["popularity", "itemknn"], "skipped": ["als"], "seconds": 1.0},
    "metrics": {"itemknn": {"ndcg@10": 0.1}},
    "files": {"interactions.npz": "abc"},
    "search": None,
    "some_future_key": {"kept": True},
}


def test_a_schema_1_manifest_is_upgraded_in_one_place(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(V1))
    m = read_manifest(tmp_path)
    assert m.schema_version == SCHEMA_VERSION
    # only the fits that were not refit on every interaction can be evaluated
    assert m.evaluated_models == {"als": "models/als"}
    assert set(m.not_evaluable) == {"itemknn", "popularity"}
    assert m.budget_caps and "wall-clock" in m.budget_caps[0]["budget"]
    assert m.metrics["itemknn"]["ndcg@10"] == 0.1 and m["default_model"] == "itemknn"
    assert m.get("search", {}) == {} and m.get("serving", {}) == {}
    # what the schema does not name survives a rewrite
    write_manifest(tmp_path, m)
    again = read_manifest(tmp_path)
    assert again == m and again["some_future_key"] == {"kept": True}
    assert json.loads((tmp_path / "manifest.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_a_newer_schema_or_a_non_manifest_fails_clearly(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({**V1, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ShelfwiseError, match="newer than this shelfwise reads"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {}}))
    with pytest.raises(ShelfwiseError, match="not a bundle manifest"):
        read_manifest(tmp_path)
    with pytest.raises(ShelfwiseError, match="no manifest.json"):
        read_manifest(tmp_path / "nowhere")


def test_typed_fields_round_trip():
    m = BundleManifest.from_dict({**V1, "schema_version": SCHEMA_VERSION, "budget_caps": []})
    assert BundleManifest.from_dict(m.to_dict()) == m
    assert m.budget_caps == [] and m.models == ["als", "itemknn", "popularity"]


def test_a_sasrec_saved_with_a_config_dict_still_loads(tmp_path):
    """Before 0.10 SASRec's parameters were a config dict with a time budget (now a cap)."""
    inter = planted_cycles(n_users=30)
    model = SASRec(epochs=1, dim=8, heads=1, layers=1, max_len=6).fit(inter)
    model.save(tmp_path / "sasrec")
    params = tmp_path / "sasrec" / "params.json"
    old = {"model": "sasrec", "params": {"time_budget_s": 240.0, "seed": 0, "item_text": False,
                                          "epochs": 1, "dim": 8, "heads": 1, "layers": 1, "max_len": 6}}  # fmt: skip
    params.write_text(json.dumps(old))
    loaded = load_model(tmp_path / "sasrec", inter)
    assert isinstance(loaded, SASRec) and loaded.max_seconds == 240.0
    users = np.arange(5)
    np.testing.assert_array_equal(loaded.recommend(users, k=5).ids, model.recommend(users, k=5).ids)


def test_an_unreadable_model_names_the_bundle_to_retrain(tmp_path):
    inter = planted_cycles(n_users=30)
    Transitions().fit(inter).save(tmp_path / "transitions")
    meta = tmp_path / "transitions" / "params.json"
    meta.write_text(json.dumps({"model": "transitions", "params": {"retired_knob": 1}}))
    with pytest.raises(ShelfwiseError, match=r"bundle 20260101T0.*retrain"):
        load_models({"transitions": tmp_path / "transitions"}, inter, bundle="20260101T0")
    meta.write_text(json.dumps({"model": "no-such-model", "params": {}}))
    with pytest.raises(ShelfwiseError, match="unknown model 'no-such-model'"):
        load_models({"transitions": tmp_path / "transitions"}, inter, bundle="20260101T0")


def test_a_schema_2_bundle_still_loads_and_a_newer_one_is_refused_before_its_models(tmp_path):
    """Schema 3 keeps a model's large arrays as .npy files beside its state.pkl; a schema-2
    bundle pickled them inside and still loads. A newer schema fails on the manifest with a
    message, not in the unpickler."""
    import pickle

    from shelfwise.models._base import ARRAYS_DIR, load_state

    inter = planted_cycles(n_users=30)
    model = Transitions().fit(inter)
    model.save(tmp_path / "new")
    # as shelfwise wrote it before schema 3: the whole state in one pickle, no arrays directory
    old = tmp_path / "old"
    old.mkdir()
    (old / "params.json").write_text((tmp_path / "new" / "params.json").read_text())
    state = {
        k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in load_state(tmp_path / "new").items()
    }
    (old / "state.pkl").write_bytes(pickle.dumps(state))
    assert not (old / ARRAYS_DIR).exists()
    loaded = load_models({"transitions": old}, inter, bundle="v2")["transitions"]
    users = np.arange(5)
    np.testing.assert_array_equal(loaded.recommend(users, k=5).ids, model.recommend(users, k=5).ids)
    v2 = {**V1, "schema_version": 2, "budget_caps": [], "evaluated_models": {}}
    assert BundleManifest.from_dict(v2).schema_version == SCHEMA_VERSION == 3
    # a bundle from a newer shelfwise: refused on its manifest, saying what to do
    from shelfwise.serving import Bundle

    (tmp_path / "manifest.json").write_text(json.dumps({**v2, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(
        ShelfwiseError, match=r"schema 4 is newer than this shelfwise reads \(up to 3\); upgrade"
    ):
        Bundle.load(tmp_path)
