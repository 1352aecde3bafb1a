"""The bundle's per-item catalog (stock, category, brand, title) is memory-mapped on load (no
Python list per worker), answers as catalog.json did, and a bundle without it (an earlier
version's) still loads from catalog.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shelfwise.features import Catalog, Interactions
from shelfwise.governance import Pseudonymizer
from shelfwise.models import RECOMMENDERS
from shelfwise.serving import Bundle
from shelfwise.serving._bundle import write_bundle
from shelfwise.serving._recommend import Recommendations
from shelfwise.serving._rules import CatalogView, Rules

IDS = ["A1", "A2", "B1", "B2", "C1"]
CATS = ["Kitchen > Kettles", "Kitchen > Mugs", "Garden", "Garden", ""]
BRANDS = ["Acme", "", "Hoser", "Hoser", "Zed"]
TITLES = ["red kettle", "blue mug ☕", "green hose", "long hose", "gadget"]
STOCK = [True, True, False, True, True]


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    # A1 bought by three users, B2 by two, C1 by one: popularity A1 > B2 > C1
    users = ["u1", "u2", "u3", "u1", "u2", "u3"]
    items = ["A1", "A1", "A1", "B2", "B2", "C1"]
    inter = Interactions.from_arrays(users, items, np.arange(6), item_ids=np.array(IDS, object))
    pop = RECOMMENDERS["popularity"]().fit(inter)
    codes = {c: i for i, c in enumerate(dict.fromkeys(CATS))}
    catalog = Catalog(
        item_ids=inter.item_ids,
        titles=TITLES,
        categories=CATS,
        category_codes=np.array([codes[c] for c in CATS]),
        prices=np.full(5, np.nan),
        in_stock=np.array(STOCK),
        brands=BRANDS,
    )
    return write_bundle(
        tmp_path,
        models={"popularity": pop},
        default_model="popularity",
        interactions=inter,
        catalog=catalog,
        manifest={},
        serving_arrays={"cold_start": np.array([0, 2, 3, 4, 1], np.int32)},
    )


def test_catalog_is_memory_mapped_and_reads_as_before(bundle_path: Path):
    b = Bundle.load(bundle_path)
    assert isinstance(b.in_stock, np.memmap) and isinstance(np.asarray(b.categories.codes), np.ndarray)  # type: ignore[attr-defined]
    assert list(b.categories) == CATS and list(b.brands) == BRANDS and list(b.titles) == TITLES
    assert b.in_stock.tolist() == STOCK and b.titles[1] == "blue mug ☕"
    # catalog.json is still written: a bundle stays readable by earlier versions
    old = json.loads((bundle_path / "catalog.json").read_text())
    assert old["category"] == CATS and old["title"] == TITLES


def test_a_bundle_without_the_arrays_reads_catalog_json(bundle_path: Path):
    shutil.rmtree(bundle_path / "catalog")
    b = Bundle.load(bundle_path, verify=False)
    assert (
        list(b.categories) == CATS
        and b.brands == BRANDS
        and b.titles == TITLES
        and b.in_stock.tolist() == STOCK
    )


def test_catalog_view_answers_as_the_dict_did(bundle_path: Path):
    b = Bundle.load(bundle_path)
    view = CatalogView({p: i for i, p in enumerate(IDS)}, b)
    as_dict = {p: (CATS[i], BRANDS[i], STOCK[i]) for i, p in enumerate(IDS)}
    assert dict(view) == as_dict and len(view) == 5 and "B1" in view and "nope" not in view
    assert (
        view.get("nope") is None and view.get("nope", 1) == 1 and view["A2"] == ("Kitchen > Mugs", "", True)
    )
    # the rules read it as they read the dict: out of stock dropped, one per category
    rules = Rules(max_per_category=1, category_level=1)
    assert rules.apply(IDS, 5, view, surface="recommendations") == rules.apply(
        IDS, 5, as_dict, surface="recommendations"
    )


def test_cold_start_in_a_context_is_the_same_from_the_arrays(bundle_path: Path):
    recs = Recommendations(Bundle.load(bundle_path), Pseudonymizer(b"k"))
    shutil.rmtree(bundle_path / "catalog")
    old = Recommendations(Bundle.load(bundle_path, verify=False), Pseudonymizer(b"k"))
    for context, exclude in (("kitchen", set()), ("Garden", {2}), ("none", set()), (None, set())):
        got = recs.cold_start(3, context, exclude)
        assert got == old.cold_start(3, context, exclude), context
    # the kitchen's products in the list's order (A1, A2), then the list (B1)
    assert recs.cold_start(3, "kitchen") == [0, 1, 2] and recs.cold_start(2, "garden", {2}) == [3, 0]


def test_the_spark_jobs_ranker_of_a_loaded_bundle_pickles_and_answers_alike(bundle_path: Path):
    """Spark broadcasts `_Ranker` (with the mapped catalog) to its executors by plain pickle:
    memoryviews do not pickle, so the catalog's columns travel as their arrays."""
    import pickle

    from shelfwise.governance import Pseudonymizer
    from shelfwise.lifecycle._spark_jobs import _Ranker
    from shelfwise.serving._service import Snapshot

    snap = Snapshot(bundle_path, Pseudonymizer(b"k" * 32), load_search=False)
    ranker = _Ranker(snap, "popularity", 3, 5)
    back = pickle.loads(pickle.dumps(ranker))
    assert dict(back.info) == dict(snap.info) and list(back.info) == IDS
    assert [back.top(u) for u in range(3)] == [ranker.top(u) for u in range(3)]
    view = pickle.loads(pickle.dumps(CatalogView(snap.item_index, snap.bundle)))
    assert [view[p] for p in IDS] == [snap.info[p] for p in IDS]


