"""The Python API tests' trained shop (built once per run, `built_once`) and their identity:
nobody acting unless a test says who (SHELFWISE_AS / SHELFWISE_API_KEY of the environment are
set aside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise import Shop
from shelfwise.demo import generate_demo
from tests.conftest import built_once

FAST = {"tune_budget_s": 0, "search_finetune_budget_s": 0, "search_cross_budget_s": 0, "log": None}


def _train_shop(base: Path) -> None:
    generate_demo(base / "data", products=300, users=120, events=6000, seed=5)
    Shop(base / "w").train(base / "data", models=["popularity", "itemknn"], **FAST)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = built_once(tmp_path_factory, "api-shop", _train_shop)
    return base / "data", base / "w"


@pytest.fixture(autouse=True)
def _nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SHELFWISE_AS", "SHELFWISE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
