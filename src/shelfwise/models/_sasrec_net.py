"""SASRec's network (torch) and its export to ONNX for serving.

Only training, torch scoring and the export import this module: a bundle whose SASRec was
exported is served through onnxruntime (`_sasrec._OnnxScorer`) without importing torch.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ._sasrec import SASRecConfig

__all__ = ["SASRecNet", "export_query", "quantize_query"]


class SASRecNet(nn.Module):
    def __init__(
        self,
        n_items: int,
        cfg: SASRecConfig,
        text: np.ndarray | None = None,
        attributes: Any = None,
    ):
        super().__init__()
        self.cfg = cfg
        # index 0 is padding; item i is stored at i + 1
        self.item_emb = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.text_proj: nn.Linear | None = None
        self.attr_emb: nn.EmbeddingBag | None = None
        if text is not None or attributes is not None:
            # 1 for items seen in training (id embedding used), 0 for the others (their text
            # and attributes only)
            self.register_buffer("seen", torch.ones(n_items + 1, 1))
        if text is not None:
            padded = np.zeros((n_items + 1, text.shape[1]), np.float32)
            padded[1:] = text
            self.register_buffer("text", torch.from_numpy(padded))
            self.text_proj = nn.Linear(text.shape[1], cfg.dim, bias=False)
        if attributes is not None:
            # an item's attributes (category levels, brand: a scipy CSR matrix, items x values,
            # each row weighted 1 / sqrt(its count)) add the sum of their learned vectors: items
            # that share a brand or category share signal. One bag per row (row 0, padding, empty)
            csr = attributes.tocsr()
            offsets = np.concatenate([[0], csr.indptr]).astype(np.int64)
            self.register_buffer("attr_index", torch.from_numpy(csr.indices.astype(np.int64)))
            self.register_buffer("attr_offsets", torch.from_numpy(offsets))
            self.register_buffer("attr_weight", torch.from_numpy(csr.data.astype(np.float32)))
            self.attr_emb = nn.EmbeddingBag(csr.shape[1], cfg.dim, mode="sum", include_last_offset=True)
            # as a linear layer over the (weighted) multi-hot rows starts: uniform, 1 / sqrt(values)
            bound = 1.0 / math.sqrt(max(csr.shape[1], 1))
            nn.init.uniform_(self.attr_emb.weight, -bound, bound)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder: nn.Module
        if cfg.block == "ligr":
            self.encoder = _LiGREncoder(cfg)
        else:
            layer = nn.TransformerEncoderLayer(
                cfg.dim,
                cfg.heads,
                dim_feedforward=cfg.dim * cfg.ff_mult,
                dropout=cfg.dropout,
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        nn.init.normal_(self.item_emb.weight, std=cfg.dim**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def item_vectors(self) -> torch.Tensor:
        """(n_items + 1, D): id embedding (items seen in training) + projected text + the sum
        of the item's attribute vectors."""
        if not self.side_inputs:
            return self.item_emb.weight
        out = self.item_emb.weight * cast(torch.Tensor, self.seen)
        if self.text_proj is not None:
            out = out + self.text_proj(cast(torch.Tensor, self.text))
        attr_emb = getattr(self, "attr_emb", None)
        if attr_emb is not None:
            # the bags' weighted sums as one sparse product (`_SparseRows`): the sums of
            # `attr_emb(index, offsets, per_sample_weights=...)` (the gradient summed in another
            # order: the same bits on Beauty after 2 epochs, not in general) at ~40% of its cost
            # with the backward (EmbeddingBag's backward was a sixth of a Beauty SASRec epoch)
            rows, rows_t = self._attribute_rows()
            out = out + _SparseRows.apply(attr_emb.weight, rows, rows_t)
        return out

    def _attribute_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The attribute bags as a sparse CSR matrix (items + 1) x values and its transpose,
        made from the `attr_*` buffers once per device (a cache, not state: not saved)."""
        index, offsets = cast(torch.Tensor, self.attr_index), cast(torch.Tensor, self.attr_offsets)
        weight = cast(torch.Tensor, self.attr_weight)
        bag = cast(nn.EmbeddingBag, self.attr_emb)
        # rebuilt when a buffer moves, is replaced or is written in place (`_version`:
        # load_state_dict copies into the buffers) or the weights change dtype
        key = (bag.weight.dtype, *((t.device, t.data_ptr(), t._version) for t in (index, offsets, weight)))
        cached = self.__dict__.get("_attr_rows")
        if cached is None or cached[0] != key:
            shape = (len(offsets) - 1, bag.num_embeddings)
            with warnings.catch_warnings():  # "sparse CSR support is in beta" (it is what we use)
                warnings.simplefilter("ignore")
                rows = torch.sparse_csr_tensor(offsets, index, weight.to(bag.weight.dtype), size=shape)
                csc = rows.to_sparse_csc()  # the transpose's CSR: columns become rows
                rows_t = torch.sparse_csr_tensor(
                    csc.ccol_indices(), csc.row_indices(), csc.values(), size=shape[::-1]
                )
            cached = self.__dict__["_attr_rows"] = (key, rows, rows_t)
        return cached[1], cached[2]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_attr_rows", None)  # a cache of the buffers, rebuilt on use
        return state

    @property
    def side_inputs(self) -> bool:
        """Whether item vectors add text or attributes to the id embedding (a network pickled
        before attributes has no `attr_emb`)."""
        return self.text_proj is not None or getattr(self, "attr_emb", None) is not None

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        # seq: (B, L) item indices + 1, left-padded with 0; the last column is the newest item
        # through `embedding`, not indexing: its backward sums the gradient in a fixed order (an
        # indexed gather accumulates it across threads, changing the last bits from run to run)
        emb = (
            self.item_emb(seq) if not self.side_inputs else nn.functional.embedding(seq, self.item_vectors())
        )
        return self.encode(seq, emb)

    def encode(self, seq: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """(B, L, D) states from the sequence and its item embeddings `emb` (B, L, D)."""
        b, length = seq.shape
        # positions count back from the newest item, so trimming padding never shifts them
        pos = torch.arange(length - 1, -1, -1, device=seq.device).unsqueeze(0)  # (1, L)
        x = emb * math.sqrt(self.cfg.dim) + self.pos_emb(pos)  # (B, L, D)
        x = self.drop(x * (seq > 0).unsqueeze(-1))
        # from index comparisons, not triu/eye: the same mask, and it exports to ONNX (onnxruntime
        # has no boolean EyeLike)
        idx = torch.arange(length, device=seq.device)
        future = idx.unsqueeze(0) > idx.unsqueeze(1)  # (L, L): key after query
        blocked = future.unsqueeze(0) | (seq == 0).unsqueeze(1)  # (B, L, L): no future, no padding
        # every position may see itself, so a padding row never attends to nothing (NaN)
        blocked = blocked & (idx.unsqueeze(0) != idx.unsqueeze(1)).unsqueeze(0)
        mask = blocked.repeat_interleave(self.cfg.heads, dim=0)  # (B * heads, L, L)
        h = self.encoder(x, mask=mask)  # (B, L, D)
        return self.norm(h)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        # h: (N, D) -> (N, n_items): tied output embedding, padding column dropped
        return h @ self.item_vectors()[1:].T


class _LiGRBlock(nn.Module):
    """A LiGR block (Gu et al. 2025, "From Features to Transformers"; the layer of eSASRec,
    Tikhonovich et al. 2025): pre-norm attention and a SwiGLU feed-forward, each added to the
    residual stream through a learned sigmoid gate of that stream instead of added whole."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attn_gate = nn.Linear(dim, dim)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, 2 * dim * ff_mult, bias=False)  # SwiGLU: gate and value
        self.ff_out = nn.Linear(dim * ff_mult, dim, bias=False)
        self.ff_gate = nn.Linear(dim, dim)
        self.drop_attn, self.drop_ff, self.drop_inner = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.attn_norm(x)
        a = self.attn(y, y, y, attn_mask=mask, need_weights=False)[0]
        x = x + torch.sigmoid(self.attn_gate(x)) * self.drop_attn(a)
        gate, value = self.ff_in(self.ff_norm(x)).chunk(2, dim=-1)
        f = self.ff_out(self.drop_inner(nn.functional.silu(gate) * value))
        return x + torch.sigmoid(self.ff_gate(x)) * self.drop_ff(f)


