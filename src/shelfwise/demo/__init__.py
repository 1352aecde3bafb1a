"""The demo shop: a realistic synthetic store with known, recorded defects."""

from ._generator import CATEGORY_TREE, DemoShop, current_end, generate_demo

__all__ = ["CATEGORY_TREE", "DemoShop", "current_end", "generate_demo"]
