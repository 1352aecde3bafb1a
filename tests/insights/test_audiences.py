"""`shelfwise audiences build | list | export` on a planted shop (120 heavy kitchen buyers, 180
light buyers of garden products and books): a rule audience with a known answer, the minimum
size, the lift estimate, permissions, erasure, a model audience read from the item side."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from shelfwise.errors import ShelfwiseError
from tests.insights._planted_audiences import HEAVY, planted_audience_shop
from tests.insights.test_customers import ok, run


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("audiences")
    planted_audience_shop(base / "data")
    ok(run("ingest", "--data", str(base / "data"), "--workdir", str(base / "w")))
    return base / "w"


@pytest.fixture(scope="module")
def heavy(shop: Path) -> dict:
    """The rule audience every test reads: users with 20 orders or more, i.e. exactly HEAVY."""
    proc = ok(
        run("audiences", "build", "-w", str(shop), "--name", "heavy", "--rule", "frequency >= 20", "--json")
    )
    return json.loads(proc.stdout)


def copy_of(shop: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "w"
    shutil.copytree(shop, dst)
    return dst


def exported(path: Path) -> dict[str, float]:
    return {r["user_id"]: float(r["score"]) for r in csv.DictReader(path.open())}


def test_rule_audience_known_answer_lineage_and_export(shop: Path, heavy: dict, tmp_path: Path):
    assert heavy["size"] == len(HEAVY) and heavy["kind"] == "rule"
    assert set(heavy["data_versions"]) >= {"events", "products"} and heavy["lineage_run_id"]
    out = tmp_path / "heavy.csv"
    proc = ok(run("audiences", "export", "-w", str(shop), "--name", "heavy", "--out", str(out)))
    assert "(shop ids;" in proc.stdout
    assert set(exported(out)) == set(HEAVY)  # the known answer, in the shop's own ids
    listed = json.loads(ok(run("audiences", "list", "-w", str(shop), "--json")).stdout)
    assert [(a["name"], a["size"], a["rule"]) for a in listed] == [("heavy", 120, "frequency >= 20")]
    audit = [json.loads(x) for x in (shop / "audit" / "audit.jsonl").read_text().splitlines()]
    assert any(a["action"] == "audiences.build" and a["details"]["size"] == 120 for a in audit)
    assert any(a["action"] == "audiences.export" and a["details"]["ids"] == "shop" for a in audit)
    # the members are stored as pseudonyms, never the shop's ids
    assert "H000" not in (shop / "audiences" / "heavy" / "members.jsonl").read_text()


def test_a_rule_audience_of_a_size_is_its_best_by_expected_value(shop: Path, heavy: dict, tmp_path: Path):
    """`--size N` on a rule audience was stored and ignored (every match exported): it is the N
    best by expected value among the matches, said; the lift stays the rule's."""
    work = copy_of(shop, tmp_path)
    rep = json.loads(
        ok(
            run("audiences", "build", "-w", str(work), "--name", "top60", "--rule", "frequency >= 20",
                "--size", "60", "--no-lift", "--json")
        ).stdout
    )  # fmt: skip
    assert rep["size"] == 60 and "the best 60 by expected value of the 120 users" in rep["size_cut"]
    out = tmp_path / "top.csv"
    ok(run("audiences", "export", "-w", str(work), "--name", "top60", "--out", str(out)))
    top = exported(out)
    assert len(top) == 60 and set(top) <= set(HEAVY)
    full = tmp_path / "all.csv"
    ok(run("audiences", "export", "-w", str(work), "--name", "heavy", "--out", str(full)))
    every = exported(full)
    assert min(top.values()) >= max(v for u, v in every.items() if u not in top)


