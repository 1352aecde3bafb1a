"""A/B experiments a merchandiser can trust (walk 52): a "rules off" arm that serves without the
shop's merchandising (and a warning for one that changes nothing), a running experiment never
ended without a word, and the lists an arm served by the popular fallback said in the report."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.serving import _experiments
from shelfwise.serving._experiments import EXPERIMENTS_FILE, parse_experiments, save_experiments
from shelfwise.serving._exposures import exposure_record, log_exposures
from shelfwise.serving._rules import RULES_FILE, Rules
from shelfwise.serving._service import Answer, Service

CURRENT = "20260101T000000000000Z"
SHOP_RULES = {
    "items": [
        {"action": "boost", "brand": "Aurora", "factor": 3.0},
        {"action": "hide", "brand": "Nordlys"},
    ]
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A bundle (its manifest only: popularity and itemknn) and the shop's rules: boost Aurora,
    hide Nordlys."""
    b = tmp_path / "bundles" / CURRENT
    b.mkdir(parents=True)
    doc = {
        "schema_version": 3,
        "version": CURRENT,
        "default_model": "popularity",
        "models": ["popularity", "itemknn"],
    }
    (b / "manifest.json").write_text(json.dumps(doc))
    (tmp_path / "bundles" / "CURRENT").write_text(CURRENT)
    (tmp_path / RULES_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / RULES_FILE).write_text(json.dumps(SHOP_RULES))
    return tmp_path


def _exp(name: str, surface: str, *variants: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "surface": surface, "variants": [{"name": "control"}, *variants]}


def _audit(workdir: Path) -> list[dict[str, Any]]:
    from shelfwise.governance import AuditLog

    return [e for e in AuditLog(workdir).entries() if e.get("action") == "experiments.change"]


def _variant_rules(shop: Rules, variant: Any) -> Rules:
    """What the server's `_rules_for` gives a variant's users under the shop's rules."""
    svc = SimpleNamespace(apply_rules=True, rules=shop, _variant_rules={})
    svc._merged_rules = lambda v: Service._merged_rules(svc, v)  # type: ignore[arg-type]
    return Service._rules_for(svc, variant)  # type: ignore[arg-type]


def test_a_rules_off_variant_serves_without_the_shops_merchandising() -> None:
    """`{"rules": {"items": []}}` served the shop's boosted list as its control did; `"shop_rules":
    false` serves the variant without the shop's boosts (its hides stay), and is checked."""
    shop = Rules.from_dict(SHOP_RULES)
    doc = {"experiments": [_exp("rules-on-vs-off", "search", {"name": "off", "shop_rules": False},
                                {"name": "empty", "rules": {"items": []}})]}  # fmt: skip
    control, off, empty = parse_experiments(doc)[0].variants
    assert not off.shop_rules and control.shop_rules
    assert [r.action for r in _variant_rules(shop, off).items] == ["hide"]  # no boost, Nordlys hidden
    assert _variant_rules(shop, control).items == shop.items
    assert _variant_rules(shop, empty).items == shop.items  # (what the walk's arm got: nothing changed)
    bad = {"experiments": [_exp("x", "search", {"name": "off", "shop_rules": "no"})]}
    with pytest.raises(ShelfwiseError, match="variant 'off': shop_rules must be true or false, not 'no'"):
        parse_experiments(bad)


def test_experiments_set_warns_of_a_rules_variant_that_changes_nothing(workdir: Path) -> None:
    said: list[str] = []
    doc = {"experiments": [_exp("rules-on-vs-off", "search", {"name": "rules-off", "rules": {"items": []}})]}
    save_experiments(workdir, doc, said=said)
    assert len(said) == 1 and "variant 'rules-off': its rules change nothing" in said[0], said
    assert '"shop_rules": false' in said[0]
    assert json.dumps(said) in json.dumps(_audit(workdir)[-1])  # (the change's audit entry records it)
    # a variant that does change something is not warned of
    said.clear()
    ok = {"experiments": [_exp("rules-on-vs-off", "search", {"name": "off", "shop_rules": False},
                               {"name": "diverse", "rules": {"max_per_category": 2}})]}  # fmt: skip
    save_experiments(workdir, ok, said=said)
    assert said == []


def _log(workdir: Path, experiment: str, variant: str, users: list[str], **extra: Any) -> None:
    recs = []
    for i, u in enumerate(users):
        ans = Answer(["p1"], "itemknn", "itemknn", CURRENT, SimpleNamespace(name=variant), experiment, {})
        recs.append({**exposure_record("recommendations", f"rec-{experiment}-{i}", ans, u, {}), **extra})
    log_exposures(workdir, recs)


