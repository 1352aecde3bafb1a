"""Personalized search: the shopper's history changes the order when (and only when) the
clicks say shoppers with that history prefer different products for the same query."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import SearchCatalog, SearchEngine
from shelfwise.search._clicks import ClickGroup
from shelfwise.search._personal import USER_FEATURES, Profile, histories_before

N = 12  # shoes per style


def _catalog() -> SearchCatalog:
    """Two styles of shoes with the same words in their titles (text cannot tell them apart),
    and other products of each style that shoppers' histories are made of."""
    ids, titles, cats, brands, prices = [], [], [], [], []
    for style, brand, price in (("trail", "Stridex", 90.0), ("office", "Bellford", 140.0)):
        for i in range(N):
            ids.append(f"{style}-shoe-{i}")
            titles.append(f"shoes model {i}")
            cats.append(f"{style.title()} > Footwear")
            brands.append(brand)
            prices.append(price + i)
        for i in range(20):
            ids.append(f"{style}-gear-{i}")
            titles.append(f"{style} accessory {i}")
            cats.append(f"{style.title()} > Accessories")
            brands.append(brand)
            prices.append(price / 3)
    return SearchCatalog(ids, titles, brand=brands, category=cats, price=np.array(prices))


def _clicks(seed: int = 0) -> dict[str, ClickGroup]:
    """Trail shoppers (histories of trail gear) click trail shoes after searching "shoes";
    office shoppers click office shoes."""
    rng = np.random.default_rng(seed)
    groups = {}
    for n in range(400):
        style = "trail" if n % 2 else "office"
        history = [f"{style}-gear-{i}" for i in rng.choice(20, size=int(rng.integers(2, 8)), replace=False)]
        clicked = f"{style}-shoe-{int(rng.integers(N))}"
        groups[f"log:{n}"] = ClickGroup("shoes", {clicked: 1.0}, history=history)
    return groups


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = SearchEngine(tmp_path_factory.mktemp("personal") / "s", candidates=40).build(_catalog())
    info = eng.fit_ranker({}, {}, clicks=_clicks(), seed=3)
    assert info["personalized_groups"] == 400 and info["kept"] and info["personalized"], info
    return eng


def _style_share(eng: SearchEngine, profile: Profile | None, style: str) -> float:
    items = [it["product_id"] for it in eng.query("shoes", 10, profile=profile)["items"]]
    return sum(p.startswith(f"{style}-shoe") for p in items) / len(items)


def test_a_shoppers_history_puts_their_style_first(engine):
    trail = engine.profile([f"trail-gear-{i}" for i in range(5)])
    office = engine.profile([f"office-gear-{i}" for i in (3, 9)])
    assert _style_share(engine, trail, "trail") >= 0.9
    assert _style_share(engine, office, "office") >= 0.9
    # anonymous: no preference was learnt for shoppers without a history, both styles show
    assert 0.0 < _style_share(engine, None, "trail") < 1.0


def test_personalization_survives_a_save_and_load(engine):
    engine.save()
    loaded = SearchEngine.load(engine.path)
    assert loaded.personalized_
    trail = loaded.profile(["trail-gear-1", "trail-gear-2"])
    assert _style_share(loaded, trail, "trail") >= 0.9


def test_profile_features_are_missing_without_a_profile(engine):
    q = engine._query("shoes")
    cands, x = engine._features(q, None)
    user = x[:, [engine_col(f) for f in USER_FEATURES]]
    assert np.isnan(user).all()
    prof = engine.profile(["trail-gear-0", "trail-gear-1", "trail-shoe-3", "office-gear-0"])
    cands, x = engine._features(q, None, profile=prof)
    row = {engine.catalog.product_ids[int(d)]: x[j] for j, d in enumerate(cands)}
    f = {name: engine_col(name) for name in USER_FEATURES}
    assert row["trail-shoe-3"][f["user_seen"]] == 1.0 and row["trail-shoe-4"][f["user_seen"]] == 0.0
    assert row["trail-shoe-4"][f["user_top_category"]] == pytest.approx(0.75)
    assert row["trail-shoe-4"][f["user_category"]] == pytest.approx(0.25)  # Trail > Footwear: 1 of 4
    assert row["office-shoe-4"][f["user_brand"]] == pytest.approx(0.25)


def engine_col(name: str) -> int:
    from shelfwise.search._engine import FEATURES

    return FEATURES.index(name)


def test_histories_are_taken_strictly_before_the_search():
    events = {"u1": (np.array([10.0, 20.0, 30.0, 40.0]), ["a", "b", "c", "d"])}
    # the event at the search's own time is not before it
    assert histories_before(events, "u1", 30.0) == ["a", "b"]
    assert histories_before(events, "u1", 100.0, limit=2) == ["c", "d"]
    assert histories_before(events, "u2", 30.0) == [] and histories_before(events, None, 30.0) == []