def test_lift_on_planted_data(heavy: dict):
    """30 days before the last event, the heavy buyers all buy again in the next 30 days; the
    base rate is theirs plus the few light buyers who happen to order then."""
    lift = heavy["lift"]
    assert lift["audience_users"] == 120 and lift["audience_rate"] == 1.0
    assert 0.35 < lift["base_rate"] < 0.6
    assert lift["lift"] == pytest.approx(1.0 / lift["base_rate"], rel=0.01)
    lo, hi = lift["lift_ci95"]
    assert 1.5 < lo < lift["lift"] < hi


def test_lift_estimate_known_answer():
    from shelfwise.insights._audiences import lift_estimate

    members = np.zeros(1000, bool)
    members[:100] = True
    converted = np.zeros(1000, bool)
    converted[:50] = True  # half the audience
    converted[100:250] = True  # 150 of the 900 others: base rate 0.2
    got = lift_estimate(members, converted)
    assert got["audience_rate"] == 0.5 and got["base_rate"] == 0.2 and got["lift"] == 2.5
    assert got["lift_ci95"][0] < 2.5 < got["lift_ci95"][1] and got["lift_ci95"][0] > 1.8
    assert lift_estimate(members, converted) == got  # seeded


def test_a_lift_with_no_member_converted_has_an_interval_not_zero_to_zero():
    """No member bought in the period: every bootstrap draw has none either, and [0, 0] read
    as a certain zero lift; the upper end is the exact bound of a rate with none seen."""
    from shelfwise.insights._audiences import lift_estimate

    members = np.zeros(1000, bool)
    members[:79] = True
    converted = np.zeros(1000, bool)
    converted[100:138] = True  # 38 of the 921 others: base rate 0.038
    got = lift_estimate(members, converted)
    assert got["lift"] == 0.0 and got["audience_conversions"] == 0
    lo, hi = got["lift_ci95"]
    assert lo == 0.0 and hi == pytest.approx((1 - 0.025 ** (1 / 79)) / 0.038, abs=1e-3) and hi > 1
    assert "none seen" in got["note"]


def test_a_cut_inside_a_tie_is_said():
    from shelfwise.insights._audiences import ties_at_cut

    ranks = np.array([0, 3, 3, 3, 3, 9])
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1], np.float32)
    order = np.arange(6)
    assert ties_at_cut(ranks, scores, order, 3) == (4, 2)  # 2 of the 4 tied users are in
    assert ties_at_cut(ranks, scores, order, 5) == (0, 0)  # the cut after the tie
    assert ties_at_cut(ranks, scores, order, 1) == (0, 0)


def test_minimum_size_and_bad_rules_are_refused(shop: Path, heavy: dict):
    from shelfwise import Shop

    proc = run(
        "audiences",
        "build",
        "-w",
        str(shop),
        "--name",
        "small",
        "--rule",
        "frequency >= 20",
        "--min-size",
        "121",
    )
    assert proc.returncode == 2 and "fewer than the minimum audience size 121" in proc.stderr
    assert not (shop / "audiences" / "small").exists()
    for rule, why in (
        ("segment == 'loyl'", "'loyl' is not a segment"),
        ("churn > 0.5", "unknown field 'churn'"),
        ("frequency >= 'x'", "frequency is a number"),
        ("__import__('os')", "only comparisons of a profile field"),
    ):
        with pytest.raises(ShelfwiseError, match=re.escape(why)):
            Shop(shop).build_audience(name="bad", rule=rule)
    with pytest.raises(ShelfwiseError, match="--replace"):
        Shop(shop).build_audience(name="heavy", rule="frequency >= 20")
    with pytest.raises(ShelfwiseError, match="exactly one of"):
        Shop(shop).build_audience(name="two", rule="frequency >= 20", category="Kitchen")


def test_spec_file(shop: Path, tmp_path: Path):
    from shelfwise import Shop

    spec = tmp_path / "a.toml"
    spec.write_text(
        '[audience]\nname = "lapsing"\nrule = "frequency <= 3 and recency_days > 60"\nmin_size = 10\nlift = false\n'
    )
    rep = Shop(copy_of(shop, tmp_path)).build_audience(spec)
    assert rep["lift"] is None and 10 <= rep["size"] <= 180 and rep["spec"]["min_size"] == 10
    spec.write_text('name = "x"\nrules = "frequency > 1"\n')
    with pytest.raises(ShelfwiseError, match="unknown audience field"):
        Shop(shop).build_audience(spec)


