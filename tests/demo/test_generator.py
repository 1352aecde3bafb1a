from __future__ import annotations

import json
import time

from shelfwise.demo import generate_demo


def test_same_seed_same_shop_and_realistic_content(tmp_path):
    a = generate_demo(tmp_path / "a", products=300, users=80, events=4000, seed=5)
    generate_demo(tmp_path / "b", products=300, users=80, events=4000, seed=5)
    for f in ("products.csv", "events.csv", "users.csv", "queries.csv", "judgments.csv", "defects.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    products = (tmp_path / "a" / "products.csv").read_bytes()
    text = products.decode("utf-8", errors="replace")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text)  # a Chinese part of the catalog
    assert " > " in text  # category paths
    try:
        products.decode("utf-8")
        mixed = False
    except UnicodeDecodeError:
        mixed = True
    assert mixed  # some lines are latin-1, as in real exports
    events = (tmp_path / "a" / "events.csv").read_text(encoding="utf-8", errors="replace").splitlines()
    kinds = {line.split(",")[2] for line in events[1:] if line.count(",") >= 7}
    assert {"view", "click", "add_to_cart", "purchase", "rating", "search"} <= kinds
    manifest = json.loads((tmp_path / "a" / "defects.json").read_text())
    assert {d.get("reason") for d in manifest["defects"]} >= {"bot_traffic", "duplicate_row", "malformed_row"}
    assert a.events >= 4000


def test_default_size_is_fast_enough_for_the_demo(tmp_path):
    t0 = time.perf_counter()
    shop = generate_demo(tmp_path / "d", products=5000, users=2000, events=200_000, seed=7)
    assert shop.events >= 200_000
    assert time.perf_counter() - t0 < 60