def test_a_file_that_leaves_out_a_running_experiment_is_refused_unless_end_missing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Adding a search test in a file without the running recommendations test ended it without
    a word; now refused (naming it and its users) unless asked for, and said when done."""
    from shelfwise.cli import main

    rec = {
        "experiments": [_exp("knn-vs-default", "recommendations", {"name": "itemknn", "model": "itemknn"})]
    }
    save_experiments(workdir, rec)
    _log(workdir, "knn-vs-default", "itemknn", ["u1", "u2", "u3", "u2"])
    search_only = {"experiments": [_exp("aurora-boost-ab", "search", {"name": "boost", "rules": SHOP_RULES})]}
    with pytest.raises(
        ShelfwiseError, match=r"knn-vs-default \(recommendations, 3 user\(s\)\).*--end-missing"
    ):
        save_experiments(workdir, search_only)
    assert json.loads((workdir / EXPERIMENTS_FILE).read_text()) == rec  # still running
    f = workdir / "exp.json"
    f.write_text(json.dumps(search_only))
    assert main(["experiments", "set", "--workdir", str(workdir), "--file", str(f)]) == 2
    assert "knn-vs-default (recommendations, 3 user(s))" in capsys.readouterr().err
    assert main(["experiments", "set", "--workdir", str(workdir), "--file", str(f), "--end-missing"]) == 0
    out = capsys.readouterr().out
    assert "1 experiment(s) installed: aurora-boost-ab" in out
    assert "ended (left out of the file): knn-vs-default (recommendations, 3 user(s))" in out
    last = json.dumps(_audit(workdir)[-1])
    assert '"ended"' in last and '"knn-vs-default"' in last and '"users": 3' in last
    # an experiment that ended by its `end` date is history: leaving it out ends nothing
    both = {"experiments": [*search_only["experiments"], {**rec["experiments"][0], "end": "2020-01-01"}]}
    save_experiments(workdir, both)
    assert _experiments.running_left_out(workdir, parse_experiments(search_only)) == []


def test_the_report_says_how_many_of_an_arms_lists_were_the_fallback() -> None:
    """A shopper without personalization consent (or new) bucketed to itemknn got the popular
    list logged as itemknn's; the exposure records what served it, the report counts it."""
    variant = SimpleNamespace(name="itemknn")
    cold = Answer(
        ["p1"], "cold_start", "itemknn", CURRENT, variant, "e", {"personalized": False, "filled": 1}
    )
    mine = Answer(["p2"], "itemknn", "itemknn", CURRENT, variant, "e", {"personalized": True, "filled": 0})
    popular = Answer(["p3"], "popularity", "popularity", CURRENT, None, "e", {"personalized": False})
    recs = [
        exposure_record("recommendations", f"r{i}", a, f"u{i}", {}) for i, a in enumerate([cold, mine, mine])
    ]
    assert [r["served_by"] for r in recs] == ["fallback", "itemknn", "itemknn"]
    assert exposure_record("recommendations", "rp", popular, "u9", {})["served_by"] == "popularity"
    # an arm serving the popular list on purpose: none of its places is the fill (its model's list)
    popular_arm = Answer(["p3", "p4"], "popularity", "popularity", CURRENT, variant, "e", {"filled": 2})
    assert exposure_record("recommendations", "rq", popular_arm, "u8", {})["filled"] == 0
    old = {k: v for k, v in recs[2].items() if k != "served_by"} | {"id": "r9"}  # a line logged before
    exposures = [e for r in [*recs, old] if (e := _experiments.experiment_exposure(r)) is not None]
    m = _experiments.experiment_summary(exposures, {})["experiments"]["e"]["variants"]["itemknn"]
    assert m["served_by"] == {"fallback": 1, "itemknn": 2, "unrecorded": 1}
    assert m["fallback_lists"] == 1 and m["fallback_share"] == pytest.approx(1 / 3)


# an arm serving item-kNN to everyone (`fill_shop`: item-kNN alone, whose `partial` shopper gets one
# product of the model's and four of the popular fill, `loner` five of the fill)
KNN_ARM = {
    "name": "knn-arm",
    "start": "2020-01-01",
    "variants": [{"name": "control", "weight": 0}, {"name": "itemknn", "weight": 1, "model": "itemknn"}],
}