def test_permissions_raw_ids_only_for_roles_allowed(shop: Path, heavy: dict, tmp_path: Path):
    from shelfwise import Shop
    from shelfwise.errors import AccessDenied

    w = copy_of(shop, tmp_path)
    keys = {"root": Shop(w).add_person("root", "admin")}
    for name, role in (("ana", "analyst"), ("sci", "scientist"), ("eng", "engineer"), ("svc", "service")):
        keys[name] = Shop(w, as_="root", api_key=keys["root"]).add_person(name, role)

    def as_(name: str) -> Shop:
        return Shop(w, as_=name, api_key=keys[name])

    with pytest.raises(AccessDenied, match="may not audiences.build"):
        as_("eng").build_audience(name="x", rule="frequency >= 20")
    for who in ("eng", "svc"):
        with pytest.raises(AccessDenied, match="may not audiences.export"):
            as_(who).export_audience("heavy", tmp_path / "e.csv")
    assert as_("sci").export_audience("heavy", tmp_path / "s.csv")["ids"] == "pseudonym"
    pseudo = exported(tmp_path / "s.csv")
    assert len(pseudo) == 120 and not set(pseudo) & set(HEAVY)  # a scientist gets pseudonyms
    assert as_("ana").export_audience("heavy", tmp_path / "a.csv")["ids"] == "shop"
    assert set(exported(tmp_path / "a.csv")) == set(HEAVY)  # the analyst runs the campaign
    assert as_("ana").export_audience("heavy", tmp_path / "p.csv", pseudonyms=True)["ids"] == "pseudonym"
    audit = [json.loads(x) for x in (w / "audit" / "audit.jsonl").read_text().splitlines()]
    exports = [(a["actor"], a["details"]["ids"]) for a in audit if a["action"] == "audiences.export"]
    assert exports[-3:] == [("sci", "pseudonym"), ("ana", "shop"), ("ana", "pseudonym")]
    assert any(
        a["action"] == "access.denied" and a["details"]["denied_action"] == "audiences.build" for a in audit
    )


def test_an_erased_user_leaves_stored_audiences(shop: Path, heavy: dict, tmp_path: Path):
    from shelfwise import Shop
    from shelfwise.governance import Pseudonymizer, SecretStore

    w = copy_of(shop, tmp_path)
    ok(run("privacy", "erase", "-w", str(w), "--user", "H007"))
    pseudo = Pseudonymizer(SecretStore(w).pseudonym_key())("H007")
    assert pseudo not in (w / "audiences" / "heavy" / "members.jsonl").read_text()
    listed = Shop(w).audiences()
    assert listed[0]["size"] == 119 and listed[0]["built_size"] == 120
    Shop(w).export_audience("heavy", tmp_path / "e.csv")
    assert set(exported(tmp_path / "e.csv")) == set(HEAVY) - {"H007"}
    # below its minimum size after erasures, an audience is no longer exported
    Shop(w).build_audience(name="h2", rule="frequency >= 20", min_size=119, lift=False)
    Shop(w).erase("H008")
    with pytest.raises(ShelfwiseError, match="fewer than its minimum size 119"):
        Shop(w).export_audience("h2", tmp_path / "f.csv")


