"""`shelfwise.Shop`, the Python API: the CLI's answers, in the shop's own ids, with the same
permissions and audit trail."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from shelfwise import Shop
from shelfwise.errors import AccessDenied, ShelfwiseError
from tests.api.conftest import FAST
from tests.cli.test_cli import sw
from tests.conftest import curated_rows
from tests.serving.conftest import known_users


def test_importing_shelfwise_stays_cheap():
    code = (
        "import sys, shelfwise; cheap = sorted(m for m in ('shelfwise._shop', 'duckdb', 'typer') "
        "if m in sys.modules); from shelfwise import Shop; print(cheap, Shop.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "shelfwise._shop"]


@pytest.mark.slow
def test_recommend_and_search_answer_what_the_cli_writes(trained, tmp_path):
    data, work = trained
    shop = Shop(work)
    users = [*known_users(data, work, 4), "someone-never-seen"]
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    sw(
        "recommend", "--workdir", str(work), "--users", str(tmp_path / "users.txt"), "--k", "5",
        "--explain", "--out", str(tmp_path / "recs.jsonl"),
    )  # fmt: skip
    cli = [json.loads(x) for x in (tmp_path / "recs.jsonl").read_text().splitlines()]
    assert shop.recommend(users, 5, explain=True) == cli
    assert shop.recommend(users[0], 5, explain=True) == cli[0]  # one id in: one answer out
    assert cli[-1]["source"] == "cold_start" and cli[0]["source"] != "cold_start"
    assert cli[0]["because"] and all(p.startswith("P0") for p in cli[0]["because"])  # shop ids
    # a list by popularity owes nothing to the shopper's history: it was "because of" their items
    assert shop.recommend(users[0], 5, model="popularity", explain=True)["because"] == []

    queries = ["black bike light", "", "navy running shoes"]
    (tmp_path / "q.csv").write_text(
        "query_id,query\n" + "".join(f"q{i},{q}\n" for i, q in enumerate(queries))
    )
    sw(
        "search",
        "--workdir",
        str(work),
        "--queries",
        str(tmp_path / "q.csv"),
        "--out",
        str(tmp_path / "s.jsonl"),
    )
    cli_hits = [json.loads(x)["items"] for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert shop.search(queries) == cli_hits and cli_hits[1] == [] and cli_hits[0]
    assert shop.search(queries[0]) == cli_hits[0]
    # re-ranking given lists: only those products come back
    given = [cli_hits[2][::-1], None, cli_hits[0][:3]]
    reranked = shop.search(queries, candidates=given)
    assert set(reranked[0]) <= set(given[0]) and set(reranked[2]) <= set(given[2])
    # an option given as None is not given (as the CLI passes it); one given is refused
    assert shop.search(queries, candidates=given, attributes=None) == reranked
    assert shop.search(queries, candidates=given, attributes={}) == reranked  # (no filter ticked)
    with pytest.raises(ShelfwiseError, match="attributes: filters, sort"):
        shop.search(queries, candidates=given, attributes={"color": ["red"]})
    # a query given no list is searched as without lists (the serving path: match, fallback)
    assert shop.search([queries[0], queries[2]], candidates=[None, given[0]])[0] == cli_hits[0]
    (alone,) = shop.search_pages([queries[0]], candidates=[None])
    assert alone["items"] == cli_hits[0] and alone["match"] is not None
    with pytest.raises(ShelfwiseError, match="candidates '50': a list of product ids"):
        shop.search(queries[0], candidates="50")  # (it re-ranked the products "5" and "0")

    top = cli[0]["items"][0]
    assert top not in shop.similar(top, 5) and len(shop.similar(top, 5)) == 5
    # the endpoint's whole answer: how many items the model relates, what filled the rest
    got = shop.similar(top, 5, detail=True)
    assert got["items"] == shop.similar(top, 5) and 0 <= got["related"] <= 5
    assert got["fallback"] == ("popular" if got["related"] < 5 else None) and got["model"]
    assert shop.explain(users[0], top) == cli[0]["because"]
    assert shop.explain("someone-never-seen", top) == []
    with pytest.raises(ShelfwiseError, match="product 'no-such-product' is not in the current bundle"):
        shop.explain(users[0], "no-such-product")  # a mistyped id is said, not "nothing explains it"
    events = shop.table("events")  # curated: pseudonymized
    assert len(events) > 0 and not events["user_id"].astype(str).str.startswith("C1").any()


@pytest.mark.slow
def test_permissions_and_audit_are_enforced_in_python(trained, tmp_path, monkeypatch):
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    ann = Shop(work, as_="ann", api_key=ada.add_person("ann", "analyst"))
    stu = Shop(work, as_="stu", api_key=ada.add_person("stu", "steward"))

    with pytest.raises(AccessDenied, match="ann \\(role analyst\\) may not train"):
        ann.train(models=["popularity"], **FAST)
    with pytest.raises(AccessDenied, match="say who you are: Shop\\(W, as_=NAME, api_key=KEY\\)"):
        Shop(work).evaluate()  # nobody: once people exist, say who you are
    with pytest.raises(AccessDenied, match="wrong API key"):
        Shop(work, as_="ann", api_key="swk_wrong").recommend("u1")
    assert ann.recommend("someone-never-seen", 3)["source"] == "cold_start"  # analysts may

    # the work's own audit entries name the Shop's person, whoever the environment names
    monkeypatch.setenv("SHELFWISE_AS", "mallory")
    stu.ingest(data)
    entries = stu.audit()
    denied = {(e["actor"], e["details"]["denied_action"]) for e in entries if e["action"] == "access.denied"}
    assert {("ann", "train"), ("anonymous", "evaluate"), ("unauthenticated", "recommend")} <= denied
    wrong_key = [e for e in entries if e["actor"] == "unauthenticated"][-1]["details"]
    assert wrong_key["claimed"] == "ann" and "wrong API key" in wrong_key["reason"]
    assert [e["actor"] for e in entries if e["action"] == "ingest"][-1] == "stu"
    assert stu.verify_audit().ok
    with pytest.raises(AccessDenied):
        ann.audit()  # the trail is for stewards and admins
    assert {p["name"]: p["role"] for p in ada.people()} == {
        "ada": "admin",
        "ann": "analyst",
        "stu": "steward",
    }


def test_a_column_map_may_be_a_dict(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "events.csv").write_text(
        "customer,product_id,event_type,timestamp\nc1,p1,view,2026-01-01T00:00:00Z\nc2,p1,view,2026-01-02T00:00:00Z\n"
    )
    report = Shop(tmp_path / "w").ingest(data, column_map={"events.user_id": "customer"})
    assert report.tables["events"].rows_curated == 2
    assert report.column_map["events"]["user_id"] == "customer"
    # per table, as shelfwise.toml's [map.events] (it was read as a --map flag and refused)
    again = Shop(tmp_path / "w2").ingest(data, column_map={"events": {"user_id": "customer"}})
    assert again.tables["events"].rows_curated == 2 and again.column_map["events"]["user_id"] == "customer"


def test_a_column_given_twice_joins_its_headers_or_is_refused(tmp_path):
    """`--map products.category=Dept --map 'products.category=Sub Dept'` kept the last header and
    listed Dept as ignored: a column that joins headers (the category path) reads both, in order,
    as shelfwise.toml's list does; another column given twice is refused, not half read."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text("sku,name,Dept,Sub Dept\nP1,Kettle,Home,Kitchen\n")
    flags = [
        "products.product_id=sku",
        "products.title=name",
        "products.category=Dept",
        "products.category=Sub Dept",
    ]
    report = Shop(tmp_path / "w").ingest(data, column_map=flags)
    assert report.tables["products"].ignored_columns == []
    assert curated_rows(tmp_path / "w", "SELECT category FROM curated.products") == [("Home > Kitchen",)]
    with pytest.raises(ShelfwiseError, match="products.title is read from one column"):
        Shop(tmp_path / "w3").ingest(data, column_map=[*flags, "products.title=Dept"])


