"""Business rules on the paths a QA pass found them wrong: a list the rules thinned and the
popular list filled, a pinned anchor of similar items, a variant's merchandising, and values
of a rules file that crashed or passed unchecked. Hand-made shops: milliseconds."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.features import Interactions
from shelfwise.serving import Rules, save_rules
from shelfwise.serving._experiments import Variant
from shelfwise.serving._ranking import rank_user
from shelfwise.serving._service import LRU, ServeSettings, Service
from tests.cli.test_cli import sw

ITEMS = ["p0", "h1", "h2", "h3", "b1", "b2", "c1", "c2", "c3", "c4"]
INFO = {
    "p0": ("Garden > Tools", "Spade", True),
    "h1": ("Home > Kitchen", "Acme", True),
    "h2": ("Home > Kitchen", "Acme", True),
    "h3": ("Home > Bath", "Acme", True),
    "b1": ("Beauty > Hair", "Botanica", True),
    "b2": ("Beauty > Skin", "Botanica", True),
    "c1": ("Beauty > Hair", "Lumi", True),
    "c2": ("Beauty > Skin", "Lumi", True),
    "c3": ("Garden > Seeds", "Spade", True),
    "c4": ("Garden > Seeds", "Spade", True),
}


class View:
    """One known user (index 0, who saw h1); the model's list is precomputed: all Home, which
    the rules below hide. The popular list (`cold`) starts with Botanica."""

    def __init__(self) -> None:
        self.item_ids = list(ITEMS)
        self.item_index = {p: i for i, p in enumerate(ITEMS)}
        self.interactions = Interactions(
            np.array([0], np.int32),
            np.array([1], np.int32),
            np.ones(1, np.float32),
            np.arange(1, dtype=np.int64),
            np.array(["u0"], object),
            np.array(ITEMS, object),
        )
        self.toplist = np.array([[2, 3, 0, -1]])  # h2, h3, p0
        self.toplist_model = "m"
        self.info = INFO
        self.purchases: dict[int, dict[str, float]] = {}
        self.cold = ["b1", "b2", "c1", "h2", "c2", "c3", "p0", "c4"]

    def cold_candidates(self, n: int, context: str | None) -> list[str]:
        return self.cold[:n]


def rank(rules: Rules, user: int | None = 0, k: int = 6, context: str | None = None) -> list[str]:
    got = rank_user(View(), "m", None, user, k, 4, rules, context=context)
    assert got is not None
    return got.items


def test_a_pinned_product_is_once_on_a_list_the_popular_list_filled() -> None:
    rules = Rules.from_dict(
        {
            "items": [
                {"action": "pin", "product_id": "p0", "position": 2},
                {"action": "hide", "category": "Home"},
            ]
        }
    )
    for user in (0, None):  # the precomputed list and the cold-start list alike
        items = rank(rules, user)
        assert len(items) == len(set(items)) == 6, items
        assert items[1] == "p0"  # where the pin asks, not first of a second list
        assert not any(p.startswith("h") for p in items)
    # two pins of one product (one for a query, one everywhere) place it once
    twice = Rules.from_dict(
        {
            "items": [
                {"action": "pin", "product_id": "c3", "position": 3, "query": "seeds"},
                {"action": "pin", "product_id": "c3", "position": 1},
            ]
        }
    )
    got = twice.apply(["c1", "c2", "c3", "c4"], 4, INFO, surface="search", query="seeds")
    assert got == ["c3", "c1", "c2", "c4"]


def test_a_hide_limited_to_a_context_keeps_its_items_out_of_the_popular_fill() -> None:
    rules = Rules.from_dict(
        {
            "items": [
                {"action": "hide", "category": "Home"},
                {"action": "hide", "brand": "Botanica", "context": "Beauty"},
            ]
        }
    )
    items = rank(rules, 0, context="Beauty > Hair")
    assert items and not {"b1", "b2"} & set(items), items
    assert len(items) == len(set(items))
    # a never-seen shopper in the same context gets none either; without it, the hide is off
    assert not {"b1", "b2"} & set(rank(rules, None, context="Beauty"))
    assert "b1" in rank(rules, 0)


def similar_service(rules: dict[str, Any], related: int | None = None) -> Service:
    """A `Service` over a one-model snapshot whose neighbours of every product are the others
    in catalog order (its `similar` path only); `related`: only the first that many have a
    score above zero (the model's evidence)."""

    class Neighbours:
        def similar_items(self, anchors: np.ndarray, n: int) -> Any:
            ids = [j for j in range(len(ITEMS)) if j != int(anchors[0])][:n]
            scores = np.ones((1, len(ids)))
            scores[0, related:] = 0.0 if related is not None else 1.0
            return SimpleNamespace(ids=np.array([ids]), scores=scores)

    svc = Service.__new__(Service)
    svc.settings = ServeSettings()
    svc.cache = LRU(100)
    svc.apply_rules = True
    svc.rules = Rules.from_dict(rules)
    svc._variant_rules = {}
    svc.snapshot = SimpleNamespace(  # type: ignore[assignment]
        item_index={p: i for i, p in enumerate(ITEMS)},
        item_ids=list(ITEMS),
        info=INFO,
        version="v1",
        similar_model=Neighbours(),
        similar_model_name="itemknn",
        similar_fill=None,
        cold_candidates=lambda n, context: ["b1", "b2", "c1", "h2", "c2", "c3", "p0", "c4"][:n],
    )
    return svc


def test_similar_items_without_evidence_are_the_popular_list_and_say_so() -> None:
    """A product no session shares with another got 10 products with zero scores, labelled
    item-kNN: the model's evidence comes first, then the popular list, and the answer says how
    many are related and that the rest is the popular fallback."""
    svc = similar_service({}, related=2)
    ans = svc.similar("p0", 5)
    assert ans is not None and ans.items == ["h1", "h2", "b1", "b2", "c1"]
    assert ans.extra == {"related": 2, "fallback": "popular"}
    none = similar_service({}, related=0).similar("c4", 3)
    assert none is not None and none.items == ["b1", "b2", "c1"] and none.extra["related"] == 0
    full = similar_service({}).similar("p0", 3)
    assert full is not None and full.extra == {"related": 3, "fallback": None}
    # a popularity-only bundle's "neighbours" are its best sellers: nothing related
    best = similar_service({})
    best.snapshot.similar_model_name = "popularity"  # type: ignore[misc]
    got = best.similar("p0", 3)
    assert got is not None and got.extra == {"related": 0, "fallback": "popular"}


def test_a_pinned_product_is_never_similar_to_itself() -> None:
    svc = similar_service({"items": [{"action": "pin", "product_id": "p0", "position": 1}]})
    own = svc.similar("p0", 5)
    assert own is not None and "p0" not in own.items and len(own.items) == 5
    other = svc.similar("c1", 5)  # the pin still holds on the other products' lists
    assert other is not None and other.items[0] == "p0"
    rules = Rules.from_dict({"items": [{"action": "pin", "product_id": "c2", "position": 1}]})
    assert rules.apply(["c1", "c2", "c3"], 3, INFO, surface="similar", exclude=["c2"]) == ["c1", "c3"]


def test_a_variants_items_apply_after_the_shops() -> None:
    svc = similar_service({"items": [{"action": "pin", "product_id": "p0", "position": 1}]})
    hide = Variant("no-botanica", 1, rules={"items": [{"action": "hide", "brand": "Botanica"}]})
    rules = svc._rules_for(hide)
    ranked = ["b1", "c1", "b2", "c2"]
    assert rules.apply(ranked, 4, INFO, surface="recommendations") == ["p0", "c1", "c2"]
    # its settings override the shop's; the shop's pin stays; the cache stamp tells them apart
    diverse = svc._rules_for(Variant("diverse", 1, rules={"max_per_category": 1}))
    assert diverse.max_per_category == 1 and [r.action for r in diverse.items] == ["pin"]
    assert len({svc.rules.sha256, rules.sha256, diverse.sha256}) == 3
    assert svc._rules_for(hide) is rules  # merged once, not per request


@pytest.mark.parametrize(
    ("doc", "field", "value"),
    [
        ({"items": [{"action": "boost", "brand": "Kairo", "factor": "abc"}]}, "items[0]: factor", "'abc'"),
        ({"items": [{"action": "boost", "brand": "Kairo", "factor": True}]}, "items[0]: factor", "True"),
        ({"items": [{"action": "pin", "product_id": "A", "position": "1st"}]}, "items[0]: position", "'1st'"),
        ({"items": [{"action": "pin", "product_id": "A", "position": 1.5}]}, "items[0]: position", "1.5"),
        (
            {"items": [{"action": "hide", "brand": "x", "surfaces": "search"}]},
            "items[0]: surfaces",
            "'search'",
        ),
        ({"items": {"action": "hide"}}, "items", "{'action': 'hide'}"),
        ({"items": [{"action": "hide", "brand": ["Kairo"]}]}, "items[0]: brand", "['Kairo']"),
        ({"items": [{"action": "hide", "brand": "x", "query": 5}]}, "items[0]: query", "5"),
        ({"max_per_category": "three"}, "max_per_category", "'three'"),
        ({"max_per_category": -1}, "max_per_category", "-1"),
        ({"category_level": "x"}, "category_level", "'x'"),
        ({"category_level": 0}, "category_level", "0"),
        ({"repurchase_days": [1, 2]}, "repurchase_days", "[1, 2]"),
        ({"repurchase_days": {"Grocery": "seven"}}, "repurchase_days['Grocery']", "'seven'"),
        ({"repurchase_days": {"default": -3}}, "repurchase_days['default']", "-3"),
        ({"filter_out_of_stock": "no"}, "filter_out_of_stock", "'no'"),
        ({"version": "x"}, "version", "'x'"),
    ],
)
def test_every_bad_rules_value_is_a_clear_error_naming_it(
    doc: dict[str, Any], field: str, value: str
) -> None:
    with pytest.raises(ShelfwiseError) as err:
        Rules.from_dict(doc)
    message = str(err.value)
    assert f"rules: {field} must" in message and message.endswith(f"not {value}"), message


def test_good_rules_values_still_load() -> None:
    rules = Rules.from_dict(
        {
            "max_per_category": 2,
            "category_level": 1.0,
            "repurchase_days": {"default": None, "Grocery": 7},
            "items": [{"action": "boost", "brand": "Acme", "factor": 3, "position": 2.0}],
        }
    )
    assert (rules.max_per_category, rules.category_level) == (2, 1)
    assert rules.repurchase_days == {"default": None, "grocery": 7.0}
    assert rules.items[0].factor == 3.0 and rules.items[0].position == 2
    assert Rules.from_dict({"max_per_category": 0}).max_per_category is None  # 0 stays "off"


def test_rules_set_refuses_a_bad_value_with_exit_2_and_keeps_the_rules(tmp_path: Path) -> None:
    save_rules(tmp_path, {"max_per_category": 3})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"items": [{"action": "boost", "brand": "Kairo", "factor": "abc"}]}))
    proc = sw("rules", "set", "--workdir", str(tmp_path), "--file", str(bad), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "factor" in proc.stderr and "'abc'" in proc.stderr and "Traceback" not in proc.stderr
    assert Rules.load(tmp_path).max_per_category == 3


def test_a_rules_file_that_is_not_an_object_is_refused_and_the_rules_kept(tmp_path: Path) -> None:
    """`[]` installed an empty rule set (every rule gone, exit 0); `null`, `5`, `"abc"` crashed
    with a traceback (the console answered 500)."""
    save_rules(tmp_path, {"items": [{"action": "hide", "brand": "Acme"}]})
    for doc, kind in (([], "a list"), ([["max_per_category", 1]], "a list"), (None, "null"), (5, "a number"), ("abc", "a string")):  # fmt: skip
        with pytest.raises(ShelfwiseError, match=f"must be a JSON object.*not {kind}"):
            save_rules(tmp_path, doc)  # type: ignore[arg-type]
    bad = tmp_path / "bad.json"
    bad.write_text("null")
    proc = sw("rules", "set", "--workdir", str(tmp_path), "--file", str(bad), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    kept = Rules.load(tmp_path)
    assert kept.version == 1 and len(kept.items) == 1


def _save_many(workdir: str, who: str, n: int) -> None:
    from shelfwise.serving._synonyms import save_synonyms

    for i in range(n):
        save_rules(workdir, {"description": f"{who}-{i}"}, actor=who)
        save_synonyms(workdir, f"sofa, couch, {who}{i}\n", actor=who)


def test_rules_changed_at_once_by_two_processes_each_get_a_version(tmp_path: Path) -> None:
    """The console and the CLI saving together: each read the current version, one number was
    given twice (a change lost), a shared temporary file went missing or two writers' bytes
    mixed in rules.json. One change at a time, each through a temporary file of its own."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_save_many, args=(str(tmp_path), who, 15)) for who in ("cli", "console")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert Rules.load(tmp_path).version == 30
    audit = [json.loads(x) for x in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()]
    versions = [
        e["details"]["version"] for e in audit if e["action"] == "rules.change" and "what" not in e["details"]
    ]
    assert sorted(versions) == list(range(1, 31))
    history = sorted((tmp_path / "config" / "rules-history").glob("rules-v*.json"))
    assert len(history) == 29 and all(json.loads(h.read_text()) for h in history)
    assert not list((tmp_path / "config").glob("*.tmp"))
    # the synonyms too (the same role and console change them)
    synonyms = [
        e["details"]["version"]
        for e in audit
        if e["action"] == "rules.change" and e["details"].get("what") == "synonyms"
    ]
    assert sorted(synonyms) == list(range(1, 31))


def test_rules_that_can_never_hold_are_refused_and_doubtful_ones_said(tmp_path: Path) -> None:
    import warnings

    from shelfwise.serving._rules import ItemRule, RulesWarning

    never = [
        ({"action": "hide", "brand": "Acme", "start": "2026-12-01", "end": "2026-11-01"}, "not before end"),
        ({"action": "hide", "brand": "Acme", "surfaces": []}, "names no surface"),
        ({"action": "pin", "product_id": "P1", "query": "   "}, "blank query"),
    ]
    for rule, said in never:
        with pytest.raises(ShelfwiseError, match=said):
            save_rules(tmp_path, {"items": [rule]})
    assert Rules.load(tmp_path).version == 0  # nothing installed
    with pytest.warns(RulesWarning, match="hides it on 'kettle': the hide wins"):
        save_rules(
            tmp_path,
            {
                "items": [
                    {"action": "pin", "product_id": "P1", "query": "kettle"},
                    {"action": "hide", "product_id": "P1"},
                ]
            },
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pin alone, no bundle to check it against: no word
        save_rules(tmp_path, {"items": [{"action": "pin", "product_id": "P1", "query": "kettle"}]})
    # with a bundle, a pin of a product its catalog does not hold is said
    folder = tmp_path / "bundles" / "b1"
    folder.mkdir(parents=True)
    Interactions.from_arrays(["u1"], ["P1"], np.arange(1), item_ids=np.array(["P1", "P2"], object)).save(
        folder / "interactions.npz"
    )
    (tmp_path / "bundles" / "CURRENT").write_text("b1")
    with pytest.warns(RulesWarning, match="pins P9, which the current bundle's catalog does not hold"):
        save_rules(tmp_path, {"items": [{"action": "pin", "product_id": "P9"}]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_rules(tmp_path, {"items": [{"action": "pin", "product_id": "P2"}]})
    # a query rule holds on the query as typed and as the engine corrected it
    pin = ItemRule(action="pin", product_id="P1", query="kettle")
    now = datetime.now(UTC)
    assert pin.applies("search", ("kettel", "kettle"), None, now)
    assert pin.applies("search", "Kettle ", None, now) and not pin.applies("search", "kettel", None, now)


def test_files_a_server_read_before_values_were_checked_still_load(tmp_path: Path) -> None:
    """Numbers written as texts (`"factor": "2"`, `"weight": "50"`) were read before values were
    checked: they still are, so a server that ran yesterday starts today. An experiments field
    the server does not know is left aside when the installed file is read (it is refused at
    `experiments set`, where a misspelling can still be fixed)."""
    from shelfwise.serving._experiments import EXPERIMENTS_FILE, load_experiments, parse_experiments

    rules = Rules.from_dict(
        {"version": "3", "max_per_category": "2", "items": [{"action": "boost", "brand": "A", "factor": "2"}]}
    )
    assert (rules.version, rules.max_per_category, rules.items[0].factor) == (3, 2, 2.0)
    doc = {
        "experiments": [
            {
                "name": "e",
                "owner": "ana",  # not a field of an experiment
                "variants": [{"name": "a", "weight": "50"}, {"name": "b", "weight": 50}],
            }
        ]
    }
    path = tmp_path / EXPERIMENTS_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    (exp,) = load_experiments(tmp_path)
    assert [v.weight for v in exp.variants] == [50.0, 50.0]
    with pytest.raises(ShelfwiseError, match="unknown field"):
        parse_experiments(doc)


def test_a_bad_rules_file_never_holds_up_an_erasure_or_new_keys(tmp_path: Path) -> None:
    """A running server reloads each configuration file on its own: a rules file it cannot read
    keeps the last good rules, while a new person's key and an erasure still take effect (they
    were reloaded in one block with the rules, and a bad rules file held them up)."""
    import threading

    svc = Service.__new__(Service)
    svc.workdir = tmp_path
    svc._swap_lock = threading.Lock()
    svc._unservable = set()
    svc.rules = Rules.from_dict({"max_per_category": 3})
    svc.experiments = []
    svc.keys = {}
    svc.snapshot = SimpleNamespace(version="v1")  # type: ignore[assignment]
    svc._config_mtimes = svc._mtimes()
    erased: list[str] = []
    svc._apply_erasures = lambda: erased.append("now")  # type: ignore[method-assign]
    svc._load_keys = lambda: {"h": ("ada", "admin")}  # type: ignore[method-assign]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "rules.json").write_text(json.dumps({"max_per_category": "three"}))
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "people.json").write_text("{}")
    (tmp_path / "governance" / "erasures.jsonl").write_text('{"pseudonym": "u_x", "at": "2026-01-01"}\n')
    assert svc.refresh()
    assert erased == ["now"] and svc.keys == {"h": ("ada", "admin")}
    assert svc.rules.max_per_category == 3  # the last good rules stay in force


def test_search_counts_and_facets_are_what_the_rules_let_a_shopper_see(served_workdir) -> None:
    """A hidden brand is not counted nor faceted, an out-of-stock product (filtered) is not
    counted, a pin for the query is; the engine's cached page is the same for every rule set."""
    from shelfwise.search import Filters
    from shelfwise.search._analyze import analyze

    _, work = served_workdir
    svc = Service(work)
    svc.rules = Rules.from_dict({"filter_out_of_stock": False})
    before = svc.search("organic", 50, filters=Filters())
    assert before is not None and before.extra["total"] > 0
    brands = {f["value"]: f["count"] for f in before.extra["facets"]["brand"]}
    brand, n_brand = max(brands.items(), key=lambda kv: kv[1])
    assert 0 < n_brand < before.extra["total"]

    svc.rules = Rules.from_dict({"filter_out_of_stock": False, "items": [{"action": "hide", "brand": brand}]})
    hidden = svc.search("organic", 50, filters=Filters())
    assert hidden is not None and hidden.source == "cached:search"  # one engine page for both
    assert hidden.extra["total"] == before.extra["total"] - n_brand
    assert brand not in {f["value"] for f in hidden.extra["facets"]["brand"]}
    assert not set(hidden.items) & {p for p in before.items if svc.snapshot.info[p][1] == brand}

    # the default out-of-stock filter: the in-stock facet says what is shown
    svc.rules = Rules.from_dict({})
    stocked = svc.search("organic", 50, filters=Filters())
    assert stocked is not None
    out = before.extra["facets"]["in_stock"]["false"]
    assert out > 0  # (the demo shop has out-of-stock products matching the query)
    assert stocked.extra["total"] == before.extra["total"] - out
    assert stocked.extra["facets"]["in_stock"] == {"true": stocked.extra["total"], "false": 0}

    # a pinned product the query did not find (it does not hold the word) is on the page, and
    # counted ("pillow" matches by keyword: its total is every product holding the word)
    snap = svc.snapshot
    svc.rules = Rules.from_dict({"filter_out_of_stock": False})
    words = svc.search("pillow", 50, filters=Filters())
    assert words is not None and words.extra["match"] == "keyword" and words.extra["total"] > 0
    holding = set(snap.search._holding_terms(analyze("pillow"), None).tolist())
    assert words.extra["total"] == len(holding)
    far = next(
        p
        for i, p in enumerate(snap.search.catalog.product_ids)
        if i not in holding and snap.info.get(p) is not None and snap.info[p][2]
    )
    svc.rules = Rules.from_dict(
        {"filter_out_of_stock": False, "items": [{"action": "pin", "product_id": far, "query": "pillow"}]}
    )
    pinned = svc.search("pillow", 50, filters=Filters())
    assert pinned is not None and pinned.items[0] == far
    assert pinned.extra["total"] == words.extra["total"] + 1
    other = svc.search("pillow red", 50, filters=Filters())  # the pin is for "pillow" only
    assert other is not None and other.items[0] != far
    # a page filtered to a brand the pinned product is not: neither on it nor counted
    brands = [f["value"] for f in words.extra["facets"]["brand"]]
    elsewhere = next(b for b in brands if b != snap.info[far][1])
    filtered = svc.search("pillow", 50, filters=Filters(brand=elsewhere))
    assert filtered is not None and far not in filtered.items
    svc.rules = Rules.from_dict({"filter_out_of_stock": False})
    unpinned = svc.search("pillow", 50, filters=Filters(brand=elsewhere))
    assert unpinned is not None and filtered.extra["total"] == unpinned.extra["total"]


def test_rules_that_hide_every_keyword_hit_make_a_no_result_page(served_workdir) -> None:
    """ "pillow" with every product holding the word hidden: the page said `match: keyword` with
    `total: 0` and a short page of products without the word. It is a query with no result now:
    `match: none`, the popular products the rules allow as a `fallback`, no hidden product."""
    from shelfwise.search import Filters
    from shelfwise.search._analyze import analyze

    _, work = served_workdir
    svc = Service(work)
    snap = svc.snapshot
    holding = snap.search._holding_terms(analyze("pillow"), None)
    hidden = [snap.search.catalog.product_ids[d] for d in holding]
    svc.rules = Rules.from_dict(
        {"filter_out_of_stock": False, "items": [{"action": "hide", "product_id": p} for p in hidden]}
    )
    page = svc.search("pillow", 10, filters=Filters())
    assert page is not None
    assert (page.extra["match"], page.extra["fallback"], page.extra["total"]) == ("none", "popular", 0)
    assert len(page.items) == 10 and not set(page.items) & set(hidden)
    pop = np.asarray(snap.search.popularity_)
    assert all(pop[snap.search._index[p]] > 0 for p in page.items)  # best sellers, not neighbours
    svc.rules = Rules.from_dict({"filter_out_of_stock": False})
    shown = svc.search("pillow", 10, filters=Filters())
    assert shown is not None and shown.extra["match"] == "keyword" and shown.extra["total"] == len(hidden)
    # a product pinned for a query that matches nothing is a result of it: counted and faceted
    # (the popular fallback after it is not)
    pin = {"action": "pin", "product_id": hidden[0], "query": "xqzvwkpl"}
    svc.rules = Rules.from_dict({"filter_out_of_stock": False, "items": [pin]})
    odd = svc.search("xqzvwkpl", 10, filters=Filters())
    assert odd is not None and odd.extra["match"] == "none" and odd.items[0] == hidden[0]
    assert odd.extra["total"] == 1 and sum(f["count"] for f in odd.extra["facets"]["brand"]) == 1
    # an empty filtered page says whether the words found products the filters took away (the
    # analytics' no-result queries leave those out, and keep a filtered query matching nothing)
    svc.rules = Rules.from_dict({"filter_out_of_stock": False})
    emptied = svc.search("pillow", 10, filters=Filters(price_min=999_999_999))
    assert emptied is not None and emptied.items == [] and emptied.extra["words_found"] is True
    nothing = svc.search("xqzvwkpl", 10, filters=Filters(in_stock=True))
    assert nothing is not None and nothing.extra["words_found"] is False
    assert svc.search("pillow", 10, filters=Filters()).extra["words_found"] is None  # (unfiltered)


def test_search_counted_agrees_with_what_apply_shows() -> None:
    """`Rules.search_counted` (vectorized, for counting) keeps exactly the products `apply`
    shows on a long enough search page, for random rule sets over a catalog with unlisted and
    out-of-stock products."""
    from shelfwise.serving._rules import CatalogView

    rng = np.random.default_rng(5)
    ids = [f"q{i}" for i in range(40)]
    cats = [f"{['Home', 'Toys', 'Tea'][i % 3]} > {['A', 'B'][i % 2]}" for i in range(40)]
    brands = [["Acme", "Bolt", "Cup", "Dot"][i % 4] for i in range(40)]
    bundle = SimpleNamespace(
        categories=np.array(cats, object),
        brands=np.array(brands, object),
        in_stock=rng.random(40) > 0.2,
        listed=rng.random(40) > 0.1,
    )
    view = CatalogView({p: i for i, p in enumerate(ids)}, bundle)
    engine_ids = [*ids[::-1], "not-in-bundle"]  # another order than the bundle's, and one more
    engine_index = {p: i for i, p in enumerate(engine_ids)}
    rows = np.array([view._index.get(p, -1) for p in engine_ids], np.int64)
    for trial in range(60):
        items: list[dict[str, Any]] = []
        for _ in range(int(rng.integers(0, 4))):
            kind = str(rng.choice(["hide_brand", "hide_cat", "hide_id", "pin", "bury"]))
            if kind == "hide_brand":
                items.append({"action": "hide", "brand": str(rng.choice(brands))})
            elif kind == "hide_cat":
                items.append({"action": "hide", "category": str(rng.choice(["Home", "Toys > A"]))})
            elif kind == "pin":
                items.append(
                    {
                        "action": "pin",
                        "product_id": str(rng.choice(ids)),
                        "query": str(rng.choice(["x", "y"])),
                    }
                )
            else:
                items.append(
                    {"action": "hide" if kind == "hide_id" else "bury", "product_id": str(rng.choice(ids))}
                )
        rules = Rules.from_dict({"filter_out_of_stock": bool(trial % 2), "items": items})
        docs = np.sort(rng.choice(len(engine_ids), 25, replace=False)).astype(np.int64)
        got = rules.search_counted(docs, engine_index, rows, view, "x")
        got_ids = {engine_ids[d] for d in (docs if got is None else got)}
        shown = rules.apply([engine_ids[d] for d in docs], 100, view, surface="search", query="x")
        assert got_ids == set(shown), (items, got_ids ^ set(shown))


def test_a_user_in_the_erasure_register_is_a_stranger_whatever_the_bundle_holds(
    served_workdir, tmp_path: Path
) -> None:
    """The erasure writes its register first and scrubs the bundles after: a server reloading
    in between loaded the unscrubbed bundle and served the erased shopper their precomputed,
    personalized list for as long as nothing else changed. A bundle's snapshot now leaves out
    every user the register names."""
    import shutil

    from shelfwise.governance import Pseudonymizer
    from tests.serving.conftest import known_users

    data, work = served_workdir
    copy = tmp_path / "w"
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns("spool", "serve-*.log"))
    user = known_users(data, copy, 1)[0]
    svc = Service(copy)
    assert svc.recommend(user, 5).source != "cold_start"
    register = copy / "governance" / "erasures.jsonl"
    register.parent.mkdir(parents=True, exist_ok=True)
    pseudo = Pseudonymizer.of(copy)(user)
    # erased before the bundle was made (they came back, and a bundle trained since knows their
    # new steps): theirs again, not a stranger for ever
    register.write_text(json.dumps({"pseudonym": pseudo, "at": "2000-01-01T00:00:00+00:00"}) + "\n")
    assert Service(copy).recommend(user, 5).source != "cold_start"
    from datetime import UTC, datetime

    with open(register, "a") as fh:  # the register alone: the bundle not (yet) scrubbed
        fh.write(json.dumps({"pseudonym": pseudo, "at": datetime.now(UTC).isoformat()}) + "\n")
    assert svc.refresh()
    ans = svc.recommend(user, 5)
    assert ans.source == "cold_start" and ans.items == svc.recommend("never-seen-anyone", 5).items
    assert Service(copy).recommend(user, 5).source == "cold_start"  # a server starting now too
    # yesterday's events of theirs posted after the erasure (a client re-sending): the absorb
    # withholds them, and they must not personalize the user's answers meanwhile either
    product = str(svc.recommend("never-seen-anyone", 1).items[0])
    svc.record_events(
        [{"user_id": user, "product_id": product, "_type": "click", "_ts": time.time() - 86400}]
    )
    assert svc.recommend(user, 5).source == "cold_start"
    # a returning shopper's new events are theirs
    svc.record_events([{"user_id": user, "product_id": product, "_type": "click", "_ts": time.time() + 1}])
    assert svc.recommend(user, 5).source != "cold_start"


