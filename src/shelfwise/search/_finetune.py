"""Fine-tuning the shipped MiniLM on the shop's own search signal (a bi-encoder).

Pairs come from graded judgments (and click logs turned into judgments): a query with a product
judged in the top third of the scale is a positive; a product judged in the bottom third for the
same query is a hard negative. The loss is the in-batch softmax of multiple-negatives ranking
(every other positive in the batch, and every hard negative, is a negative for a query) with a
temperature of 0.05, AdamW, linear warm-up. The budget is a number of steps (`epochs` over the
pairs, at most `max_steps`), so the same judgments and seed give the same encoder on an idle and
on a loaded machine; `budget_s` is only a safety cap, and the result says when it was hit.

The tuned encoder is kept only when it beats the shipped one on held-out queries, both measured
the same way: NDCG@10 of semantic retrieval over the held-out queries' judged products plus a
fixed sample of the rest of the catalog (unjudged = 0). When kept, it is exported to ONNX for
serving (see `features._text_encoder.export_onnx`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation._metrics import graded_ndcg_at_k
from ..features._text_encoder import adamw


@dataclass
class FinetuneSettings:
    # the budget: `epochs` passes over the pairs, at most `max_steps` optimizer steps (the
    # learning-rate schedule is planned over them). 0 steps: no fine-tuning
    epochs: int = 2
    max_steps: int = 400
    # safety cap on the training seconds (validation and export come on top): when it stops
    # the training early the result says so (`time_cap_hit`); the steps are the budget
    budget_s: float = 3600.0
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup: float = 0.1  # share of the planned steps
    temperature: float = 0.05
    weight_decay: float = 0.01
    max_tokens: int = 48
    validation_distractors: int = 5000
    min_pairs: int = 200  # fewer positive pairs: no fine-tuning
    seed: int = 0
    # also measure the held-out NDCG every this many steps (0: only at the end), into the
    # result's `validation_curve`: whether more steps would still help. Each point costs one
    # encoding of the validation pool (the learning-rate schedule is planned over all the
    # steps, so a point is not what a run of that many steps would reach)
    validate_every: int = 0


def training_pairs(
    queries: dict[str, str], gains: dict[str, dict[str, float]], texts: dict[str, str], qids: list[str]
) -> list[tuple[str, str, str | None]]:
    """(query, positive text, hard negative text or None) for the queries in `qids`."""
    top = max((g for q in gains.values() for g in q.values()), default=0.0)
    if top <= 0:
        return []
    rng = np.random.default_rng(0)
    out: list[tuple[str, str, str | None]] = []
    for q in qids:
        judged = [(p, g) for p, g in gains.get(q, {}).items() if p in texts]
        pos = [p for p, g in judged if g >= 2 * top / 3]
        neg = [p for p, g in judged if g <= top / 3]
        for p in pos:
            n = texts[neg[int(rng.integers(len(neg)))]] if neg else None
            out.append((queries[q], texts[p], n))
    return out


class _Bi:
    """MiniLM body + mean pooling, trainable, with the tokenizer that goes with it."""

    def __init__(self, model_dir: Path, max_tokens: int):
        from transformers import AutoModel, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.body = AutoModel.from_pretrained(str(model_dir))
        self.max_tokens = max_tokens

    def embed(self, texts: list[str]) -> Any:
        import torch

        from ..features._text_encoder import mean_pool

        enc = self.tok(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        out = self.body(**enc).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(out, enc["attention_mask"]), dim=-1)

    def encode(self, texts: list[str], batch: int = 128) -> np.ndarray:
        import torch

        self.body.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.body.config.hidden_size), np.float32)
        with torch.no_grad():
            for s in range(0, len(texts), batch):
                idx = order[s : s + batch]
                out[idx] = self.embed([texts[i] or " " for i in idx]).numpy()
        return out


def _semantic_ndcg(
    model: _Bi,
    pool_ids: list[str],
    pool_texts: list[str],
    queries: list[str],
    gains: list[dict[str, float]],
) -> float:
    docs = model.encode(pool_texts)
    qv = model.encode(queries)
    top = np.argsort(-(qv @ docs.T), axis=1, kind="stable")[:, :10]
    at = {p: i for i, p in enumerate(pool_ids)}
    return float(
        np.mean(
            [
                graded_ndcg_at_k([int(i) for i in row], {at[p]: v for p, v in g.items() if p in at})
                for row, g in zip(top, gains, strict=True)
            ]
        )
    )


def finetune_biencoder(
    model_dir: Path,
    out_dir: Path,
    queries: dict[str, str],
    gains: dict[str, dict[str, float]],
    texts: dict[str, str],
    train_q: list[str],
    valid_q: list[str],
    settings: FinetuneSettings | None = None,
) -> dict[str, Any]:
    """Fine-tune, validate against the untuned encoder, and save the winner (a HF model
    directory in `out_dir`) when it wins. Returns what happened (`kept`, NDCG both ways, steps,
    pairs, seconds)."""
    import torch

    s = settings or FinetuneSettings()
    t_start = time.perf_counter()
    info: dict[str, Any] = {"settings": asdict(s), "kept": False}
    pairs = training_pairs(queries, gains, texts, train_q)
    info["pairs"] = len(pairs)
    valid_q = [q for q in valid_q if any(g > 0 for g in gains.get(q, {}).values())]
    info["validation_queries"] = len(valid_q)
    if s.max_steps <= 0:
        info["skipped"] = "a budget of 0 steps"
        return info
    if len(pairs) < s.min_pairs or not valid_q:
        info["skipped"] = (
            f"{len(pairs)} positive pairs (need {s.min_pairs}) and {len(valid_q)} validation queries"
        )
        return info
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    judged = sorted({p for q in valid_q for p in gains[q] if p in texts})
    rest = sorted(set(texts) - set(judged))
    extra: list[int] = (
        [int(i) for i in rng.choice(len(rest), size=min(s.validation_distractors, len(rest)), replace=False)]
        if rest
        else []
    )
    pool_ids = judged + [rest[i] for i in sorted(extra)]
    pool_texts = [texts[p] for p in pool_ids]
    vq = [queries[q] for q in valid_q]
    vg = [gains[q] for q in valid_q]

    model = _Bi(model_dir, s.max_tokens)
    info["validation_ndcg@10_untuned"] = base = _semantic_ndcg(model, pool_ids, pool_texts, vq, vg)
    steps_per_epoch = max(1, len(pairs) // s.batch_size)
    planned = min(steps_per_epoch * s.epochs, s.max_steps)
    opt = adamw(model.body.parameters(), s.learning_rate, s.weight_decay)
    warm = max(1, int(s.warmup * planned))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warm, max(0.0, (planned - i) / max(1, planned - warm)))
    )
    step, t0 = 0, time.perf_counter()
    capped = False
    curve: list[tuple[int, float]] = []
    curve_s = 0.0  # seconds spent on the curve's points, not training
    model.body.train()
    for _epoch in range(s.epochs):
        order = rng.permutation(len(pairs))
        for b in range(steps_per_epoch):
            if step >= planned:
                break
            if time.perf_counter() - t0 - curve_s > s.budget_s:
                capped = True
                break
            batch = [pairs[i] for i in order[b * s.batch_size : (b + 1) * s.batch_size]]
            # a query appearing twice in one batch would make its other positive a "negative"
            seen: set[str] = set()
            batch = [x for x in batch if not (x[0] in seen or seen.add(x[0]))]  # type: ignore[func-returns-value]
            q = model.embed([x[0] for x in batch])
            docs = [x[1] for x in batch] + [x[2] for x in batch if x[2] is not None]
            d = model.embed(docs)
            logits = (q @ d.T) / s.temperature
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.body.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if s.validate_every > 0 and step % s.validate_every == 0 and step < planned:
                t_v = time.perf_counter()
                curve.append((step, _semantic_ndcg(model, pool_ids, pool_texts, vq, vg)))
                model.body.train()
                curve_s += time.perf_counter() - t_v
        else:
            continue
        break
    info["steps"] = step
    info["planned_steps"] = planned
    info["time_cap_hit"] = capped
    if capped:
        info["stopped"] = f"time cap of {s.budget_s:g} s hit after {step} of {planned} steps"
    info["train_seconds"] = round(time.perf_counter() - t0 - curve_s, 1)
    info["validation_ndcg@10_tuned"] = tuned = _semantic_ndcg(model, pool_ids, pool_texts, vq, vg)
    if s.validate_every > 0:
        info["validation_curve"] = [[0, base], *map(list, curve), [step, tuned]]
    info["kept"] = bool(tuned > base)
    if info["kept"]:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.body.save_pretrained(str(out_dir))
        model.tok.save_pretrained(str(out_dir))
    info["seconds"] = round(time.perf_counter() - t_start, 1)
    return info
