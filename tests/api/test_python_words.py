"""A refusal raised in Python names the Python way beside the command line's (it spoke only
CLI: `erase("")` said "--user: an empty user id", a missing workdir "run `shelfwise ingest`
first", a promotion waiting for approval "`shelfwise models approve`"); the command line keeps
its flags' words."""

from __future__ import annotations

import pytest

from shelfwise import Shop
from shelfwise.errors import AccessDenied, ShelfwiseError
from shelfwise.governance import AuditLog
from tests.cli.test_cli import sw


def test_refusals_in_python_name_the_python_way(tmp_path, monkeypatch):
    work = tmp_path / "w"
    with pytest.raises(ShelfwiseError, match=r"`Shop.ingest\(DIR\)` or `shelfwise ingest`"):
        Shop(work).versions()
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    (work / "warehouse.duckdb").touch()  # (the privacy requests' workdir check passes)
    with pytest.raises(ShelfwiseError, match=r"^user id: an empty user id$"):
        ada.erase("  ")
    with pytest.raises(ShelfwiseError, match=r"^user id: an empty user id$"):
        ada.access_export("", tmp_path / "a.json")
    with pytest.raises(ShelfwiseError, match=r"no candidate version; name one \(`version=` in Python"):
        ada.gates()
    # a call without identity: the audit entry's reason names the Python way too
    with pytest.raises(AccessDenied):
        Shop(work).people()
    reason = AuditLog(work).entries()[-1]["details"]["reason"]
    assert "Shop(W, as_=NAME, api_key=KEY)" in reason and "--as NAME" in reason
    # the command line keeps its flag's words
    monkeypatch.setenv("SHELFWISE_AS", "ada")
    monkeypatch.setenv("SHELFWISE_API_KEY", ada._key or "")
    proc = sw("privacy", "erase", "--workdir", str(work), "--user", " ", check=False)
    assert proc.returncode == 2 and "--user: an empty user id" in proc.stderr