def test_the_export_goes_through_one_consent_gate(shop: Path, heavy: dict, tmp_path: Path, monkeypatch):
    """Marketing consent (issue 19) is wired into `_eligible_for_marketing`: what it refuses is
    not exported, and the minimum size is checked after it."""
    from shelfwise import Shop
    from shelfwise.insights import _audiences

    w = copy_of(shop, tmp_path)
    monkeypatch.setattr(
        _audiences, "_eligible_for_marketing", lambda workdir, ps: [i % 2 == 0 for i in range(len(ps))]
    )
    rep = Shop(w).export_audience("heavy", tmp_path / "y.jsonl")
    assert rep["rows"] == 60 and len((tmp_path / "y.jsonl").read_text().splitlines()) == 60
    # the build counts through the same gate (60 of 120), and so refuses a minimum of 61
    with pytest.raises(ShelfwiseError, match="60 users an export could write"):
        Shop(w).build_audience(name="h3", rule="frequency >= 20", min_size=61, lift=False)
    assert Shop(w).build_audience(name="h3", rule="frequency >= 20", min_size=60, lift=False)["size"] == 60
    # ... and the export checks the minimum again after it (fewer may receive marketing now)
    monkeypatch.setattr(
        _audiences, "_eligible_for_marketing", lambda workdir, ps: [i % 3 == 0 for i in range(len(ps))]
    )
    with pytest.raises(ShelfwiseError, match="fewer than its minimum size 60"):
        Shop(w).export_audience("h3", tmp_path / "x.csv")


@pytest.mark.slow
def test_model_audience_reads_the_recommenders_from_the_item_side(shop: Path, heavy: dict, tmp_path: Path):
    """'Most likely to buy in Kitchen': the heavy buyers (all their orders are kitchen products),
    from the trained bundle; the lift of the same audience built 30 days earlier is measured on
    kitchen purchases."""
    from shelfwise import Shop

    w = copy_of(shop, tmp_path)
    ok(run("train", "-w", str(w), "--models", "popularity,itemknn,als", "--tune-seconds", "0",
           "--finetune-seconds", "0", "--cross-encoder-seconds", "0"))  # fmt: skip
    rep = json.loads(
        ok(
            run(
                "audiences",
                "build",
                "-w",
                str(w),
                "--name",
                "kitchen",
                "--category",
                "Kitchen",
                "--size",
                "120",
                "--days",
                "30",
                "--json",
            )
        ).stdout  # fmt: skip
    )
    assert rep["kind"] == "model" and rep["bundle_version"] and rep["model"] in ("itemknn", "als")
    assert rep["targets_count"] == 10 and rep["lift"]["lift"] > 2 and rep["lift"]["lift_ci95"][0] > 1.5
    ok(run("audiences", "export", "-w", str(w), "--name", "kitchen", "--out", str(tmp_path / "k.csv")))
    assert set(exported(tmp_path / "k.csv")) == set(HEAVY)
    # `--size N` is N users an export writes: one who withdrew marketing consent is not chosen
    # (nor counted), the next most likely buyer is
    Shop(w).set_consent("H000", marketing=False)
    again = Shop(w).build_audience(name="kitchen2", category="Kitchen", size=120, lift=False)
    assert again["size"] == 120 and again["members_without_marketing_consent"] == 0
    assert Shop(w).export_audience("kitchen2", tmp_path / "k2.csv")["rows"] == 120
    assert (
        "H000" not in exported(tmp_path / "k2.csv")
        and len(set(exported(tmp_path / "k2.csv")) & set(HEAVY)) == 119
    )
    proc = run("audiences", "build", "-w", str(w), "--name", "p", "--product", "NOPE")
    assert proc.returncode == 2 and "NOPE not in the trained bundle" in proc.stderr
    # popularity ranks every shopper alike: its audience was the users' storage order
    proc = run(
        "audiences", "build", "-w", str(w), "--name", "pop", "--category", "Kitchen", "--model", "popularity"
    )
    assert proc.returncode == 2 and "ranks every shopper alike" in proc.stderr


