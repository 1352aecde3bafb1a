"""A catalog of size variants under styles (`products.group_id`): every served list holds one
product per style, a shopper who bought a style gets none of its sizes, a product's similar
items hold none of its own style, and a search counts styles. Without groups, nothing changes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from shelfwise import Shop
from tests.conftest import built_once
from tests.serving.conftest import Server

FAST = {"tune_budget_s": 0, "search_finetune_budget_s": 0, "search_cross_budget_s": 0, "log": None}
SIZES = ("S", "M", "L", "XL")
STYLES = {
    "A": "Wrap Dress",
    "B": "Midi Dress",
    "C": "Linen Dress",
    "E": "Oxford Shirt",
    "F": "Denim Jeans",
}


# style -> the colour of its sizes S, M, L, XL (the `attributes` shop's colour and size columns)
COLOURS = {
    "A": ("red", "red", "blue", "blue"),
    "B": ("blue",) * 4,
    "C": ("red", "green", "green", "green"),
    "E": ("white",) * 4,
    "F": ("blue",) * 4,
}


def _write_shop(d: Path, *, groups: bool, attributes: bool = False) -> None:
    d.mkdir(parents=True)
    rows = [
        "product_id,parent_sku,title,category,brand,price,in_stock" + (",color,size" if attributes else "")
    ]
    for s, title in STYLES.items():
        for z, colour in zip(SIZES, COLOURS[s], strict=True):
            rows.append(
                f"{s}-{z},{s},{title} {z},Clothing,Mira,50,true" + (f",{colour},{z}" if attributes else "")
            )
    rows.append("D,,Leather Belt,Accessories,Oak,20,true" + (",brown," if attributes else ""))
    text = "\n".join(rows) + "\n"
    if not groups:
        text = (
            "\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != 1) for r in text.splitlines())
            + "\n"
        )
    (d / "products.csv").write_text(text)
    rng = random.Random(7)
    ev = ["user_id,product_id,event_type,timestamp"]
    t = 1_700_000_000
    # every shopper views a few sizes of a few styles: A with B and C, E with F and D
    for u in range(60):
        pool = ["A", "B", "C"] if u % 2 else ["E", "F", "D"]
        for _ in range(6):
            s = rng.choice(pool)
            p = s if s == "D" else f"{s}-{rng.choice(SIZES)}"
            t += 60
            ev.append(f"U{u},{p},{rng.choice(['view', 'view', 'purchase'])},{t}")
    # the shopper who bought the wrap dress in M (and looked at the midi dress)
    ev += [f"buyer,A-M,purchase,{t + 60}", f"buyer,B-S,view,{t + 120}"]
    (d / "events.csv").write_text("\n".join(ev) + "\n")


def _train(base: Path, groups: bool, attributes: bool = False) -> None:
    _write_shop(base / "data", groups=groups, attributes=attributes)
    Shop(base / "w").train(base / "data", models=["popularity", "itemknn"], **FAST)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The styles and sizes with a colour and a size attribute each (`COLOURS`)."""
    return built_once(tmp_path_factory, "grouped-attributes-shop", lambda b: _train(b, True, True)) / "w"


@pytest.fixture(scope="module")
def ungrouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_once(tmp_path_factory, "ungrouped-shop", lambda b: _train(b, False)) / "w"


def _style(p: str) -> str:
    return p.split("-")[0]


def _ids(items: list) -> list[str]:
    """Product ids of a served list (HTTP search items carry a title beside the id)."""
    return [i["product_id"] if isinstance(i, dict) else i for i in items]


def _one_per_style(items: list[str]) -> bool:
    return len({_style(p) for p in items}) == len(items)


def test_lists_hold_one_product_per_style(grouped: Path) -> None:
    shop = Shop(grouped)
    recs = shop.recommend("buyer", k=10)
    items = recs["items"]  # type: ignore[index]
    assert items and _one_per_style(items), items
    assert not any(_style(p) == "A" for p in items), items  # bought A in M: no A in any size
    for anchor in ("A-M", "E-S"):
        sim = shop.similar(anchor, k=10)
        assert isinstance(sim, list) and sim and _one_per_style(sim), sim
        assert not any(_style(p) == _style(anchor) for p in sim), sim  # no size of itself
    page = shop.search("dress", k=10)
    # one per style: the three dresses first (the semantic neighbours after them)
    assert _one_per_style(page) and sorted(_style(p) for p in page[:3]) == ["A", "B", "C"], page
    for u in ("U1", "U2", "someone-new"):
        got = shop.recommend(u, k=10)["items"]  # type: ignore[index]
        assert _one_per_style(got), got


