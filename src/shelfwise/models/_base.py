"""The Recommender interface every model implements, and the `Results` it returns.

A model scores items for users given their *history* (the items they interacted with, up to the
moment of the query). `fit` learns from training interactions; `recommend` takes an optional
`history` so that evaluation and serving can ask with a more recent history than the one the
model was trained on (leave-last-out test, a user who just clicked something) without refitting.
"""

from __future__ import annotations

import json
import pickle
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np
import scipy.sparse as sp

from ..features import Interactions


class Results(NamedTuple):
    """Ranked ids and their scores, one row per query (user, item or search query)."""

    ids: np.ndarray  # (n_queries, k) int; -1 pads rows with fewer than k answers
    scores: np.ndarray  # (n_queries, k) float32; -inf where ids is -1


#: items per block of a row whose maxima bound the top k (`_distinct_top`)
TOPK_BLOCK = 64


def top_k(scores: np.ndarray, k: int) -> Results:
    """Top-k per row of a dense score matrix, best first; -inf scores become padding.

    A row whose best k + 1 scores are all distinct has one top k in one order: it is found
    from the few items at or above a bound read off block maxima (`_distinct_top`, several
    times faster than a selection over the row). A row with a tie there (equal scores, -inf
    padding, NaN) is ranked by `np.argpartition` over the row as it always was, whose choice
    among tied items is its own: every row gets the same ids in the same order either way."""
    n, m = scores.shape
    k_eff = min(k, m)
    if k_eff <= 0:
        return Results(np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32))
    ids = top_ids(scores, k_eff)
    sc = np.take_along_axis(scores, ids, axis=1).astype(np.float32)
    ids[~np.isfinite(sc)] = -1
    if k_eff < k:
        ids = np.pad(ids, ((0, 0), (0, k - k_eff)), constant_values=-1)
        sc = np.pad(sc, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return Results(ids, sc)


def top_ids(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) int64: the k best columns of each row, best first (1 <= k <= columns), exactly
    `np.argpartition(-scores, k - 1)[:, :k]` ordered by a stable sort of their negated scores;
    non-finite scores are ranked as they are (`top_k` turns -inf into padding)."""
    n, m = scores.shape
    ids = np.empty((n, k), np.int64)
    done = _distinct_top(scores, k, ids) if k < m else np.zeros(n, bool)
    rest = np.flatnonzero(~done)
    if len(rest):
        neg = -scores if len(rest) == n else -scores[rest]
        part = np.argpartition(neg, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(neg, part, axis=1), axis=1, kind="stable")
        ids[rest] = np.take_along_axis(part, order, axis=1)
    return ids


def _distinct_top(scores: np.ndarray, k: int, ids: np.ndarray) -> np.ndarray:
    """Fill `ids` with the best k items, best first, of each row whose best k + 1 scores are
    pairwise distinct (there the answer is unique); returns which rows it filled.

    A row's items are split into groups of TOPK_BLOCK (strided: group g holds the columns
    g, g + G, g + 2G, ... of the first G x TOPK_BLOCK; the rest is one more group). The (k+1)-th
    largest of the groups' maxima is reached by at least k + 1 items, so the best k + 1 items
    are among those at or above it, and those lie in the groups whose maximum is: a few
    hundred of a row's thousands, read without another pass over the row. (Strided groups: the
    maxima are a reduction over the middle axis, whose inner loop runs along the row, ~5x
    faster than maxima of contiguous blocks, which reduce 64 values at a time; a third of a
    Beauty training run's top-k time went there.)
    Rows with a tie there, with NaN, with under k + 1 finite scores or with too many items at
    the bound (a row of mostly equal scores) are left to the caller."""
    n, m = scores.shape
    nb = m // TOPK_BLOCK  # G: the number of full groups
    done = np.zeros(n, bool)
    if nb < k + 1 or n == 0:
        return done
    grid = scores[:, : nb * TOPK_BLOCK].reshape(n, TOPK_BLOCK, nb)  # [row, i, g]: column i * G + g
    bmax = grid.max(axis=1)
    if nb * TOPK_BLOCK < m:
        bmax = np.concatenate([bmax, scores[:, nb * TOPK_BLOCK :].max(axis=1, keepdims=True)], axis=1)
    bound = -np.partition(-bmax, k, axis=1)[:, k]
    limit = max(16 * (k + 1), 1024)
    # a group above the bound holds at least one item above it, so a row with more such
    # groups than `limit` has too many items anyway
    hit = bmax >= bound[:, None]
    maybe = np.isfinite(bound) & ~np.isnan(bmax).any(axis=1) & (hit.sum(axis=1) <= limit)
    hit[~maybe] = False
    pr, pb = np.nonzero(hit)  # (row, group) pairs, rows ascending
    if len(pr) == 0:
        return done
    full = pb < nb
    groups = np.zeros((len(pr), TOPK_BLOCK), scores.dtype)
    groups[full] = grid[pr[full], :, pb[full]]
    width = m - nb * TOPK_BLOCK
    if not full.all():  # the last, shorter group (m not a multiple of TOPK_BLOCK)
        groups[~full, :width] = scores[pr[~full], nb * TOPK_BLOCK :]
    inside = groups >= bound[pr, None]
    inside[~full, width:] = False  # the short group's empty places (whatever the dtype)
    count = np.bincount(pr, weights=inside.sum(axis=1), minlength=n).astype(np.int64)
    tried = maybe & (count <= limit)
    inside[~tried[pr]] = False
    p, j = np.nonzero(inside)  # rows ascending; within a row any order (sorted below)
    if len(p) == 0:
        return done
    r, v = pr[p], groups[p, j]
    c = np.where(pb[p] < nb, j * nb + pb[p], nb * TOPK_BLOCK + j)
    order = np.lexsort((-v, r))  # by row, best first; ties in any order (checked below)
    c, v = c[order], v[order]
    rows = np.flatnonzero(tried)
    pos = (np.cumsum(count[rows]) - count[rows])[:, None] + np.arange(k + 1)  # >= k + 1 each
    head = v[pos]
    clean = (head[:, :-1] > head[:, 1:]).all(axis=1)
    ids[rows[clean]] = c[pos[clean, :k]]
    done[rows[clean]] = True
    return done


_SCORE_MEMO: list[dict[Any, np.ndarray] | None] = [None]


@contextmanager
def shared_scores() -> Iterator[None]:
    """Inside the block every model's scores for the same users and history are computed once:
    a fusion scored after its generators on the same batch reuses their scores. Keep the block
    to one batch of users (the memo holds every score matrix computed in it)."""
    prev = _SCORE_MEMO[0]
    _SCORE_MEMO[0] = {}
    try:
        yield
    finally:
        _SCORE_MEMO[0] = prev


class Recommender(ABC):
    """fit / recommend / similar_items / forget_users / save / load (the implicit ABC,
    scikit-learn conventions).

    Hyperparameters are typed keyword arguments stored unchanged in `__init__` (no config
    dicts); learned state is set in `fit` and ends with `_`. What a model needs besides the
    interactions (item text embeddings, a validation fold, the generators of a fusion) is a
    keyword argument of its `fit`, never a setter. Subclasses implement `_fit` and `_score`;
    batching, seen-item exclusion and top-k live here once.
    """

    name: ClassVar[str] = "base"
    #: whether `_score` reads the order of the history (sequence models)
    sequential: ClassVar[bool] = False
    #: users scored per batch in `recommend`
    scoring_batch_size: ClassVar[int] = 1024
    #: learned attributes that are references to other objects, not state to persist
    transient: ClassVar[tuple[str, ...]] = ("interactions_",)
    #: whether the learned state holds anything per user (`forget_users` changes it); models
    #: whose state is aggregated over users (item-item weights, item factors) hold none
    holds_user_state: ClassVar[bool] = False
    #: whether a score of 0 or less means the model has no evidence for the item (sums of
    #: co-occurrences): `recommend` leaves such places empty (-1) rather than ranking them, and
    #: serving fills them from the popular list (a shop's first week: 13 of 31 known shoppers got
    #: ten arbitrary zero-score products, labelled personalized)
    evidence_scores: ClassVar[bool] = False
    #: whether `fit` takes `groups` (an int code per item: the catalog's product groups, a
    #: size/colour variant's style) and then learns per group (see `GroupedCounts`)
    learns_groups: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def fit(self, interactions: Interactions) -> Self:
        self.n_items_ = interactions.n_items
        self.interactions_ = interactions
        self._fit(interactions)
        return self

    def forget_users(self, user_indices: np.ndarray | list[int]) -> Self:
        """Remove what the model learnt about these users in particular (right to erasure):
        afterwards it answers them as it answers a user it never saw, given the same history.
        What it learnt from them in aggregate (co-occurrence counts, item factors) stays; the
        next training run drops that too."""
        self._check_fitted()
        users = np.asarray(user_indices, np.int64).ravel()
        if self.holds_user_state and len(users):
            self._forget(users)
        return self

    def _forget(self, users: np.ndarray) -> None:
        """Clear the per-user state of `users` (models with `holds_user_state` implement it)."""
        raise NotImplementedError(f"{type(self).__name__} holds user state but cannot forget it")

    @abstractmethod
    def _fit(self, interactions: Interactions) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """(len(users), n_items) float32 scores, higher is better, from each user's history."""

    def score(self, users: np.ndarray, history: Interactions | None = None) -> np.ndarray:
        return self._shared_score(np.asarray(users, np.int64), self._history(history))

    def _shared_score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """`_score`, computed once per (model, users, history) inside `shared_scores()`."""
        memo = _SCORE_MEMO[0]
        if memo is None:
            return self._score(users, history)
        key = (id(self), id(history), users.tobytes())
        hit = memo.get(key)
        if hit is None:
            hit = np.array(self._score(users, history), dtype=np.float32, copy=True)
            hit.flags.writeable = False  # shared: whoever changes scores works on a copy
            memo[key] = hit
        return hit

    def _history(self, history: Interactions | None) -> Interactions:
        self._check_fitted()
        return self.interactions_ if history is None else history

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        history: Interactions | None = None,
    ) -> Results:
        hist = self._history(history)
        users = np.asarray(users, np.int64)
        seen = hist.seen() if exclude_seen else None
        ids, scores = [], []
        for start in range(0, len(users), self.scoring_batch_size):
            batch = users[start : start + self.scoring_batch_size]
            s = np.array(self._shared_score(batch, hist), dtype=np.float32, copy=True)
            if seen is not None:
                rows = seen[batch]
                s[np.repeat(np.arange(len(batch)), np.diff(rows.indptr)), rows.indices] = -np.inf
            r = top_k(s, k)
            if self.evidence_scores:
                r = Results(np.where(r.scores > 0, r.ids, -1), r.scores)
            ids.append(r.ids)
            scores.append(r.scores)
        if not ids:
            return Results(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
        return Results(np.vstack(ids), np.vstack(scores))

    def similar_items(self, items: np.ndarray, k: int = 10) -> Results:
        """Items like each given item: by default, what this model recommends to a user whose
        whole history is that one item (the item itself excluded)."""
        self._check_fitted()
        items = np.asarray(items, np.int64)
        n = len(items)
        probe = Interactions(
            np.arange(n, dtype=np.int32),
            items.astype(np.int32),
            np.ones(n, np.float32),
            np.zeros(n, np.int64),
            np.arange(n).astype(object),
            self.interactions_.item_ids,
        )
        return self.recommend(np.arange(n), k, exclude_seen=True, history=probe)

    def explain(
        self, user: int, item: int, history: Interactions | None = None, top: int = 3
    ) -> list[dict[str, Any]]:
        """Why `item` for `user`: the history items whose removal lowers its score the most."""
        return self.explain_many(user, [item], history, top)[item]

    def explain_many(
        self, user: int, items: list[int], history: Interactions | None = None, top: int = 3
    ) -> dict[int, list[dict[str, Any]]]:
        """`explain` for several items at once: one re-scoring per history item serves them all
        (a page explaining its top five does a fifth of the work)."""
        hist = self._history(history)
        seq = hist.sequence(user)
        items = list(dict.fromkeys(items))  # an item asked twice is explained once
        if len(seq) == 0:
            return {i: [] for i in items}
        cols = np.asarray(items, np.int64)

        def row(h: Interactions) -> np.ndarray:
            got = self._score(np.array([user]), h)[0, cols]
            return np.asarray(got.toarray() if hasattr(got, "toarray") else got, np.float64).ravel()

        base = row(hist)
        drops: dict[int, list[tuple[float, int]]] = {i: [] for i in items}
        for pos in np.unique(seq)[-50:]:
            mask = ~((hist.user_idx == user) & (hist.item_idx == pos))
            s = row(hist.take(mask, keep_raises=False))
            for j, i in enumerate(items):
                drops[i].append((float(base[j]) - float(s[j]), int(pos)))
        out = {}
        for i, d in drops.items():
            d.sort(reverse=True)
            out[i] = [{"item": it, "contribution": round(x, 6)} for x, it in d[:top] if x > 0]
        return out

    # persistence: parameters as JSON, learned state as a pickle of the `_` attributes, its
    # large arrays beside it as .npy files (`arrays/`, see `_StatePickler`)
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "params.json").write_text(
            json.dumps({"model": self.name, "params": self.get_params()}, indent=2)
        )
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k not in self.transient}
        save_state(state, path)

    @classmethod
    def upgrade_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters a model saved by an older shelfwise wrote, as `__init__` takes
        them today (renamed or retired parameters); the identity unless a model renamed some."""
        return params

    @classmethod
    def load(cls, path: str | Path, interactions: Interactions) -> Self:
        path = Path(path)
        meta = json.loads((path / "params.json").read_text())
        params = cls.upgrade_params(dict(meta["params"]))
        try:
            model = cls(**params)
        except TypeError as exc:
            raise IncompatibleModel(
                f"{path}: {cls.__name__} saved with parameters this shelfwise does not take ({exc})"
            ) from exc
        vars(model).update(load_state(path))
        model.interactions_ = interactions
        return model


def product_groups(groups: np.ndarray | None, n_items: int) -> np.ndarray | None:
    """The catalog's product groups (an int code per item) where they are groups: as many codes
    as items and some group holding several; None otherwise (none, every product its own group,
    or codes of another catalog): the item-level models and metrics then say it all."""
    if groups is None:
        return None
    g = np.asarray(groups, np.int64)
    return g if len(g) == n_items and len(np.unique(g)) < len(g) else None


class GroupedCounts(Recommender):
    """A count-based model that, given the catalog's product groups, counts per group: the
    sizes of one style no longer split its signal (a dress bought with a belt in six sizes is
    six weak pairs at item level, one strong pair at group level). Each variant is then scored
    with its group's score, the variant's own count breaking the tie within the group (serving
    shows one product per group, the best-ranked variant). `fit(interactions, groups=None)`:
    without groups (a catalog without them) the model is the item-level one, unchanged; a refit
    without `groups` keeps those it was fitted with. A model saved before groups (no `groups_`)
    loads and scores as before."""

    learns_groups = True

    def fit(self, interactions: Interactions, groups: np.ndarray | None = None) -> Self:
        if groups is not None:
            # every product its own group, or codes for another catalog: the item-level model
            self.groups_ = product_groups(groups, interactions.n_items)
        elif not hasattr(self, "groups_"):
            self.groups_ = None
        return super().fit(interactions)

    def _grouping(self) -> np.ndarray | None:
        g = getattr(self, "groups_", None)
        return g if g is not None and len(g) == getattr(self, "n_items_", -1) else None

    def _members(self) -> sp.csr_matrix | None:
        """`group_matrix` of the groups fitted with, built once per grouping (every scoring of
        a batch of users, a served request's included, reads it)."""
        groups = self._grouping()
        if groups is None:
            return None
        cached = getattr(self, "_member_matrix", None)  # (no trailing `_`: never saved)
        if cached is None or cached[0] is not groups:
            cached = (groups, self.group_matrix(groups))
            self._member_matrix = cached
        return cached[1]

    def similar_items(self, items: np.ndarray, k: int = 10) -> Results:
        """With groups: items like each given item's group (scored from a history of every
        variant of that group, all of them excluded): a style's neighbours, not its sizes."""
        groups = self._grouping()
        if groups is None:
            return super().similar_items(items, k)
        self._check_fitted()
        items = np.asarray(items, np.int64)
        members = [np.flatnonzero(groups == groups[i]) for i in items]
        rows = np.repeat(np.arange(len(items)), [len(m) for m in members])
        cols = np.concatenate(members) if members else np.empty(0, np.int64)
        # the given item last: the most recent step of the probe (models reading the order)
        order = np.lexsort((cols == np.repeat(items, [len(m) for m in members]), rows))
        rows, cols = rows[order], cols[order]
        probe = Interactions(
            rows.astype(np.int32),
            cols.astype(np.int32),
            np.ones(len(rows), np.float32),
            np.arange(len(rows), dtype=np.int64),
            np.arange(len(items)).astype(object),
            self.interactions_.item_ids,
        )
        return self.recommend(np.arange(len(items)), k, exclude_seen=True, history=probe)

    @staticmethod
    def group_matrix(groups: np.ndarray) -> sp.csr_matrix:
        """(n_items, n_groups) 0/1: each item's group."""
        n = len(groups)
        n_groups = int(groups.max()) + 1 if n else 0
        return sp.csr_matrix(
            (np.ones(n, np.float32), (np.arange(n), groups)), shape=(n, n_groups), dtype=np.float32
        )

    @staticmethod
    def within_group_share(groups: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Each item's count over the largest count in its group (0..1): the tie-breaker."""
        top = np.zeros(int(groups.max()) + 1 if len(groups) else 0, np.float64)
        np.maximum.at(top, groups, counts.astype(np.float64))
        return np.where(top[groups] > 0, counts / np.maximum(top[groups], 1e-12), 0.0)


class IncompatibleModel(ValueError):
    """A saved model this version of shelfwise cannot read (retrain to replace it)."""


# A model's arrays of at least this size are saved as .npy files beside its pickled state and
# loaded memory-mapped: the worker processes of one server (`shelfwise serve --workers N`) then
# share one copy of the factor matrices and embeddings in the page cache instead of each
# holding its own.
MMAP_MIN_BYTES = 1 << 16
ARRAYS_DIR = "arrays"


class _StatePickler(pickle.Pickler):
    """Pickles a model's state with every large numeric array (anywhere inside it: an attribute,
    a sparse matrix's data, a library model's factors) written to `arrays/NNN.npy` instead."""

    def __init__(self, fh: Any, directory: Path):
        super().__init__(fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.directory = directory
        self.written: dict[int, tuple[str, np.ndarray]] = {}  # id -> (file, array kept alive)

    def persistent_id(self, obj: Any) -> Any:
        if not (type(obj) is np.ndarray or isinstance(obj, np.memmap)):
            return None
        if obj.dtype.hasobject or obj.nbytes < MMAP_MIN_BYTES:
            return None
        got = self.written.get(id(obj))
        if got is None:
            name = f"{len(self.written):03d}.npy"
            self.directory.mkdir(exist_ok=True)
            _replace_with(self.directory / name, lambda fh: np.save(fh, np.asarray(obj), allow_pickle=False))
            got = self.written[id(obj)] = (name, obj)
        return ("npy", got[0])


class _StateUnpickler(pickle.Unpickler):
    def __init__(self, fh: Any, directory: Path):
        super().__init__(fh)
        self.directory = directory

    def persistent_load(self, pid: Any) -> Any:
        kind, name = pid
        if kind != "npy" or "/" in name or name.startswith("."):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        # copy-on-write: pages are shared with every process mapping the file until one writes
        # (a model told to forget a user changes its own copy, then saves it as new files)
        return np.load(self.directory / name, mmap_mode="c", allow_pickle=False)


def save_state(state: dict[str, Any], path: Path) -> None:
    """`state.pkl` and its arrays in `path`. Every file is written beside and renamed over the
    old one: a running server that maps the old file keeps reading it (truncating a mapped
    file in place would crash it) and loads the new ones when told (a reloaded bundle)."""
    directory = path / ARRAYS_DIR
    written: list[str] = []

    def dump(fh: Any) -> None:
        pickler = _StatePickler(fh, directory)
        pickler.dump(state)
        written.extend(name for name, _ in pickler.written.values())

    _replace_with(path / "state.pkl", dump)
    if directory.exists():  # arrays of an earlier save that this one no longer has
        for f in directory.iterdir():
            if f.name not in written:
                f.unlink()
        if not written:
            directory.rmdir()


def load_state(path: Path) -> dict[str, Any]:
    """What `save_state` wrote (a state pickled before arrays were kept apart loads as is)."""
    with open(path / "state.pkl", "rb") as fh:
        state: dict[str, Any] = _StateUnpickler(fh, path / ARRAYS_DIR).load()
    return state


def _replace_with(target: Path, write: Any) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
    tmp.replace(target)
