"""A script tells one refusal from another by its class, not its English: a promotion refused for
its gates (`GateFailed`: approving changes nothing) from one waiting for an approval
(`NotApproved`: approve, then promote again), and a name naming nothing (`UnknownName`, with
`UnknownVersion` and `UnknownModel`) from every other refusal. Every one is still a
`ShelfwiseError`. All of them were plain `ShelfwiseError`s."""

from __future__ import annotations

import shutil

import pytest

import shelfwise
from shelfwise import (
    GateFailed,
    NotApproved,
    ShelfwiseError,
    Shop,
    UnknownModel,
    UnknownName,
    UnknownVersion,
)
from tests.api.conftest import FAST


def test_the_refusals_a_script_acts_on_have_classes_of_their_own(trained, tmp_path):
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    eve = Shop(work, as_="eve", api_key=ada.add_person("eve", "engineer"))
    for cls in (GateFailed, NotApproved, UnknownName, UnknownVersion, UnknownModel):
        assert issubclass(cls, ShelfwiseError) and cls.__name__ in shelfwise.__all__
    assert issubclass(UnknownVersion, UnknownName) and issubclass(UnknownModel, UnknownName)

    with pytest.raises(UnknownVersion, match="model version '99' is not registered") as got:
        eve.promote("99")
    assert (got.value.kind, got.value.name) == ("model version", "99")
    with pytest.raises(UnknownModel, match="not in bundle") as got_model:
        eve.recommend("U00001", model="nope")
    assert got_model.value.name == "nope" and "itemknn" in got_model.value.known
    with pytest.raises(UnknownModel, match="unknown model") as got_model:
        eve.train(models=["popularty"], **FAST)
    assert got_model.value.name == "popularty" and "popularity" in got_model.value.known
    with pytest.raises(UnknownName, match="no curated table 'nope'") as got_name:
        ada.table("nope")
    assert got_name.value.kind == "curated table" and "events" in got_name.value.known
    with pytest.raises(UnknownName, match="not in the current bundle") as got_name:
        eve.similar("no-such-product")
    assert got_name.value.kind == "product"

    # the same model again: its gates pass, it waits for a person's approval
    same = eve.train(models=["popularity", "itemknn"], **FAST).registry["version"]
    with pytest.raises(NotApproved, match="no approval") as waiting:
        eve.promote(same)
    assert waiting.value.version == str(same) and not isinstance(waiting.value, GateFailed)
    # a weaker model: its gates fail, and an approval does not change that
    weaker = eve.train(models=["popularity"], **FAST).registry["version"]
    ada.approve(weaker)
    with pytest.raises(GateFailed, match="gate .* failed") as failed:
        eve.promote(weaker)
    assert failed.value.version == str(weaker) and failed.value.failed and failed.value.approved
    assert not isinstance(failed.value, NotApproved)
    ada.approve(same)
    assert eve.promote(same)["production"] is True


def test_the_refusals_survive_pickling_and_copying():
    """A promotion run in a worker process (multiprocessing, a job queue) hands its refusal back
    pickled: the classes with keyword attributes raised a TypeError there (their attributes are
    restored with them)."""
    import copy
    import pickle

    from shelfwise import GateFailed, NotApproved, UnknownVersion

    for exc in (
        UnknownVersion("no version 9", kind="model version", name="9", known=["1", "2"]),
        GateFailed("gates failed", version="3", failed=["coverage"], approved=True),
        NotApproved("not approved", version="3"),
    ):
        for back in (pickle.loads(pickle.dumps(exc)), copy.copy(exc)):
            assert type(back) is type(exc) and str(back) == str(exc) and vars(back) == vars(exc)


def test_a_revoked_persons_key_rotation_is_refused_by_a_class_of_its_own(tmp_path, capsys):
    """A rotation of every key over `people()` must leave revoked accounts alone: it tells the
    refusal of a revoked person (`PersonRevoked`, naming them) from any other by its class, in a
    worker process too (pickled); the command line still exits 2. It was a plain
    `ShelfwiseError`."""
    import copy
    import pickle

    from shelfwise import PersonRevoked
    from shelfwise.cli import main

    assert issubclass(PersonRevoked, ShelfwiseError) and "PersonRevoked" in shelfwise.__all__
    work = tmp_path / "w"
    key = Shop(work).add_person("ada", "admin")
    ada = Shop(work, as_="ada", api_key=key)
    ada.add_person("svc", "service")
    ada.add_person("sam", "scientist")
    ada.revoke_person("svc")
    rotated, left = {}, []
    for p in ada.people():
        if p["name"] == "ada":  # (her own key last: the Shop acts with it)
            continue
        try:
            rotated[p["name"]] = ada.rotate_key(p["name"])
        except PersonRevoked as exc:
            left.append(exc.name)
    assert set(rotated) == {"sam"} and left == ["svc"]
    with pytest.raises(PersonRevoked, match="'svc' is revoked") as got:
        ada.rotate_key("svc")
    for back in (pickle.loads(pickle.dumps(got.value)), copy.copy(got.value)):
        assert type(back) is PersonRevoked and str(back) == str(got.value) and back.name == "svc"
    with pytest.raises(ShelfwiseError, match="not registered") as other:
        ada.rotate_key("nobody")
    assert not isinstance(other.value, PersonRevoked)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHELFWISE_AS", "ada")
        mp.setenv("SHELFWISE_API_KEY", key)
        assert main(["users", "rotate-key", "--workdir", str(work), "--name", "svc"]) == 2
    assert "error: 'svc' is revoked" in capsys.readouterr().err