def test_over_http_lists_and_search_counts_are_by_style(grouped: Path) -> None:
    server = Server(grouped)
    try:
        r = server.client.get("/v1/recommendations/buyer", params={"k": 10}).json()
        ids = _ids(r["items"])
        assert ids and _one_per_style(ids), r
        assert not any(_style(p) == "A" for p in ids), r
        s = server.client.get("/v1/items/A-M/similar", params={"k": 10}).json()
        ids = _ids(s["items"])
        assert ids and _one_per_style(ids) and "A" not in {_style(p) for p in ids}, s
        q = server.client.get("/v1/search", params={"q": "dress", "k": 10}).json()
        ids = _ids(q["items"])
        assert _one_per_style(ids) and sorted(_style(p) for p in ids[:3]) == ["A", "B", "C"], q
        assert q["total"] == 3, q  # 3 styles, not 12 sizes
        assert q["facets"]["attributes"]["size"] == [{"value": z, "count": 3} for z in ("L", "M", "S", "XL")]
        # attribute filters: the styles with a red variant, each shown by a red one; the colours
        # counted by style without the colour filter, the sizes of the red variants
        q = server.client.get("/v1/search", params={"q": "dress", "k": 10, "attr.color": "Red"}).json()
        assert sorted(_ids(q["items"])) in (["A-M", "C-S"], ["A-S", "C-S"]) and q["total"] == 2, q
        assert q["facets"]["attributes"] == {
            "color": [
                {"value": "blue", "count": 2},
                {"value": "red", "count": 2},
                {"value": "green", "count": 1},
            ],
            "size": [{"value": "S", "count": 2}, {"value": "M", "count": 1}],
        }, q
        # two values of one key ORed (deepObject spelling too), two keys ANDed
        q = server.client.get("/v1/search?q=dress&k=10&attr[color]=green&attr.color=red&attr.size=m").json()
        assert sorted(_ids(q["items"])) == ["A-M", "C-M"] and q["total"] == 2, q
        assert q["facets"]["attributes"]["color"] == [
            {"value": v, "count": 1} for v in ("blue", "green", "red")
        ]
        assert server.client.get("/v1/search", params={"q": "dress", "attr.color": " "}).status_code == 422
    finally:
        server.stop()


def test_attribute_filters_find_the_matching_variant_of_each_style(grouped: Path) -> None:
    """A style matches an attribute filter when one of its variants does, and the page shows
    that variant (a search for red shows the red size of a style, not its blue one); the
    Python API answers as /v1/search, with the facets."""
    shop = Shop(grouped)
    red_m = shop.search("dress", k=10, attributes={"color": "red", "size": "M"})
    assert red_m == ["A-M"], red_m  # (A's red sizes are S and M; C is red in S only)
    blue = shop.search("dress", k=10, attributes={"color": ["blue"]})
    # (the two blue dress styles, then the blue jeans: a neighbour without the word)
    assert sorted(_style(p) for p in blue[:2]) == ["A", "B"] and {"A-L", "A-XL"} & set(blue), blue
    assert all(_style(p) in ("A", "B", "F") for p in blue) and _one_per_style(blue), blue
    (page,) = shop.search_pages(["dress"], k=10, attributes={"color": "red"})
    assert page["total"] == 2 and page["facets"]["attributes"]["size"] == [
        {"value": "S", "count": 2},
        {"value": "M", "count": 1},
    ], page