def test_paging_reaches_every_counted_product_when_the_rules_thin_the_candidates(
    served_workdir, tmp_path: Path
) -> None:
    """A query whose candidates the rules thin (brands hidden, the out-of-stock filter): each page
    asked for offset + 3k + 20 candidates and the rules took many away, so pages came back short
    and then empty while `total` still counted the rest (71 of "cordless drill"'s 199 could be
    reached on a real shop). Pages retrieve deeper while the rules leave them short: every page
    is full until the end, and no product is on two pages."""
    import shutil
    from collections import Counter

    from shelfwise.search import Filters

    _, work = served_workdir
    copy = tmp_path / "w"
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns("spool", "serve-*.log"))
    svc = Service(copy)
    engine = svc.snapshot.search
    assert engine is not None
    words = Counter(
        w for t in engine.catalog.title for w in set(t.lower().split()) if w.isalpha() and len(w) > 3
    )
    word = max(words.most_common(20), key=lambda wc: svc.search(wc[0], 10, filters=Filters()).extra["total"])[
        0
    ]
    # hide the biggest categories until most of the catalog is hidden for this query
    category_of = {p: svc.snapshot.info.get(p, ("", "", True))[0] for p in svc.snapshot.item_ids}
    hidden: list[str] = []
    for c, _ in Counter(c for c in category_of.values() if c).most_common():
        if sum(1 for x in category_of.values() if x in hidden) >= 0.7 * len(category_of):
            break
        hidden.append(c)
    svc.rules = Rules.from_dict({"items": [{"action": "hide", "category": c, "query": word} for c in hidden]})
    svc._clear_caches()
    first = svc.search(word, 10, filters=Filters())
    assert first is not None
    total = first.extra["total"]
    assert total > 0, (word, total)
    seen: list[str] = []
    sizes = []
    for offset in range(0, 1000, 10):
        page = svc.search(word, 10, filters=Filters(), offset=offset)
        assert page is not None
        sizes.append(len(page.items))
        if not page.items:
            break
        seen += page.items
    assert len(seen) == len(set(seen))  # no product on two pages
    assert all(n == 10 for n in sizes[:-2]), sizes  # full pages until the catalog has no more
    assert len(seen) >= total  # every counted product reached (then the neighbours)
    # the page sizes ran out with the catalog: every product the rules leave (in stock, not
    # hidden) was on a page (before: 17 of them, two pages, the third empty)
    left = {
        p
        for p in svc.snapshot.item_ids
        if category_of[p] not in hidden and (svc.snapshot.info.get(p) or ("", "", False))[2]
    }
    assert set(seen) == left, (len(seen), len(left))
    # the event loop answers such a page from the cache at the depth it needed (one pass of the
    # rules, no walk down the depths), and a price sort keeps its depth (a deeper retrieval
    # would order new products before those shown)
    assert svc.search(word, 10, filters=Filters(), offset=30, cached_only=True) is not None
    # the console's playground shows that page as the API gives it (it did not deepen)
    from shelfwise.web import _playground

    side = _playground.search_side(
        svc, word, 10, _playground.Side(None, svc.rules, "in force"), explain=False, offset=30
    )
    assert [it["product_id"] for it in side["items"]] == svc.search(
        word, 10, filters=Filters(), offset=30
    ).items
    by_price: list[str] = []
    for offset in range(0, 200, 10):
        page = svc.search(word, 10, filters=Filters(), offset=offset, sort="price_asc")
        assert page is not None
        by_price += page.items
    assert len(by_price) == len(set(by_price))
    assert not any(category_of[p] in hidden for p in seen)


