"""Consent and the right of access, end to end through the command line: the consent register
(users table, `privacy consent`, the shop's default), training and profiles that leave out users
without personalization consent, the access export that holds exactly one user's rows, erasure's
tombstone and retention of the consent history, all audited without raw ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.governance import AuditLog, Ingestor, Pseudonymizer, SecretStore
from shelfwise.governance._consent import (
    CONSENTS_FILE,
    Consents,
    consent_withdrawn,
    prune_history,
    read_register,
    record_consent,
    sync_users_table,
)
from tests.cli.test_cli import sw
from tests.conftest import built_once, curated_rows

FAST_TRAIN = ["--models", "popularity,itemknn", "--no-fusion", "--tune-seconds", "0", "--sasrec-seconds", "0"]
FAST_TRAIN += ["--finetune-seconds", "0", "--cross-encoder-seconds", "0", "--refit-seconds", "0", "--json"]
USERS = ("shopper-1", "shopper-10", "shopper-2", "shopper-3")


def plant_shop(d: Path, users_csv: str | None = None) -> Path:
    """6 products; 4 users with overlapping histories (`shopper-1` and `shopper-10` view the very
    same products; one id is a prefix of the other); one quarantined row each for both."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "products.csv").write_text(
        "product_id,title,category,price\n"
        "p1,Red mug,Kitchen > Mugs,9.5\np2,Blue mug,Kitchen > Mugs,9.5\np3,Tea pot,Kitchen,30\n"
        "p4,Kettle,Kitchen,45\np5,Spoon,Kitchen,2\np6,Fork,Kitchen,2\n"
    )
    (d / "users.csv").write_text(
        users_csv
        or "user_id,segment,consent_personalization,consent_marketing\n"
        "shopper-1,gold,no,yes\nshopper-10,gold,,no\nshopper-2,silver,yes,\nshopper-3,bronze,,\n"
    )
    rows = ["user_id,product_id,event_type,timestamp,value"]
    for i in range(64):
        rows.append(f"{USERS[i % 4]},p{(i // 4) % 6 + 1},view,2024-03-01T10:{i % 60:02d}:{i // 60:02d},")
    rows += ["shopper-1,p1,teleport,2024-03-02T10:00:00,", "shopper-10,p1,teleport,2024-03-02T10:00:00,"]
    (d / "events.csv").write_text("\n".join(rows) + "\n")
    return d


def _train_planted_shop(base: Path) -> None:
    sw("train", "--data", str(plant_shop(base / "d")), "--workdir", str(base / "w"), *FAST_TRAIN)


