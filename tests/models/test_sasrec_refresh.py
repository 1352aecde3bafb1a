"""SASRec's weight average (`ema`) and `refresh` (going on training a fit on newer steps, what
`train`'s refit serves): known answers on planted sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shelfwise.evaluation import ndcg_at_10
from shelfwise.features import Interactions, leave_last_out
from shelfwise.models import SASRec
from shelfwise.models._sasrec import _WeightAverage
from tests.models.planted_data import planted_cycles

SMALL = {
    "dim": 16,
    "heads": 1,
    "layers": 1,
    "max_len": 10,
    "batch_size": 32,
    "dropout": 0.0,
    "lr": 5e-3,
    "device": "cpu",
}


def test_the_weight_average_is_a_running_mean_then_exponential():
    net = torch.nn.Linear(1, 1, bias=False)
    average = _WeightAverage(net, decay=0.5)  # type: ignore[arg-type]
    for value in (1.0, 3.0, 5.0):
        with torch.no_grad():
            net.weight.fill_(value)
        average.update()
    # step 1: the weights themselves (not the initial ones); then min(0.5, 1 - 1/n) per step
    assert average.average[0].item() == pytest.approx(0.5 * (0.5 * 1 + 0.5 * 3) + 0.5 * 5)
    average.swap()
    assert net.weight.item() == pytest.approx(3.5) and average.average[0].item() == 5.0
    average.swap()
    assert net.weight.item() == 5.0


def test_the_average_is_validated_and_kept_while_training_follows_the_raw_weights():
    inter = planted_cycles(n_users=200, n_items=30, length=10)
    split = leave_last_out(inter)

    def fit(ema: float) -> tuple[SASRec, list[list[np.ndarray]]]:
        seen: list[list[np.ndarray]] = []
        scores = iter([1.0, 0.5, 0.4])  # the first check is the best: its weights are kept

        def validate(m: SASRec) -> float:
            seen.append([p.detach().numpy().copy() for p in m.net_.parameters()])
            return next(scores)

        model = SASRec(epochs=6, eval_every=2, patience=5, ema=ema, serving="torch", **SMALL)
        return model.fit(split.train, validation=validate), seen

    averaged, seen_avg = fit(0.9)
    raw, seen_raw = fit(0.0)
    # the average does not change the training: same losses epoch by epoch
    assert [h["loss"] for h in averaged.history_] == [h["loss"] for h in raw.history_]
    # what is validated is the average, not the raw weights of the same epoch
    assert any(not np.array_equal(a, b) for a, b in zip(seen_avg[0], seen_raw[0], strict=True))
    assert averaged.best_epoch_ == raw.best_epoch_ == 2
    kept = [p.detach().numpy() for p in averaged.net_.parameters()]
    assert all(np.array_equal(a, b) for a, b in zip(kept, seen_avg[0], strict=True))


def _jump_at_the_end(n_users: int = 300, n_items: int = 30) -> Interactions:
    """Users walk i -> i+1 for nine steps, then jump to (7 * last + 3) mod n (never one step
    on), then step on once: leave-last-out holds the jump out of the fit (validation target)."""
    users, items, ts = [], [], []
    for u in range(n_users):
        walk = [(u + t) % n_items for t in range(9)]
        jump = (7 * walk[-1] + 3) % n_items
        if jump == (walk[-1] + 1) % n_items:
            jump = (jump + 5) % n_items
        for t, i in enumerate([*walk, jump, (jump + 1) % n_items]):
            users.append(f"u{u}")
            items.append(f"i{i:03d}")
            ts.append(t)
    return Interactions.from_arrays(users, items, ts)


def test_refresh_learns_the_steps_the_fit_never_saw():
    split = leave_last_out(_jump_at_the_end())
    model = SASRec(epochs=15, **SMALL).fit(split.train)
    before = ndcg_at_10(model, split.validation)  # the jump: nowhere in the fit's sequences
    fitted = [p.detach().clone() for p in model.net_.parameters()]
    stale = model._score(np.arange(30), split.test.history)  # through the fit's int8 export
    model.refresh(split.test.history, 15)
    after = ndcg_at_10(model, split.validation)
    assert before < 0.2 < 0.6 < after, (before, after)
    assert model.refreshed_epochs_ == 15
    # scored as served: through a new int8 export of the refreshed network, not the fit's
    users = np.arange(30)
    torch_scores = model._torch_score([split.test.history.sequence(int(u)) for u in users])
    served = model._score(users, split.test.history)
    assert (served.argmax(1) == torch_scores.argmax(1)).mean() > 0.9
    assert (stale.argmax(1) == torch_scores.argmax(1)).mean() < 0.5
    # the same fit, data and epochs give the same refreshed network
    again = SASRec(epochs=15, **SMALL).fit(split.train)
    assert all(torch.equal(a, b) for a, b in zip(fitted, again.net_.parameters(), strict=True))
    again.refresh(split.test.history, 15)
    assert all(
        torch.equal(a, b) for a, b in zip(model.net_.parameters(), again.net_.parameters(), strict=True)
    )


def test_refresh_needs_the_network_and_the_same_items(tmp_path, monkeypatch):
    split = leave_last_out(planted_cycles(n_users=60, n_items=20, length=8))
    model = SASRec(epochs=1, **SMALL).fit(split.train)
    other = planted_cycles(n_users=60, n_items=25, length=8)
    with pytest.raises(ValueError, match="same item index"):
        model.refresh(other, 1)
    model.save(tmp_path / "m")
    monkeypatch.delenv("SHELFWISE_SASREC_SCORING", raising=False)
    loaded = SASRec.load(tmp_path / "m", split.train)  # scores through ONNX: no network
    with pytest.raises(RuntimeError, match="needs the network"):
        loaded.refresh(split.test.history, 1)


def test_the_refit_cap_stops_what_follows_and_is_reported_once():
    """A refit past its cap starts nothing more (SASRec's refresh, the fusion's statistics
    included) and the run's caps say so once, naming what it stopped before."""
    import time

    from shelfwise.lifecycle._train import _Caps, _refit_on_all

    class Slow:
        def __init__(self) -> None:
            self.fits = 0

        def fit(self, inter: Interactions) -> None:
            self.fits += 1
            time.sleep(0.05)

    inter = planted_cycles(n_users=40, n_items=20, length=6)
    sasrec = SASRec(epochs=1, **SMALL).fit(inter)
    slow, later, fusion = Slow(), Slow(), Slow()
    models = {"itemknn": slow, "ease": later, "sasrec": sasrec, "fusion": fusion}
    caps = _Caps(lambda msg: None)
    out = _refit_on_all(models, inter, {}, 0.01, lambda msg: None, None, caps, sasrec_refresh_epochs=1)  # type: ignore[arg-type]
    assert out["models"] == ["itemknn"] and slow.fits == 1 and later.fits == fusion.fits == 0
    assert not hasattr(sasrec, "refreshed_epochs_")
    assert len(caps) == 1 and caps[0]["reached"] == "stopped before ease; refit: itemknn"
    # within the cap: every model, SASRec refreshed, the fusion last
    caps = _Caps(lambda msg: None)
    out = _refit_on_all(models, inter, {}, 600.0, lambda msg: None, None, caps, sasrec_refresh_epochs=1)  # type: ignore[arg-type]
    assert out["models"] == ["itemknn", "ease", "sasrec", "fusion"] and caps == []
    assert sasrec.refreshed_epochs_ == 1
