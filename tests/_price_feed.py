"""A curated shop's first catalog and day 4's price feed, shared by the tests of what a keyed
delivery's load says (`shelfwise ingest`'s lines, `train --append`'s log line)."""

from __future__ import annotations

from pathlib import Path


def price_feed_shop(root: Path) -> tuple[Path, Path]:
    """Folders `day0` (20 products) and `day4` (a price feed: 9 known products and P888888, a
    product not curated, which the feed's rows cannot create: no title)."""
    day0, day4 = root / "day0", root / "day4"
    day0.mkdir()
    day4.mkdir()
    (day0 / "products.csv").write_text(
        "product_id,title,price\n" + "".join(f"P{i:06d},Item {i},{i + 1}.00\n" for i in range(20))
    )
    (day4 / "products.csv").write_text(
        "product_id,price\n" + "".join(f"P{i:06d},{i + 2}.50\n" for i in range(9)) + "P888888,4.99\n"
    )
    return day0, day4