def test_every_person_reads_the_quarantine_counts_and_only_stewards_its_rows(tmp_path):
    """The summary is counts (no row's fields): an analyst reads it, as the console shows it to
    every reader; the rows (raw fields, maybe personal) stay with stewards and admins. A train
    option of the wrong name or type is a ShelfwiseError before anything runs; a file given as
    the data folder is named so."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nc1,p1,view,2026-01-01T00:00:00Z\nc2,p1,nope,2026-01-02T00:00:00Z\n"
    )
    work = tmp_path / "w"
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    ann = Shop(work, as_="ann", api_key=ada.add_person("ann", "analyst"))
    ada.ingest(data)
    summary = ann.quarantine(limit=0)
    assert summary["rows"] == [] and sum(r["rows"] for r in summary["summary"]) == 1
    with pytest.raises(
        AccessDenied, match="quarantine.read_raw; .* the counts .* are every person.s: .*--limit 0"
    ):
        ann.quarantine()
    assert len(ada.quarantine()["rows"]) == 1
    with pytest.raises(
        ShelfwiseError, match="no option 'sasrec_epoch' \\(did you mean 'sasrec_epochs'\\?\\)"
    ):
        ada.train(models=["popularity"], sasrec_epoch=3)
    with pytest.raises(
        ShelfwiseError, match="no option 'tune_seconds' \\(the CLI's --tune-seconds is tune_budget_s\\)"
    ):
        ada.train(models=["popularity"], tune_seconds=0)  # (it offered max_tune_users)
    with pytest.raises(ShelfwiseError, match="tune_trials='2': expected int, not str"):
        ada.train(models=["popularity"], tune_trials="2")
    with pytest.raises(ShelfwiseError, match="a file, not a dataset folder: give the folder"):
        ada.ingest(data / "events.csv")


def test_rules_and_pending_events_need_an_identity_once_people_exist(tmp_path):
    """Reading the business rules and the spool's backlog goes through the permission check (and
    a denial is audited) as reading the catalog does: no name, or a wrong key, is refused."""
    work = tmp_path / "w"
    assert Shop(work).rules()["file"] is None and Shop(work).pending_events() == 0  # single-user
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    ann = Shop(work, as_="ann", api_key=ada.add_person("ann", "analyst"))
    for read in (Shop.rules, Shop.pending_events):
        with pytest.raises(AccessDenied, match="say who you are: Shop\\(W, as_=NAME, api_key=KEY\\)"):
            read(Shop(work))
        with pytest.raises(AccessDenied, match="wrong API key"):
            read(Shop(work, as_="ann", api_key="swk_wrong"))
    assert ann.rules()["file"] is None and ann.pending_events() == 0  # a reader of the catalog may
    from shelfwise.governance import AuditLog

    entries = AuditLog(work).entries()  # (no warehouse here for `Shop.audit`)
    denied = [(e["actor"], e["details"]["denied_action"]) for e in entries if e["action"] == "access.denied"]
    assert denied == [("anonymous", "catalog.read"), ("unauthenticated", "catalog.read")] * 2


def test_training_on_data_needs_the_ingest_role_and_a_readers_report_does_not_absorb(trained, tmp_path):
    """`train --data` loads the data: a scientist (may train, may not ingest) is refused before
    anything is loaded. The search and experiment reports absorb the served events first for
    the people who may absorb them; a reader's report counts what was absorbed before, and
    absorbs nothing in the reader's name."""
    from shelfwise.governance import AuditLog

    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    sam = Shop(work, as_="sam", api_key=ada.add_person("sam", "scientist"))
    ann = Shop(work, as_="ann", api_key=ada.add_person("ann", "analyst"))
    from tests.conftest import curated_rows

    versions = "SELECT count(*) FROM meta.table_versions"
    before = curated_rows(work, versions)
    with pytest.raises(AccessDenied, match="sam \\(role scientist\\) may not ingest"):
        sam.train(data, models=["popularity"], **FAST)
    assert curated_rows(work, versions) == before  # nothing was loaded
    spool = work / "spool" / "events"
    spool.mkdir(parents=True, exist_ok=True)
    event = {
        "user_id": "u1",
        "product_id": "P000001",
        "event_type": "view",
        "timestamp": "2026-09-01T10:00:00Z",
    }
    (spool / "events-20260901T100000000000Z-1.jsonl").write_text(json.dumps({"event": event}) + "\n")
    ann.search_report()
    # the report says what it does not count yet (it showed zero outcomes and no word)
    assert ann.experiment_report()["pending_events"] == 1
    absorbs = [e["actor"] for e in AuditLog(work).entries() if e["action"] == "events.absorb"]
    assert absorbs == [] and ann.pending_events() == 1
    ada.search_report()
    assert [e["actor"] for e in AuditLog(work).entries() if e["action"] == "events.absorb"] == ["ada"]