def trained_planted_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the workdir `shelfwise train --data D FAST_TRAIN` makes of `plant_shop(D)`
    (its first training): trained once per run (`built_once`) for this module and
    tests/serving/test_consent_http.py, which each trained the very same shop themselves."""
    return built_once(tmp_path_factory, "consent-planted", _train_planted_shop) / "w"


def pseudo(work: Path, raw: str) -> str:
    return Pseudonymizer(SecretStore(work).pseudonym_key())(raw)


def audit_text(work: Path) -> str:
    return (work / "audit" / "audit.jsonl").read_text()


@pytest.mark.slow  # four commands: ~20 s on a quiet machine
def test_consent_from_the_users_table_and_the_cli_versioned_and_audited(tmp_path):
    data = plant_shop(tmp_path / "d")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    s1, s10, s2 = (pseudo(work, u) for u in ("shopper-1", "shopper-10", "shopper-2"))
    c = Consents.of(work)
    assert c.current(s1) == {"personalization": False, "marketing": True}
    assert c.current(s10) == {"personalization": True, "marketing": False}  # blank: the default
    assert c.current(pseudo(work, "shopper-3")) == {"personalization": True, "marketing": True}
    assert consent_withdrawn(work, "personalization") == {s1}
    assert consent_withdrawn(work, "marketing") == {s10}

    # a steward withdraws shopper-2's consent; the users table is delivered again unchanged:
    # the old "yes" in the file does not undo the withdrawal
    out = json.loads(
        sw(
            "privacy", "consent", "--workdir", str(work), "--user", "shopper-2", "--personalization", "no",
            "--source", "support-ticket-17", "--json",
        ).stdout
    )  # fmt: skip
    assert out["consent"] == {"personalization": False, "marketing": True} and out["recorded"] == 1
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    assert consent_withdrawn(work, "personalization") == {s1, s2}
    # a users table that changes a column is a new statement: recorded (marketing); the
    # unchanged personalization column leaves the withdrawal standing
    plant_shop(
        data,
        "user_id,segment,consent_personalization,consent_marketing\n"
        "shopper-1,gold,no,yes\nshopper-10,gold,,no\nshopper-2,silver,yes,no\nshopper-3,bronze,,\n",
    )
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    assert Consents.of(work).current(s2) == {"personalization": False, "marketing": False}

    shown = json.loads(
        sw("privacy", "consent", "--workdir", str(work), "--user", "shopper-2", "--json").stdout
    )
    assert [(r["flag"], r["value"], r["source"]) for r in shown["history"]] == [
        ("personalization", True, "users table"),
        ("personalization", False, "support-ticket-17"),
        ("marketing", False, "users table"),
    ]
    assert all("by" in r and "at" in r for r in shown["history"])
    # audited with pseudonyms and counts, never a raw id
    entries = [e for e in AuditLog(work).entries() if e["action"] == "privacy.consent"]
    assert [e["details"].get("source") for e in entries] == [
        "users table", "support-ticket-17", "users table",
    ]  # fmt: skip
    assert entries[1]["details"]["pseudonym"] == s2
    assert "shopper-" not in audit_text(work) and AuditLog(work).verify().ok


def test_an_opt_in_shop_counts_the_unrecorded_as_without_consent(tmp_path):
    work = tmp_path / "w"
    (work / "config").mkdir(parents=True)
    (work / "config" / "privacy.json").write_text(json.dumps({"default_consent": {"marketing": False}}))
    record_consent(work, "u_a", {"marketing": True}, source="test")
    assert consent_withdrawn(work, "marketing", among=["u_a", "u_b"]) == {"u_b"}
    assert consent_withdrawn(work, "personalization", among=["u_a", "u_b"]) == set()
    with pytest.raises(ValueError, match="opt-in"):
        consent_withdrawn(work, "marketing")
    with pytest.raises(ShelfwiseError, match="at least one"):
        record_consent(work, "u_a", {"marketing": None}, source="test")
    (work / CONSENTS_FILE).open("a").write('{"pseudonym": "u_c", "flag": "marketing", "value": "maybe"}\n')
    with pytest.raises(ShelfwiseError, match="consents.jsonl:2: not a consent record"):
        Consents.of(work)


@pytest.mark.slow  # ingest + train + insights through the CLI: ~30 s on a shared machine
def test_training_and_profiles_leave_out_users_without_personalization_consent(tmp_path_factory):
    from shelfwise.features import Interactions
    from shelfwise.insights._data import load_curated
    from shelfwise.serving import current_bundle

    work = trained_planted_shop(tmp_path_factory)  # `train --data` of the planted shop
    s1, s10 = pseudo(work, "shopper-1"), pseudo(work, "shopper-10")
    history = Interactions.load(current_bundle(work) / "interactions.npz")
    users = set(history.user_ids.astype(str))
    assert s1 not in users and s10 in users and len(users) == 3
    # kept for operations: the warehouse still holds shopper-1's events
    events, _, _ = load_curated(work, None)
    assert (events["user_id"] == s1).sum() == 16
    profiled, _, _ = load_curated(work, None, consent="personalization")
    assert s1 not in set(profiled["user_id"]) and s10 in set(profiled["user_id"])

    # shopper-10 withdraws: the next training run leaves them out too
    sw("privacy", "consent", "--workdir", str(work), "--user", "shopper-10", "--personalization", "no")
    sw("train", "--workdir", str(work), *FAST_TRAIN)
    history = Interactions.load(current_bundle(work) / "interactions.npz")
    users = set(history.user_ids.astype(str))
    assert not {s1, s10} & users and len(users) == 2
    assert int(np.isin(history.user_ids.astype(str), [s1, s10]).sum()) == 0


def _plant_files(work: Path, s1: str, s10: str) -> None:
    """Served events (spool, rejected, archive) and served lists (exposures) of both users."""
    for folder, name in (
        ("spool/events", "a.jsonl"),
        ("spool/rejected", "b.jsonl"),
        ("feedback", "events-1.jsonl"),
    ):
        (work / folder).mkdir(parents=True, exist_ok=True)
        lines = [
            {"user_id": u, "product_id": "p2", "event_type": "click", "timestamp": "2024-03-03T10:00:00Z"}
            for u in ("shopper-1", "shopper-10", "shopper-1 ")
        ]
        if folder == "spool/rejected":
            lines = [{"event": ln, "error": "bad"} for ln in lines]
        (work / folder / name).write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    (work / "spool/exposures").mkdir(parents=True, exist_ok=True)
    (work / "spool/exposures" / "x.jsonl").write_text(
        "".join(
            json.dumps({"id": f"rec_{i}", "kind": "recommendations", "at": 1.0e9, "user": u, "items": ["p1"]})
            + "\n"
            for i, u in enumerate((s1, s10, s10, s1, None))
        )
    )
    # profiling kept about them: an audience's members, the served profiles
    (work / "audiences" / "lapsing").mkdir(parents=True)
    (work / "audiences" / "lapsing" / "members.jsonl").write_text(
        "".join(json.dumps({"user": u, "score": 0.5}) + "\n" for u in (s10, s1))
    )
    (work / "insights" / "profiles").mkdir(parents=True)
    (work / "insights" / "profiles" / "k.jsonl").write_text(json.dumps({"user": s10, "frequency": 3}) + "\n")


def test_the_access_export_holds_exactly_the_users_rows_with_lineage(tmp_path):
    data = plant_shop(tmp_path / "d")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    s1, s10 = pseudo(work, "shopper-1"), pseudo(work, "shopper-10")
    _plant_files(work, s1, s10)
    out = tmp_path / "access" / "shopper-1.json"
    rep = json.loads(
        sw(
            "privacy", "export", "--workdir", str(work), "--user", "shopper-1", "--out", str(out), "--json"
        ).stdout
    )
    assert out.stat().st_mode & 0o777 == 0o600
    doc = json.loads(out.read_text())
    assert doc["user_id"] == "shopper-1" and doc["pseudonym"] == s1 and rep["pseudonym"] == s1
    parts = doc["parts"]
    counts = {k: len(v.get("rows", [])) for k, v in parts.items()}
    assert counts == {
        "raw.events": 17,  # 16 views and the quarantined row, as delivered
        "raw.users": 1,
        "curated.events@v1": 16,
        "curated.users@v1": 1,
        "quarantine": 1,
        "feedback": 2,  # " shopper-1 " matches as erasure matches (trimmed)
        "spool/events": 2,
        "spool/rejected": 2,
        "exposures": 2,
        "audiences": 1,  # shopper-10's served profile is not theirs
        "consent": 2,
        "erasure": 0,
        "profile": 0,  # no personalization consent: no profile is made
    }
    assert rep["parts"] == counts
    # exactly the user's rows: never shopper-10's, whose data overlaps
    assert all(
        r["user_id"].strip() == "shopper-1" for k in ("raw.events", "raw.users") for r in parts[k]["rows"]
    )
    assert all(
        r["user_id"] == s1 for k in ("curated.events@v1", "curated.users@v1") for r in parts[k]["rows"]
    )
    assert all(json.loads(r["raw"])["user_id"] == "shopper-1" for r in parts["quarantine"]["rows"])
    assert all(r["record"]["user"] == s1 for r in parts["exposures"]["rows"])
    assert all(r["pseudonym"] == s1 for r in parts["consent"]["rows"])
    assert parts["consent"]["current"] == {"personalization": False, "marketing": True}
    # each part says where it is held
    assert parts["curated.events@v1"]["lineage"]["current"] is True
    assert parts["curated.events@v1"]["lineage"]["physical_table"].startswith("curated.events__v")
    assert parts["raw.events"]["lineage"]["loads"][0]["source_file"].endswith("events.csv")
    assert parts["exposures"]["lineage"]["location"].endswith("spool/exposures")
    # audited: pseudonym and counts, not the id or the file
    entry = AuditLog(work).entries()[-1]
    assert entry["action"] == "privacy.export" and entry["details"]["pseudonym"] == s1
    assert "shopper-" not in audit_text(work)


@pytest.mark.slow  # ingest + train + erase through the CLI: ~25 s on a shared machine
def test_erasure_and_retention_cover_the_consent_register_and_the_served_lists(tmp_path):
    data = plant_shop(tmp_path / "d")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    s1, s10 = pseudo(work, "shopper-1"), pseudo(work, "shopper-10")
    _plant_files(work, s1, s10)
    rep = json.loads(sw("privacy", "erase", "--workdir", str(work), "--user", "shopper-1", "--json").stdout)
    assert rep["files"]["governance/consents.jsonl"] == 2 and rep["files"]["spool/exposures"] == 2
    register = read_register(work)
    mine = [r for r in register if r["pseudonym"] == s1]
    assert len(mine) == 1 and "erased" in mine[0]  # the tombstone remembers the erasure
    assert Consents.of(work).current(s1) == {"personalization": True, "marketing": True}
    assert any(r["pseudonym"] == s10 for r in register)  # the other user's records stay
    out = tmp_path / "after.json"
    sw("privacy", "export", "--workdir", str(work), "--user", "shopper-1", "--out", str(out))
    parts = json.loads(out.read_text())["parts"]
    # nothing left but the tombstone and the audit entry of the erasure (pseudonym only)
    assert {k for k, v in parts.items() if v.get("rows")} == {"consent", "audit"}
    assert [r["action"] for r in parts["audit"]["rows"]] == ["privacy.erase"]
    assert parts["erasure"]["erased_at"] is not None

    # retention: superseded consent records older than the period go, the current ones stay
    record_consent(work, s10, {"marketing": True}, source="test")
    record_consent(work, s10, {"marketing": True}, source="test")
    later = datetime.now(UTC) + timedelta(days=40)
    # the first "test" record goes; the users table's "no" stays (superseded, but its latest word)
    assert prune_history(work, later - timedelta(days=30)) == 1
    assert Consents.of(work).current(s10) == {"personalization": True, "marketing": True}
    # so the next load of the unchanged users table does not take back the later consent
    assert sync_users_table(work) == 0
    assert Consents.of(work).current(s10) == {"personalization": True, "marketing": True}
    (work / "config").mkdir(exist_ok=True)
    (work / "config" / "retention.json").write_text(json.dumps({"consent_history_days": 0}))
    ret = json.loads(sw("retention", "enforce", "--workdir", str(work), "--json").stdout)
    assert "governance/consents.jsonl" in ret["deleted"]


@pytest.mark.slow  # four commands: ~15 s
def test_a_users_table_naming_consent_for_the_first_time_does_not_regrant_a_withdrawal(tmp_path):
    """A shopper withdrew through the CLI (or the API) before the shop's users table carried
    consent columns; the first table that does says "yes" for everyone (a stale export): the
    withdrawal stands. A table that later changes its own value to "no" and back to "yes" is a
    new statement from the shop's system, and is recorded."""
    data = plant_shop(tmp_path / "d", "user_id,segment\nshopper-1,gold\nshopper-2,silver\n")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    s2 = pseudo(work, "shopper-2")
    sw("privacy", "consent", "--workdir", str(work), "--user", "shopper-2", "--personalization", "no")
    header = "user_id,segment,consent_personalization\n"
    plant_shop(data, header + "shopper-1,gold,yes\nshopper-2,silver,yes\n")
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    assert Consents.of(work).current(s2)["personalization"] is False
    entry = [e for e in AuditLog(work).entries() if e["action"] == "privacy.consent"][-1]
    assert entry["details"]["kept_withdrawn"] == 1 and entry["details"]["records"] == 1  # shopper-1's
    # (the "yes" again in a row that differs from the first table's: that very row sent again
    # would be an old file re-sent, which changes no consent)
    for segment, value in (("silver", "no"), ("gold", "yes")):
        plant_shop(data, header + f"shopper-1,gold,yes\nshopper-2,{segment},{value}\n")
        sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    assert Consents.of(work).current(s2)["personalization"] is True


