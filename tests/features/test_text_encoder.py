"""Bulk encoding: a large list spread over one single-threaded session per core gives the same
vectors as one session; an English encoder gets what it can read of a Chinese title."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shelfwise.features import _text_encoder as te
from shelfwise.search._analyze import without_cjk

WORDS = [
    "cordless",
    "drill",
    "white",
    "paint",
    "garden",
    "hose",
    "led",
    "bulb",
    "copper",
    "pipe",
    "oak",
    "flooring",
    "ceiling",
    "fan",
]


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) + f" {i}" for i in range(n)]


@pytest.mark.parametrize(
    ("make", "floor"),
    [
        (lambda: te.OnnxEncoder(te.shipped_onnx_path()), 0.9999),
        # int8 with activations quantized per batch: a text's vector moves a little with its batch
        (te.MultilingualEncoder, 0.998),
    ],
)
def test_sharded_encoding_equals_one_session(monkeypatch, make, floor):
    texts = _texts(te.BULK_MIN_TEXTS + 37)
    enc = make()
    monkeypatch.setattr(te, "bulk_workers", lambda threads=None: 3)
    sharded = enc.encode(texts)
    assert enc._workers is not None and len(enc._workers) == 3
    monkeypatch.setattr(te, "bulk_workers", lambda threads=None: 1)
    single = enc.encode(texts)
    assert sharded.shape == single.shape == (len(texts), enc.dim)
    np.testing.assert_allclose(np.linalg.norm(sharded, axis=1), 1.0, atol=1e-4)
    assert float(np.min(np.sum(sharded * single, axis=1))) > floor  # same vectors, row for row


def test_bulk_workers_follow_the_thread_setting(monkeypatch):
    monkeypatch.delenv("SHELFWISE_ENCODER_THREADS", raising=False)
    assert te.bulk_workers(threads=1) == 1  # a server's session: never sharded
    monkeypatch.setenv("SHELFWISE_ENCODER_THREADS", "2")
    assert te.bulk_workers() == 1


def test_an_english_encoder_reads_the_latin_part_of_a_chinese_title():
    assert without_cjk("Glowé 无线 洗发水 - 灰色 | Beauty Hair Shampoo") == "Glowé | Beauty Hair Shampoo"
    assert without_cjk("Nike 跑步鞋 Air 2") == "Nike Air 2"
    assert without_cjk("跑步鞋") == "跑步鞋"  # nothing else to read: the text itself
    assert without_cjk("plain | english") == "plain | english"


@pytest.mark.parametrize("make", [te.multilingual_encoder, lambda: te.shipped_encoder(int8=True)])
def test_a_query_vector_does_not_depend_on_the_queries_beside_it(make):
    """int8 graphs quantize activations per batch: a server that batches the queries of
    concurrent requests must still give each query the vector it has alone."""
    enc = make()
    assert not enc.batch_invariant
    queries = ["blue lamp", "wireless speaker with a very long description of its many features", "tea"]
    together = enc.encode_queries(queries)
    alone = np.stack([enc.encode_queries([q])[0] for q in queries])
    assert np.array_equal(together, alone)
    # (what the guard is for: a batch of these texts moves the vectors)
    assert not np.array_equal(enc.encode(queries), alone)


def test_a_full_precision_encoder_batches_queries():
    assert te.shipped_encoder().batch_invariant


def test_a_bundle_encodes_queries_with_the_graph_its_catalog_was_embedded_with():
    """Catalogs over 50k products are embedded by the per-channel int8 graph ("minilm-int8pc");
    bundles built before it name the per-matrix one ("minilm-int8") and keep getting it, so query
    and catalog vectors never come from two quantizations. Per channel is the closer to fp32."""
    from shelfwise.search._retrievers import text_encoder

    old, new = text_encoder("minilm-int8"), text_encoder("minilm-int8pc")
    assert Path(old.path).name.endswith("-int8.onnx") and Path(new.path).name.endswith("-int8pc.onnx")
    texts = _texts(60)
    ref = te.shipped_encoder().encode(texts)
    per_matrix = (old.encode(texts) * ref).sum(1)
    per_channel = (new.encode(texts) * ref).sum(1)
    assert per_channel.mean() > 0.98 and per_channel.mean() >= per_matrix.mean() - 0.005


def test_the_multilingual_encoder_starts_without_torch_or_the_extensions_package():
    """Its custom-ops library is found by file, not through onnxruntime-extensions' package,
    whose import pulls in onnx, transformers and torch (~3 s on every server start); the file is
    the one the package names."""
    code = (
        "import sys; from shelfwise.features._text_encoder import custom_ops_library, multilingual_encoder; "
        "e = multilingual_encoder(); e.encode(['running shoes']); "
        "print(sorted(m for m in ('torch', 'transformers', 'onnx', 'onnxruntime_extensions') if m in sys.modules)); "
        "import onnxruntime_extensions as x; print(custom_ops_library() == x.get_library_path())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout + out.stderr
