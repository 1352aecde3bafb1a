"""A seed gives the same SASRec bit for bit from run to run on several CPU threads, with the
sampled softmax (many items) as with the full one, and with the LiGR block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shelfwise.models import SASRec
from tests.models.planted_data import planted_cycles


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the nondeterminism this guards against needs more than one thread
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("block", ["transformer", "ligr"])
def test_a_seed_gives_the_same_model_every_run(two_threads, block):
    inter = planted_cycles(n_users=1500, n_items=2000, length=20)

    def fit() -> tuple[list[float], list[np.ndarray]]:
        model = SASRec(
            epochs=2, dim=32, heads=2, layers=1, max_len=12, batch_size=128, dropout=0.2,
            negatives=512, full_softmax_items=100, block=block, serving="torch",
        )  # fmt: skip
        model.fit(inter)
        return [h["loss"] for h in model.history_], [
            p.detach().numpy().copy() for p in model.net_.parameters()
        ]

    (loss_a, params_a), (loss_b, params_b) = fit(), fit()
    assert loss_a == loss_b
    assert all(np.array_equal(a, b) for a, b in zip(params_a, params_b, strict=True))
