"""SASRec-style transformer sequence recommender ("the large model" of shelfwise).

Causal self-attention over each user's recent items predicts the next item at every position,
trained with full-softmax cross-entropy over the catalog (Klenitskiy & Vasilev 2023: CE beats
the original binary loss by a wide margin) or sampled softmax for very large catalogs.
Item embeddings are tied between input and output.

With `item_text`, each item's vector is its learned id embedding plus a learned projection of
its frozen text embedding (the shipped MiniLM over its title): items that share words share
signal, and an item with no training interaction (a new product) is represented by its text
alone, so it can still be recommended after the items it reads like.

Serving: `save` also exports what a request runs (history -> a score per item) to ONNX,
int8-quantized: weights and item vectors stored as int8, one scale per item in the final
product (`serving="onnx-int8"`, the default); a loaded model then scores through onnxruntime and
this module never imports torch (the network lives in `_sasrec_net`). `serving="onnx"` keeps the
graph in float32, `serving="torch"` exports nothing; `SHELFWISE_SASREC_SCORING=torch` makes a
loaded model score with torch whatever its bundle holds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

import numpy as np

from ..features import Fold, Interactions
from ..features._text_encoder import adamw
from ._base import IncompatibleModel, Recommender, load_state, save_state

if TYPE_CHECKING:
    import torch

    from ._sasrec_net import SASRecNet

__all__ = ["SERVING", "SASRec", "SASRecConfig", "attribute_matrix"]

#: what a validation is: a fold (scored by NDCG@10 over its users) or model -> metric
Validation = Fold | Callable[[Recommender], float]


@dataclass
class SASRecConfig:
    """The network's settings: `SASRec`'s hyperparameters, as one value for `SASRecNet`."""

    max_len: int = 50  # most recent items a user is represented by
    dim: int = 64  # embedding and hidden size
    # the eSASRec benchmark's Amazon setting (1 block, 1 head, dropout 0.2, 256 negatives, lr
    # 1e-3) needs its 200 epochs: at lr 2e-3 it stopped early after 39 with test NDCG@10 0.0419
    # on Beauty, below these settings after 20 (0.0441)
    layers: int = 2  # transformer blocks
    heads: int = 2  # attention heads per block
    dropout: float = 0.3  # on embeddings, attention and feed-forward
    # "transformer": torch's pre-norm encoder layer; "ligr": eSASRec's LiGR block (pre-norm, the
    # attention and a SwiGLU feed-forward added through learned sigmoid gates)
    block: str = "transformer"
    ff_mult: int = 2  # feed-forward width, in multiples of dim
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW L2 (decoupled)
    batch_size: int = 128  # users per step
    epochs: int = 200  # epochs at most (the budget); early stopping usually ends sooner
    patience: int = 3  # validation checks without improvement before stopping
    # each check without improvement multiplies the learning rate by this (1: constant): a high
    # rate learns fast, the lower ones then settle in a minimum a constant one jumps over (on
    # Beauty, halving 4e-3 at the first plateau took validation NDCG@10 from 0.046 to 0.051 in
    # one run; not yet measured on the test fold, so off by default)
    lr_decay: float = 1.0
    eval_every: int = 5  # epochs between validation checks
    # "ce": full softmax; "sampled": softmax over the positive and `negatives` uniform negatives
    # shared by the batch (uniform: the logQ correction is a constant and drops out); "auto":
    # full softmax up to `full_softmax_items` items, sampled above (on 2 CPU cores full softmax
    # over 12k items costs ~0.15 s per 1k positions; 2048 negatives cost ~6x less)
    loss: str = "auto"
    negatives: int = 2048
    full_softmax_items: int = 4096
    # a safety cap, not the budget: training that runs past it stops at the end of the epoch
    # (the result then depends on the machine's speed; `stopped_by_` says so). None: no cap
    max_seconds: float | None = None
    seed: int = 0
    device: str = "auto"  # "auto" takes a GPU when there is one
    item_text: bool = False  # add projected text embeddings (`fit(item_embeddings=...)`)
    # add learned vectors of each item's attributes (`fit(item_attributes=...)`: category levels,
    # brand). On Beauty (S3-Rec's 637 anonymized brand and category attributes, dropout 0.5,
    # one thread): validation NDCG@10 0.0589 against 0.0547 without, test 0.0479 against 0.0466
    # (benchmarks/sasrec-attributes.json, sasrec-dropout05.json; the test intervals overlap)
    item_attributes: bool = False
    # validate, keep and serve an exponential moving average of the weights (this decay per
    # step; 0: off, the weights as trained). The average of the last few epochs' weights sits
    # nearer a flat minimum than any one of them, and training goes on with the raw weights
    ema: float = 0.0


#: the transformer blocks SASRec stacks (see `SASRecConfig.block`)
BLOCKS = ("transformer", "ligr")
#: how a saved model scores once loaded: ONNX graph in int8, ONNX in float32, torch
SERVING = ("onnx-int8", "onnx", "torch")
#: the environment variable that makes a loaded SASRec score with torch (`torch`)
SCORING_ENV = "SHELFWISE_SASREC_SCORING"
TORCH_DIR, ONNX_DIR = "torch", "onnx"  # beside state.pkl: the network; the serving graph + vectors
QUERY_ONNX, ONNX_META = "query.onnx", "onnx.json"


def __getattr__(name: str) -> Any:
    # SASRecNet lived here until 0.13: bundles pickled before name it from this module
    if name == "SASRecNet":
        from ._sasrec_net import SASRecNet

        return SASRecNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: attribute values SASRec learns a vector for at most (the most held ones)
MAX_ATTRIBUTE_VALUES = 50_000


def attribute_matrix(
    values: Sequence[Iterable[str]], min_items: int = 2, max_values: int = MAX_ATTRIBUTE_VALUES
) -> Any:
    """Items x attribute values as a scipy CSR matrix for `fit(item_attributes=...)`: one row
    per item (in the interactions' item order) with its values (a brand, each level of its
    category path) that at least `min_items` items hold (a value of one item shares nothing),
    the `max_values` most held at most, each row weighted 1 / sqrt(its count); None when no
    value is shared."""
    from collections import Counter

    import scipy.sparse as sp

    rows = [sorted(set(v)) for v in values]
    held = Counter(a for r in rows for a in r)
    shared = sorted((a for a, n in held.items() if n >= min_items), key=lambda a: (-held[a], a))
    vocab = {a: j for j, a in enumerate(sorted(shared[:max_values]))}
    if not vocab:
        return None
    indptr, indices, data = [0], [], []
    for r in rows:
        cols = [vocab[a] for a in r if a in vocab]
        indices += cols
        data += [1.0 / np.sqrt(len(cols))] * len(cols) if cols else []
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.array(data, np.float32), np.array(indices, np.int64), np.array(indptr, np.int64)),
        shape=(len(rows), len(vocab)),
    )


def _length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of users with similar sequence lengths, in random order: most users have short
    histories, so a batch padded to its longest member wastes little compute."""
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


