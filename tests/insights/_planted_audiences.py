"""A planted shop for audiences: 120 heavy kitchen buyers (an order every 4-8 days all year) and
180 light buyers (one to three orders of garden products or books); the known answers follow."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2025, 1, 1)
HEAVY = [f"H{u:03d}" for u in range(120)]
LIGHT = [f"L{u:03d}" for u in range(180)]
CATEGORIES = ["Kitchen > Pans", "Garden > Tools", "Books > Novels"]


def planted_audience_shop(d: Path) -> None:
    rng = np.random.default_rng(7)
    d.mkdir(parents=True)
    with open(d / "products.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "title", "category", "brand", "price"])
        for i in range(30):
            w.writerow(
                [
                    f"P{i:03d}",
                    f"{CATEGORIES[i // 10].split(' > ')[1]} item {i}",
                    CATEGORIES[i // 10],
                    f"B{i % 4}",
                    10 + i,
                ]
            )
    rows: list[list[str]] = []

    def buy(user: str, day: float, product: int) -> None:
        ts = (START + timedelta(days=float(day))).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append([user, f"P{product:03d}", "view", ts, ""])
        rows.append([user, f"P{product:03d}", "purchase", ts, str(10 + product)])

    for u in HEAVY:
        day = rng.uniform(0, 6)
        while day < 364:
            buy(u, day, int(rng.integers(0, 10)))  # kitchen
            day += rng.uniform(4, 8)
    for u in LIGHT:
        for day in np.sort(rng.uniform(0, 364, int(rng.integers(1, 4)))):
            buy(u, day, int(rng.integers(10, 30)))  # garden, books
    rows.sort(key=lambda r: r[3])
    with open(d / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "product_id", "event_type", "timestamp", "value"])
        w.writerows(rows)
