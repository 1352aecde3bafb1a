"""A Shop acts as one person for its whole life: the identity (`as_`, `api_key`, or the
environment's SHELFWISE_AS / SHELFWISE_API_KEY) is read when it is made. One made without
`as_` re-read the environment on every call and changed person (and permissions) with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise import Shop
from shelfwise.errors import AccessDenied


def _team(work: Path) -> dict[str, str]:
    keys = {"ada": Shop(work).add_person("ada", "admin")}
    ada = Shop(work, as_="ada", api_key=keys["ada"])
    keys["sam"] = ada.add_person("sam", "scientist")
    keys["eve"] = ada.add_person("eve", "engineer")
    return keys


def test_a_shop_keeps_the_identity_it_was_made_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "w"
    keys = _team(work)
    monkeypatch.setenv("SHELFWISE_AS", "sam")
    monkeypatch.setenv("SHELFWISE_API_KEY", keys["sam"])
    envshop = Shop(work)
    assert repr(envshop) == f"Shop({str(work)!r}, as_='sam')"  # who it acts as, never the key
    assert keys["sam"] not in repr(envshop)
    with pytest.raises(AccessDenied, match="sam"):
        envshop.authorize("models.rollback")
    monkeypatch.setenv("SHELFWISE_AS", "eve")  # (an app setting the environment for a subprocess)
    monkeypatch.setenv("SHELFWISE_API_KEY", keys["eve"])
    with pytest.raises(AccessDenied, match="sam"):  # still sam: not eve's permissions
        envshop.authorize("models.rollback")
    assert Shop(work).authorize("models.rollback") == "eve"  # a Shop made now reads the environment now
    monkeypatch.delenv("SHELFWISE_AS")
    monkeypatch.delenv("SHELFWISE_API_KEY")
    assert envshop.authorize("models.read") == "sam"
    nobody = Shop(work)
    assert repr(nobody) == f"Shop({str(work)!r})"
    monkeypatch.setenv("SHELFWISE_AS", "eve")
    monkeypatch.setenv("SHELFWISE_API_KEY", keys["eve"])
    with pytest.raises(AccessDenied, match="say who you are"):  # made as nobody, stays nobody
        nobody.authorize("models.read")


def test_as_given_never_takes_another_persons_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shelfwise.governance import AuditLog

    work = tmp_path / "w"
    keys = _team(work)
    monkeypatch.setenv("SHELFWISE_AS", "eve")
    monkeypatch.setenv("SHELFWISE_API_KEY", keys["eve"])
    with pytest.raises(AccessDenied, match="no API key was given for 'ada'"):  # (eve's was not tried)
        Shop(work, as_="ada").authorize("models.read")
    denied = [e for e in AuditLog(work).entries() if e["action"] == "access.denied"]
    assert denied and denied[-1]["details"]["claimed"] == "ada"
    # the environment's key for the same person is taken, as documented
    monkeypatch.setenv("SHELFWISE_AS", "ada")
    monkeypatch.setenv("SHELFWISE_API_KEY", keys["ada"])
    assert Shop(work, as_="ada").authorize("users.manage") == "ada"
    monkeypatch.delenv("SHELFWISE_AS")
    assert Shop(work, as_="ada").authorize("users.manage") == "ada"  # (SHELFWISE_AS unset: the key alone)


def test_a_shop_keeps_the_folder_it_was_made_with(tmp_path, monkeypatch):
    """A relative workdir is the folder it named when the Shop was made (after `os.chdir` into a
    folder holding another shop of that name, the same Shop answered from the other one), and
    `~` is the home folder (DuckDB expanded it, shelfwise made a literal `./~` folder)."""
    import os

    from shelfwise import Shop

    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "shop").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    shop = Shop("shop")
    assert shop.workdir == tmp_path / "a" / "shop"
    os.chdir(tmp_path / "b")
    assert shop.workdir == tmp_path / "a" / "shop"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Shop("~/w").workdir == tmp_path / "home" / "w"
