"""A cross-encoder re-ranker fine-tuned from the shipped MiniLM (no pretrained cross-encoder ships in
any package here): query and product text read together, one relevance score per pair.

Trained pointwise on the judged pairs of the training queries (target = gain / top gain, binary
cross-entropy), plus the retrieved-but-unjudged candidates as negatives, for a number of steps
(`epochs`, at most `max_steps`: the same data and seed give the same model on any machine; the
time is only a safety cap, named in the result when it is hit). It
re-orders the first `top` results of the LightGBM stage; it is kept only when that beats the
LightGBM order on the held-out queries. Exported to ONNX for serving (pairs scored in one batch).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..features._text_encoder import adamw, export_module, mean_pool, onnx_session


@dataclass
class CrossSettings:
    epochs: int = 1
    max_steps: int = 300  # the budget (0: no cross-encoder)
    budget_s: float = 3600.0  # safety cap on the training seconds (`time_cap_hit` when it stops it)
    batch_size: int = 32
    learning_rate: float = 3e-5
    max_tokens: int = 64
    top: int = 10  # results of the LightGBM stage it re-orders
    negatives_per_query: int = 4  # retrieved, unjudged candidates added as negatives
    min_pairs: int = 200
    seed: int = 0


class _Cross:
    def __init__(self, model_dir: Path, max_tokens: int):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = model_dir  # its tokenizer.json goes with the export
        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.body = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
        self.head = torch.nn.Linear(self.body.config.hidden_size, 1)
        self.max_tokens = max_tokens

    def parameters(self) -> Any:
        return list(self.body.parameters()) + list(self.head.parameters())

    def logits(self, queries: list[str], texts: list[str]) -> Any:
        enc = self.tok(
            queries, texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return _pooled_score(
            self.body, self.head, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
        )


def _pooled_score(body: Any, head: Any, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
    out = body(
        input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
    ).last_hidden_state
    return head(mean_pool(out, attention_mask)).squeeze(-1)


def train_cross_encoder(
    model_dir: Path,
    train: list[tuple[str, str, float]],
    settings: CrossSettings,
) -> tuple[_Cross | None, dict[str, Any]]:
    """Fit on (query, text, target in [0, 1]) triples; returns the model and what happened."""
    import torch

    s = settings
    info: dict[str, Any] = {"settings": asdict(s), "pairs": len(train)}
    if s.max_steps <= 0:
        info["skipped"] = "a budget of 0 steps"
        return None, info
    if len(train) < s.min_pairs:
        info["skipped"] = f"{len(train)} training pairs (need {s.min_pairs})"
        return None, info
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model = _Cross(model_dir, s.max_tokens)
    opt = adamw(model.parameters(), s.learning_rate, 0.01)
    steps_per_epoch = max(1, len(train) // s.batch_size)
    planned = min(steps_per_epoch * s.epochs, s.max_steps)
    t0, step = time.perf_counter(), 0
    model.body.train()
    done = capped = False
    for _ in range(s.epochs):
        order = rng.permutation(len(train))
        for b in range(steps_per_epoch):
            if step >= planned:
                done = True
                break
            if time.perf_counter() - t0 > s.budget_s:
                done = capped = True
                break
            batch = [train[i] for i in order[b * s.batch_size : (b + 1) * s.batch_size]]
            logit = model.logits([x[0] for x in batch], [x[1] for x in batch])
            target = torch.tensor([x[2] for x in batch], dtype=torch.float32)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
        if done:
            break
    model.body.eval()
    info.update(
        steps=step,
        planned_steps=planned,
        time_cap_hit=capped,
        train_seconds=round(time.perf_counter() - t0, 1),
    )
    if capped:
        info["stopped"] = f"time cap of {s.budget_s:g} s hit after {step} of {planned} steps"

    return model, info


def export_cross_onnx(model: _Cross, out: Path) -> Path:
    """The cross-encoder as ONNX (input_ids, attention_mask, token_type_ids -> score), with its
    tokenizer.json beside it."""
    import torch

    class Scorer(torch.nn.Module):
        def __init__(self, body: Any, head: Any):
            super().__init__()
            self.body, self.head = body, head

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return _pooled_score(self.body, self.head, input_ids, attention_mask, token_type_ids)

    sample = model.tok(["a drill"], ["cordless drill 18v"], padding=True, return_tensors="pt")
    inputs = {n: sample[n] for n in ("input_ids", "attention_mask", "token_type_ids")}
    return export_module(Scorer(model.body, model.head), inputs, "score", out, model.model_dir)


class OnnxCrossEncoder:
    """Scores (query, text) pairs with an exported cross-encoder."""

    def __init__(self, path: str | Path, max_tokens: int = 64, threads: int | None = None):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.max_tokens = max_tokens
        tok = Tokenizer.from_file(str(self.path.with_suffix(".tokenizer.json")))
        tok.enable_truncation(max_tokens)
        tok.enable_padding(pad_id=0)
        self._tok = tok
        self._sess = onnx_session(self.path, threads)

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, np.float32)
        enc = self._tok.encode_batch([(query or " ", t or " ") for t in texts])
        feed = {
            "input_ids": np.array([e.ids for e in enc], np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], np.int64),
        }
        return self._sess.run(["score"], feed)[0].astype(np.float32)
