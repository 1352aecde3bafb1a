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
    html = (work / "reports" / "customers.html").read_text()
    assert "How good the churn model is" in html and "BG/NBD (anchor)" in html


def test_audited_with_lineage_and_refused_without_the_role(report, tmp_path):
    work, doc = report
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    entry = [a for a in audit if a["action"] == "report.customers"][-1]
    assert entry["details"]["customers"] == 57 and entry["details"]["lineage_run_id"] == doc["lineage_run_id"]
    assert entry["details"]["left_out_without_consent"] == 1
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
