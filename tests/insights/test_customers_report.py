"""`shelfwise report customers` end to end on the planted shop of test_customers: the known churner
is at risk and named by its pseudonym only, a user who withdrew the personalization consent is in
no figure, the churn model's held-out evaluation is stated with its protocol, audit and lineage,
and a role without `insights.customers` is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.insights.test_customers import AS_OF, ok, run
from tests.insights.test_customers import shop as shop  # noqa: F401 (the planted shop fixture)

# the planted shop ingested, then two model fits per report (a minute on a loaded machine)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # noqa: F811
    work = tmp_path_factory.mktemp("custrep") / "w"
    shutil.copytree(shop, work)
    ok(run("privacy", "consent", "--workdir", str(work), "--user", "R00", "--personalization", "no"))
    out = ok(run("report", "customers", "--workdir", str(work), "--as-of", AS_OF, "--json"))
    return work, json.loads(out.stdout)


def _pseudonym(work: Path, user: str) -> str:
    from shelfwise.governance import Pseudonymizer, SecretStore

    return str(Pseudonymizer(SecretStore(work).pseudonym_key())(user))


def test_at_risk_by_pseudonym_consent_respected(report):
    work, doc = report
    # 40 regular buyers, 15 lapsers, CHURNER, LOYAL, BROWSER; R00 withdrew the consent
    assert doc["customers"] == 57 and doc["buyers"] == 56 and doc["left_out_without_consent"] == 1
    at_risk = {r["pseudonym"]: r for r in doc["at_risk"]}
    churner = at_risk[_pseudonym(work, "CHURNER")]
    assert churner["churn_risk"] >= doc["at_risk_threshold"] and churner["frequency"] == 33
    assert _pseudonym(work, "LOYAL") not in at_risk
    values = [r["value_at_stake"] for r in doc["at_risk"]]
    assert values == sorted(values, reverse=True)
    assert sum(s["customers"] for s in doc["segments"]) == 57
    assert sum(doc["churn_risk_histogram"]["buyers"]) == 56
    html = (work / "reports" / "customers.html").read_text()
    assert _pseudonym(work, "CHURNER") in html
    # the shop's own ids never appear; the withdrawn user is in no list
    assert "CHURNER" not in html and "LOYAL" not in html and "R00" not in html
    assert _pseudonym(work, "R00") not in html
    assert json.loads((work / "reports" / "customers.json").read_text())["customers"] == 57


def test_held_out_evaluation_is_stated(report):
    work, doc = report
    e = doc["evaluation"]
    assert e["computable"] and e["cut"].startswith("2025-10-02")  # as-of's end of day minus 90 days
    assert "never saw" in e["protocol"]
    # planted lapsers and the churner: the risk ranks who placed no order in the held-out 90 days
    assert e["shelfwise"]["churn_auc"] > 0.6 and 0 <= e["bgnbd"]["churn_auc"] <= 1
    assert e["shelfwise"]["mae_expected_orders"] >= 0
    # with its interval, its calibration and the baselines it must beat (known at the cut)
    lo, hi = e["shelfwise"]["churn_auc_ci95"]
    assert lo < e["shelfwise"]["churn_auc"] < hi and lo > 0.5 and e["skill"] == "ok"
    assert 0 <= e["shelfwise"]["mean_churn_risk"] <= 1 and e["actual"]["churn_rate"] == e["churn_rate"]
    assert set(e["baselines"]) == {"recency", "own_rate"} and 0 <= e["baselines"]["recency"]["churn_auc"] <= 1
    # the figures above cover buyers; users who never bought are scored apart (BROWSER alone)
    assert "prospects" in e["protocol"]
    p = e["prospects"]
    assert p["computable"] and p["prospects"] == 1 and p["ordered_share"] == 0.0
    assert 0 <= p["predicted_order_probability"] <= 1 and p["churn_auc"] is None
    html = (work / "reports" / "customers.html").read_text()
    assert "How good the churn model is" in html and "BG/NBD (anchor)" in html
    assert "shelfwise gbm, fitted at the cut" in html and "as-of's model" not in html
    assert "never bought by the cut (prospects, not in the table above): 1;" in html


def test_an_evaluation_of_the_anchor_itself_is_not_shown_as_a_comparison(shop, tmp_path):  # noqa: F811
    """As of July the profiles' model is gbm, but the cut 90 days before leaves too little history
    for the trees: the model evaluated is BG/NBD alone. The report and the console say which
    model was evaluated and present no "BG/NBD vs BG/NBD" comparison."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.insights._customers_report import customers_html, customers_summary
    from shelfwise.web import mount_console

    s = customers_summary(shop, as_of="2025-07-01", audiences=False)
    e = s["evaluation"]
    assert s["model"]["model"] == "gbm" and e["computable"] and e["model"] == "bgnbd"
    assert "bgnbd" not in e  # the same figures twice are no comparison
    assert "anchor itself" in e["evaluated"] and "not the profiles' model (gbm)" in e["evaluated"]
    html = customers_html(s)
    assert "BG/NBD (the anchor itself)" in html and "BG/NBD (anchor)" not in html
    assert "as-of's model" not in html and "anchor itself (too little history" in html
    work = tmp_path / "w"
    (work / "reports").mkdir(parents=True)
    (work / "reports" / "customers.json").write_text(json.dumps(s, default=str))
    app = FastAPI()
    mount_console(app, work, lambda: None)  # single-user mode, from the loopback
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 40000)) as c:
        r = c.get("/console/insights")
    assert r.status_code == 200, r.text
    line = r.text.split('id="churn-evaluation"', 1)[1].split("</p>")[0]
    assert "BG/NBD alone, the anchor itself" in line and "(gbm)" in line
    assert f"ROC AUC {e['shelfwise']['churn_auc']};" in line and " vs " not in line


