"""Hyperparameter tuning with Optuna: one study per model, a budget of trials (counted, so the
same data and seed give the same choice on any machine; seconds only cap it), the model's
defaults as the first trial (so tuning never returns something worse than the defaults on
validation)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..evaluation import ndcg_at_10
from ..features import Interactions, Split
from ..models import RECOMMENDERS, Recommender

if TYPE_CHECKING:
    import optuna

# (trial, the half-lives worth trying on this data) -> parameters. Optuna itself is imported by
# `tune` (~0.15 s CPU): `shelfwise evaluate` imports this module with training's and tunes nothing
SearchSpace = Callable[["optuna.Trial", list[float | None]], dict[str, Any]]

# time decay of the training data (None: no decay). Only half-lives shorter than the time the
# training data spans are tried: on data without real timestamps (sequence-per-line sets count
# one second per step) none would change anything, and the trials are kept for the rest.
HALF_LIVES: list[float | None] = [None, 7.0, 30.0, 90.0, 365.0]


def half_lives_for(interactions: Any) -> list[float | None]:
    ts = interactions.timestamp
    span_days = float(ts.max() - ts.min()) / 86400.0 if len(ts) else 0.0
    return [h for h in HALF_LIVES if h is None or h < span_days]


SEARCH_SPACES: dict[str, SearchSpace] = {
    "transitions": lambda t, h: {
        "window": t.suggest_int("window", 1, 6),
        "backward": t.suggest_float("backward", 0.0, 1.0),
        "alpha": t.suggest_float("alpha", 0.0, 1.0),
        "last": t.suggest_int("last", 1, 12),
        "decay": t.suggest_float("decay", 0.2, 1.0),
    },
    "itemknn": lambda t, h: {
        "neighbours": t.suggest_int("neighbours", 10, 400, log=True),
        "last": t.suggest_categorical("last", [None, 3, 10, 30]),
        "decay": t.suggest_float("decay", 0.5, 1.0),
        "half_life_days": t.suggest_categorical("half_life_days", h),
    },
    "als": lambda t, h: {
        "factors": t.suggest_categorical("factors", [32, 64, 128]),
        "regularization": t.suggest_float("regularization", 1e-3, 1.0, log=True),  # L2
        "alpha": t.suggest_float("alpha", 0.5, 40.0, log=True),
        "iterations": t.suggest_int("iterations", 8, 25),
        "half_life_days": t.suggest_categorical("half_life_days", h),
    },
    "bpr": lambda t, h: {
        "factors": t.suggest_categorical("factors", [32, 64, 128]),
        "learning_rate": t.suggest_float("learning_rate", 0.005, 0.2, log=True),
        "regularization": t.suggest_float("regularization", 1e-5, 0.1, log=True),  # L2
    },
    "ease": lambda t, h: {
        "l2": t.suggest_float("l2", 10.0, 5000.0, log=True),  # L2
        "half_life_days": t.suggest_categorical("half_life_days", h),
    },
    "popularity": lambda t, h: {"window_days": t.suggest_categorical("window_days", [None, 7, 30, 90])},
}


# trials beyond these stop paying off (small spaces; EASE costs a matrix inversion per trial)
MAX_TRIALS = {"popularity": 4, "ease": 3, "als": 12, "bpr": 12, "itemknn": 25, "transitions": 40}


def planned_trials(name: str, max_trials: int | None = None) -> int:
    """The trials a model's tuning runs (its budget): its own cap, or `max_trials` if fewer;
    0 for a model that is not tuned."""
    if name not in SEARCH_SPACES:
        return 0
    cap = MAX_TRIALS.get(name, 30)
    return min(cap, max_trials) if max_trials else cap


def tune(
    name: str,
    split: Split,
    *,
    budget_s: float,
    max_trials: int | None = None,
    max_users: int | None = 5000,
    seed: int = 0,
    defaults: dict[str, Any] | None = None,
    on_trial: Callable[[], None] | None = None,
    listed: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], Recommender | None]:
    """Best parameters by full-ranking NDCG@10 on the validation fold, every trial, and the
    best fitted model (so the caller need not fit it again; None when nothing was tuned).
    The budget is `planned_trials(name, max_trials)` trials; `budget_s` seconds is a safety
    cap (0: no tuning) after which no new trial starts: fewer trials than planned means it was
    hit, and the choice then depends on the machine's speed. `on_trial` is called after each
    trial (the run's progress display). `listed`: the items serving shows (see `ndcg_at_10`).
    `groups` (an int code per item; None = none): the catalog's product groups; a model that
    learns per group is fitted with them, and every trial is scored by the group NDCG@10
    (lists collapsed to one product per group, as served)."""
    cls = RECOMMENDERS[name]
    space = SEARCH_SPACES.get(name)
    base = dict(defaults or {})
    if space is None or budget_s <= 0 or len(split.validation) == 0:
        return base, [], None  # (no validation targets: every trial would score nan)
    half_lives = half_lives_for(split.train)
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    default_model: Recommender = cls(**base)
    first = {k: v for k, v in default_model.get_params().items()}
    probe = optuna.trial.FixedTrial(first)
    try:
        study.enqueue_trial({k: first[k] for k in space(probe, half_lives)})  # type: ignore[arg-type]
    except (ValueError, KeyError):
        pass

    best: dict[str, Any] = {"value": -1.0, "model": None}

    def objective(trial: optuna.Trial) -> float:
        params = {**base, **space(trial, half_lives)}
        model = fit_model(cls(**params), split.train, groups)
        value = ndcg_at_10(
            model, split.validation, max_users=max_users, seed=seed, listed=listed, groups=groups
        )
        if value > best["value"]:
            best.update(value=value, model=model)
        return value

    n_trials = planned_trials(name, max_trials)
    callbacks = [lambda study, trial: on_trial()] if on_trial is not None else None
    study.optimize(objective, n_trials=n_trials, timeout=budget_s, gc_after_trial=False, callbacks=callbacks)
    trials = [
        {"params": t.params, "validation_ndcg@10": t.value} for t in study.trials if t.value is not None
    ]
    if not trials:  # the time cap ended the study before its first trial: the defaults
        return base, [], None
    return {**base, **study.best_params}, trials, best["model"]


def fit_model(model: Recommender, interactions: Interactions, groups: np.ndarray | None) -> Recommender:
    """`model.fit(interactions)`, given the catalog's product groups where it learns per group."""
    if groups is not None and model.learns_groups:
        return model.fit(interactions, groups=groups)  # type: ignore[call-arg]
    return model.fit(interactions)