def test_a_bundle_is_not_read_while_an_erasure_rewrites_it(bundle_path: Path):
    """An erasure rewrites a bundle's files one after the other and then its manifest: a server
    loading it meanwhile read a scrubbed file beside the old hash ("sha256 mismatch") and logged
    a failed reload. Loading waits for the erasure's lock; loads share it."""
    import threading

    from shelfwise.governance._erase import _erase_bundle
    from shelfwise.storage._segments import folder_lock

    loaded: list[Bundle] = []
    with folder_lock(bundle_path, shared=True):  # another loader: no wait
        assert Bundle.load(bundle_path).version
    with folder_lock(bundle_path, shared=False):  # an erasure at work
        reader = threading.Thread(target=lambda: loaded.append(Bundle.load(bundle_path)))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive() and not loaded  # waiting, not reading half-rewritten files
        # what the erasure writes under its lock: a file changed before the manifest
        (bundle_path / "serving.npz").write_bytes((bundle_path / "serving.npz").read_bytes())
    reader.join(10)
    assert len(loaded) == 1
    pseudo = str(Bundle.load(bundle_path).interactions.user_ids[0])
    assert _erase_bundle(bundle_path, [pseudo]) > 0  # (takes the lock itself, and gives it back)
    assert Bundle.load(bundle_path).interactions.user_ids[0] == "erased_0"


def test_a_shop_with_only_candidates_is_told_so_not_to_train(tmp_path: Path):
    """Trained, but no version live (its gates failed, or it waits for an approval): "no trained
    bundle; run train first" sent the team to train again."""
    from shelfwise.errors import ShelfwiseError
    from shelfwise.serving._bundle import current_bundle

    with pytest.raises(ShelfwiseError, match="no trained bundle"):
        current_bundle(tmp_path)
    (tmp_path / "bundles" / "20260101T000000000000Z").mkdir(parents=True)
    (tmp_path / "bundles" / "20260101T000000000000Z" / "manifest.json").write_text("{}")
    with pytest.raises(ShelfwiseError, match="no bundle is in production.*models list"):
        current_bundle(tmp_path)


def test_a_stock_feed_since_the_training_takes_a_product_off_the_lists(bundle_path: Path):
    """A stock delivery said A1 is sold out and B1 is back: the bundle's stock stayed in force
    until the next training (a sold-out product kept its place in search and recommendations)."""
    b = Bundle.load(bundle_path)
    view = CatalogView({p: i for i, p in enumerate(IDS)}, b)
    now = view.narrowed(None, {"A1": False, "B1": True, "gone": False})
    assert now["A1"][2] is False and now["B1"][2] is True and now["C1"][2] is True
    assert view["A1"][2] is True  # the bundle's own view is left as it was
    assert "A1" not in Rules().apply(IDS, 5, now, surface="recommendations")
    assert now.unavailable(np.array([0, 2]), out_of_stock=True).tolist() == [True, False]
    assert view.narrowed(None, None)["A1"][2] is True


def test_products_a_catalog_says_are_not_published_leave_the_lists_whatever_the_truncation_guard_says(
    bundle_path: Path,
):
    """A catalog load that unpublishes most of the range (an end-of-season archive) counted its
    unpublished products as missing rows: under half of the bundle's products were left, the load
    was taken for a truncated file and not followed, and every draft stayed on every list (with
    a product an earlier load had dropped back beside them)."""
    b = Bundle.load(bundle_path)
    view = CatalogView({p: i for i, p in enumerate(IDS)}, b)
    archived = view.narrowed(frozenset(IDS), None, frozenset({"A1", "A2", "B2"}))
    assert not {"A1", "A2", "B2"} & set(archived) and {"B1", "C1"} <= set(archived)
    assert Rules().apply(IDS, 5, archived, surface="recommendations") == ["C1"]  # (B1 is sold out)
    # a product dropped from the catalog stays off beside the unpublished ones
    both = view.narrowed(frozenset(IDS) - {"C1"}, None, frozenset({"A1", "A2"}))
    assert set(both) == {"B1", "B2"}
    # a truly truncated catalog (one row of five) is still not followed, but what it says
    # outright about a product's publication is
    cut = view.narrowed(frozenset({"A1"}), None, frozenset({"B2"}))
    assert set(cut) == {"A1", "A2", "B1", "C1"}


