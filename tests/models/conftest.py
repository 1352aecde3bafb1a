import pytest

from shelfwise.features import Interactions
from tests.models.planted_data import planted_cycles, planted_groups


@pytest.fixture
def groups() -> Interactions:
    return planted_groups()


@pytest.fixture
def cycles() -> Interactions:
    return planted_cycles()
