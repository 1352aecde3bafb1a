"""SASRec-style transformer sequence recommender ("the large model" of shelfwise).

Causal self-attention over each user's recent items predicts the next item at every position,
trained with full-softmax cross-entropy over the catalog (Klenitskiy & Vasilev 2023: CE beats
the original binary loss by a wide margin) or sampled softmax for very large catalogs.
Item embeddings are tied between input and output.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..features import Interactions
from ._base import Recommender


@dataclass
class SASRecConfig:
    max_len: int = 50  # most recent items a user is represented by
    dim: int = 64  # embedding and hidden size
    layers: int = 2  # transformer blocks
    heads: int = 2  # attention heads per block
    dropout: float = 0.3  # on embeddings, attention and feed-forward
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW L2 (decoupled)
    batch_size: int = 128  # users per step
    epochs: int = 200  # upper bound; early stopping usually ends sooner
    patience: int = 3  # validation checks without improvement before stopping
    eval_every: int = 5  # epochs between validation checks
    # "ce": full softmax; "sampled": softmax over the positives and `negatives` shared uniform
    # negatives; "auto": full softmax up to `full_softmax_items` items, sampled above (on 2 CPU
    # cores full softmax over 12k items costs ~0.15 s per 1k positions)
    loss: str = "auto"
    negatives: int = 2048
    full_softmax_items: int = 4096
    time_budget_s: float = 600.0  # stop training after this many seconds
    seed: int = 0
    device: str = "auto"  # "auto" takes a GPU when there is one


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig):
        super().__init__()
        self.cfg = cfg
        # index 0 is padding; item i is stored at i + 1
        self.item_emb = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.dim,
            cfg.heads,
            dim_feedforward=cfg.dim * 2,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        nn.init.normal_(self.item_emb.weight, std=cfg.dim**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        # seq: (B, L) item indices + 1, left-padded with 0; the last column is the newest item
        b, length = seq.shape
        # positions count back from the newest item, so trimming padding never shifts them
        pos = torch.arange(length - 1, -1, -1, device=seq.device).unsqueeze(0)  # (1, L)
        x = self.item_emb(seq) * math.sqrt(self.cfg.dim) + self.pos_emb(pos)  # (B, L, D)
        x = self.drop(x * (seq > 0).unsqueeze(-1))
        future = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seq.device), diagonal=1)
        blocked = future.unsqueeze(0) | (seq == 0).unsqueeze(1)  # (B, L, L): no future, no padding
        # every position may see itself, so a padding row never attends to nothing (NaN)
        blocked = blocked & ~torch.eye(length, dtype=torch.bool, device=seq.device).unsqueeze(0)
        mask = blocked.repeat_interleave(self.cfg.heads, dim=0)  # (B * heads, L, L)
        h = self.encoder(x, mask=mask)  # (B, L, D)
        return self.norm(h)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        # h: (N, D) -> (N, n_items): tied output embedding, padding column dropped
        return h @ self.item_emb.weight[1:].T


def _length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of users with similar sequence lengths, in random order: most users have short
    histories, so a batch padded to its longest member wastes little compute."""
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _left_pad(seqs: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length), np.int64)
    for r, s in enumerate(seqs):
        s = s[-length:]
        if len(s):
            out[r, length - len(s) :] = s + 1
    return out