def test_attribute_filters_on_a_bundle_trained_before_them_say_so(grouped: Path, tmp_path: Path) -> None:
    """A bundle whose search index predates attribute filters (no attribute index) answered a
    filtered search with an empty page and no word why: /v1/search's `warnings`, the Python
    API's page and warning, and the CLI's `warning:` line say so and that the next `train` adds
    it; a search without one, and a bundle that has the index, say nothing."""
    import shutil
    import warnings

    from fastapi.testclient import TestClient

    from shelfwise.errors import AttributeFiltersWarning
    from shelfwise.serving import create_app
    from shelfwise.serving._bundle import current_bundle
    from tests.cli.test_cli import sw

    (page,) = Shop(grouped).search_pages(["dress"], k=10, attributes={"color": "red"})
    assert page["items"] and page["warnings"] == [], page
    w = tmp_path / "w"
    shutil.copytree(grouped, w, symlinks=True)
    bundle = current_bundle(w)
    # the bundle as trained before attribute filters: its index kept no attributes (nor listed them)
    tables = bundle / "search" / "tables"
    gone = sorted(tables.glob("catalog.attribute_json.*"))
    assert gone
    for f in gone:
        f.unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if "catalog.attribute_json" not in k}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    said = (
        f"attribute filters (attr.color): bundle {bundle.name} was trained before attribute filters existed "
        "and has no attribute index, so no product matches them; the next `shelfwise train` adds it"
    )
    shop = Shop(w)
    with pytest.warns(AttributeFiltersWarning) as got:
        (page,) = shop.search_pages(["dress"], k=10, attributes={"color": "red"})
    assert (page["items"], page["warnings"]) == ([], [said]), page
    assert [str(x.message) for x in got] == [said] and got[0].filename == __file__  # (the caller's line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (plain,) = shop.search_pages(["dress"], k=10)
    assert plain["items"] and plain["warnings"] == [], plain
    with TestClient(create_app(w)) as client:  # (single-user mode: no key)
        r = client.get("/v1/search", params={"q": "dress", "k": 10, "attr.color": "red"})
        assert r.status_code == 200 and r.json()["items"] == [] and r.json()["warnings"] == [said], r.text
        assert client.get("/v1/search", params={"q": "dress", "k": 10}).json()["warnings"] == []
        # the console's search playground says it too (its column was empty without a word)
        html = client.get("/console/search", params={"q": "dress", "attr.color": "red"}).text
        assert "was trained before attribute filters existed" in html, html[-2000:]
    (tmp_path / "q.csv").write_text("query_id,query\nq1,dress\n")
    args = [
        "search",
        "--workdir",
        str(w),
        "--queries",
        str(tmp_path / "q.csv"),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    proc = sw(*args, "--attr", "color=red")
    assert f"warning: {said}" in proc.stderr, proc.stderr
    assert "warning:" not in sw(*args).stderr


def test_a_catalog_without_groups_lists_every_size(ungrouped: Path) -> None:
    shop = Shop(ungrouped)
    page = shop.search("dress", k=20)
    assert len([p for p in page if _style(p) in ("A", "B", "C")]) == 12, page  # every size, as before
    sim = shop.similar("A-M", k=20)
    assert isinstance(sim, list) and any(_style(p) == "A" for p in sim), sim


def test_training_reports_group_metrics_beside_the_item_ones(grouped: Path, ungrouped: Path) -> None:
    """The test fold is also scored by style (a hit on any size of the held-out product's style),
    stated in the protocol; a catalog without groups reports the item metrics alone."""
    from shelfwise.models import read_manifest
    from shelfwise.serving._bundle import current_bundle

    m = read_manifest(current_bundle(grouped))
    assert m.protocol["groups"] == 6  # A, B, C, E, F and the belt
    for name, metrics in m.metrics.items():
        assert "ndcg@10" in metrics and "group_hr@10" in metrics and "group_ndcg@10" in metrics, name
        assert metrics["group_hr@10"] >= metrics["hr@10"], (name, metrics)
    plain = read_manifest(current_bundle(ungrouped))
    assert plain.protocol.get("groups", 0) == 0
    assert all("group_hr@10" not in metrics for metrics in plain.metrics.values())


def _write_variants_shop(d: Path) -> None:
    """20 styles of 12 sizes and colours each; shoppers keep to one of 4 clusters of 5 styles."""
    d.mkdir(parents=True)
    sizes, colours = ("XS", "S", "M", "L", "XL", "XXL"), ("red", "blue")
    styles = [f"S{i:02d}" for i in range(20)]
    rows = ["product_id,parent_sku,title,category,brand,price,in_stock"]
    rows += [
        f"{s}-{z}-{c},{s},Dress {s} {z} {c},Clothing,Mira,50,true"
        for s in styles
        for z in sizes
        for c in colours
    ]
    (d / "products.csv").write_text("\n".join(rows) + "\n")
    rng = random.Random(1)
    ev = ["user_id,product_id,event_type,timestamp"]
    t = 1_700_000_000
    for u in range(200):
        c0 = rng.randrange(4)
        for _ in range(30):
            s = rng.choice(styles[c0 * 5 : c0 * 5 + 5])
            t += 60
            ev.append(
                f"U{u},{s}-{rng.choice(sizes)}-{rng.choice(colours)},{rng.choice(['view', 'view', 'purchase'])},{t}"
            )
    (d / "events.csv").write_text("\n".join(ev) + "\n")


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def build(b: Path) -> None:
        _write_variants_shop(b / "data")
        Shop(b / "w").train(b / "data", models=["popularity", "itemknn"], **FAST)

    return built_once(tmp_path_factory, "variants-shop", build) / "w"


def test_similar_items_of_a_catalog_of_variants_fill_k_styles(variants: Path) -> None:
    """20 styles of 12 variants: the 50 candidates of a k=10 list were variants of the anchor's
    4 related styles, collapsed to one product per style after, with no refill: 4 items came
    back although 19 other styles exist. Now k styles, the related ones first, then the popular
    fill; alike over HTTP."""
    shop = Shop(variants)
    for k in (5, 10, 15):
        sim = shop.similar("S00-M-red", k=k)
        assert isinstance(sim, list) and len(sim) == k and _one_per_style(sim), (k, sim)
        assert "S00" not in {p.split("-")[0] for p in sim}, sim
    detail = shop.similar("S00-M-red", k=10, detail=True)
    assert isinstance(detail, dict), detail
    related = {p.split("-")[0] for p in _ids(detail["items"])[: detail["related"]]}
    assert related and related <= {"S01", "S02", "S03", "S04"}, detail
    server = Server(variants)
    try:
        s = server.client.get("/v1/items/S00-M-red/similar", params={"k": 10}).json()
        ids = _ids(s["items"])
        assert len(ids) == 10 and _one_per_style(ids) and "S00" not in {p.split("-")[0] for p in ids}, s
    finally:
        server.stop()


def _write_one_big_style_shop(d: Path) -> None:
    """200 products on their own and one style of 60 sizes and colours (`BIG`): the average
    group holds 1.3 products. Those who look at P000 look at the big style and at two of
    P001-P020 (each fewer times together with P000 than the big style is)."""
    d.mkdir(parents=True)
    rows = ["product_id,parent_sku,title,category,brand,price,in_stock"]
    rows += [f"P{i:03d},,Item {i},Home,Oak,20,true" for i in range(200)]
    rows += [f"BIG-{v:02d},BIG,Big Dress {v},Clothing,Mira,50,true" for v in range(60)]
    (d / "products.csv").write_text("\n".join(rows) + "\n")
    rng = random.Random(5)
    ev = ["user_id,product_id,event_type,timestamp"]
    t = 1_700_000_000
    for u in range(60):
        steps = ["P000", f"BIG-{rng.randrange(60):02d}", *rng.sample([f"P{i:03d}" for i in range(1, 21)], 2)]
        for p in steps:
            t += 60
            ev.append(f"A{u},{p},view,{t}")
    for u in range(150):
        for p in rng.sample([f"P{i:03d}" for i in range(21, 200)], 3):
            t += 60
            ev.append(f"B{u},{p},{rng.choice(['view', 'purchase'])},{t}")
    (d / "events.csv").write_text("\n".join(ev) + "\n")


@pytest.fixture(scope="module")
def one_big_style(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def build(b: Path) -> None:
        _write_one_big_style_shop(b / "data")
        Shop(b / "w").train(b / "data", models=["popularity", "itemknn"], **FAST)

    return built_once(tmp_path_factory, "one-big-style-shop", build) / "w"


def test_similar_items_next_to_a_big_style_are_k_related_styles(
    one_big_style: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The candidates' depth came from the average group (1.3 products): P000's 64 candidates
    were the big style's 60 variants and 4 products, collapsed to 5 styles, and best sellers
    filled the rest although the model relates 20 more. Now the list looks deeper until it
    holds k styles the model relates, over the Python API, HTTP and the batch CLI alike."""
    from shelfwise.cli import main

    shop = Shop(one_big_style)
    related = {"BIG", *(f"P{i:03d}" for i in range(1, 21))}
    got = shop.similar("P000", k=10, detail=True)
    assert isinstance(got, dict), got
    items = _ids(got["items"])
    assert len({_style(p) for p in items}) == len(items) == 10, got
    assert got["related"] == 10 and got["fallback"] is None, got
    assert {_style(p) for p in items} <= related, got
    server = Server(one_big_style)
    try:
        s = server.client.get("/v1/items/P000/similar", params={"k": 10}).json()
        assert _ids(s["items"]) == items and s["related"] == 10, s
    finally:
        server.stop()
    (tmp_path / "ids.txt").write_text("P000\n")
    out = tmp_path / "similar.jsonl"
    argv = ["similar", "--workdir", str(one_big_style), "--products", str(tmp_path / "ids.txt")]
    assert main([*argv, "--k", "10", "--out", str(out)]) in (0, None), capsys.readouterr()
    line = json.loads(out.read_text().splitlines()[0])
    assert line["items"] == items and line["related"] == 10 and line["fallback"] is None, line
