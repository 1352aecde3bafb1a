"""Business rules on lists with a known answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.governance import AuditLog
from shelfwise.serving import Rules, save_rules

NOW = datetime(2026, 6, 1, tzinfo=UTC)
INFO = {
    "A": ("Home > Kitchen", "Acme", True),
    "B": ("Home > Kitchen", "Acme", True),
    "C": ("Home > Kitchen", "Bolt", True),
    "D": ("Toys > Blocks", "Bolt", True),
    "E": ("Toys > Blocks", "Acme", False),  # out of stock
    "F": ("Grocery > Tea", "Cup", True),
    "G": ("Toys > Dolls", "Cup", True),
}
RANKED = ["A", "B", "C", "D", "E", "F", "G"]


def apply(doc, ranked=RANKED, k=5, **kw):
    kw.setdefault("surface", "recommendations")
    return Rules.from_dict(doc).apply(ranked, k, INFO, now=NOW, **kw)


def test_out_of_stock_and_unknown_items_are_filtered():
    assert apply({}, ranked=[*RANKED, "ZZZ"], k=10) == ["A", "B", "C", "D", "F", "G"]
    assert "E" in apply({"filter_out_of_stock": False}, k=10)


def test_pin_boost_bury_hide():
    doc = {
        "items": [
            {"action": "pin", "product_id": "G", "position": 1},
            {"action": "hide", "brand": "bolt"},
            {"action": "bury", "product_id": "A"},
            {"action": "boost", "category": "Grocery", "factor": 10},
        ]
    }
    # G pinned first; C and D (brand Bolt) hidden; F boosted to the top of the rest; A buried last
    assert apply(doc, k=5) == ["G", "F", "B", "A"]


def test_rules_respect_dates_surfaces_queries_and_contexts():
    later = (NOW + timedelta(days=3)).isoformat()
    doc = {
        "items": [
            {"action": "hide", "product_id": "A", "start": later},  # not yet
            {"action": "hide", "product_id": "B", "surfaces": ["search"]},
            {"action": "pin", "product_id": "F", "position": 2, "query": "Tea"},
            {"action": "hide", "product_id": "C", "context": "toys"},
        ]
    }
    assert apply(doc, k=4) == ["A", "B", "C", "D"]
    assert apply(doc, k=4, surface="search", query=" tea ") == ["A", "F", "C", "D"]
    assert apply(doc, k=4, context="Toys > Blocks") == ["A", "B", "D", "F"]
    # a rule's query is compared word by word: spaces inside, tabs and case are not a difference
    two = {"items": [{"action": "pin", "product_id": "F", "position": 1, "query": "Green  Tea"}]}
    for asked in ("green tea", "green  tea", "green\ttea", " GREEN tea "):
        assert apply(two, k=2, surface="search", query=asked) == ["F", "A"], asked
    assert apply(two, k=2, surface="search", query="greentea") == ["A", "B"]


def test_category_diversity():
    assert apply({"max_per_category": 1, "category_level": 1}, k=3) == ["A", "D", "F"]
    # not enough categories: the list is filled from the overflow rather than cut short
    assert apply({"max_per_category": 1, "category_level": 1}, k=5) == ["A", "D", "F", "B", "C"]


def test_repurchase_windows_per_category():
    bought = {"A": (NOW - timedelta(days=3)).timestamp(), "F": (NOW - timedelta(days=10)).timestamp()}
    # default: never again; groceries after 7 days
    doc = {"repurchase_days": {"default": None, "Grocery": 7}}
    assert apply(doc, k=10, purchases=bought) == ["B", "C", "D", "F", "G"]
    doc = {"repurchase_days": {"default": 30, "Grocery": 30}}
    assert apply(doc, k=10, purchases=bought) == ["B", "C", "D", "G"]


@pytest.mark.parametrize(
    "doc",
    [
        {"items": [{"action": "explode", "product_id": "A"}]},
        {"items": [{"action": "pin", "category": "Home"}]},
        {"items": [{"action": "boost", "product_id": "A", "brand": "x"}]},
        {"items": [{"action": "boost", "product_id": "A", "factor": 0}]},
        {"items": [{"action": "hide", "product_id": "A", "start": "soon"}]},
        {"items": [{"action": "hide", "product_id": "A", "colour": "red"}]},
        {"max_per_categry": 3},
        [],
    ],
)
def test_bad_rules_are_clear_errors(doc):
    with pytest.raises(ShelfwiseError):
        Rules.from_dict(doc)


def test_save_rules_versions_keeps_history_and_audits(tmp_path):
    r1 = save_rules(tmp_path, {"max_per_category": 3})
    r2 = save_rules(tmp_path, {"max_per_category": 2})
    assert (r1.version, r2.version) == (1, 2)
    assert Rules.load(tmp_path).max_per_category == 2
    assert (tmp_path / "config" / "rules-history" / "rules-v1.json").exists()
    entries = [e for e in AuditLog(tmp_path).entries() if e["action"] == "rules.change"]
    assert [e["details"]["version"] if "details" in e else e["version"] for e in entries] == [1, 2]


def test_a_pin_beyond_the_page_waits_for_its_page():
    """A pin at position 12 is not at the end of pages 1 and 2 (it was, on every page shorter
    than 12, and pushed a product off each); paging through the list shows every product once
    and the pin at 12. A list that ends before 12 ends with the pin."""
    ranked = [f"R{i:02d}" for i in range(30)]
    info = {p: ("Home > Kitchen", "Acme", True) for p in [*ranked, "PIN"]}
    rules = Rules.from_dict({"items": [{"action": "pin", "product_id": "PIN", "position": 12}]})

    def page(offset: int, k: int) -> list[str]:
        return rules.apply(ranked, offset + k, info, surface="search", now=NOW)[offset:]

    whole = page(0, 30)
    assert whole.index("PIN") == 11 and whole[:11] == ranked[:11]
    paged = page(0, 5) + page(5, 5) + page(10, 5) + page(15, 5)
    assert paged == whole[:20], paged
    short = rules.apply(ranked[:8], 10, info, surface="search", now=NOW)
    assert short == [*ranked[:8], "PIN"]
    # a pin that the page's own filter leaves out is not on it
    assert "PIN" not in rules.apply(ranked, 20, info, surface="search", now=NOW, pin_allowed=lambda p: False)
