"""The evaluation harness: every model, one protocol, stated in every report.

Full ranking over the whole catalog with each user's seen items excluded is the default; a
sampled protocol (the target among N random unseen items) is computed only when asked and is
labelled `sampled` wherever it appears. Only the products serving can show are ranked: an item
known from events whose catalog row was quarantined (`listed` false) is never served, so it is
never recommended here either, and a target on it counts as a miss for every model. A target the
user has already interacted with (leave-last-out's last step may return to an earlier item) is a
seen item like any other: excluded from every list under both protocols, so a miss for every
model; the protocol counts such users (`repeat_targets`), the share no model can hit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..features import Fold, Split
from ..governance._privacy import ANONYMOUS_PSEUDONYM_PREFIX
from ..models import Recommender, product_groups
from ._metrics import bootstrap_cis, coverage, novelty, per_user_metrics

CUTOFFS = (5, 10, 20, 50)
HEADLINE = "ndcg@10"


@dataclass
class Protocol:
    split: str
    split_description: str
    candidates: str  # "full ranking" or "sampled (N negatives)"
    exclude_seen: bool
    cutoffs: tuple[int, ...]
    users: int
    items: int
    bootstrap_rounds: int
    # items known from events without a curated catalog row: never served, never ranked here
    unlisted_items: int = 0
    # users whose target is already in their history: seen items are excluded, so never a hit
    repeat_targets: int = 0
    # test users that are sessions without a login (pseudonym `a_...`): their held-out step is
    # the next item of one visit, a customer's the next across visits
    anonymous_sessions: int = 0
    # the catalog's product groups (styles of size/colour variants, `products.group_id`); 0: none.
    # Where there are groups, `group_hr@10` and `group_ndcg@10` are reported beside the item
    # metrics: each list collapsed to one product per group (as serving shows it), a hit on any
    # variant of a held-out product's group
    groups: int = 0
    # where there are groups: test users whose held-out step is in a group already in their
    # history (another size of a style they saw): no new group for the shopper, and serving
    # leaves a bought group out of their recommendations. `new_group_hr@10`/`new_group_ndcg@10`
    # score the other users alone: lists without the groups of their history, a hit on a new group
    repeat_group_targets: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def repeat_targets_said(protocol: dict[str, Any]) -> str:
    """The share of test users no model can hit (a target already in their history), in words;
    "" when there is none. The hr@10 ceiling it implies holds with one target a user, as
    leave-last-out has. What `evaluate` prints and `train` logs beside the numbers."""
    users, repeat = protocol.get("users") or 0, protocol.get("repeat_targets") or 0
    said = ""
    if users and repeat:
        share = repeat / users
        ceiling = f" (hr@10 at most {1 - share:.4f})" if protocol.get("split") == "leave_last_out" else ""
        said = (
            f"{repeat:,} of {users:,} test users ({100 * share:.1f}%) have a target already in their history: "
            f"with seen items excluded no model can hit it{ceiling}"
        )
    groups = protocol.get("repeat_group_targets") or 0
    if users and groups:
        said += ("; " if said else "") + (
            f"{groups:,} of {users:,} test users ({100 * groups / users:.1f}%) have a target in a product "
            "group already in their history (another size or colour of a style they saw): no new group "
            "for the shopper"
        )
    return said


def sessions_said(protocol: dict[str, Any]) -> str:
    """How many test users are anonymous sessions, in words ("" when none): a session shop's
    number mixes the next item within a visit (sessions) with the next across visits
    (customers); the results' segments `anonymous_sessions` and `customers` part them."""
    users, anon = int(protocol.get("users") or 0), int(protocol.get("anonymous_sessions") or 0)
    if not (users and anon):
        return ""
    return (
        f"{anon:,} of {users:,} test users ({100 * anon / users:.1f}%) are sessions without a login: "
        "their held-out step is the next item of one visit, a customer's the next across visits "
        "(segments anonymous_sessions and customers)"
    )


def _anonymous(fold: Fold) -> np.ndarray:
    """Per test user, whether it is a session without a login (its pseudonym's prefix)."""
    ids = fold.history.user_ids
    return np.array([str(ids[u]).startswith(ANONYMOUS_PSEUDONYM_PREFIX) for u in fold.users], bool)