def test_the_access_export_lists_a_bundle_steps_weight_changes(tmp_path, monkeypatch):
    """A bundle's history keeps, per step, the weight changes of its later events (a view, then a
    purchase of the same item: `Interactions.raises`): they are the user's data too, listed with
    the step they belong to; another user's are not."""
    from types import SimpleNamespace

    import shelfwise.models
    from shelfwise.features import Interactions
    from shelfwise.governance._subject_access import _bundle_parts

    inter = Interactions.from_arrays(
        ["u_me", "u_me", "u_me", "u_other", "u_other"],
        ["P1", "P1", "P2", "P1", "P1"],
        [100, 200, 300, 100, 150],
        [1.0, 8.0, 1.0, 1.0, 4.0],
    )
    b = tmp_path / "bundles" / "1"
    b.mkdir(parents=True)
    inter.save(b / "interactions.npz")
    manifest = SimpleNamespace(version="1", data_versions={}, lineage={})
    monkeypatch.setattr(shelfwise.models, "read_manifest", lambda path: manifest, raising=False)
    rows = _bundle_parts(tmp_path, "u_me")["bundles/1"]["rows"]
    assert rows == [
        {"product_id": "P1", "weight": 8.0, "timestamp": 100,
         "weight_changes": [{"timestamp": 100, "weight": 1.0}, {"timestamp": 200, "weight": 8.0}]},
        {"product_id": "P2", "weight": 1.0, "timestamp": 300},
    ]  # fmt: skip