def test_whole_number_columns_are_exported_as_whole_numbers(tmp_path):
    """`quantity` and `stock` are whole numbers by contract (stored as DOUBLE): an export wrote
    `3.0` and `5.0`; CSV, JSON lines and Parquet now carry 3 and 5, and an empty one stays empty."""
    import pandas as pd

    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,stock\nP1,Kettle,5\nP2,Mug,\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,quantity\nU1,P1,purchase,2026-01-01T00:00:00Z,3\n"
    )
    shop = Shop(tmp_path / "w")
    shop.ingest(data)
    out = tmp_path / "out"
    shop.export("events", out / "e.csv")
    head, first = out.joinpath("e.csv").read_text().splitlines()[:2]
    assert first.split(",")[head.split(",").index("quantity")] == "3"
    shop.export("products", out / "p.jsonl")
    rows = [json.loads(x) for x in out.joinpath("p.jsonl").read_text().splitlines()]
    assert sorted((r["product_id"], r["stock"]) for r in rows) == [("P1", 5), ("P2", None)]
    shop.export("events", out / "e.parquet")
    assert str(pd.read_parquet(out / "e.parquet")["quantity"].dtype) in ("int64", "Int64")


def test_an_experiment_is_no_way_around_the_registry_or_the_rules_permission(trained, tmp_path, monkeypatch):
    """A scientist may change experiments, not rules, and may not put a bundle live: a variant
    naming a bundle nobody approved (at weight 1, beside a control at 0, it is a promotion) is
    refused, as are rules inside a variant; the production bundle and an approved one whose
    gates passed may serve; the audit entry says what each variant serves."""
    from shelfwise.governance import AuditLog

    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    sam = Shop(work, as_="sam", api_key=ada.add_person("sam", "scientist"))
    eve = Shop(work, as_="eve", api_key=ada.add_person("eve", "engineer"))
    prod = next(v for v in ada.versions() if "production" in v["aliases"])
    run = eve.train(models=["popularity", "itemknn"], **FAST)
    cand = run.bundle.name
    assert not run.registry["production"]

    def doc(variant):
        return {
            "experiments": [
                {
                    "name": "sneak",
                    "surface": "recommendations",
                    "variants": [{"name": "control", "weight": 0}, {"name": "mine", "weight": 1, **variant}],
                }
            ]
        }

    with pytest.raises(
        ShelfwiseError, match=f"bundle '{cand}' .* may not serve shoppers: nobody approved it"
    ):
        sam.set_experiments(doc({"bundle": cand}))
    with pytest.raises(AccessDenied, match="sam \\(role scientist\\) may not rules.change"):
        sam.set_experiments(
            doc({"rules": {"items": [{"action": "pin", "product_id": "P000001", "position": 1}]}})
        )
    assert sam.set_experiments(doc({"bundle": prod["bundle"]})) == ["sneak"]
    ada.approve(run.registry["version"])
    assert all(g["passed"] for g in next(v for v in ada.versions() if v["bundle"] == cand)["gates"])
    assert sam.set_experiments(doc({"bundle": cand})) == ["sneak"]  # approved, its gates passed
    # approved with a gate failed: still no
    from shelfwise.lifecycle import _variant_gates

    real = _variant_gates.Registry

    class Failing:
        def __init__(self, workdir):
            self.workdir = workdir

        def versions(self):
            return [
                {**v, "gates": [{"name": "coverage_floor", "passed": False}]} if v["bundle"] == cand else v
                for v in real(self.workdir).versions()
            ]

    monkeypatch.setattr(_variant_gates, "Registry", Failing)
    with pytest.raises(ShelfwiseError, match="its gates failed \\(coverage_floor\\)"):
        sam.set_experiments(doc({"bundle": cand}))
    entry = [e for e in AuditLog(work).entries() if e["action"] == "experiments.change"][-1]
    mine = entry["details"]["variants"]["sneak"][1]
    assert entry["actor"] == "sam" and mine == {"name": "mine", "weight": 1.0, "bundle": cand}