class _LiGREncoder(nn.Module):
    """`cfg.layers` LiGR blocks, called as `nn.TransformerEncoder` is (states, mask=)."""

    def __init__(self, cfg: SASRecConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            _LiGRBlock(cfg.dim, cfg.heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


class _Query(nn.Module):
    """What a request runs: a left-padded sequence (B, max_len) -> the state after its newest
    item (B, D) -> its score for every item (B, n_items). The item vectors are frozen into it
    (with item text, the projection of every title is computed once here, not per request), as
    the embedding table and as the weight of the final product (where int8 quantization gives
    each item its own scale)."""

    def __init__(self, net: SASRecNet):
        super().__init__()
        self.net = net
        self.register_buffer("vectors", net.item_vectors().detach().clone())

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        vectors = cast(torch.Tensor, self.vectors)
        h = self.net.encode(seq, nn.functional.embedding(seq, vectors))[:, -1]
        return h @ vectors[1:].T


class _SparseRows(torch.autograd.Function):
    """`rows @ weight` for a fixed sparse CSR matrix `rows` (in the weight's dtype; float32
    under CUDA autocast), with the
    backward `rows_t @ grad` (`rows_t` its transpose, CSR): each weight row's gradient is summed
    by one thread in a fixed order, the same bits on any number of threads."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx: Any, weight: torch.Tensor, rows: torch.Tensor, rows_t: torch.Tensor) -> torch.Tensor:
        ctx.rows_t = rows_t
        return rows @ weight

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.rows_t @ grad.to(ctx.rows_t.dtype), None, None


def export_query(net: SASRecNet, out: Path) -> Path:
    """Export the query-time half of `net` (see `_Query`) to ONNX at `out`, written atomically:
    input `seq` (batch, max_len) int64, output `scores` (batch, n_items) float32, the batch axis
    dynamic.

    The sequence axis is fixed at `max_len` (callers left-pad to it): the TorchScript exporter
    bakes the traced length into the attention's reshapes, and positions counting back from the
    newest item make left padding change nothing in the newest item's state."""
    net = net.cpu().eval()
    sample = torch.zeros((2, net.cfg.max_len), dtype=torch.int64)
    sample[0, -3:] = torch.tensor([1, 2, 1])
    sample[1, :] = 1
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fast = torch.backends.mha.get_fastpath_enabled()
    # the fused inference kernel (aten::_transformer_encoder_layer_fwd) has no ONNX export
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Query(net).eval(),
                (sample,),
                str(tmp),
                input_names=["seq"],
                output_names=["scores"],
                dynamic_axes={"seq": {0: "batch"}, "scores": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    os.replace(tmp, out)
    return out


def quantize_query(src: Path, out: Path) -> Path:
    """Dynamic int8 quantization (onnxruntime) of an exported query graph: the weights of its
    matrix products and embedding lookups stored as int8, activations quantized on the fly.
    Per channel: each output column of a product has its own scale, so in the final product
    each item's vector keeps its own range (measured on Beauty: closer to float32 than one
    scale per matrix, and the product runs on int8 kernels, unlike a float16 table widened for
    every request)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the model, printed on every call
    try:
        # 7-bit weights: the u8 x s8 products of CPUs without VNNI (AVX2) saturate with 8-bit ones
        # (scores off by up to a quarter of their range, measured on an AMD EPYC with AVX2 only)
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    finally:
        root.setLevel(level)
    os.replace(tmp, out)
    return out
