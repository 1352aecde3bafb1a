import pytest

from tests.models.planted_data import planted_cycles, planted_groups

from shelfwise.features import Interactions


@pytest.fixture
def groups() -> Interactions:
    return planted_groups()


@pytest.fixture
def cycles() -> Interactions:
    return planted_cycles()
