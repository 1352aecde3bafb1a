"""The query-time history of the item-to-item models, built for a batch at once, is the
matrix the loop over users built (the same entries in the same order, the same sums)."""

import numpy as np
import pytest
import scipy.sparse as sp

from shelfwise.features import Interactions
from shelfwise.models._neighbours import _recent_history


def _per_user(history: Interactions, users: np.ndarray, last: int | None, decay: float) -> sp.csr_matrix:
    off = history.offsets
    rows, cols, vals = [], [], []
    for r, u in enumerate(users):
        lo, hi = off[u], off[u + 1]
        if last is not None:
            lo = max(lo, hi - last)
        items = history.item_idx[lo:hi]
        if len(items) == 0:
            continue
        age = np.arange(len(items) - 1, -1, -1)
        rows.append(np.full(len(items), r))
        cols.append(items)
        vals.append(np.power(decay, age).astype(np.float32))
    if not rows:
        return sp.csr_matrix((len(users), history.n_items), dtype=np.float32)
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(users), history.n_items),
        dtype=np.float32,
    )
    m.sum_duplicates()
    return m


@pytest.mark.parametrize("last,decay", [(None, 1.0), (3, 0.6), (12, 0.5050812216183729), (1, 0.9), (0, 0.5)])
def test_recent_history_is_the_per_user_matrix(last: int | None, decay: float) -> None:
    rng = np.random.default_rng(4)
    n_users, n_items = 60, 25
    lengths = rng.integers(0, 15, n_users)  # some users without steps
    users = np.repeat(np.arange(n_users), lengths).astype(str)
    items = rng.integers(0, n_items, len(users)).astype(str)  # repeats of an item within a user
    history = Interactions.from_arrays(users, items, np.arange(len(users)))
    asked = np.concatenate([rng.permutation(history.n_users), [0, 0, 3]])
    for batch in (asked, asked[:1], asked[:0]):
        got, want = _recent_history(history, batch, last, decay), _per_user(history, batch, last, decay)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
        assert np.array_equal(got.data, want.data)
