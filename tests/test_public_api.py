"""Every package has an explicit public surface, and every name in it exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "shelfwise.datasets",
    "shelfwise.demo",
    "shelfwise.evaluation",
    "shelfwise.features",
    "shelfwise.governance",
    "shelfwise.insights",
    "shelfwise.lifecycle",
    "shelfwise.models",
    "shelfwise.reporting",
    "shelfwise.search",
    "shelfwise.serving",
    "shelfwise.storage",
    "shelfwise.web",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_explicit_and_importable(name):
    mod = importlib.import_module(name)
    assert mod.__all__, name
    for attr in mod.__all__:
        assert hasattr(mod, attr), f"{name}.{attr}"
    assert sorted(mod.__all__) == sorted(set(mod.__all__))