def test_users_without_marketing_or_personalization_consent_are_not_exported(
    shop: Path, heavy: dict, tmp_path: Path
):
    """The consent register (issue 19) through the one gate: a marketing withdrawal and a
    personalization withdrawal each leave the export; a user who consents again is back."""
    from shelfwise import Shop

    w = copy_of(shop, tmp_path)
    Shop(w).set_consent("H001", marketing=False)
    Shop(w).set_consent("H002", personalization=False)
    Shop(w).export_audience("heavy", tmp_path / "a.csv")
    assert set(exported(tmp_path / "a.csv")) == set(HEAVY) - {"H001", "H002"}
    Shop(w).set_consent("H001", marketing=True)
    Shop(w).export_audience("heavy", tmp_path / "b.csv")
    assert set(exported(tmp_path / "b.csv")) == set(HEAVY) - {"H002"}


def test_build_size_and_minimum_count_whom_an_export_writes(shop: Path, heavy: dict, tmp_path: Path):
    """`audiences build` reports the size an export would write and checks --min-size on it: a
    user without marketing consent matches the rule but is neither counted nor enough to pass."""
    from shelfwise import Shop

    w = copy_of(shop, tmp_path)
    Shop(w).set_consent("H001", marketing=False)
    Shop(w).set_consent("H002", marketing=False)
    built = Shop(w).build_audience(name="h2", rule="frequency >= 20", lift=False)
    assert built["size"] == 118 and built["members_without_marketing_consent"] == 2
    assert [a["size"] for a in Shop(w).audiences() if a["name"] == "h2"] == [118]
    assert Shop(w).export_audience("h2", tmp_path / "h2.csv")["rows"] == 118
    with pytest.raises(ShelfwiseError, match=r"118 users an export could write \(2 more match"):
        Shop(w).build_audience(name="h3", rule="frequency >= 20", min_size=119, lift=False)
    assert not (w / "audiences" / "h3").exists()