def test_a_rule_names_a_product_as_curation_reads_its_id() -> None:
    """A rules file written from a spreadsheet or pandas (`111422.0`) installed a pin of
    "111422.0", which no product is: the catalog curated it as 111422, and the pin never held."""
    rules = Rules.from_dict(
        {
            "items": [
                {"action": "pin", "product_id": 111422.0, "position": 1, "query": "hammer"},
                {"action": "hide", "product_id": " p1 "},
                {"action": "bury", "product_id": "101.0"},
            ]
        }
    )
    assert [r.product_id for r in rules.items] == ["111422", "p1", "101"]


def test_a_querys_later_pages_are_computed_at_its_first_pages_level(served_workdir, tmp_path: Path) -> None:
    """Under load the search queue picked a level per cache miss: page 1 of "garden hose" came
    from one level and page 2 from another, and 11 products were on both. A later page is
    computed at the level its query's first page was answered at (a degraded first page is
    cached under its level for them); the next first page still gets the whole pipeline."""
    import shutil
    from collections import Counter

    from shelfwise.search import Filters
    from shelfwise.serving._service import SearchArgs

    _, work = served_workdir
    copy = tmp_path / "w"
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns("spool", "serve-*.log"))
    svc = Service(copy)
    engine = svc.snapshot.search
    assert engine is not None and engine.levels()[-1] == "lexical" and len(engine.levels()) > 1
    words = Counter(
        w for t in engine.catalog.title for w in set(t.lower().split()) if w.isalpha() and len(w) > 3
    )
    q = words.most_common(1)[0][0]
    first = svc.search_batch([(SearchArgs(q, 20, Filters()), "lexical")])[0]
    assert first.extra["level"] == "lexical"
    pages = [first]
    for offset in (20, 40, 60, 140):  # (the last one past the first page's candidates)
        pages.append(svc.search_batch([(SearchArgs(q, 20, Filters(), offset=offset), engine.levels()[0])])[0])
    assert all(p.extra["level"] in ("lexical", None) for p in pages), [p.extra["level"] for p in pages]
    shown = [p for page in pages[:4] for p in page.items]
    assert len(shown) == len(set(shown))  # no product on two pages
    again = svc.search_batch([(SearchArgs(q, 20, Filters()), engine.levels()[0])])[0]
    assert again.extra["level"] == engine.levels()[0]  # a first page: the whole pipeline again