SHARD_MIN_HISTORIES = 64  # `_OnnxScorer.score` shares out histories from this many a worker


def _left_pad(seqs: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length), np.int64)
    for r, s in enumerate(seqs):
        s = s[-length:]
        if len(s):
            out[r, length - len(s) :] = s + 1
    return out


class SASRec(Recommender):
    """Hyperparameters: see `SASRecConfig` (the same names). `epochs` is the training budget,
    counted, so that the same data and seed give the same model on any machine; `max_seconds`
    only caps it."""

    name = "sasrec"
    sequential = True
    scoring_batch_size = 512
    transient = ("interactions_", "onnx_")  # onnx_: the loaded ONNX scorer, files of its own
    onnx_: _OnnxScorer  # set by `load` when the model scores through ONNX (no net_ then)

    def __init__(
        self,
        max_len: int = 50,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.3,
        block: str = "transformer",
        ff_mult: int = 2,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 128,
        epochs: int = 200,
        patience: int = 3,
        lr_decay: float = 1.0,
        eval_every: int = 5,
        loss: str = "auto",
        negatives: int = 2048,
        full_softmax_items: int = 4096,
        max_seconds: float | None = None,
        seed: int = 0,
        device: str = "auto",
        item_text: bool = False,
        item_attributes: bool = False,
        ema: float = 0.0,
        serving: str = "onnx-int8",
    ):
        self.max_len = max_len
        self.dim = dim
        self.layers = layers
        self.heads = heads
        self.dropout = dropout
        self.block = block
        self.ff_mult = ff_mult
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.lr_decay = lr_decay
        self.eval_every = eval_every
        self.loss = loss
        self.negatives = negatives
        self.full_softmax_items = full_softmax_items
        self.max_seconds = max_seconds
        self.seed = seed
        self.device = device
        self.item_text = item_text
        self.item_attributes = item_attributes
        self.ema = ema
        self.serving = serving

    @classmethod
    def upgrade_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        # before 0.10 the parameters were a config dict with a time budget (a cap now)
        params = dict(params)
        if "time_budget_s" in params:
            params["max_seconds"] = params.pop("time_budget_s")
        return params

    @property
    def cfg(self) -> SASRecConfig:
        return SASRecConfig(**{f.name: getattr(self, f.name) for f in fields(SASRecConfig)})

    def _device(self) -> torch.device:
        import torch

        want = self.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(want)

    def fit(
        self,
        interactions: Interactions,
        *,
        item_embeddings: np.ndarray | None = None,
        item_attributes: Any = None,
        validation: Validation | None = None,
    ) -> Self:
        """Train for `epochs` epochs; with `validation` (a fold, or model -> metric, higher is
        better) check it every `eval_every` epochs, stop after `patience` checks without
        improvement and keep the best. `item_embeddings` (n_items, d), in the interactions'
        item order, are read when `item_text` is set; `item_attributes` (a scipy sparse matrix,
        n_items x attribute values, see `attribute_matrix`) when `item_attributes` is set."""
        self.n_items_ = interactions.n_items
        self.interactions_ = interactions
        self._train(interactions, item_embeddings, _as_metric(validation), item_attributes)
        return self

    def _fit(self, interactions: Interactions) -> None:  # (fit does the work)
        self._train(interactions, None, None)

    def _train(
        self,
        interactions: Interactions,
        text: np.ndarray | None,
        validate: Callable[[Recommender], float] | None,
        attributes: Any = None,
    ) -> None:
        import torch

        from ._sasrec_net import SASRecNet

        if self.serving not in SERVING:
            raise ValueError(f"SASRec(serving={self.serving!r}): expected one of {', '.join(SERVING)}")
        if self.block not in BLOCKS:
            raise ValueError(f"SASRec(block={self.block!r}): expected one of {', '.join(BLOCKS)}")
        # a refit validates (and scores) its own network, not the previous fit's graph
        vars(self).pop("onnx_", None)
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        dev = self._device()
        if cfg.item_text:
            if text is None or len(text) != interactions.n_items:
                raise ValueError("SASRec(item_text=True).fit needs item_embeddings= with one row per item")
            text = np.asarray(text, np.float32)
        else:
            text = None
        if cfg.item_attributes:
            if attributes is None or attributes.shape[0] != interactions.n_items:
                raise ValueError(
                    "SASRec(item_attributes=True).fit needs item_attributes= with one row per item"
                )
        else:
            attributes = None
        net = SASRecNet(interactions.n_items, cfg, text, attributes).to(dev)
        if text is not None or attributes is not None:
            # items with no training interaction are represented by their text and attributes;
            # one with neither keeps its id vector (pushed down as a negative), not a zero one
            # that would score 0 for everyone
            seen = np.asarray(interactions.item_counts()).ravel() > 0
            if text is None:
                seen |= np.diff(attributes.tocsr().indptr) == 0
            cast(torch.Tensor, net.seen)[1:, 0] = torch.from_numpy(seen.astype(np.float32)).to(dev)
        self.net_ = net
        opt = adamw(net.parameters(), cfg.lr, cfg.weight_decay)  # fused: one pass a tensor
        averaged = _WeightAverage(net, cfg.ema) if cfg.ema > 0 else None
        seqs, lengths = self._training_sequences(interactions)
        start = time.monotonic()
        best, best_state, bad = -np.inf, None, 0
        self.lr_ = cfg.lr  # lowered by `lr_decay`; a refresh goes on at it
        self.best_epoch_: int | None = None  # the epoch of the kept weights (with a validation)
        self.history_: list[dict[str, float]] = []
        self.stopped_by_ = "epochs"  # the budget ran out (no early stop, no cap)
        for epoch in range(1, cfg.epochs + 1):
            loss = self._epoch(opt, seqs, lengths, rng, averaged)
            rec = {"epoch": epoch, "loss": loss, "seconds": time.monotonic() - start}
            capped = cfg.max_seconds is not None and time.monotonic() - start > cfg.max_seconds
            if validate is not None and (epoch % cfg.eval_every == 0 or capped or epoch == cfg.epochs):
                net.eval()
                if averaged is not None:
                    averaged.swap()  # validated (and kept) with the averaged weights
                score = float(validate(self))
                rec["validation"] = score
                improved = score > best
                if improved:
                    best, bad, self.best_epoch_ = score, 0, epoch
                    self.lr_ = opt.param_groups[0]["lr"]  # the rate the kept weights ended with
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                if averaged is not None:
                    averaged.swap()  # training goes on from the raw weights
                if not improved:
                    bad += 1
                    for group in opt.param_groups:
                        group["lr"] *= cfg.lr_decay
            self.history_.append(rec)
            if bad >= cfg.patience:
                self.stopped_by_ = "early stopping"
                break
            if capped and epoch < cfg.epochs:
                self.stopped_by_ = "time cap"
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:  # no validation: the model is where training ended (its average, with one)
            self.lr_ = opt.param_groups[0]["lr"]
            if averaged is not None:
                averaged.swap()
        self.epochs_ = len(self.history_)
        self.best_validation_ = None if best == -np.inf else best
        self._serve_from(net)

    def _serve_from(self, net: SASRecNet) -> None:
        # from here on the model scores as it will be served: through its (int8) export, so that
        # train's test numbers, the fusion's inputs, `evaluate` on the saved fit and serving all
        # read the same scores (torch and int8 differ in the last digits and the odd near-tie)
        net.eval()
        if self.serving != "torch":
            self.onnx_ = _OnnxScorer.of(net, int8=self.serving == "onnx-int8")
        else:
            vars(self).pop("onnx_", None)

    def refresh(self, interactions: Interactions, epochs: int) -> Self:
        """Go on training the fitted network for `epochs` more epochs over `interactions`
        (every step up to now, in the fit's item index), with the fit's settings (a new AdamW
        at the rate the kept weights ended with) and no validation: the latest steps, which a
        leave-last-out validation held out of the fit, are learnt in a few epochs instead of a
        whole new training (what `train`'s refit for serving does). Items are represented as in
        the fit (one first seen here keeps its text and attribute vector). Seeded: on a CPU, the
        same fit, data and epochs give the same model."""
        import torch

        net = getattr(self, "net_", None)
        if net is None:
            raise RuntimeError(
                f"SASRec.refresh needs the network: fit it, or load it with {SCORING_ENV}=torch"
            )
        if interactions.n_items != self.n_items_:
            raise ValueError(
                f"SASRec.refresh: {interactions.n_items} items, the fit had {self.n_items_} "
                "(refresh on the same item index; a new catalog needs a new fit)"
            )
        vars(self).pop("onnx_", None)  # scores with the network while it trains
        torch.manual_seed(self.seed + 1)
        rng = np.random.default_rng([self.seed, 1])
        net = self.net_ = net.to(self._device())
        # the rate the kept weights ended with (lowered by `lr_decay` in the fit), a new AdamW
        opt = adamw(net.parameters(), getattr(self, "lr_", self.lr), self.weight_decay)
        averaged = _WeightAverage(net, self.ema) if self.ema > 0 else None
        seqs, lengths = self._training_sequences(interactions)
        for _ in range(epochs):
            self._epoch(opt, seqs, lengths, rng, averaged)
        if averaged is not None:
            averaged.swap()
        self.interactions_ = interactions
        self.refreshed_epochs_ = getattr(self, "refreshed_epochs_", 0) + epochs
        self._serve_from(net)
        return self

    def _training_sequences(self, interactions: Interactions) -> tuple[list[np.ndarray], np.ndarray]:
        """One training example per user: its last max_len + 1 items (inputs and shifted
        targets); users with a single step have nothing to predict."""
        seqs = [interactions.sequence(u)[-(self.max_len + 1) :] for u in range(interactions.n_users)]
        seqs = [s for s in seqs if len(s) >= 2]
        return seqs, np.array([len(s) for s in seqs], np.int64)

    def _epoch(
        self,
        opt: Any,
        seqs: list[np.ndarray],
        lengths: np.ndarray,
        rng: np.random.Generator,
        averaged: _WeightAverage | None,
    ) -> float:
        """One pass over the sequences in length buckets; the mean loss."""
        import torch

        net, dev = self.net_, self._device()
        net.train()
        total, steps = 0.0, 0
        for idx in _length_buckets(lengths, self.batch_size, rng):
            batch = [seqs[i] for i in idx]
            length = max(len(s) for s in batch) - 1
            arr = _left_pad(batch, length + 1)  # (B, L+1)
            inp = torch.from_numpy(arr[:, :-1]).to(dev)  # (B, L)
            tgt = torch.from_numpy(arr[:, 1:]).to(dev)  # (B, L)
            keep = (tgt > 0) & (inp > 0)  # positions with an input item and a next item
            y = tgt[keep] - 1  # (N,)
            # bfloat16 on a GPU (about twice the throughput, no loss scaling needed); the
            # CPU path stays float32 so that a seed gives the same model on every machine
            with torch.autocast("cuda", torch.bfloat16, enabled=dev.type == "cuda"):
                h = net(inp)[keep]  # (N, D)
                loss = self._loss(net, h, y, rng, dev)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if averaged is not None:
                averaged.update()
            total += loss.item()
            steps += 1
        return total / max(steps, 1)

    def _loss(
        self, net: SASRecNet, h: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, dev: torch.device
    ) -> torch.Tensor:
        import torch
        from torch import nn

        full = self.loss == "ce" or (self.loss == "auto" and self.n_items_ <= self.full_softmax_items)
        if full:
            return nn.functional.cross_entropy(net.logits(h), y)
        # sampled softmax: the positive against shared uniform negatives, logQ-free (uniform)
        neg = torch.from_numpy(rng.integers(0, self.n_items_, self.negatives)).to(dev)
        w = net.item_vectors()[1:]
        # rows through `embedding`, not `w[y]`: indexing's backward accumulates the gradient of a
        # row drawn twice across threads in no fixed order (the last bits, and so the model,
        # then differed from run to run on two CPU threads); embedding's backward sums in order
        pos_logit = (h * nn.functional.embedding(y, w)).sum(-1, keepdim=True)  # (N, 1)
        neg_logit = h @ nn.functional.embedding(neg, w).T  # (N, negatives)
        neg_logit = neg_logit.masked_fill(neg.unsqueeze(0) == y.unsqueeze(1), -1e9)
        logits = torch.cat([pos_logit, neg_logit], dim=1)
        return nn.functional.cross_entropy(logits, torch.zeros(len(y), dtype=torch.long, device=dev))

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        seqs = [history.sequence(int(u)) for u in users]
        scorer = getattr(self, "onnx_", None)  # after fit or load; during training, the network
        out = self._torch_score(seqs) if scorer is None else scorer.score(seqs)
        empty = np.array([len(s) == 0 for s in seqs], bool)
        out[empty] = 0.0  # no history: no opinion (callers fall back to cold start)
        return out

    def _torch_score(self, seqs: list[np.ndarray]) -> np.ndarray:
        import torch

        dev = next(self.net_.parameters()).device
        length = max([min(len(s), self.max_len) for s in seqs] + [1])
        with torch.no_grad():
            arr = torch.from_numpy(_left_pad(seqs, length)).to(dev)
            h = self.net_(arr)[:, -1]  # (B, D): the state after the most recent item
            return cast(np.ndarray, self.net_.logits(h).float().cpu().numpy())

    # persistence: params.json and state.pkl (what was learnt besides the network), the network
    # pickled apart in torch/ (read only to score with torch) and, unless serving="torch", the
    # ONNX query graph and item vectors in onnx/ (what serving reads)
    def save(self, path: Any) -> None:
        path = Path(path)
        net = getattr(self, "net_", None)
        if net is None:
            raise RuntimeError(
                f"{path}: a SASRec loaded to score through ONNX has no network to save; load it with "
                f"{SCORING_ENV}=torch to save it"
            )
        net = self.net_ = net.cpu()
        try:
            del self.net_  # saved apart, below
            super().save(path)
        finally:
            self.net_ = net
        (path / TORCH_DIR).mkdir(exist_ok=True)
        save_state({"net_": net}, path / TORCH_DIR)
        target = path / ONNX_DIR
        shutil.rmtree(target, ignore_errors=True)
        scorer = getattr(self, "onnx_", None)
        if self.serving != "torch":
            int8 = self.serving == "onnx-int8"
            if scorer is not None and scorer.int8 == int8:  # the graph it has scored with since fit
                scorer.write(target)
            else:  # loaded with torch scoring, or its serving changed since fit
                _export(net, target, int8=int8)

    @classmethod
    def load(cls, path: str | Path, interactions: Interactions) -> Self:
        path = Path(path)
        model = super().load(path, interactions)  # a bundle before 0.13: the network in state.pkl
        if getattr(model, "net_", None) is not None:
            return model
        if os.environ.get(SCORING_ENV, "").lower() != "torch" and (path / ONNX_DIR / ONNX_META).exists():
            model.onnx_ = _OnnxScorer(path / ONNX_DIR)
            return model
        if not (path / TORCH_DIR / "state.pkl").exists():
            raise IncompatibleModel(f"{path}: SASRec saved with neither its network nor an ONNX export")
        vars(model).update(load_state(path / TORCH_DIR))
        return model

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)