def test_a_users_export_says_the_consent_in_force_now_not_the_last_delivery(tmp_path):
    """The users table keeps what the last delivery said (shopper-2: "yes"); a withdrawal since
    through the CLI overrules it, and the export and `Shop.table` say so. A table without the
    consent columns: the shop's default for the users the register never heard of."""
    import pandas as pd

    import shelfwise

    data = plant_shop(tmp_path / "d")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    sw("privacy", "consent", "--workdir", str(work), "--user", "shopper-2", "--personalization", "no")
    sw("export", "--workdir", str(work), "--table", "users", "--out", str(tmp_path / "users.csv"))
    got = pd.read_csv(tmp_path / "users.csv").set_index("user_id")
    s1, s10, s2, s3 = (pseudo(work, u) for u in USERS)
    assert got.loc[s2, "consent_personalization"] == False  # noqa: E712 (the file said yes)
    assert got.loc[s1, "consent_personalization"] == False  # noqa: E712 (the file said no)
    assert got.loc[s10, "consent_marketing"] == False  # noqa: E712
    assert got.loc[s3, ["consent_personalization", "consent_marketing"]].tolist() == [
        True,
        True,
    ]  # the default
    assert got.loc[s2, "x_segment"] == "silver"  # the other columns as curated
    table = shelfwise.Shop(work).table("users").set_index("user_id")
    assert table.loc[s2, "consent_personalization"] == False  # noqa: E712

    # a users table without consent columns, in an opt-in shop for marketing
    plant_shop(data, "user_id,segment\nshopper-1,gold\nshopper-2,silver\n")
    sw("ingest", "--data", str(data), "--workdir", str(work), "--json")
    (work / "config").mkdir(exist_ok=True)
    (work / "config" / "privacy.json").write_text(json.dumps({"default_consent": {"marketing": False}}))
    sw("privacy", "consent", "--workdir", str(work), "--user", "shopper-1", "--marketing", "yes")
    sw("export", "--workdir", str(work), "--table", "users", "--out", str(tmp_path / "u.parquet"))
    got = pd.read_parquet(tmp_path / "u.parquet").set_index("user_id")
    flags = ["consent_personalization", "consent_marketing"]
    assert got.loc[s1, flags].tolist() == [False, True]  # the first table's "no" stands; marketing recorded
    assert got.loc[s2, flags].tolist() == [False, False]  # withdrawn; marketing: the opt-in default