def test_a_rule_of_a_category_or_brand_the_catalog_lacks_is_said(tmp_path: Path) -> None:
    """A boost of "Magazines > Cooking" where the catalog says "Magazines > Food & Cooking"
    installed without a word and did nothing (a shop owner's walk). The rule is installed and
    said, with the catalog's nearby paths; a category matched from its start, or a known
    brand, is not."""
    import json as _json
    import warnings

    from shelfwise.serving._rules import RulesWarning

    folder = tmp_path / "bundles" / "b1"
    folder.mkdir(parents=True)
    (folder / "catalog.json").write_text(
        _json.dumps(
            {
                "in_stock": [True, True],
                "category": ["Magazines > Food & Cooking", "Magazines > Sports"],
                "brand": ["Hearst", "Meredith"],
                "title": ["Food", "Golf"],
            }
        )
    )
    (tmp_path / "bundles" / "CURRENT").write_text("b1")
    with pytest.warns(RulesWarning, match=r"boosts category 'magazines > cooking', which no product") as got:
        save_rules(tmp_path, {"items": [{"action": "boost", "category": "Magazines > Cooking", "factor": 2}]})
    assert "magazines > food & cooking" in str(got[0].message)
    assert Rules.load(tmp_path).version == 1  # installed all the same
    with pytest.warns(RulesWarning, match="hides brand 'conde nast', which no product"):
        save_rules(tmp_path, {"items": [{"action": "hide", "brand": "Conde Nast"}]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_rules(
            tmp_path,
            {
                "items": [
                    {"action": "boost", "category": "magazines > food", "factor": 2},
                    {"action": "bury", "brand": "Hearst"},
                ]
            },
        )


def test_rules_show_says_who_installed_them_and_the_same_rules_again_make_no_version(tmp_path: Path) -> None:
    """`rules show` printed version, sha256 and the file, not who installed the version in
    force nor when (only the audit trail had it); the stored file held its version last, after
    the rules; and the console saving the text in force again made a new version each time."""
    from shelfwise.serving._rules import RULES_FILE

    doc = {"filter_out_of_stock": True, "items": [{"action": "hide", "brand": "Acme"}]}
    first = save_rules(tmp_path, doc, actor="eve")
    (tmp_path / "rules.json").write_text(json.dumps(doc))
    proc = sw("rules", "show", "--workdir", str(tmp_path))
    shown = json.loads(proc.stdout)
    assert shown["version"] == first.version == 1 == shown["file"]["version"]
    assert list(shown["file"])[0] == "version"  # said first in the stored file, as in the summary
    assert shown["installed_by"] == "eve" and shown["installed_at"].startswith(str(datetime.now(UTC).year))
    # the same rules again, as the console saves them: nothing installed, the version in force kept
    again = save_rules(tmp_path, dict(doc), actor="ana", if_changed=True)
    assert again.version == 1 and json.loads((tmp_path / RULES_FILE).read_text())["version"] == 1
    assert json.loads(sw("rules", "show", "--workdir", str(tmp_path)).stdout)["installed_by"] == "eve"
    # changed rules make a new version, as the CLI's `rules set` of any file does
    assert save_rules(tmp_path, {"items": []}, actor="ana", if_changed=True).version == 2
    assert save_rules(tmp_path, {"items": []}, actor="ana").version == 3


def test_similar_items_of_a_product_no_list_shows_say_why(tmp_path: Path) -> None:
    """All said "no longer in the catalog": a product never curated (known from events alone,
    its catalog row quarantined at ingest) and one the catalog holds unpublished alike."""
    from shelfwise.storage._product_ids import PRODUCT_IDS, CuratedProducts

    (tmp_path / PRODUCT_IDS).parent.mkdir(parents=True)
    (tmp_path / PRODUCT_IDS).write_text(
        json.dumps({"version": [1, "x"], "products": ["P1", "P3"], "published": {"false": ["P3"]}})
    )
    products = CuratedProducts(tmp_path)
    products.get()
    # P1 and P2 listed by the bundle (P2 dropped since), P3 listed too (unpublished since), Q
    # known from events alone
    bundle = SimpleNamespace(listed=np.array([True, True, True, False]))
    snap = SimpleNamespace(bundle=bundle, item_index={"P1": 0, "P2": 1, "P3": 2, "Q": 3})
    svc = SimpleNamespace(_curated_products=products, snapshot=snap)
    why = {p: Service.unlisted_reason(svc, p) for p in ("P2", "P3", "Q")}  # type: ignore[arg-type]
    assert why == {
        "P2": "product 'P2' is no longer in the catalog",
        "P3": "product 'P3' is not published in the catalog (a draft, private or archived product)",
        "Q": "product 'Q' is not in the catalog",
    }