class _WeightAverage:
    """An exponential moving average of a network's parameters: the plain mean of the weights
    after each step until 1 / (1 - `decay`) steps, then `decay` per step (so neither the
    initial weights nor the first steps weigh on it for long).
    `swap()` exchanges the average and the trained weights in place, in both directions."""

    def __init__(self, net: SASRecNet, decay: float):
        params = [p for p in net.parameters() if p.requires_grad]
        self.params = params
        self.average = [p.detach().clone() for p in params]
        self.decay = decay
        self.steps = 0

    def update(self) -> None:
        import torch

        self.steps += 1
        decay = min(self.decay, 1 - 1 / self.steps)
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1 - decay)

    def swap(self) -> None:
        import torch

        with torch.no_grad():
            for p, a in zip(self.params, self.average, strict=True):
                held = p.detach().clone()
                p.copy_(a)
                a.copy_(held)


def _export(net: SASRecNet, target: Path, int8: bool) -> None:
    """The serving files of `net` in `target`: the request graph (int8 or float32) and onnx.json
    saying which."""
    from ._sasrec_net import export_query, quantize_query

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fp32 = export_query(net, tmp / ("query-fp32.onnx" if int8 else QUERY_ONNX))
    if int8:
        quantize_query(fp32, tmp / QUERY_ONNX)
        fp32.unlink()
    meta = {
        "max_len": net.cfg.max_len,
        "n_items": net.item_emb.num_embeddings - 1,
        "weights": "int8 (item vectors: one scale per item)" if int8 else "float32",
    }
    (tmp / ONNX_META).write_text(json.dumps(meta))
    os.replace(tmp, target)