class SASRec(Recommender):
    name = "sasrec"
    sequential = True
    batch_size = 512

    def __init__(self, **config: Any):
        self.config = config

    def get_params(self) -> dict[str, Any]:
        return dict(self.config)

    @property
    def cfg(self) -> SASRecConfig:
        return SASRecConfig(**self.config)

    def _device(self) -> torch.device:
        want = self.cfg.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(want)

    def _fit(self, interactions: Interactions) -> None:
        self.fit_with_validation(interactions, None)

    def fit_with_validation(
        self, interactions: Interactions, validate: Callable[[Recommender], float] | None
    ) -> SASRec:
        """Train; with `validate` (model -> metric, higher is better) stop early and keep the best."""
        cfg = self.cfg
        self.n_items_ = interactions.n_items
        self.interactions_ = interactions
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        dev = self._device()
        net = SASRecNet(interactions.n_items, cfg).to(dev)
        self.net_ = net
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # one training example per user: its last max_len + 1 items (inputs and shifted targets)
        seqs = [interactions.sequence(u)[-(cfg.max_len + 1) :] for u in range(interactions.n_users)]
        seqs = [s for s in seqs if len(s) >= 2]
        lengths = np.array([len(s) for s in seqs])
        start = time.monotonic()
        best, best_state, bad = -np.inf, None, 0
        self.history_: list[dict[str, float]] = []
        for epoch in range(1, cfg.epochs + 1):
            net.train()
            total, steps = 0.0, 0
            for idx in _length_buckets(lengths, cfg.batch_size, rng):
                batch = [seqs[i] for i in idx]
                length = max(len(s) for s in batch) - 1
                arr = _left_pad(batch, length + 1)  # (B, L+1)
                inp = torch.from_numpy(arr[:, :-1]).to(dev)  # (B, L)
                tgt = torch.from_numpy(arr[:, 1:]).to(dev)  # (B, L)
                keep = (tgt > 0) & (inp > 0)  # positions with an input item and a next item
                h = net(inp)[keep]  # (N, D)
                y = tgt[keep] - 1  # (N,)
                loss = self._loss(net, h, y, rng, dev)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
                steps += 1
            rec = {"epoch": epoch, "loss": total / max(steps, 1), "seconds": time.monotonic() - start}
            out_of_time = time.monotonic() - start > cfg.time_budget_s
            if validate is not None and (epoch % cfg.eval_every == 0 or out_of_time or epoch == cfg.epochs):
                net.eval()
                score = float(validate(self))
                rec["validation"] = score
                if score > best:
                    best, bad = score, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
            self.history_.append(rec)
            if out_of_time or bad >= cfg.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.epochs_ = len(self.history_)
        self.best_validation_ = None if best == -np.inf else best
        return self

    def _loss(
        self, net: SASRecNet, h: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, dev: torch.device
    ) -> torch.Tensor:
        full = self.cfg.loss == "ce" or (
            self.cfg.loss == "auto" and self.n_items_ <= self.cfg.full_softmax_items
        )
        if full:
            return nn.functional.cross_entropy(net.logits(h), y)
        # sampled softmax: the positive against shared uniform negatives, logQ-free (uniform)
        neg = torch.from_numpy(rng.integers(0, self.n_items_, self.cfg.negatives)).to(dev)
        w = net.item_emb.weight[1:]
        pos_logit = (h * w[y]).sum(-1, keepdim=True)  # (N, 1)
        neg_logit = h @ w[neg].T  # (N, negatives)
        neg_logit = neg_logit.masked_fill(neg.unsqueeze(0) == y.unsqueeze(1), -1e9)
        logits = torch.cat([pos_logit, neg_logit], dim=1)
        return nn.functional.cross_entropy(logits, torch.zeros(len(y), dtype=torch.long, device=dev))

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        cfg = self.cfg
        dev = next(self.net_.parameters()).device
        seqs = [history.sequence(int(u)) for u in users]
        length = max([min(len(s), cfg.max_len) for s in seqs] + [1])
        arr = torch.from_numpy(_left_pad(seqs, length)).to(dev)
        h = self.net_(arr)[:, -1]  # (B, D): the state after the most recent item
        out = self.net_.logits(h).float().cpu().numpy()
        empty = np.array([len(s) == 0 for s in seqs])
        out[empty] = 0.0  # no history: no opinion (callers fall back to cold start)
        return out

    def save(self, path: Any) -> None:
        self.net_ = self.net_.cpu()
        super().save(path)

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)