# a test fold of fewer users measures nothing a reader should act on
FEW_TEST_USERS = 50


def few_users_said(protocol: dict[str, Any]) -> str:
    """A warning when the test fold is too small to act on, in words; "" otherwise. Said by
    `train`'s log, `evaluate` and the HTML report beside the numbers (only train's log said it:
    a 20-user fold's tables read as measures everywhere else)."""
    users = int(protocol.get("users") or 0)
    if not users or users >= FEW_TEST_USERS:
        return ""
    return (
        f"the test fold has {users:,} users ({protocol.get('split')}): its numbers, and the default model "
        "chosen by them, are noise more than measure (see each model's 95% CI)"
    )


@dataclass
class ModelResult:
    model: str
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    segments: dict[str, dict[str, float]]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metrics": self.metrics,
            "ci95": {k: list(v) for k, v in self.ci.items()},
            "segments": self.segments,
            "seconds": round(self.seconds, 3),
            **self.extra,
        }


def _rank_sampled(
    model: Recommender, fold: Fold, negatives: int, seed: int, unlisted: np.ndarray | None = None
) -> np.ndarray:
    """(n, 1 + negatives) ids: a target and its negatives, ordered by the model's score.
    Negatives are drawn from the listed items; a target that is not listed, or that the user has
    already seen (seen items are excluded, as in full ranking), is left out (-1)."""
    return _rank_sampled_counted(model, fold, negatives, seed, unlisted)[0]