def test_an_experiment_may_try_a_weaker_model_beside_production_never_instead_of_it(trained, tmp_path):
    """A variant naming only a model (`"model": "popularity"`) was never checked: at weight 1
    beside a control at 0 it served popularity to every shopper while the registry said
    production was another model. A model of the bundle whose own numbers fail the gates may
    take at most the control's share; the bundle's default, or a model that passes, may serve."""
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    sam = Shop(work, as_="sam", api_key=ada.add_person("sam", "scientist"))
    prod = next(v for v in ada.versions() if "production" in v["aliases"])
    reg = ada._registry()
    m = reg.manifest(str(prod["version"]))
    # (production's default: the model the gates measured; since Session 52 (the grouped models, the
    # gates on the choosing metric) the fusion wins this shop, itemknn before)
    default = m["default_model"]
    assert default != "popularity"
    pop, knn = m["metrics"]["popularity"]["ndcg@10"], m["metrics"][default]["ndcg@10"]
    assert m["ci95"]["popularity"]["ndcg@10"][1] < knn, (pop, knn)  # (the data make it so)

    def doc(control: float, mine: float, model: str = "popularity") -> dict:
        variants = [{"name": "control", "weight": control}, {"name": "mine", "weight": mine, "model": model}]
        return {"experiments": [{"name": "sneak", "surface": "recommendations", "variants": variants}]}

    with pytest.raises(
        ShelfwiseError,
        match=r"model 'popularity' did not pass the registry's gates \((group_)?ndcg@10 .* worse than",
    ) as got:
        sam.set_experiments(doc(0, 1))
    assert "(1 against 0)" in str(got.value)
    with pytest.raises(ShelfwiseError, match="did not pass"):
        sam.set_experiments(doc(0.3, 0.7))
    assert sam.set_experiments(doc(0.5, 0.5)) == ["sneak"]  # an A/B test beside production
    # two such variants together take more than the control (the review's: each alone did not)
    two = doc(1, 1)
    two["experiments"][0]["variants"].append({"name": "mine2", "weight": 1, "model": "popularity"})
    with pytest.raises(ShelfwiseError, match=r"2 such variants, 2 together\).*\(2 against 1\)"):
        sam.set_experiments(two)
    assert sam.set_experiments(doc(0, 1, model=default)) == ["sneak"]  # production's own model