def test_a_users_table_curated_before_the_consent_columns_is_exported_with_them(tmp_path):
    import duckdb

    from shelfwise.governance._consent import users_now

    record_consent(tmp_path, "u_a", {"marketing": False}, source="test")
    con = duckdb.connect()
    con.sql(
        "CREATE TABLE old_users AS SELECT * FROM (VALUES ('u_a', 'gold'), ('u_b', 'silver')) t(user_id, x_tier)"
    )
    got = con.sql(users_now(con, tmp_path, "old_users") + " ORDER BY user_id").fetchall()
    assert got == [("u_a", "gold", True, False), ("u_b", "silver", True, True)]


def test_shopifys_marketing_consent_is_read_and_a_users_table_on_another_key_is_warned_of(
    tmp_path, engine=None
):
    """Shopify's customers export says consent in `Accepts Email Marketing`: it was dropped as a
    personal column (its name holds "email"), silently, and every customer had the shop's default
    consent. It is read as consent_marketing; a consent-looking column read as none is said; the
    personal columns left out are printed; and a users table keyed on `Customer ID` beside orders
    keyed on `Email` (no shopper of the events has a users row) is a warning naming the fix."""
    from shelfwise.reporting._quality import summary_lines

    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "Customer ID,Email,Phone,Accepts Email Marketing,Accepts SMS Marketing\n"
        "7000000000003,ann@example.com,555-0100,yes,no\n"
        "7000000000011,bob@example.com,555-0101,no,no\n"
        "7000000000029,cy@example.com,555-0102,no,yes\n"
    )
    (d / "events.csv").write_text(
        "Email,product_id,event_type,timestamp\n"
        "ann@example.com,P1,purchase,2024-01-01T10:00:00Z\n"
        "bob@example.com,P1,purchase,2024-01-02T10:00:00Z\n"
        "cy@example.com,P1,purchase,2024-01-03T10:00:00Z\n"
    )
    (d / "shelfwise.toml").write_text('[map.events]\nuser_id = "Email"\n')

    def run(work):
        return Ingestor(work, engine=engine(work) if engine else None).run(d)

    report = run(tmp_path / "w1")
    users = report.tables["users"]
    assert users.column_mapping["Customer ID"] == "user_id"
    assert users.column_mapping["Accepts Email Marketing"] == "consent_marketing"
    assert set(users.personal_columns_dropped) == {"Email", "Phone"}
    printed = "\n".join(summary_lines(report))
    assert "personal column(s) left out of the curated layer: 'Email', 'Phone'" in printed
    assert any("'Accepts SMS Marketing' looks like a consent too" in n for n in report.notes)
    [warning] = report.warnings
    assert "only 0 of the 3 users of curated.events have a row among the 3 of curated.users" in warning
    assert "users keyed on 'Customer ID', events on 'Email'" in warning
    assert "--map 'users.user_id=Email'" in warning
    consents = curated_rows(tmp_path / "w1", "SELECT consent_marketing FROM curated.users")
    assert sorted(c for (c,) in consents) == [False, False, True]

    # keyed as the events are: no warning, and two of the three said no
    (d / "shelfwise.toml").write_text('[map.events]\nuser_id = "Email"\n[map.users]\nuser_id = "Email"\n')
    report = run(tmp_path / "w2")
    assert report.warnings == []
    said_no = curated_rows(
        tmp_path / "w2",
        "SELECT count(*) FROM curated.users u JOIN curated.events e USING (user_id) WHERE NOT u.consent_marketing",
    )
    assert said_no == [(2,)]


