from __future__ import annotations

import csv
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


def test_a_demo_made_today_ends_this_week_with_the_same_shop_shifted(tmp_path):
    """The demo's data ended 2026-09-30 whatever the day: a shop made in December served events
    dated two months after its data, and the insights' as-of (the last event) jumped with the
    first one. `current_end` moves the end on by whole weeks (same weekdays) to before today."""
    from datetime import UTC, datetime, timedelta

    from shelfwise.demo import current_end

    assert current_end(datetime(2026, 12, 5, 9, tzinfo=UTC)) == datetime(2026, 11, 25, tzinfo=UTC)
    assert current_end(datetime(2026, 12, 8, 9, tzinfo=UTC)) == datetime(2026, 12, 2, tzinfo=UTC)
    assert current_end(datetime(2026, 10, 12, 9, tzinfo=UTC)) == datetime(2026, 9, 30, tzinfo=UTC)
    assert current_end(datetime(2026, 10, 13, 9, tzinfo=UTC)) == datetime(2026, 10, 7, tzinfo=UTC)
    assert current_end(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 9, 30, tzinfo=UTC)
    generate_demo(tmp_path / "a", products=200, users=40, events=2000, seed=5, defects=False, faq=False)
    end = datetime(2026, 12, 2, tzinfo=UTC)
    generate_demo(
        tmp_path / "b", products=200, users=40, events=2000, seed=5, defects=False, faq=False, end=end
    )

    def stamps(d):  # ISO strings and epoch seconds or milliseconds, as real exports write them
        with open(tmp_path / d / "events.csv", newline="") as fh:
            got = [r[3] for r in csv.reader(fh)][1:]
        return [
            datetime.fromtimestamp(int(t) / (1000 if len(t) > 11 else 1), UTC)
            if t.isdigit()
            else datetime.fromisoformat(t.replace("Z", "+00:00"))
            for t in got
        ]

    a, b = stamps("a"), stamps("b")
    assert [t + timedelta(weeks=9) for t in a] == b  # the same events, 9 weeks later
    # the last purchases' ratings and reviews come up to 5 days after the end
    assert end - timedelta(days=1) < max(b) < end + timedelta(days=5)