def test_rules_set_says_each_rule_that_cannot_do_what_it_says_now(bundle_path: Path):
    """Pins of a product quarantined at ingest or removed (checked against the ids seen in
    events, they passed), of one the catalog says is not published, of one out of stock, of one
    another rule hides by category or brand, a window that ended, several pins at one position:
    all installed without a word. Each is said now (warnings only: installed all the same), by
    the Python API and in the change's audit entry."""
    import warnings

    from shelfwise import Shop
    from shelfwise.governance import AuditLog
    from shelfwise.serving._rules import RulesWarning
    from shelfwise.storage._product_ids import PRODUCT_IDS

    workdir = bundle_path.parent.parent
    # the curated catalog now: A2 dropped by a load (or quarantined), C1 a draft, B2 sold out
    (workdir / PRODUCT_IDS).parent.mkdir(parents=True, exist_ok=True)
    (workdir / PRODUCT_IDS).write_text(
        json.dumps(
            {
                "version": [2, "x"],
                "products": ["A1", "B1", "B2", "C1"],
                "stock": [True, False, False, True],
                "published": {"false": ["C1"]},
            }
        )
    )
    rules = {
        "items": [
            {"action": "pin", "product_id": "A2", "position": 1},
            {"action": "boost", "product_id": "C1"},
            {"action": "pin", "product_id": "B2", "position": 2, "query": "hose"},
            {"action": "pin", "product_id": "A1", "position": 1, "query": "kettle"},
            {"action": "hide", "category": "kitchen"},
            {"action": "pin", "product_id": "A1", "position": 3, "query": "tea", "end": "2026-01-01"},
            {"action": "hide", "brand": "hoser", "surfaces": ["similar"]},
            {"action": "pin", "product_id": "B1", "position": 4, "query": "mug", "surfaces": ["similar"]},
            {"action": "pin", "product_id": "A1", "position": 4, "query": "mug"},
            {"action": "hide", "brand": "zed", "surfaces": ["search"]},
            {"action": "pin", "product_id": "C1", "position": 1, "query": "gadget"},
            # two campaigns, one after the other, at one position: they never meet
            {
                "action": "pin",
                "product_id": "A1",
                "position": 2,
                "query": "lamp",
                "start": "2099-01-01",
                "end": "2099-02-01",
            },
            {
                "action": "pin",
                "product_id": "B2",
                "position": 2,
                "query": "lamp",
                "start": "2099-02-01",
                "end": "2099-03-01",
            },
        ]
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = Shop(workdir).set_rules(rules)
    said = got["warnings"]
    assert [str(w.message) for w in caught if issubclass(w.category, RulesWarning)] == said
    assert got["version"] == 1  # installed all the same
    expected = [
        "items[0]: pins A2, which the curated catalog does not hold",
        "items[1]: boosts C1, which the catalog says is not published",
        "items[2]: pins B2, which is out of stock",
        "items[3] pins A1 and items[4] hides it by its category 'Kitchen > Kettles' on 'kettle': the hide wins",
        "items[5]: its end 2026-01-01T00:00:00+00:00 has passed: the rule is never in force",
        "items[7]: pins B1, which is out of stock",
        "items[7] pins B1 and items[6] hides it by its brand 'Hoser' on 'mug': the hide wins",
        "items[7] (B1), items[8] (A1) all pin position 4 on 'mug': the last, items[8] (A1), takes it",
        # (the last product of the bundle's catalog: each item's category and brand are read)
        "items[10] pins C1 and items[9] hides it by its brand 'Zed' on 'gadget': the hide wins",
        # a pin for every query meets those for one query at its position (the review of
        # 5c33115..: said of none), and an ended pin competes with nothing
        "items[0] (A2, every query), items[3] (A1, on 'kettle'), items[10] (C1, on 'gadget') pin position 1: "
        "on a query they share, the last of them in the file takes it",
    ]
    for e in expected:
        assert any(w.startswith(e) for w in said), (e, said)
    assert not [w for w in said if "pin position" in w and ("items[11]" in w or "items[5] (" in w)], said
    entry = [e for e in AuditLog(workdir).entries() if e["action"] == "rules.change"][-1]
    assert entry["details"]["warnings"] == said
