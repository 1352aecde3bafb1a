"""The team's workflow end to end through the CLI: roles, the gated registry, serving following
the production alias, denials in the audit log, erasure leaving no trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from shelfwise.governance import Pseudonymizer, SecretStore
from shelfwise.serving import Bundle, current_bundle
from tests.conftest import built_once
from tests.serving.conftest import Server, _train_served_shop, catalog_products, known_users
from tests.serving.test_http import ev, wait_for

pytestmark = pytest.mark.slow
# tests/serving's fast training (its shop is this module's too): a candidate trained again so is
# the production one trained again, on the same data with the same settings
FAST = [
    "--models",
    "popularity,itemknn,transitions,als",
    "--tune-seconds",
    "300",
    "--tune-trials",
    "3",  # a trial count, not a time budget: the candidate must not depend on the machine's load
    "--finetune-seconds",
    "0",
    "--cross-encoder-seconds",
    "0",
]


def run(*args: str, who: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("SHELFWISE_AS", None)
    env.pop("SHELFWISE_API_KEY", None)
    if who is not None:
        env["SHELFWISE_API_KEY"] = who[1]
        args = (*args, "--as", who[0])
    return subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def audit(work: Path) -> list[dict]:
    return [json.loads(line) for line in (work / "audit" / "audit.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A copy of tests/serving's demo shop as trained (once per run with FAST's settings, in
    single-user mode: live at once; a private copy of the pristine build, not the worker's
    session copy, which serving modules change with absorbed events), and the team registered
    in it."""
    base = built_once(tmp_path_factory, "serve", _train_served_shop)
    data, work = base / "data", base / "w"
    keys = {}
    for name, role in [("ada", "admin"), ("sam", "scientist"), ("eve", "engineer"), ("ann", "analyst"),
                       ("stu", "steward"), ("svc", "service")]:  # fmt: skip
        who = ("ada", keys["ada"]) if keys else None
        out = ok(
            run("users", "add", "--workdir", str(work), "--name", name, "--role", role, "--json", who=who)
        )
        keys[name] = json.loads(out.stdout)["api_key"]
    return data, work, {n: (n, k) for n, k in keys.items()}


def test_first_person_must_be_admin_and_only_admins_add_people(tmp_path, shop):
    _, work, who = shop
    proc = run("users", "add", "--workdir", str(tmp_path), "--name", "x", "--role", "analyst")
    assert proc.returncode == 2 and "must be an admin" in proc.stderr
    proc = run("users", "add", "--workdir", str(work), "--name", "mallory", "--role", "admin", who=who["eve"])
    assert proc.returncode == 4 and "may not users.manage" in proc.stderr


def test_denials_are_clear_and_audited(shop):
    data, work, who = shop
    proc = run("train", "--workdir", str(work), *FAST, who=who["ann"])
    assert proc.returncode == 4 and "ann (role analyst) may not train" in proc.stderr
    proc = run("quarantine", "list", "--workdir", str(work), who=who["ann"])
    assert proc.returncode == 4  # raw quarantined rows are for stewards
    ok(run("quarantine", "list", "--workdir", str(work), who=who["stu"]))
    proc = run("evaluate", "--workdir", str(work))  # nobody: once people exist, say who you are
    assert proc.returncode == 4 and "--as NAME" in proc.stderr
    proc = run("evaluate", "--workdir", str(work), who=("ann", "swk_wrong"))
    assert proc.returncode == 4 and "wrong API key" in proc.stderr
    denied = [e for e in audit(work) if e["action"] == "access.denied"]
    assert {(e["actor"], e["details"]["denied_action"]) for e in denied} >= {
        ("ann", "train"),
        ("ann", "quarantine.read_raw"),
        ("anonymous", "evaluate"),
        ("unauthenticated", "evaluate"),  # ann's name with a wrong key: a claim, not ann
    }
    assert "hash chain intact" in ok(run("audit", "--workdir", str(work), who=who["stu"])).stdout