def test_a_version_whose_bundle_is_gone_is_never_approved_nor_promoted(trained, tmp_path):
    """Retention removed a version's bundle folder; `models promote` still moved bundles/CURRENT
    to it (in a copied workdir, reading the original's folder of that name) and every server
    and `recommend` then failed with "not a bundle". Approve and promote refuse it, audited,
    production stays, and the listing says the bundle is gone."""
    from shelfwise.governance import AuditLog

    data, src = trained
    first = tmp_path / "first"
    shutil.copytree(src, first)
    keys = {"ada": Shop(first).add_person("ada", "admin")}
    ada = Shop(first, as_="ada", api_key=keys["ada"])
    keys["eve"] = ada.add_person("eve", "engineer")
    run = Shop(first, as_="eve", api_key=keys["eve"]).train(models=["popularity", "itemknn"], **FAST)
    version, name = run.registry["version"], run.bundle.name
    work = tmp_path / "copy"  # (a copy of a workdir: the registry names the first one's paths)
    shutil.copytree(first, work)
    shutil.rmtree(work / "bundles" / name)
    ada, eve = Shop(work, as_="ada", api_key=keys["ada"]), Shop(work, as_="eve", api_key=keys["eve"])
    current = (work / "bundles" / "CURRENT").read_text()
    with pytest.raises(ShelfwiseError, match=f"version {version}'s bundle {name} is gone"):
        ada.approve(version)
    with pytest.raises(ShelfwiseError, match=f"version {version}'s bundle {name} is gone"):
        eve.promote(version)
    assert (work / "bundles" / "CURRENT").read_text() == current
    refused = [e for e in AuditLog(work).entries() if e.get("outcome") == "refused"]
    assert [e["action"] for e in refused[-2:]] == ["model.approve", "model.promote"]
    listed = {v["version"]: v for v in ada.versions()}
    assert listed[str(version)]["bundle_gone"] and not any(
        v["bundle_gone"] for k, v in listed.items() if k != str(version)
    )
    prod = next(v for v in listed.values() if "production" in v["aliases"])
    with pytest.raises(ShelfwiseError, match="already in production"):
        eve.promote(prod["version"])