def _rank_sampled_counted(
    model: Recommender, fold: Fold, negatives: int, seed: int, unlisted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_rank_sampled`'s ids, with two masks over the fold's users: `ranked`, the users whose
    target is a candidate (listed, not seen, with at least one negative drawn), and `unscored`,
    those of them whose target the model scores no higher than the lowest score among the
    user's sampled negatives (`unscored_target`): its place is the floor's, decided by the
    random tie-break among the negatives sharing that floor (or last), not by the model."""
    rng = np.random.default_rng(seed)
    ranked = np.zeros(len(fold.users), bool)
    unscored = np.zeros(len(fold.users), bool)
    seen = fold.history.seen()
    never = np.flatnonzero(unlisted) if unlisted is not None else np.empty(0, np.int64)
    out = np.empty((len(fold.users), negatives + 1), np.int64)
    for lo in range(0, len(fold.users), 1024):
        users = fold.users[lo : lo + 1024]
        s = np.array(model.score(users, fold.history), dtype=np.float32, copy=True)
        if len(never):
            s[:, never] = -np.inf
        for r, u in enumerate(users):
            pos = fold.targets.indices[fold.targets.indptr[lo + r] : fold.targets.indptr[lo + r + 1]]
            hist = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
            banned = np.union1d(np.union1d(hist, pos), never)
            pool = np.setdiff1d(np.arange(s.shape[1]), banned)
            # a small catalog may hold fewer unseen items than asked: all of them, -1 after
            neg = rng.choice(pool, size=min(negatives, len(pool)), replace=False)
            # in random order before the (stable) sort: a tie - say, the zero score a sparse model
            # gives most items - is broken at random, not in the target's favour (it came first,
            # and a model scoring nothing then hit every time)
            cand = rng.permutation(np.concatenate([pos[:1], neg]))
            row = cand[np.argsort(-s[r, cand], kind="stable")]
            if len(pos) and np.isin(pos[0], hist):  # a seen target: excluded, as every seen item
                row[row == pos[0]] = -1
            elif len(pos) and len(neg) and not np.isin(pos[0], never):
                ranked[lo + r] = True
                unscored[lo + r] = unscored_target(s[r, pos[0]], s[r, neg])
            out[lo + r, : len(cand)] = row
            out[lo + r, len(cand) :] = -1
    if len(never):  # an unlisted target is never shown: not in its list at any depth
        out[np.isin(out, never)] = -1
    return out, ranked, unscored


def unscored_target(target_score: float, negative_scores: np.ndarray) -> bool:
    """Whether a sampled target is "unscored": the model's score for it is no higher than the
    lowest score among its sampled negatives (not finite, e.g. the -inf a fusion gives every item
    outside its generators' candidates, counts as no higher). Such a target sits at the floor of
    its list: tied with the negatives sharing the floor score (the zero item-kNN gives an item with
    no neighbour in the history, the -inf of the fusion), placed among them by the random
    tie-break, or below them all; its hit or miss is then a draw, not the model's judgement."""
    floor = float(np.min(negative_scores))
    t = float(target_score)
    return bool(t <= floor or t != t)  # (-inf <= any floor, -inf included; nan: no score)


def _listed_top(
    model: Recommender, users: np.ndarray, k: int, fold: Fold, unlisted: np.ndarray | None
) -> np.ndarray:
    """The model's top k for `users` among the listed items: its top k + (number unlisted),
    the unlisted ones removed (at most that many can be above the k-th listed item), -1 padding;
    for a model that leaves places it has no evidence for empty (`evidence_scores`), those
    filled from the training popularity as serving fills them from its popular list."""
    ids = _model_top(model, users, k, fold, unlisted)
    if getattr(model, "evidence_scores", False) and (ids < 0).any():
        ids = _popular_fill(ids, users, fold, unlisted)
    return ids


def _popular_fill(ids: np.ndarray, users: np.ndarray, fold: Fold, unlisted: np.ndarray | None) -> np.ndarray:
    """Each row's empty places (-1, at its end) filled with the most popular items of the
    training history the user has not seen and the list does not hold (listed ones only): the
    list serving shows, so that the offline number measures it (a miss per empty place under-
    counted item-kNN and transitions against the served list; ranking zero scores in catalog
    order, before `evidence_scores`, counted lucky ties)."""
    counts = np.asarray(fold.history.item_counts(), np.float64)
    order = np.argsort(-counts, kind="stable")
    if unlisted is not None:
        order = order[~unlisted[order]]
    seen = fold.history.seen()
    out = ids.copy()
    for r in np.flatnonzero((ids < 0).any(axis=1)):
        u = int(users[r])
        have = set(ids[r][ids[r] >= 0].tolist()) | set(
            seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist()
        )
        empty = np.flatnonzero(out[r] < 0)
        fill: list[int] = []
        for i in order:
            if len(fill) == len(empty):
                break
            if int(i) not in have:
                fill.append(int(i))
        out[r, empty[: len(fill)]] = fill
    return out


def _model_top(
    model: Recommender, users: np.ndarray, k: int, fold: Fold, unlisted: np.ndarray | None
) -> np.ndarray:
    if unlisted is None:
        return model.recommend(users, k, exclude_seen=True, history=fold.history).ids
    wide = k + int(unlisted.sum())
    # users in batches: each list is k + (number unlisted) long, and a shop with thousands of
    # products known from events alone would hold users x thousands of ids at once
    step = max(1, min(len(users), (1 << 22) // max(wide, 1)))
    parts = []
    for lo in range(0, len(users), step):
        ids = model.recommend(users[lo : lo + step], wide, exclude_seen=True, history=fold.history).ids
        keep = ids >= 0
        keep[keep] = ~unlisted[ids[keep]]
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        out = np.take_along_axis(ids, order, axis=1)
        out[~np.take_along_axis(keep, order, axis=1)] = -1
        parts.append(out)
    return np.vstack(parts) if parts else np.empty((0, k), np.int64)


def evaluate_model(
    name: str,
    model: Recommender,
    fold: Fold,
    *,
    item_counts: np.ndarray,
    train_lengths: np.ndarray,
    cutoffs: tuple[int, ...] = CUTOFFS,
    sampled: int | None = None,
    bootstrap_rounds: int = 1000,
    seed: int = 0,
    ranked: tuple[np.ndarray, float] | None = None,
    unlisted: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> ModelResult:
    """Metrics of one model on a fold; `ranked` = (top ids, seconds) when already computed;
    `unlisted` (a mask over items) marks items serving never shows, left out of every list."""
    t0 = time.monotonic()
    kmax = max(cutoffs)
    unlisted = _mask(unlisted)
    extra: dict[str, Any] = {}
    if ranked is not None:
        ids, seconds = ranked
    else:
        if sampled:
            ids, rankable_targets, unscored = _rank_sampled_counted(model, fold, sampled, seed, unlisted)
            # the share of ranked targets the model placed at the floor of their negatives (see
            # `unscored_target`): a sampled number of a model that leaves most items unscored is
            # mostly a random draw, not comparable with one of a model that scores them all
            n_ranked = int(rankable_targets.sum())
            extra["sampled_unscored_targets"] = float(unscored.sum() / n_ranked) if n_ranked else None
            extra["sampled_unscored_target_users"] = int(unscored.sum())
            extra["sampled_ranked_target_users"] = n_ranked
        else:
            depth = kmax if groups is None else group_depth(groups, kmax)
            ids = _listed_top(model, fold.users, depth, fold, unlisted)
        seconds = time.monotonic() - t0
    deep = ids  # (with groups, ranked deeper: a group's variants take places the collapse frees)
    if groups is not None and ids.shape[1] > kmax:
        ids = ids[:, :kmax]
    if ids.shape[1] < kmax:  # a sampled list shorter than a cutoff: the rest is padding
        ids = np.pad(ids, ((0, 0), (0, kmax - ids.shape[1])), constant_values=-1)
    rankable = len(item_counts) - (int(unlisted.sum()) if unlisted is not None else 0)
    per_user: dict[str, np.ndarray] = {}
    for k in cutoffs:
        per_user.update(per_user_metrics(ids, fold.targets, k))
    # a fold with no users (a shop with a handful of events) has no value, not a warning
    metrics = {m: float(v.mean()) if len(v) else float("nan") for m, v in per_user.items()}
    if groups is not None and not sampled and kmax >= 10:
        by_group = per_user_metrics(*group_lists(deep, fold.targets, groups), 10)
        # (its 95% interval as the item NDCG@10's: the registry's gates read it where the group
        # NDCG@10 chose the default model)
        per_user["group_ndcg@10"] = by_group["ndcg@10"]
        metrics["group_hr@10"] = float(by_group["hr@10"].mean()) if len(fold) else float("nan")
        metrics["group_ndcg@10"] = float(by_group["ndcg@10"].mean()) if len(fold) else float("nan")
        g_ids, g_targets, eligible = new_group_lists(deep, fold, groups)
        if eligible.any():
            fresh = per_user_metrics(g_ids[eligible], g_targets[np.flatnonzero(eligible)], 10)
            metrics["new_group_hr@10"] = float(fresh["hr@10"].mean())
            metrics["new_group_ndcg@10"] = float(fresh["ndcg@10"].mean())
    if not sampled:
        for k in (10, 20):
            if k <= kmax:
                metrics[f"coverage@{k}"] = coverage(ids, rankable, k)
                metrics[f"novelty@{k}"] = novelty(ids, item_counts, k)
    ci = bootstrap_cis(
        {m: per_user[m] for m in (HEADLINE, "hr@10", "recall@10", "group_ndcg@10") if m in per_user},
        rounds=bootstrap_rounds,
        seed=seed,
    )
    # segments: users by history length; targets by item popularity (head = top 20% of items
    # by training interactions, which together hold most of the traffic)
    seg: dict[str, dict[str, float]] = {}
    hist_len = train_lengths[fold.users]
    seg_masks = {
        "new_users(<=5 steps)": hist_len <= 5,
        "active_users(>5 steps)": hist_len > 5,
    }
    anon = _anonymous(fold)
    if anon.any():  # a session shop: the two kinds of held-out step, apart
        seg_masks["anonymous_sessions"] = anon
        seg_masks["customers"] = ~anon
    head_cut = np.quantile(item_counts[item_counts > 0], 0.8) if (item_counts > 0).any() else 0
    tgt_first = np.array(
        [
            fold.targets.indices[fold.targets.indptr[r]]
            if fold.targets.indptr[r + 1] > fold.targets.indptr[r]
            else -1
            for r in range(len(fold.users))
        ],
        np.int64,
    )
    tgt_count = np.where(tgt_first >= 0, item_counts[np.maximum(tgt_first, 0)], 0)
    seg_masks["head_items"] = tgt_count > head_cut
    seg_masks["tail_items"] = tgt_count <= head_cut
    for sname, mask in seg_masks.items():
        if mask.any():
            seg[sname] = {
                "users": int(mask.sum()),
                HEADLINE: float(per_user[HEADLINE][mask].mean()),
                "hr@10": float(per_user["hr@10"][mask].mean()),
            }
    return ModelResult(name, metrics, ci, seg, seconds, extra)


def evaluate_all(
    models: dict[str, Recommender],
    split: Split,
    *,
    fold: str = "test",
    cutoffs: tuple[int, ...] = CUTOFFS,
    sampled: int | None = None,
    bootstrap_rounds: int = 1000,
    seed: int = 0,
    listed: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[Protocol, list[ModelResult]]:
    """Every model on one fold under one protocol. `listed` (bool per item, None = all): the
    items serving can show; the others are never ranked (see the module's docstring).
    `groups` (an int code per item, None = no groups): the catalog's product groups, for the
    group-level metrics reported beside the item ones (`Protocol.groups`)."""
    groups = product_groups(groups, split.train.n_items)  # (none: the item metrics say it all)
    f = split.test if fold == "test" else split.validation
    item_counts = split.train.item_counts()
    lengths = split.train.lengths()
    unlisted = _mask(None if listed is None else ~np.asarray(listed, bool))
    n_unlisted = int(unlisted.sum()) if unlisted is not None else 0
    over = f"the {split.train.n_items - n_unlisted:,} listed items" if n_unlisted else "all items"
    protocol = Protocol(
        split=split.protocol,
        split_description=split.description,
        candidates=_sampled_label(sampled, split.train.n_items - n_unlisted, n_unlisted)
        if sampled
        else f"full ranking ({over})",
        exclude_seen=True,
        cutoffs=tuple(cutoffs),
        users=len(f),
        items=split.train.n_items,
        bootstrap_rounds=bootstrap_rounds,
        unlisted_items=n_unlisted,
        repeat_targets=repeat_targets(f),
        anonymous_sessions=int(_anonymous(f).sum()),
        groups=0 if groups is None or sampled else len(np.unique(groups)),
        repeat_group_targets=0 if groups is None else repeat_group_targets(f, groups),
    )
    depth = max(cutoffs) if groups is None else group_depth(groups, max(cutoffs))
    ranked = {} if sampled else _rank_jointly(models, f, depth, unlisted)
    results = [
        evaluate_model(
            name,
            m,
            f,
            item_counts=item_counts,
            train_lengths=lengths,
            cutoffs=cutoffs,
            sampled=sampled,
            bootstrap_rounds=bootstrap_rounds,
            seed=seed,
            ranked=ranked.get(name),
            unlisted=unlisted,
            groups=groups,
        )
        for name, m in models.items()
    ]
    return protocol, results


def group_lists(
    ids: np.ndarray, targets: sp.csr_matrix, groups: np.ndarray
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Top lists and targets at group level: each list's items as their groups, a group's
    later items dropped and the rest moved up (serving shows one product per group), padded
    with -1; each user's targets as the groups they belong to."""
    return collapsed_to_groups(ids, groups), by_group(targets, groups)


def collapsed_to_groups(ids: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row of top lists `ids` (-1: no item) as its items' groups, a group's first place
    kept and the later ones dropped, the rest moved up, padded with -1 (vectorised: a Python
    loop over the cells took ~30 s a model at 5,000 users and 1,300-item lists)."""
    ids = np.asarray(ids, np.int64)
    if ids.size == 0:
        return np.full(ids.shape, -1, np.int64)
    g = np.where(ids >= 0, groups[np.maximum(ids, 0)], -1)
    order = np.argsort(g, axis=1, kind="stable")  # a group's places together, in list order
    ranked = np.take_along_axis(g, order, axis=1)
    first_sorted = np.ones(ranked.shape, bool)
    first_sorted[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    first = np.zeros(g.shape, bool)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return _compacted(g, first & (g >= 0))


def _compacted(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each row's kept values moved up, in their order, the row padded with -1."""
    moved = np.argsort(~keep, axis=1, kind="stable")
    return np.take_along_axis(np.where(keep, values, -1), moved, axis=1)


def by_group(m: sp.csr_matrix, groups: np.ndarray) -> sp.csr_matrix:
    """A users x items 0/1 matrix (targets, a history's items) as users x groups: 1 where any
    of the user's items is in the group."""
    t = m.tocoo()
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    out = sp.csr_matrix(
        (np.ones(len(t.row), np.float32), (t.row, groups[t.col])), shape=(m.shape[0], n_groups)
    )
    out.sum_duplicates()
    out.data[:] = 1.0  # (two items of one group: one)
    return out


def _sampled_label(sampled: int, available: int, n_unlisted: int) -> str:
    """The sampled protocol's name. A sample as large as the catalog draws every unseen item: the
    full ranking's numbers, which `--sampled 5000` on a 1,682-item catalog labelled "5000
    random unseen negatives per target"; the label says so (a test of a small catalog may ask
    for more than it holds)."""
    listed = ", listed items only" if n_unlisted else ""
    if sampled >= available - 1:
        return (
            f"sampled ({sampled} negatives asked, as many as the {available:,}{' listed' if n_unlisted else ''} "
            "items or more: every unseen item is a candidate, as in full ranking, ties broken at random)"
        )
    # (a user with fewer unseen items than asked ranks all of theirs: said, it is not rare)
    return (
        f"sampled ({sampled} random unseen negatives per target, all of them for a user with fewer"
        f"{listed}, ties broken at random; {SAMPLED_UNSCORED_MEANING})"
    )


# what a sampled tie at the floor means, said in the sampled protocol's label
SAMPLED_UNSCORED_MEANING = (
    "a target a model scores no higher than the lowest of its negatives (unscored: the -inf or 0 a "
    "model gives items it has no evidence for, as the fusion does outside its generators' candidates) "
    "is placed among the tied negatives at random or last, its hit a draw, not the model's judgement: "
    "each model's share of such targets is its sampled_unscored_targets"
)

# a model with at least this share of unscored sampled targets is flagged beside its number
SAMPLED_UNSCORED_FLAG = 0.5


def sampled_unscored_said(result: dict[str, Any]) -> str:
    """A model's unscored share under the sampled protocol, in words, when it is large enough
    (`SAMPLED_UNSCORED_FLAG`) that its sampled number is mostly a draw; "" otherwise (and under
    full ranking). What `evaluate` prints and the HTML report shows below the table."""
    share = result.get("sampled_unscored_targets")
    if share is None or share != share or share < SAMPLED_UNSCORED_FLAG:
        return ""
    n, of = result.get("sampled_unscored_target_users"), result.get("sampled_ranked_target_users")
    counts = f" ({n:,} of {of:,})" if isinstance(n, int) and isinstance(of, int) else ""
    return (
        f"{result['model']}: {100 * share:.1f}% of its sampled targets{counts} are unscored (no higher than "
        "the lowest of their negatives), ranked by the random tie-break: its sampled number is mostly a "
        "draw and not comparable with a model that scores every candidate (full ranking compares them)"
    )


def repeat_targets(fold: Fold) -> int:
    """The fold's users with a target already in their history: seen items are excluded from
    every list, so no model can hit it (leave-last-out's last step may return to an earlier item)."""
    if len(fold) == 0:
        return 0
    seen = fold.history.seen()[fold.users]
    return int((fold.targets.multiply(seen).getnnz(axis=1) > 0).sum())


# the deepest group lists are ranked (`group_depth`)
MAX_GROUP_DEPTH = 600


def group_depth(groups: np.ndarray, k: int) -> int:
    """How deep to rank items for group lists of 10: a group's variants rank together (a model
    that learns per group gives them one score), so a list of k items may hold few groups; 30
    groups' worth of the largest group's variants (and at least k), at most the catalog and
    at most `MAX_GROUP_DEPTH` (a style of 120 variants asked 3,600 items of every test user:
    576 MB of ids per model at 20,000 users; past the cap a list of such styles may hold fewer
    than 10 groups, which only lowers the group numbers)."""
    if not len(groups):
        return k
    return int(min(len(groups), MAX_GROUP_DEPTH, max(k, 30 * int(np.bincount(groups).max()))))


def new_group_lists(
    ids: np.ndarray, fold: Fold, groups: np.ndarray
) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Group lists and targets for the groups new to each user: the lists collapsed to one
    product per group without the groups of the user's history, the targets in a group outside
    it, and which users have such a target (the users `new_group_*` metrics average over)."""
    seen_groups = by_group(fold.history.seen()[fold.users], groups)
    g_ids, g_targets = group_lists(ids, fold.targets, groups)
    rows, cols = np.nonzero(g_ids >= 0)
    old = np.zeros(g_ids.shape, bool)
    if len(rows):
        old[rows, cols] = np.asarray(seen_groups[rows, g_ids[rows, cols]]).ravel() > 0
    out = _compacted(g_ids, (g_ids >= 0) & ~old)
    fresh = (g_targets - g_targets.multiply(seen_groups)).tocsr()
    fresh.eliminate_zeros()
    return out, fresh, fresh.getnnz(axis=1) > 0


def repeat_group_targets(fold: Fold, groups: np.ndarray) -> int:
    """The fold's users with a target whose product group is already in their history (another
    size or colour of a style they interacted with)."""
    if len(fold) == 0:
        return 0
    targets = by_group(fold.targets, groups)
    seen = by_group(fold.history.seen()[fold.users], groups)
    return int((targets.multiply(seen).getnnz(axis=1) > 0).sum())


def _mask(unlisted: np.ndarray | None) -> np.ndarray | None:
    """None when no item is unlisted (the common case: nothing to filter)."""
    if unlisted is None:
        return None
    unlisted = np.asarray(unlisted, bool)
    return unlisted if unlisted.any() else None


def _rank_jointly(
    models: dict[str, Recommender],
    fold: Fold,
    k: int,
    unlisted: np.ndarray | None = None,
    memory_bytes: float = 256e6,
) -> dict[str, tuple[np.ndarray, float]]:
    """Every model's top k for every fold user, batch by batch with the models' scores shared
    within a batch (`shared_scores`): a fusion reuses its generators' scores instead of
    recomputing them. Batches are sized so the shared score matrices stay under `memory_bytes`."""
    from ..models import shared_scores

    n_items = max(1, max((getattr(m, "n_items_", 1) for m in models.values()), default=1))
    batch = int(np.clip(memory_bytes // (4 * n_items * max(1, len(models))), 32, 512))
    ids: dict[str, list[np.ndarray]] = {name: [] for name in models}
    secs = dict.fromkeys(models, 0.0)
    for lo in range(0, len(fold.users), batch):
        users = fold.users[lo : lo + batch]
        with shared_scores():
            for name, m in models.items():
                t0 = time.monotonic()
                ids[name].append(_listed_top(m, users, k, fold, unlisted))
                secs[name] += time.monotonic() - t0
    return {name: (np.vstack(v) if v else np.empty((0, k), np.int64), secs[name]) for name, v in ids.items()}


def ndcg_at_10(
    model: Recommender,
    fold: Fold,
    max_users: int | None = None,
    seed: int = 0,
    listed: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> float:
    """Mean full-ranking NDCG@10 on a fold (optionally a fixed random subset of its users):
    the objective of tuning and early stopping. `listed` (bool per item, None = all): ranked
    among the listed items only, as `evaluate_all` and serving rank (an unlisted target is a
    miss), so that a model is not tuned or stopped for hits serving never shows. `groups` (an
    int code per item, None = none): the group NDCG@10 (`group_ndcg@10`: lists collapsed to one
    product per group, as served; a hit on any variant of the target's group)."""
    users, targets = fold.users, fold.targets
    if max_users and len(users) > max_users:
        pick = np.sort(np.random.default_rng(seed).choice(len(users), max_users, replace=False))
        users, targets = users[pick], targets[pick]
    if len(users) == 0:
        return float("nan")  # no validation target: nothing to score (callers skip tuning then)
    unlisted = _mask(None if listed is None else ~np.asarray(listed, bool))
    if groups is not None:
        # a group's variants take up places of the raw list that the collapsed one fills again
        ids = _listed_top(model, users, group_depth(groups, 50), fold, unlisted)
        return float(per_user_metrics(*group_lists(ids, targets, groups), 10)["ndcg@10"].mean())
    ids = _listed_top(model, users, 10, fold, unlisted)
    return float(per_user_metrics(ids, targets, 10)["ndcg@10"].mean())