def test_promotion_needs_gates_and_approval_and_serving_follows(shop):
    data, work, who = shop
    live = current_bundle(work).name
    proc = run("serve", "--workdir", str(work), who=who["ann"])
    assert proc.returncode == 4 and "may not serve.run" in proc.stderr
    eve = {"SHELFWISE_AS": "eve", "SHELFWISE_API_KEY": who["eve"][1]}
    server = Server(work, "--reload-seconds", "0.5", "--absorb-seconds", "0", env=eve)
    try:
        # people are registered: the API needs a key, and a service key may only call serving
        assert server.client.get("/v1/recommendations/u1").status_code == 401
        # a key that is not the shop's is said to be invalid, not "required"
        wrong = server.client.get("/v1/recommendations/u1", headers={"X-API-Key": "swk_nope"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["error"], wrong.text
        svc = {"X-API-Key": who["svc"][1]}
        assert server.client.get("/v1/recommendations/u1", headers=svc).status_code == 200
        assert server.client.post("/v1/admin/reload", headers=svc).status_code == 403
        assert server.client.get("/readyz").json()["bundle_version"] == live

        # events the server acknowledged that the train cannot absorb (another absorb holds the
        # lock): it says how many still wait in the spool (issue 15: `export`, `train` and
        # /readyz say it), in its note and its JSON
        from shelfwise.storage._segments import absorb_lock

        products = catalog_products(work)
        sent = [ev("wf-shopper", products[i], "view", session_id="wf") for i in range(7)]
        assert server.client.post("/v1/events", json=sent, headers=svc).json()["accepted"] == 7
        from concurrent.futures import ThreadPoolExecutor

        def refused() -> bool:  # (held past it, the lock would cost the run's absorb mark 60 s)
            return any(
                "served events not absorbed now" in p.read_text() for p in (work / "logs").glob("train-*")
            )

        with ThreadPoolExecutor(1) as pool, absorb_lock(work) as locked:
            assert locked
            training = pool.submit(run, "train", "--workdir", str(work), *FAST, "--json", who=who["sam"])
            wait_for(lambda: refused() or training.done(), timeout=300, step=0.2)
        trained = ok(training.result())
        out = json.loads(trained.stdout)
        assert "served events not absorbed now (another absorb is running)" in trained.stderr
        assert out["events_pending"] == 7
        assert "note: 7 acknowledged events are still waiting in the spool" in trained.stderr, trained.stderr
        cand = out["registry"]["version"]
        assert out["registry"]["production"] is False and current_bundle(work).name == live
        models = json.loads(
            ok(run("models", "list", "--workdir", str(work), "--json", who=who["ann"])).stdout
        )
        assert [m["aliases"] for m in models] == [["production"], ["candidate"]]
        assert all(g["passed"] for g in models[1]["gates"]), models[1]["gates"]

        proc = run("models", "promote", "--workdir", str(work), who=who["eve"])
        assert proc.returncode == 2 and "no approval" in proc.stderr
        assert current_bundle(work).name == live
        proc = run("models", "approve", "--workdir", str(work), who=who["sam"])
        assert proc.returncode == 4  # a scientist may not approve (and sam trained it)
        ok(run("models", "approve", "--workdir", str(work), who=who["stu"]))
        ok(run("models", "promote", "--workdir", str(work), who=who["eve"]))
        new = current_bundle(work).name
        # approving what is live already would read as reviewed before it went live
        proc = run("models", "approve", "--workdir", str(work), "--version", cand, who=who["stu"])
        assert proc.returncode == 2 and "already in production" in proc.stderr
        assert ("model.approve", "refused", "stu") in [
            (e["action"], e["outcome"], e["actor"]) for e in audit(work)
        ]
        assert new != live and new == Path(out["bundle"]).name

        def switched() -> bool:
            return server.client.get("/readyz").json()["bundle_version"] == new

        for _ in range(100):
            if switched():
                break
            import time

            time.sleep(0.3)
        assert switched()
        r = server.client.get("/v1/recommendations/u1", headers=svc).json()
        assert r["bundle_version"] == new

        # retention keeps what a rollback goes back to (the previous production bundle) ...
        (work / "config").mkdir(exist_ok=True)
        (work / "config" / "retention.json").write_text('{"bundles_keep": 1}')
        ok(run("retention", "enforce", "--workdir", str(work), who=who["stu"]))
        (work / "config" / "retention.json").unlink()
        assert (work / "bundles" / live / "manifest.json").exists()
        # ... and a rollback to a bundle that is gone is refused, production unchanged
        away = work / f"away-{live}"
        (work / "bundles" / live).rename(away)
        proc = run("models", "rollback", "--workdir", str(work), who=who["eve"])
        away.rename(work / "bundles" / live)
        assert proc.returncode == 2 and "is gone" in proc.stderr and current_bundle(work).name == new
        ok(run("models", "rollback", "--workdir", str(work), who=who["eve"]))
        assert current_bundle(work).name == live
        # the version rolled back goes live again only on a new approval
        proc = run("models", "promote", "--workdir", str(work), "--version", cand, who=who["eve"])
        assert proc.returncode == 2 and "no approval" in proc.stderr and current_bundle(work).name == live
        # and says who had approved it (the list showed "approved by -" as if nobody ever had)
        listed = ok(run("models", "list", "--workdir", str(work), who=who["eve"])).stdout
        line = next(ln for ln in listed.splitlines() if ln.startswith(f"v{cand} "))
        assert "withdrawn: stu (rolled back)" in line, listed
        actions = [(e["action"], e["outcome"], e["actor"]) for e in audit(work)]
        assert ("model.rollback", "refused", "eve") in actions  # (the bundle that was gone)
        assert ("model.promote", "refused", "eve") in actions
        assert ("model.approve", "ok", "stu") in actions
        assert ("model.promote", "ok", "eve") in actions and ("model.rollback", "ok", "eve") in actions
        assert cand == "2"
    finally:
        server.stop()


def test_erasure_leaves_no_trace_and_the_user_is_served_as_new(shop, tmp_path):
    data, work, who = shop
    user = known_users(data, work, 1)[0]
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())(user)

    def recommend(raw_user: str) -> dict:
        users_file, out = tmp_path / "users.txt", tmp_path / "recs.jsonl"
        users_file.write_text(f"{raw_user}\n")
        ok(
            run(
                "recommend",
                "--workdir",
                str(work),
                "--users",
                str(users_file),
                "--k",
                "5",
                "--out",
                str(out),
                who=who["ann"],
            )
        )
        return json.loads(out.read_text())

    assert recommend(user)["source"] != "cold_start"
    cold = recommend("someone-never-seen")
    from shelfwise.governance._erase import CONSOLE_FIGURES
    from shelfwise.web._data import SUMMARIES

    assert CONSOLE_FIGURES == SUMMARIES
    kept = work / SUMMARIES / "search_logged.json"  # a console's kept figures (a cache)
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps({"top": [{"query": f"order for {user}"}]}))

    proc = run("privacy", "erase", "--workdir", str(work), "--user", user, who=who["ann"])
    assert proc.returncode == 4  # analysts may not erase
    rep = json.loads(
        ok(run("privacy", "erase", "--workdir", str(work), "--user", user, "--json", who=who["stu"])).stdout
    )
    assert rep["pseudonym"] == pseudo and sum(rep["warehouse"].values()) > 0 and rep["bundles"]
    assert not kept.exists() and rep["files"]["state/console"] >= 1  # made again from what is left

    # no exported table holds the user
    for table in ("events", "users", "products", "queries", "judgments"):
        f = tmp_path / f"{table}.csv"
        proc = run("export", "--workdir", str(work), "--table", table, "--out", str(f), who=who["ann"])
        if proc.returncode == 0:
            text = f.read_text()
            assert pseudo not in text and f",{user}," not in text
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        for schema, table in con.sql(
            "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'user_id' "
            "AND table_schema IN ('raw', 'curated')"
        ).fetchall():
            n = con.sql(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE user_id IN (?, ?)', params=[user, pseudo]
            ).fetchone()[0]
            assert n == 0, (schema, table)
        q = con.sql(
            "SELECT count(*) FROM quarantine.rows WHERE json_extract_string(raw, '$.user_id') = ?",
            params=[user],
        ).fetchone()[0]
        assert q == 0
    finally:
        con.close()
    for b in (work / "bundles").glob("[0-9]*"):
        bundle = Bundle.load(b)  # re-signed: the hashes still verify
        assert pseudo not in set(bundle.interactions.user_ids.astype(str))
        # the user's factors are gone from the served ALS and from its train-fold fit kept for
        # `evaluate` (evaluated/) alike
        from shelfwise.serving._bundle import load_evaluated_models

        ids = bundle.interactions.user_ids.astype(str)
        erased = [i for i, x in enumerate(ids) if x == f"erased_{i}"]
        assert erased
        # the others' steps keep their weight changes (a view then a purchase of one item: the
        # global time split weighs a step by its events before the cut); the user's are gone
        raises = bundle.interactions.raises
        assert raises is not None and len(raises[0])
        assert not np.isin(bundle.interactions.user_idx[raises[0]], erased).any()
        for fits in (bundle.models, load_evaluated_models(bundle)[0]):
            als = fits.get("als")
            if als is not None:
                assert not np.asarray(als.user_factors_)[erased].any()

    # served exactly as a never-seen user
    after = recommend(user)
    assert after["source"] == "cold_start" and after["items"] == cold["items"]

    entries = audit(work)
    erase = [e for e in entries if e["action"] == "privacy.erase"]
    assert len(erase) == 1 and erase[0]["details"]["pseudonym"] == pseudo
    assert user not in (work / "audit" / "audit.jsonl").read_text()  # the raw id never enters the log
    lineage = [json.loads(x) for x in (work / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    runs = [
        e for e in lineage if e["job"]["name"] == "shelfwise.privacy.erase" and e["eventType"] == "COMPLETE"
    ]
    assert runs and any("bundles" in o["name"] for o in runs[-1]["outputs"])
    ok(run("audit", "--workdir", str(work), who=who["ada"]))

    # tampering with the audit file is detected
    path = work / "audit" / "audit.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"ok"', '"denied"', 1)
    path.write_text("\n".join(lines) + "\n")
    assert run("audit", "--workdir", str(work), who=who["ada"]).returncode == 1


def test_a_demo_refused_to_a_role_writes_nothing_into_the_teams_workdir(tmp_path):
    """An analyst's `shelfwise demo --workdir W` wrote W/demo-data/ (thousands of rows of a
    made-up shop beside the team's data) and only then was refused at the ingest."""
    from shelfwise import Shop

    work = tmp_path / "w"
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    ann = ada.add_person("ann", "analyst")
    small = ("--products", "50", "--users", "10", "--events", "300", "--no-train")
    proc = run("demo", "--workdir", str(work), *small, who=("ann", ann))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "may not ingest" in proc.stderr and not (work / "demo-data").exists()