def test_a_size_counts_whom_an_export_writes(shop: Path, heavy: dict, tmp_path: Path):
    """One size now everywhere: `audiences list`, `report audiences`, the customers report and the
    console leave out, as the export does, a user who withdrew marketing or personalization
    consent (the customers report counts no user without the personalization consent at all)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise import Shop
    from shelfwise.insights._customers_report import customers_summary
    from shelfwise.web import mount_console

    w = copy_of(shop, tmp_path)
    Shop(w).set_consent("H001", marketing=False)
    Shop(w).set_consent("H002", personalization=False)
    written = Shop(w).export_audience("heavy", tmp_path / "a.csv")["rows"]
    assert written == len(exported(tmp_path / "a.csv")) == 118
    assert [(a["size"], a["built_size"]) for a in Shop(w).audiences()] == [(118, 120)]
    report = Shop(w).audiences_report()
    assert [a["size"] for a in report["audiences"]] == [118]
    assert [a["size"] for a in customers_summary(w)["audiences"]] == [118]
    app = FastAPI()
    mount_console(app, w, lambda: None)  # single-user mode, from the loopback
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 40000)) as c:
        r = c.get("/console/insights")
    assert r.status_code == 200, r.text
    assert '<td class="n">118</td>' in r.text.split('data-audience="heavy"', 1)[1].split("</tr>")[0]


def _lineage_complete(w: Path, job: str) -> list[dict]:
    runs = [json.loads(x) for x in (w / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    return [r for r in runs if r["job"]["name"] == job and r["eventType"] == "COMPLETE"]


def test_audiences_report_with_real_audiences_is_audited_with_lineage(
    shop: Path, heavy: dict, tmp_path: Path
):
    """`report audiences` on audiences built through `audiences build`: the known audience with
    its size and lift in the HTML and JSON; an audit entry naming it with the data versions and
    build run behind it; a lineage run from its members file (rows held now) to the two files.
    After an erasure the next report counts the members held then."""
    w = copy_of(shop, tmp_path)
    doc = json.loads(ok(run("report", "audiences", "-w", str(w), "--json")).stdout)
    assert doc["count"] == 1 and [(a["name"], a["size"], a["lift"]) for a in doc["audiences"]] == [
        ("heavy", 120, heavy["lift"]["lift"])
    ]
    html = (w / "reports" / "audiences.html").read_text()
    assert html.count("<svg") >= 2 and "heavy" in html and "frequency &gt;= 20" in html
    audit = [json.loads(x) for x in (w / "audit" / "audit.jsonl").read_text().splitlines()]
    entry = audit[-1]
    assert (
        entry["action"] == "report.audiences" and entry["details"]["lineage_run_id"] == doc["lineage_run_id"]
    )
    made = entry["details"]["audiences"]["heavy"]
    assert made["size"] == 120 and made["lineage_run_id"] == heavy["lineage_run_id"]
    assert made["data_versions"] == {t: v["version"] for t, v in heavy["data_versions"].items()}
    (done,) = [
        r
        for r in _lineage_complete(w, "shelfwise.report.audiences")
        if r["run"]["runId"] == doc["lineage_run_id"]
    ]
    (members,) = done["inputs"]
    assert members["name"].endswith("audiences/heavy/members.jsonl")
    assert members["inputFacets"]["inputStatistics"]["rowCount"] == 120
    assert members["facets"]["version"]["datasetVersion"]  # the members file's content hash
    assert {Path(o["name"]).name for o in done["outputs"]} == {"audiences.html", "audiences.json"}

    ok(run("privacy", "erase", "-w", str(w), "--user", "H007"))
    again = json.loads(ok(run("report", "audiences", "-w", str(w), "--json")).stdout)
    assert again["audiences"][0]["size"] == 119
    last = [json.loads(x) for x in (w / "audit" / "audit.jsonl").read_text().splitlines()][-1]
    assert last["action"] == "report.audiences" and last["details"]["audiences"]["heavy"]["size"] == 119


def test_console_insights_page_by_role(shop: Path, heavy: dict, tmp_path: Path):
    """/console/insights in a governed workdir: nobody logged in is sent to the login form; an
    engineer (who may read demand, not audiences) sees the page without any audience; an analyst
    sees the audience built through `audiences build`."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise import Shop
    from shelfwise.web import mount_console

    w = copy_of(shop, tmp_path)
    keys = {"root": Shop(w).add_person("root", "admin")}
    for name, role in (("ana", "analyst"), ("eng", "engineer"), ("svc", "service")):
        keys[name] = Shop(w, as_="root", api_key=keys["root"]).add_person(name, role)
    app = FastAPI()
    mount_console(app, w, lambda: None)

    def client() -> TestClient:
        return TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 40000))

    def login(c: TestClient, who: str) -> int:
        page = c.get("/console/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf, page
        r = c.post(
            "/console/login",
            data={"name": who, "api_key": keys[who], "csrf": csrf.group(1), "next": "/console/insights"},
            follow_redirects=False,
        )
        return r.status_code

    with client() as c:
        r = c.get("/console/insights", follow_redirects=False)
        assert r.status_code == 303 and "/console/login" in r.headers["location"]
        assert login(c, "svc") == 403  # services call the API; people use the console
    with client() as c:
        assert login(c, "eng") == 303
        r = c.get("/console/insights")
        assert r.status_code == 200 and 'id="demand"' in r.text
        assert (
            "Audiences are for roles that may read them" in r.text and 'data-audience="heavy"' not in r.text
        )
    with client() as c:
        assert login(c, "ana") == 303
        r = c.get("/console/insights")
        assert r.status_code == 200 and 'data-audience="heavy"' in r.text
        row = r.text.split('data-audience="heavy"', 1)[1].split("</tr>")[0]
        assert '<td class="n">120</td>' in row


def test_churn_skill_says_when_the_churn_risk_ranks_no_better_than_chance():
    """A rule on churn_risk where the model has no skill picked customers about at random, and
    `audiences build` said nothing (the customers report said AUC 0.50): the lift's held-out
    window now measures the churn risk's ranking of who did not buy, and says so."""
    import pandas as pd

    from shelfwise.insights._audiences import churn_skill

    rng = np.random.default_rng(0)
    converted = rng.random(2000) < 0.3
    cut = pd.Timestamp("2026-01-01")
    blind = churn_skill(rng.random(2000), converted, cut, 30)
    lo, hi = blind["churn_auc_ci95"]
    assert lo <= 0.5 <= hi and "no better than chance" in blind["churn_note"]
    sighted = churn_skill(np.where(converted, 0.2, 0.8) + rng.normal(0, 0.1, 2000), converted, cut, 30)
    assert sighted["churn_auc"] > 0.9 and "churn_note" not in sighted
    assert churn_skill(rng.random(10), np.ones(10, bool), cut, 30) == {"churn_auc": None}


def test_a_churn_rule_audience_reports_the_churn_risks_held_out_auc(shop: Path, tmp_path: Path):
    w = copy_of(shop, tmp_path)
    proc = ok(run("audiences", "build", "-w", str(w), "--name", "lapsing", "--rule", "churn_risk > 0.3"))
    assert "churn_risk's held-out AUC" in proc.stdout, proc.stdout
    rep = json.loads((w / "audiences" / "lapsing" / "audience.json").read_text())
    auc = rep["lift"]["churn_auc"]
    assert auc is not None and 0.0 <= auc <= 1.0
    assert ("churn_note" in rep["lift"]) == (
        rep["lift"]["churn_auc_ci95"][0] <= 0.5 <= rep["lift"]["churn_auc_ci95"][1]
    )


def test_a_looked_but_did_not_buy_audience_reads_the_browsing_of_the_last_30_days():
    """No rule could say "viewed a category but did not buy from it" (a CRM marketer's walk):
    `viewed_categories` (viewed, clicked or carted in the last 30 days, with each category's
    ancestors) and `bought_categories` (every purchase) are rule fields now."""
    import pandas as pd

    from shelfwise.insights._audience_rules import Rule
    from shelfwise.insights._customers import category_history

    at = pd.Timestamp("2026-03-31")
    products = pd.DataFrame(
        {"product_id": ["road", "helmet", "mug"], "category": ["Bikes > Road", "Bikes > Gear", "Kitchen"]}
    )
    rows = [
        ("looker", "road", "view", "2026-03-20"),  # looked, did not buy: in
        ("buyer", "road", "view", "2026-03-20"),
        ("buyer", "helmet", "purchase", "2026-01-05"),  # bought in Bikes (another sub-category)
        ("stale", "road", "view", "2026-02-01"),  # looked 58 days before: not fresh
        ("carter", "helmet", "add_to_cart", "2026-03-30"),  # carted: looked
        ("mugger", "mug", "view", "2026-03-29"),
        ("later", "road", "view", "2026-04-02"),  # after as_of: not seen
    ]
    events = pd.DataFrame(rows, columns=["user_id", "product_id", "event_type", "timestamp"])
    events["timestamp"] = pd.to_datetime(events["timestamp"])
    hist = category_history(events, products, at)
    assert "later" not in hist.index
    assert hist.loc["looker", "viewed_categories"] == ["Bikes", "Bikes > Road"]
    assert hist.loc["stale", "viewed_categories"] == [] and hist.loc["mugger", "bought_categories"] == []
    assert hist.loc["buyer", "bought_categories"] == ["Bikes", "Bikes > Gear"]
    rule = Rule("'Bikes' in viewed_categories and 'Bikes' not in bought_categories")
    assert sorted(hist.index[rule.mask(hist)]) == ["carter", "looker"]
    assert sorted(hist.index[Rule("'Bikes > Road' in viewed_categories").mask(hist)]) == ["buyer", "looker"]


def test_a_browsing_rule_builds_through_the_cli(shop: Path, tmp_path: Path):
    w = copy_of(shop, tmp_path)
    proc = run(
        "audiences", "build", "-w", str(w), "--name", "lookers",
        "--rule", "'No Such Category' in viewed_categories and 'No Such Category' not in bought_categories",
    )  # fmt: skip
    assert proc.returncode != 0 and "0 users an export could write" in proc.stderr, proc.stderr