class _OnnxScorer:
    """Scores through the exported request graph (onnxruntime): no torch. The session is opened
    on first use in each process (a server loads its bundle before it forks). Made from the saved
    files (`load`) or, at the end of a fit, from the network (`of`: the graph's bytes kept until
    the model is saved)."""

    def __init__(self, directory: Path, graph: bytes | None = None):
        self.directory = directory
        self.meta = json.loads((directory / ONNX_META).read_text())
        self.max_len = int(self.meta["max_len"])
        self.int8 = str(self.meta["weights"]).startswith("int8")
        self._graph = graph
        self._session: Any = None
        self._workers: list[Any] = []  # single-threaded sessions for `score`'s shards
        self._pid = -1

    @classmethod
    def of(cls, net: SASRecNet, int8: bool) -> _OnnxScorer:
        with tempfile.TemporaryDirectory(prefix="shelfwise-sasrec-") as tmp:
            target = Path(tmp) / ONNX_DIR
            _export(net, target, int8)
            scorer = cls(target, (target / QUERY_ONNX).read_bytes())
        scorer.directory = Path()  # gone: the bytes are the graph now
        return scorer

    def write(self, target: Path) -> None:
        """The graph and its description into `target` (a saved model's onnx/)."""
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        graph = self._graph_bytes()
        (tmp / QUERY_ONNX).write_bytes(graph)
        (tmp / ONNX_META).write_text(json.dumps(self.meta))
        os.replace(tmp, target)

    def __getstate__(self) -> dict[str, Any]:
        # the graph travels with a copy (a Spark broadcast reaches executors on other hosts,
        # where the driver's bundle path does not exist)
        graph = self._graph_bytes()
        return {**vars(self), "_graph": graph, "_session": None, "_workers": [], "_pid": -1}

    def _source(self) -> bytes | Path:
        """The graph: its bytes when held, else its file."""
        return self._graph if self._graph is not None else self.directory / QUERY_ONNX

    def _graph_bytes(self) -> bytes:
        source = self._source()
        return source if isinstance(source, bytes) else source.read_bytes()

    def session(self) -> Any:
        if self._session is None or self._pid != os.getpid():
            from ..features._text_encoder import onnx_session

            source = self._source()
            self._session, self._workers, self._pid = onnx_session(source), [], os.getpid()
        return self._session

    def _worker_sessions(self, n: int) -> list[Any]:
        """`n` single-threaded sessions of the graph: made once per process and kept (a
        shorter batch that needs fewer uses the first ones; more are added when needed)."""
        self.session()  # (a forked process drops its parent's)
        if len(self._workers) < n:
            from ..features._text_encoder import onnx_session

            source = self._source()
            self._workers += [onnx_session(source, threads=1) for _ in range(n - len(self._workers))]
        return self._workers[:n]

    def score(self, seqs: list[np.ndarray]) -> np.ndarray:
        """(B, n_items) float32 scores, each history left-padded (or cut) to max_len.

        The int8 graph quantizes its activations with one scale per input tensor (dynamic
        quantization), so a history's scores would depend on the other histories of its batch:
        it is run one history at a time, as a request is served, and an evaluation of many users
        gets exactly the scores each of them is served. Many histories are shared out over one
        single-threaded session per core, each in a thread (onnxruntime releases the GIL; a
        session of two intra-op threads keeps the cores half idle on one history's small
        products): the same scores, in about half the time on 2 cores."""
        arr = _left_pad(seqs, self.max_len)
        session = self.session()
        if not self.int8 or len(arr) <= 1:
            return cast(np.ndarray, session.run(None, {"seq": arr})[0])
        from ..features._text_encoder import bulk_workers

        n = min(bulk_workers(), len(arr) // SHARD_MIN_HISTORIES)
        if n <= 1:
            return np.concatenate([session.run(None, {"seq": arr[i : i + 1]})[0] for i in range(len(arr))])
        from concurrent.futures import ThreadPoolExecutor

        workers = self._worker_sessions(n)
        bounds = np.linspace(0, len(arr), n + 1).astype(int)

        def shard(k: int) -> np.ndarray:
            sess = workers[k]
            return np.concatenate(
                [sess.run(None, {"seq": arr[i : i + 1]})[0] for i in range(bounds[k], bounds[k + 1])]
            )

        with ThreadPoolExecutor(n) as pool:
            return np.concatenate(list(pool.map(shard, range(n))))


def _as_metric(validation: Validation | None) -> Callable[[Recommender], float] | None:
    """A validation fold as model -> NDCG@10 on it (full ranking, seen items excluded)."""
    if validation is None or callable(validation):
        return validation
    fold = validation

    def metric(model: Recommender) -> float:
        from ..evaluation import ndcg_at_10  # local: evaluation imports models

        return ndcg_at_10(model, fold)

    return metric