def test_a_consent_column_read_as_none_is_kept_and_warned_of(tmp_path):
    """A consent column under a name no alias knows is kept (not dropped for the "email" in it)
    and, with no consent read, a warning says every user has the shop's default and how to map."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text("user_id,Email Newsletter Consent\nU1,no\nU2,yes\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert report.tables["users"].personal_columns_dropped == []
    [warning] = report.warnings
    assert "'Email Newsletter Consent' looks like a consent, but no consent is read" in warning
    assert "--map 'users.consent_marketing=Email Newsletter Consent'" in warning
    assert sorted(curated_rows(work, "SELECT x_email_newsletter_consent FROM curated.users")) == [
        ("no",),
        ("yes",),
    ]


def test_an_unreadable_consent_value_is_no_consent_and_counted(tmp_path):
    """`unsubscribed`, `opted out`, `Nein`, `No.`, `opt-out` quarantined the users row (not a
    boolean), no consent was recorded, and the customer had the shop's default: consent. The
    common spellings are read; a value still unreadable is no consent (fail closed), counted."""
    d = tmp_path / "d"
    d.mkdir()
    said = {
        "U1": "unsubscribed",
        "U2": "opted out",
        "U3": "Nein",
        "U4": "No.",
        "U5": "opt-out",
        "U6": "maybe later",
        "U7": "Yes!",
        "U8": "Ja",
        "U9": "",
    }
    (d / "users.csv").write_text("user_id,Newsletter\n" + "".join(f"{u},{v}\n" for u, v in said.items()))
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    users = report.tables["users"]
    assert users.column_mapping["Newsletter"] == "consent_marketing"
    assert users.rows_quarantined == 0
    [note] = [n for n in report.notes if "no yes or no" in n]
    assert "1 row(s) with a consent_marketing ('Newsletter')" in note and "'maybe later'" in note
    assert sync_users_table(work) == 8
    c = Consents.of(work)
    marketing = {u: c.allows(pseudo(work, u), "marketing") for u in said}
    assert marketing == {
        **dict.fromkeys(["U1", "U2", "U3", "U4", "U5", "U6"], False),
        "U7": True,
        "U8": True,
        "U9": True,
    }


@pytest.mark.parametrize("dated", [True, False])
def test_an_old_users_file_sent_again_does_not_regrant_a_later_withdrawal(tmp_path, dated):
    """Load 1 says yes (2017), a later delivery says no (2018; one customer also withdrew through
    the CLI first), then load 1's file is sent again (a retry, a backfill): it gave consent back
    (each record stamped with the load's time, the table's own value compared only with its
    last). A row delivered before, exactly, has had its say; a row dated before the consent held
    does not overrule it."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    header = "user_id,Marketing Opt-In" + (",Consent Updated\n" if dated else "\n")

    def deliver(rows: dict[str, tuple[str, str]], append: bool = True) -> None:
        lines = [f"{u},{v},{day}" if dated else f"{u},{v}" for u, (v, day) in rows.items()]
        (d / "users.csv").write_text(header + "\n".join(lines) + "\n")
        Ingestor(work, mode="append" if append else "replace").run(d)
        sync_users_table(work)

    work = tmp_path / "w"
    first = {u: ("yes", "2017-10-25") for u in ("U1", "U2", "U3")}
    deliver(first, append=False)
    record_consent(work, pseudo(work, "U3"), {"marketing": False}, source="unsubscribe-link")
    deliver({**first, "U1": ("no", "2018-01-05"), "U3": ("no", "2018-01-05")})
    deliver(first)  # load 1's file again
    c = Consents.of(work)
    assert {u: c.allows(pseudo(work, u), "marketing") for u in first} == {
        "U1": False,
        "U2": True,
        "U3": False,
    }
    # a new statement of the shop's system is recorded: U1 subscribes again (undated, the row is
    # load 1's very row: told from a re-send by nothing, it is not recorded; fail closed)
    deliver({**first, "U1": ("Yes", "2018-03-01")})
    assert Consents.of(work).allows(pseudo(work, "U1"), "marketing") is dated
    # erasure takes the hashes of the user's rows too
    from shelfwise.governance._consent import ROWS_SEEN_FILE, erase_consent

    erase_consent(work, pseudo(work, "U2"))
    seen = json.loads((work / ROWS_SEEN_FILE).read_text())
    assert pseudo(work, "U2") not in seen and pseudo(work, "U1") in seen