def test_the_items_that_explain_a_list_need_the_history_permission(trained, tmp_path):
    """The items behind a list are steps of the customer's history: a scientist or an engineer,
    who may not read a customer's history by their id, read them through `recommend(explain=True)`
    and `explain` (the console's shopper page showed them as "because of"). They are refused,
    audited; the list itself is theirs to read, and an analyst may read both."""
    from shelfwise.governance import AuditLog

    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    sam = Shop(work, as_="sam", api_key=ada.add_person("sam", "scientist"))
    ann = Shop(work, as_="ann", api_key=ada.add_person("ann", "analyst"))
    user = "U00001"
    top = sam.recommend(user, k=3)["items"]
    with pytest.raises(AccessDenied, match="insights.profile"):
        sam.recommend(user, k=3, explain=True)
    with pytest.raises(AccessDenied, match="insights.profile"):
        sam.explain(user, top[0])
    denied = [e for e in AuditLog(work).entries() if e["action"] == "access.denied"]
    assert [e["actor"] for e in denied[-2:]] == ["sam", "sam"]
    assert "because" in ann.recommend(user, k=3, explain=True)
    assert isinstance(ann.explain(user, top[0]), list)


def test_gates_without_a_candidate_are_productions(trained, tmp_path):
    """`models gates` on a shop whose one bundle went live said "no candidate version"."""
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    prod = next(v for v in Shop(work).versions() if "production" in v["aliases"])
    got = Shop(work).gates()
    assert got["version"] == str(prod["version"]) and {g["name"] for g in got["gates"]} >= {"coverage_floor"}


def test_every_train_flag_is_a_train_option_or_named_by_the_flag_map():
    """Each `shelfwise train` flag is a TrainSettings field of the same name, a parameter of
    `Shop.train`, or in the map that names its field in `Shop.train`'s error (a notebook user
    writing the flag's name is told the field)."""
    import dataclasses
    import inspect

    import typer.main

    from shelfwise._shop import _TRAIN_FLAGS
    from shelfwise.cli import app
    from shelfwise.lifecycle import TrainSettings

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    params = set(inspect.signature(Shop.train).parameters)
    cli_only = {
        "workdir",
        "as_json",
        "map_flags",
        "spark_remote",
        "spark_master",
        "warehouse",
        "as_",
        "api_key",
    }
    unnamed = [p.name for p in command.params if p.name not in fields | params | cli_only | set(_TRAIN_FLAGS)]
    assert unnamed == [], unnamed
    assert set(_TRAIN_FLAGS) <= {p.name for p in command.params}  # (no stale entry)
    assert {v.split("=")[0] for v in _TRAIN_FLAGS.values()} <= fields
