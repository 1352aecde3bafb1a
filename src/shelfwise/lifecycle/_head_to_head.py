"""The candidate against production on the candidate's own held-out steps (the registry's
`not_worse_than_production` gate).

Each bundle's test NDCG@10 is measured on its own data's held-out steps: after a new delivery
those are other steps (other users, other last steps), so the two numbers are not one scale, and
a candidate could pass or fail on the data rather than the model. Here production's default
model (its fit made without its own test targets, as `train` evaluated it) ranks for the
candidate's test users, from the same history the candidate's model ranks from (the
candidate's held-out steps removed), and the two are compared user by user:

- the users compared are the candidate's test users production knows (one it never saw has no
  fitted state in it: the new users are counted, not compared);
- production ranks in its own item indexes: the history's items it does not know are not in
  its history, and a target it does not know is a miss for it (it cannot recommend a product
  that came after it), as it would be for shoppers were it kept; each ranks among the products
  its own bundle lists (`listed`), as it serves;
- the gate reads the mean of the per-user differences (candidate - production) and its
  percentile bootstrap 95% interval (paired: the users' own difficulty cancels);
- production learned from newer events than the candidate (an older candidate promoted after a
  newer one went live): not compared (its fit may hold the candidate's held-out steps); nor a
  user whose latest step in production's fit is later than the candidate's test history holds
  (a newer snapshot holding less: production learned that user's held-out steps), counted as
  `leaked_users`.

Production is scored with the fit `train` evaluated (made without its own last steps per user),
not the refit it serves, which has them: the comparison leans a little the candidate's way.

The result is kept per pair of bundles (`registry/head_to_head/`), keyed by both manifests'
digests: a bundle rewritten by an erasure or retention is compared again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation._harness import _listed_top, _mask, group_depth, group_lists
from ..evaluation._metrics import bootstrap_ci, per_user_metrics
from ..features import Interactions
from ..features._splits import Fold

HEADLINE = "ndcg@10"
GROUP_HEADLINE = "group_ndcg@10"
CACHE_DIR = Path("registry") / "head_to_head"
METHOD = 2  # 2: users whose held-out steps production's fit learned are left out


def _digest(bundle_dir: Path) -> str:
    return hashlib.sha256((Path(bundle_dir) / "manifest.json").read_bytes()).hexdigest()[:16]


def head_to_head(
    workdir: str | Path,
    candidate_dir: str | Path,
    production_dir: str | Path,
    *,
    bootstrap_rounds: int = 1000,
    seed: int = 0,
    compute: bool = True,
    metric: str = HEADLINE,
) -> dict[str, Any] | None:
    """The comparison (see the module's docstring), read from its cache when both bundles are
    as they were: `{"users", "new_users", "candidate", "production", "difference", "ci95",
    "default_models"}`, or `{"skipped": why}` when there is nothing to compare; None when it
    is not cached and `compute` is False. `metric`: `ndcg@10`, or `group_ndcg@10` (the one that
    chose the candidate's default where its catalog has product groups): both models' lists
    collapsed to one product per group of the candidate's catalog, as the candidate serves them,
    a hit on any variant of the held-out product's group (production's lists too, whether or not
    its own catalog had groups: scored as the candidate's catalog would show them)."""
    workdir, cdir, pdir = Path(workdir), Path(candidate_dir), Path(production_dir)
    cd, pd = _digest(cdir), _digest(pdir)
    if cd == pd:  # one bundle registered twice: nothing to compare
        return {"skipped": "the candidate is production's own bundle"}
    # (the method's version in the name: a comparison cached before users whose steps production
    # learned were left out is made again, not read)
    by = "" if metric == HEADLINE else f"{metric.replace('@', '-at-')}-"
    cache = workdir / CACHE_DIR / f"v{METHOD}-{by}{cd}-{pd}.json"
    try:
        return dict(json.loads(cache.read_text()))
    except (OSError, ValueError):
        pass
    if not compute:
        return None
    out = _compare(cdir, pdir, bootstrap_rounds=bootstrap_rounds, seed=seed, metric=metric)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{np.random.default_rng().integers(1 << 62)}.tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(cache)
    return out


def _compare(
    cdir: Path, pdir: Path, *, bootstrap_rounds: int, seed: int, metric: str = HEADLINE
) -> dict[str, Any]:
    from ..serving._bundle import Bundle, load_evaluated_models
    from ._train import make_split

    cand, prod = Bundle.load(cdir), Bundle.load(pdir)
    cname, pname = cand.manifest["default_model"], prod.manifest["default_model"]
    models = {"candidate": cname, "production": pname}
    cev, pev = (_events_version(b.manifest) for b in (cand, prod))
    if cev is not None and pev is not None and pev > cev:
        # (an older candidate promoted after a newer one went live: production's fit learned
        # from steps that are this bundle's held-out ones)
        return {
            "skipped": f"production learned from newer events (v{pev}) than this bundle (v{cev}): "
            "its fit may hold this bundle's held-out steps",
            "default_models": models,
        }
    split = make_split(cand.interactions, cand.manifest["protocol"]["split"])
    fold = split.test
    if len(fold) == 0:
        return {"skipped": "the candidate's data has no test users", "default_models": models}
    cfits, _ = load_evaluated_models(cand)
    pfits, _ = load_evaluated_models(prod)
    if cname not in cfits or pname not in pfits:
        which = "candidate's" if cname not in cfits else "production's"
        return {
            "skipped": f"the {which} default model keeps no fit made without its test targets",
            "default_models": models,
        }
    p_user = {u: i for i, u in enumerate(prod.interactions.user_ids)}
    pu = np.array([p_user.get(u, -1) for u in cand.interactions.user_ids[fold.users]], np.int64)
    common = pu >= 0
    if not common.any():
        return {
            "skipped": "production knows none of the candidate's test users",
            "new_users": int(len(fold)),
            "default_models": models,
        }
    # candidate item index -> production's (-1: a product production does not know), and back
    p_item = {it: i for i, it in enumerate(prod.interactions.item_ids)}
    to_p = np.array([p_item.get(it, -1) for it in cand.interactions.item_ids], np.int64)
    c_item = {it: i for i, it in enumerate(cand.interactions.item_ids)}
    to_c = np.array([c_item.get(it, -1) for it in prod.interactions.item_ids], np.int64)

    # production's fit must not know a compared user's behaviour past what the candidate's test
    # history holds: its evaluated fit learned at most its own test history (the fusion's
    # ranker learned the validation step too), and a user whose latest step in it is later
    # than the candidate's history learned (part of) the candidate's held-out steps (a newer
    # snapshot holding less: the events version alone cannot tell). Those users are left out.
    pfold = make_split(prod.interactions, prod.manifest["protocol"]["split"]).test
    seen_p, seen_c = _latest(pfold.history), _latest(fold.history)
    leaked = np.zeros(len(pu), bool)
    leaked[common] = seen_p[pu[common]] > seen_c[fold.users[common]]
    if leaked.any():
        common &= ~leaked
        if not common.any():
            return {
                "skipped": "production's fit learned every compared user's steps past the candidate's "
                "test history (a newer snapshot holding less): its number would not be out of sample",
                "leaked_users": int(leaked.sum()),
                "default_models": models,
            }
    users_c = fold.users[common]
    users_p = pu[common]
    targets = fold.targets[np.flatnonzero(common)]
    k = 10
    groups = None
    if metric == GROUP_HEADLINE:
        from ..models import product_groups

        coded = cand.groups
        groups = product_groups(None if coded is None else np.asarray(coded.codes), cand.interactions.n_items)
        if groups is None:
            return {
                "skipped": f"{metric}: the candidate's catalog has no product groups",
                "default_models": models,
            }
        k = group_depth(groups, k)  # (a group's variants take places the collapse frees)
    c_ids = _listed_top(cfits[cname], users_c, k, fold, _unlisted(cand))
    hist_p = _history_in(fold.history, users_c, users_p, to_p, prod.interactions)
    p_fold = Fold("test", users_p, hist_p, targets)
    p_ids = _listed_top(pfits[pname], users_p, k, p_fold, _unlisted(prod))
    p_ids = np.where(p_ids >= 0, to_c[np.maximum(p_ids, 0)], -1)  # as the candidate's items
    if groups is None:
        c_ndcg = per_user_metrics(c_ids, targets, k)[HEADLINE]
        p_ndcg = per_user_metrics(p_ids, targets, k)[HEADLINE]
    else:
        c_ndcg = per_user_metrics(*group_lists(c_ids, targets, groups), 10)[HEADLINE]
        p_ndcg = per_user_metrics(*group_lists(p_ids, targets, groups), 10)[HEADLINE]
    diff = c_ndcg - p_ndcg
    lo, hi = bootstrap_ci(diff, rounds=bootstrap_rounds, seed=seed)
    return {
        "users": int(common.sum()),
        "new_users": int((~common & ~leaked).sum()),
        **({"leaked_users": int(leaked.sum())} if leaked.any() else {}),
        "candidate": round(float(c_ndcg.mean()), 6),
        "production": round(float(p_ndcg.mean()), 6),
        "difference": round(float(diff.mean()), 6),
        "ci95": [round(float(lo), 6), round(float(hi), 6)],
        "default_models": models,
        **({"metric": metric} if metric != HEADLINE else {}),
    }


def _latest(inter: Interactions) -> np.ndarray:
    """Per user index, the time of their latest step (-inf for a user with none)."""
    out = np.full(inter.n_users, -np.inf)
    if len(inter):
        np.maximum.at(out, inter.user_idx, inter.timestamp.astype(np.float64))
    return out


def _events_version(manifest: Any) -> int | None:
    """The curated events version a bundle learned from (None: not recorded)."""
    v = (manifest.get("data_versions") or {}).get("events", {}).get("version")
    return int(v) if isinstance(v, int | float | str) and str(v).isdigit() else None


def _unlisted(bundle: Any) -> np.ndarray | None:
    return _mask(None if bundle.listed is None else ~np.asarray(bundle.listed, bool))


def _history_in(
    history: Interactions, users_c: np.ndarray, users_p: np.ndarray, to_p: np.ndarray, space: Interactions
) -> Interactions:
    """The steps of `users_c` in `history` (the candidate's indexes) as production's users
    `users_p` and items (`to_p`; unknown items left out), in production's index space (`space`:
    its user and item ids); every other user of it has no step."""
    off = history.offsets
    parts = [np.arange(off[u], off[u + 1]) for u in users_c]
    rows = np.concatenate(parts) if parts else np.empty(0, np.int64)
    owner = np.repeat(users_p, [len(p) for p in parts])
    items = to_p[history.item_idx[rows]]
    keep = items >= 0
    # by user, each user's steps in the history's (time) order
    order = np.lexsort((np.arange(int(keep.sum())), owner[keep]))
    return Interactions(
        owner[keep][order].astype(np.int32),
        items[keep][order].astype(np.int32),
        history.weight[rows][keep][order].astype(np.float32),
        history.timestamp[rows][keep][order].astype(np.int64),
        space.user_ids,
        space.item_ids,
    )