def test_consent_for_an_id_the_shop_never_saw_is_said_with_the_id_in_another_case(tmp_path):
    """An unsubscribe list in lower case (`aa-10375` for `AA-10375`) recorded the consent of
    nobody, silently, and the customer stayed opted in. It is still recorded (consent may come
    before a first event), with a warning naming the id the shop knows."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nAA-10375,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    Ingestor(work).run(d)
    base = ("privacy", "consent", "--workdir", str(work), "--marketing", "no")
    out = sw(*base, "--user", "aa-10375")
    assert "warning: no user 'aa-10375' in the warehouse" in out.stderr
    assert "did you mean 'AA-10375'?" in out.stderr
    rep = json.loads(sw(*base, "--user", "zz-1", "--json").stdout)
    assert rep["known"] is False and "did_you_mean" not in rep
    rep = json.loads(sw(*base, "--user", "AA-10375", "--json").stdout)
    assert rep["known"] is True
    assert "warning" not in sw(*base, "--user", "AA-10375").stderr


def test_a_withdrawal_sent_again_in_a_file_without_dates_is_recorded(tmp_path):
    """No, then yes, then no again: a users file without a date column sends its first row
    again for the last "no". A re-sent grant has had its say; a re-sent withdrawal is recorded
    (fail closed: the customer stayed in the audience export)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    for i, value in enumerate(("no", "yes", "no")):
        (d / "users.csv").write_text(f"user_id,Marketing Opt-In\nU1,{value}\n")
        Ingestor(work, mode="append" if i else "replace").run(d)
        sync_users_table(work)
        assert Consents.of(work).allows(pseudo(work, "U1"), "marketing") is (value == "yes"), value