def test_the_report_counts_the_slots_of_an_arms_lists_the_popular_fill_supplied(
    fill_shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A list the model could only partly fill (1 of its 5 products, the popular list the other
    4) was counted as wholly the model's: an arm whose model covers few shoppers looked like it
    served its model. Each exposure records how many items the fill supplied (`filled`), and the
    report the share of the arm's slots that were the fill, beside `fallback_share`, in the JSON
    report, the text readout and (`tests/web`) the console."""
    from shelfwise import Shop
    from shelfwise.cli import main
    from shelfwise.storage._segments import iter_records

    with Shop(fill_shop) as shop:
        shop.set_experiments({"experiments": [KNN_ARM]})
        got = shop.recommend(["partial", "loner"], 5, served=True)
        assert [(r["personalized"], r["filled"]) for r in got] == [(True, 4), (False, 5)], got
    logged = [r for r in iter_records(fill_shop / "spool" / "exposures") if r.get("experiment")]
    assert sorted((r["served_by"], r["filled"]) for r in logged) == [("fallback", 5), ("itemknn", 4)]
    # a line logged before `filled` was recorded still reads: counted apart, not as no fill
    mine = next(r for r in logged if r["served_by"] == "itemknn")
    old = {k: v for k, v in mine.items() if k != "filled"} | {"id": "rec-old"}
    log_exposures(fill_shop, [old])
    m = Shop(fill_shop).experiment_report()["experiments"]["knn-arm"]["variants"]["itemknn"]
    assert m["served_by"] == {"fallback": 1, "itemknn": 2} and m["fallback_share"] == pytest.approx(1 / 3)
    assert (m["served_slots"], m["filled_slots"], m["filled_unrecorded_lists"]) == (10, 9, 1), m
    assert m["filled_slot_share"] == pytest.approx(0.9)
    assert main(["experiments", "report", "--workdir", str(fill_shop)]) == 0
    out = capsys.readouterr().out
    assert "9 of their 10 slots (90.0%) the popular fill" in out, out
    assert "(1 list(s) logged before the fill was recorded left out of it)" in out, out


SEARCH_ONLY = {
    "experiments": [{"name": "aurora", "surface": "search", "variants": [{"name": "control"}, {"name": "b"}]}]
}


def test_experiments_set_reads_only_the_segments_written_since_the_running_experiment_started(
    fill_shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`experiments set` read the whole exposure log (every segment of a shop's months of served
    lists) to tell the users of the running experiment a file would end; it opens only the
    segments written since that experiment started (less a day of clock skew), same answer."""
    from shelfwise import Shop
    from shelfwise.storage import _segments

    folder = fill_shop / "spool" / "exposures"
    long_ago = datetime(2019, 6, 1, tzinfo=UTC).timestamp()  # (the experiment starts 2020-01-01)
    for n, exp in enumerate(["spring-sale", "spring-sale", None]):  # three segments of 2019
        ans = Answer(
            ["p1"], "itemknn", "itemknn", CURRENT, SimpleNamespace(name="a") if exp else None, exp, {}
        )
        log_exposures(
            fill_shop, [{**exposure_record("recommendations", f"old-{n}", ans, f"u{n}", {}), "at": long_ago}]
        )
    old = {_segments.segment_stem(p) for p in folder.glob("*.jsonl")}
    for p in folder.glob("*.jsonl"):
        os.utime(p, (long_ago, long_ago))
    with Shop(fill_shop) as shop:  # (a segment of its own, closed at the end of the block)
        shop.set_experiments({"experiments": [KNN_ARM]})
        shop.recommend(["partial", "loner"], 5, served=True)
    _log(fill_shop, "knn-arm", "itemknn", ["u7", "u8"])  # (a server's segment: another one)
    since = {_segments.segment_stem(p) for p in _segments.all_segments(folder)} - old
    assert len(old) == 3 and len(since) == 2
    # the answer the whole log gives
    every = [r for r in _segments.iter_records(folder) if r.get("experiment") == "knn-arm"]
    first = datetime.fromtimestamp(min(r["at"] for r in every), UTC).isoformat(timespec="seconds")
    want = {"name": "knn-arm", "surface": "recommendations", "users": 4, "since": first}
    assert len({r["user"] for r in every}) == 4
    opened: list[str] = []
    read = _segments.segment_lines

    def counted(path: Any) -> Any:
        opened.append(_segments.segment_stem(Path(path)))
        return read(path)

    monkeypatch.setattr(_segments, "segment_lines", counted)
    with pytest.raises(ShelfwiseError, match=r"knn-arm \(recommendations, 4 user\(s\)\)"):
        Shop(fill_shop).set_experiments(SEARCH_ONLY)
    assert sorted(opened) == sorted(since), opened  # the 2019 segments not opened
    got = Shop(fill_shop).set_experiments(SEARCH_ONLY, end_missing=True, detail=True)
    assert got["ended"] == [want]


def test_experiments_set_counts_the_lists_this_process_served_and_holds_unwritten(
    fill_shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Shop that served lists of the running experiment and then set a file leaving it out
    was told the experiment had no users: its own lists were still held for the next write."""
    from shelfwise import Shop
    from shelfwise.serving import _exposures

    monkeypatch.setattr(_exposures, "EXPOSURE_AGE_S", 3600.0)  # (held until something writes them)
    with Shop(fill_shop) as shop:
        shop.set_experiments({"experiments": [KNN_ARM]})
        shop.recommend(["partial", "loner"], 5, served=True)
        with pytest.raises(ShelfwiseError, match=r"knn-arm \(recommendations, 2 user\(s\)\)"):
            shop.set_experiments(SEARCH_ONLY)