def test_console_insights_page_shows_the_report_by_role(report, tmp_path):
    """/console/insights shows reports/customers.json: the segments with their counts and the
    churn model's held-out AUC beside BG/NBD, no shop id; an analyst sees it, an engineer (who
    may not read customer insights) is told why."""
    import re

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise import Shop
    from shelfwise.web import mount_console

    work, doc = report
    w = tmp_path / "w"
    shutil.copytree(work, w)
    (w / "governance" / "people.json").unlink(missing_ok=True)  # this copy's own people
    keys = {"root": Shop(w).add_person("root", "admin")}
    for name, role in (("ana", "analyst"), ("eng", "engineer")):
        keys[name] = Shop(w, as_="root", api_key=keys["root"]).add_person(name, role)
    app = FastAPI()
    mount_console(app, w, lambda: None)

    def page(who: str) -> str:
        with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 40000)) as c:
            csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text)
            assert csrf
            r = c.post(
                "/console/login",
                data={"name": who, "api_key": keys[who], "csrf": csrf.group(1), "next": "/console/insights"},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text
            r = c.get("/console/insights")
            assert r.status_code == 200, r.text
            return r.text

    text = page("ana")
    assert 'id="segments"' in text and 'id="demand"' in text
    for g in doc["segments"]:
        row = text.split(f'<tr data-segment="{g["segment"]}">', 1)[1].split("</tr>")[0]
        assert f'<td class="n">{g["customers"]}</td>' in row
    e = doc["evaluation"]
    line = text.split('id="churn-evaluation"', 1)[1].split("</p>")[0]
    assert f"ROC AUC {e['shelfwise']['churn_auc']} vs BG/NBD {e['bgnbd']['churn_auc']}" in line
    assert e["model"] == "gbm" and "gbm (trees blended with BG/NBD) fitted at the cut" in line
    assert "CHURNER" not in text and "LOYAL" not in text
    # when it was made, not only the data's time (its counts do not follow erasures made since)
    assert f"made {doc['made_at']}: erasures and consent changes since" in text
    text = page("eng")
    assert 'id="segments"' not in text and "the role engineer may not read customer insights" in text


def test_audited_with_lineage_and_refused_without_the_role(report, tmp_path):
    work, doc = report
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    entry = [a for a in audit if a["action"] == "report.customers"][-1]
    assert entry["details"]["customers"] == 57 and entry["details"]["lineage_run_id"] == doc["lineage_run_id"]
    assert entry["details"]["left_out_without_consent"] == 1
    work = tmp_path / "w"  # people registered in a copy: the module's report stays single-user
    shutil.copytree(report[0], work)
    keys = {}
    for name, role in [("ada", "admin"), ("eng", "engineer")]:
        env = {"SHELFWISE_AS": "ada", "SHELFWISE_API_KEY": keys["ada"]} if keys else {}
        out = ok(
            run("users", "add", "--workdir", str(work), "--name", name, "--role", role, "--json", env=env)
        )
        keys[name] = json.loads(out.stdout)["api_key"]
    denied = run("report", "customers", "--workdir", str(work),
                 env={"SHELFWISE_AS": "eng", "SHELFWISE_API_KEY": keys["eng"]})  # fmt: skip
    assert denied.returncode == 4 and "may not insights.customers" in denied.stderr


def test_erasing_a_customer_the_report_names_removes_the_report(report, tmp_path):
    """The customers report lists at-risk customers by pseudonym: erasing one of them removes the
    report (json and html), says so and how to make it again; the other reports stay."""
    src, _ = report
    work = tmp_path / "w"
    shutil.copytree(src, work)
    (work / "reports" / "demand.json").write_text('{"series": 3}')  # a report naming nobody
    pseudo = _pseudonym(work, "CHURNER")
    assert pseudo in (work / "reports" / "customers.json").read_text()
    out = ok(run("privacy", "erase", "--workdir", str(work), "--user", "CHURNER", "--json"))
    rep = json.loads(out.stdout)
    assert rep["reports_removed"] == ["customers.json", "customers.html"] and rep["files"]["reports"] == 2
    assert "`shelfwise report customers`" in rep["remake"]
    assert not (work / "reports" / "customers.json").exists() and (work / "reports" / "demand.json").exists()
    assert not any(pseudo in f.read_text(errors="replace") for f in (work / "reports").iterdir())
    # a customer the report does not name leaves it in place
    ok(run("report", "customers", "--workdir", str(work), "--as-of", AS_OF))
    text = ok(run("privacy", "erase", "--workdir", str(work), "--user", "BROWSER")).stdout
    assert "removed customers" not in text and (work / "reports" / "customers.json").exists()


def test_withdrawing_personalization_removes_the_reports_naming_the_customer(report, tmp_path):
    """A customer without personalization consent is in no figure: the customers report naming
    them at risk goes when they withdraw it (as at an erasure), said; one naming nobody stays."""
    src, _ = report
    work = tmp_path / "w"
    shutil.copytree(src, work)
    (work / "reports" / "demand.json").write_text('{"series": 3}')
    assert _pseudonym(work, "CHURNER") in (work / "reports" / "customers.json").read_text()
    out = ok(
        run("privacy", "consent", "--workdir", str(work), "--user", "CHURNER", "--personalization", "no")
    )
    assert "removed customers.json, customers.html: they named the user" in out.stdout
    assert not (work / "reports" / "customers.json").exists() and (work / "reports" / "demand.json").exists()
    rep = json.loads(
        ok(run("report", "customers", "--workdir", str(work), "--as-of", AS_OF, "--json")).stdout
    )
    assert _pseudonym(work, "CHURNER") not in json.dumps(rep)
    # a withdrawal delivered in the users table does the same (synced at the load)
    text = (work / "reports" / "customers.json").read_text()
    candidates = [f"R{i:02d}" for i in range(40)] + [f"L{i:02d}" for i in range(15)] + ["LOYAL"]
    named = next(u for u in candidates if _pseudonym(work, u) in text)
    users = tmp_path / "users"
    users.mkdir()
    (users / "users.csv").write_text(f"user_id,consent_personalization\n{named},no\n")
    ok(run("ingest", "--data", str(users), "--workdir", str(work), "--append"))
    assert not (work / "reports" / "customers.json").exists()


def test_a_churn_model_without_skill_is_said_not_to_be_acted_on():
    """Superstore's held-out churn AUC was 0.516: its interval holds chance, and the report
    presented the risks as any other. The interval decides the verdict."""
    import numpy as np

    from shelfwise.insights._customers_report import _auc_interval

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    _, lo, hi = _auc_interval(y, rng.random(300))  # scores that know nothing
    assert lo < 0.5 < hi
    _, lo, hi = _auc_interval(y, y + rng.normal(0, 0.5, 300))  # scores that know
    assert lo > 0.75
