"""API keys can be revoked and rotated (a leaked service key, a person who left): there was no
way but to edit governance/people.json by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise import Shop
from shelfwise.cli import main
from shelfwise.errors import ShelfwiseError
from shelfwise.governance import AccessDenied, People


def test_a_key_is_revoked_and_rotated_by_an_admin_and_audited(tmp_path: Path, capsys) -> None:
    work = tmp_path / "w"
    ada = Shop(work).add_person("ada", "admin")
    admin = Shop(work, as_="ada", api_key=ada)
    svc = admin.add_person("svc", "service")
    sam = admin.add_person("sam", "scientist")
    people = People(work)
    assert people.by_key(svc) is not None
    admin.revoke_person("svc")
    assert people.by_key(svc) is None and not people.load()["svc"].active
    with pytest.raises(AccessDenied, match="'svc': access revoked"):  # (not "wrong API key")
        Shop(work, as_="svc", api_key=svc).authorize("ask")
    with pytest.raises(AccessDenied, match="unknown person or wrong API key"):  # (a guess learns nothing)
        Shop(work, as_="svc", api_key="not-the-key").authorize("ask")
    # a revoked person is not brought back by a rotation (a quarterly rotation over `people()`
    # reactivated every revoked account): refused, audited, unless asked for
    with pytest.raises(ShelfwiseError, match="'svc' is revoked .*reactivate=True"):
        admin.rotate_key("svc")
    assert not people.load()["svc"].active
    with pytest.raises(ShelfwiseError, match="revoked: `rotate_key.name, reactivate=True"):
        admin.add_person("svc", "service")  # (the way back is named where it is looked for)
    new = admin.rotate_key("svc", reactivate=True)  # active again, with a new key; the old one stays dead
    assert people.by_key(new).name == "svc" and people.by_key(svc) is None  # type: ignore[union-attr]
    with pytest.raises(AccessDenied, match="may not users.manage"):
        Shop(work, as_="sam", api_key=sam).revoke_person("svc")
    with pytest.raises(ShelfwiseError, match="last active admin"):
        admin.revoke_person("ada")
    with pytest.raises(ShelfwiseError, match="'nobody' is not registered"):
        admin.rotate_key("nobody")
    from shelfwise.governance import AuditLog

    actions = [e["action"] for e in AuditLog(work).entries()]
    assert {"users.revoke", "users.rotate_key"} <= set(actions)
    refused = [
        e for e in AuditLog(work).entries() if e["action"] == "users.revoke" and e["outcome"] == "refused"
    ]
    assert [e["details"]["name"] for e in refused] == ["ada"]  # (the last admin: refused, audited)
    rotations = [e for e in AuditLog(work).entries() if e["action"] == "users.rotate_key"]
    assert [(e["outcome"], e["details"].get("reactivated")) for e in rotations] == [
        ("refused", None),
        ("ok", True),
    ]
    assert all(e["details"]["name"] == "svc" for e in rotations)
    admin.rotate_key("svc")  # an active person: no flag needed, and no "reactivated"
    assert "reactivated" not in AuditLog(work).entries()[-1]["details"]
    # the command line
    env = {"SHELFWISE_AS": "ada", "SHELFWISE_API_KEY": ada}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert main(["users", "revoke", "--workdir", str(work), "--name", "sam"]) == 0
        assert "sam: API key revoked" in capsys.readouterr().out
        assert main(["users", "rotate-key", "--workdir", str(work), "--name", "sam"]) == 2
        assert "--reactivate" in capsys.readouterr().err
        assert main(["users", "rotate-key", "--workdir", str(work), "--name", "sam", "--reactivate"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
    assert people.by_key(key).name == "sam" and people.by_key(sam) is None  # type: ignore[union-attr]


def test_the_warehouse_computes_the_same_pseudonyms_as_python(tmp_path):
    """`Pseudonymizer.sql` (what ingestion runs in DuckDB) gives `many`'s HMAC-SHA256 for every
    id: accents and CJK, an anonymous session's reserved form, a long id, keys of every length
    (a key over the 64-byte block is hashed first)."""
    import duckdb

    from shelfwise.governance._privacy import Pseudonymizer, anonymous_user_id

    ids = ["C1", "", " x ", "Zoë", "顾客-42", "a" * 300, anonymous_user_id("S-9"), "~anonymous", "0"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(ids)))
    for key in (b"k", bytes(range(64)), bytes(range(200)) * 2):
        pseudo = Pseudonymizer(key)
        expr, params = pseudo.sql("x")
        got = [r[0] for r in con.execute(f"SELECT {expr} FROM t ORDER BY i", params).fetchall()]
        assert got == pseudo.many(ids) == [pseudo(i) for i in ids], key