def test_consent_is_recorded_when_the_warehouse_is_busy(tmp_path):
    """The lookup of whether the id is known opens the warehouse; a load holding it made the
    consent call fail and the withdrawal went unrecorded. It is recorded, `known` unknown."""
    import duckdb

    from shelfwise import Shop

    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    Ingestor(work).run(d)
    holder = duckdb.connect(str(work / "warehouse.duckdb"))  # another writer holds the file
    try:
        import subprocess
        import sys

        code = (
            "import json, sys; from shelfwise import Shop; "
            f"print(json.dumps(Shop({str(work)!r}).set_consent('U1', marketing=False)))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout.strip().splitlines()[-1])
    assert rep["recorded"] == 1 and rep["known"] is None
    assert Shop(work).consent("U1")["consent"]["marketing"] is False


def test_an_opt_out_column_is_not_advised_as_a_consent_map(tmp_path):
    """`Unsubscribed` (yes = no consent) mapped as consent_marketing would read every opt-out as
    a consent: the warning says to turn it into a consent column instead."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    (d / "users.csv").write_text("user_id,Unsubscribed\nU1,yes\n")
    report = Ingestor(tmp_path / "w").run(d)
    said = [w for w in report.warnings if "'Unsubscribed' looks like a consent" in w]
    assert said and "opt-out" in said[0] and "--map" not in said[0], report.warnings


def test_a_transactional_email_column_is_no_consent(tmp_path):
    """BigCommerce-like `Receive Invoice Email` / `Receive Order Emails` say whether a shopper
    gets an invoice or an order confirmation, not marketing: they were taken for consent (kept,
    offered as consent_marketing in a warning). They are no consent: left out as any column
    naming an e-mail is, never read as a consent, and a real marketing column beside them is
    the consent read."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "user_id,Receive Invoice Email,Receive Order Emails,Receive Marketing Emails\n"
        "U1,yes,yes,no\nU2,no,no,yes\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    users = report.tables["users"]
    assert users.column_mapping["Receive Marketing Emails"] == "consent_marketing"
    assert set(users.personal_columns_dropped) == {"Receive Invoice Email", "Receive Order Emails"}
    said = [m for m in report.notes + report.warnings if "Invoice" in m or "Order Emails" in m]
    assert not [m for m in said if "consent" in m], said
    # U1 said yes to invoices and no to marketing: no marketing consent
    got = curated_rows(work, "SELECT consent_marketing FROM curated.users ORDER BY consent_marketing")
    assert got == [(False,), (True,)]
    # alone, such a column is no consent either: no warning offers it as one
    (d / "users.csv").write_text("user_id,Receive Invoice Email\nU1,yes\nU2,no\n")
    report = Ingestor(tmp_path / "w2").run(d)
    assert not [w for w in report.warnings if "looks like a consent" in w], report.warnings
    assert report.tables["users"].personal_columns_dropped == ["Receive Invoice Email"]


def test_rows_of_one_user_that_disagree_on_consent_keep_the_opt_out(tmp_path, engine=None):
    """A combined delivery of several stores lists a customer once per store: opted out of
    marketing in one store's row, opted in in another's. The last row won (the customer stayed
    marketable); an opt-out on any row of the load wins now, the load says how many users' rows
    disagreed, and the consent register holds the withdrawal."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        + "".join(f"U{i},P1,view,2024-01-01T10:00:0{i}Z\n" for i in range(1, 5))
    )
    (d / "users.csv").write_text(
        "user_id,consent_personalization,consent_marketing,store\n"
        "U1,yes,no,de\nU1,yes,yes,fr\n"  # opted out first, opted in last: the opt-out wins
        "U2,yes,yes,de\nU2,yes,yes,fr\n"  # agree
        "U3,no,yes,de\nU3,yes,yes,uk\nU3,yes,yes,fr\n"  # personalization withdrawn in one store
        "U4,yes,yes,de\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work, **({"engine": engine(work)} if engine else {})).run(d)
    sync_users_table(work)
    said = [w for w in report.warnings if "consent disagrees" in w]
    assert len(said) == 1 and "users.csv: 2 user(s)" in said[0], report.warnings
    c = Consents.of(work)
    got = {u: c.current(pseudo(work, u)) for u in ("U1", "U2", "U3", "U4")}
    assert got == {
        "U1": {"personalization": True, "marketing": False},
        "U2": {"personalization": True, "marketing": True},
        "U3": {"personalization": False, "marketing": True},
        "U4": {"personalization": True, "marketing": True},
    }
    assert consent_withdrawn(work, "marketing") == {pseudo(work, "U1")}
    # the curated row says the same as the register
    rows = {
        r[0]: r[1:]
        for r in curated_rows(
            work, "SELECT user_id, consent_personalization, consent_marketing FROM curated.users"
        )
    }
    assert rows[pseudo(work, "U1")] == (True, False) and rows[pseudo(work, "U3")] == (False, True)


def test_an_opt_out_and_an_empty_answer_on_one_users_rows_keep_the_opt_out(tmp_path, engine=None):
    """Rows of one user that say no in one store and nothing (an empty cell) in another disagree
    too: the empty row, last, won (`count(DISTINCT)` skips empties), nothing reached the consent
    register and the shop default (marketable) answered for a customer who had opted out."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        + "".join(f"U{i},P1,view,2024-01-01T10:00:0{i}Z\n" for i in range(1, 5))
    )
    (d / "users.csv").write_text(
        "user_id,consent_personalization,consent_marketing,store\n"
        "U1,yes,no,de\nU1,yes,,fr\n"  # no, then empty: the no wins
        "U2,,yes,de\nU2,no,yes,fr\n"  # empty, then no: the no wins
        "U3,yes,yes,de\nU3,yes,,fr\n"  # yes, then empty: no opt-out, nothing to keep
        "U4,yes,no,de\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work, **({"engine": engine(work)} if engine else {})).run(d)
    sync_users_table(work)
    said = [w for w in report.warnings if "consent disagrees" in w]
    assert len(said) == 1 and "users.csv: 2 user(s)" in said[0], report.warnings
    c = Consents.of(work)
    assert c.current(pseudo(work, "U1"))["marketing"] is False
    assert c.current(pseudo(work, "U2"))["personalization"] is False
    assert consent_withdrawn(work, "marketing") == {pseudo(work, "U1"), pseudo(work, "U4")}
    rows = {
        r[0]: r[1:]
        for r in curated_rows(
            work, "SELECT user_id, consent_personalization, consent_marketing FROM curated.users"
        )
    }
    assert rows[pseudo(work, "U1")] == (True, False) and rows[pseudo(work, "U2")] == (False, True)


def test_a_multi_store_users_file_through_the_cli_is_not_marketable_after_an_opt_out(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nA1,P1,view,2024-01-01T10:00:00Z\n"
    )
    (d / "users.csv").write_text("user_id,consent_marketing,store\nA1,false,de\nA1,true,fr\nA2,true,de\n")
    out = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"))
    assert "1 user(s) have several rows whose consent disagrees" in out.stdout + out.stderr
    rep = json.loads(
        sw("privacy", "consent", "--workdir", str(tmp_path / "w"), "--user", "A1", "--json").stdout
    )
    assert rep["consent"]["marketing"] is False
