"""Evaluation: metrics, the harness (protocol stated in every report) and the HTML report."""

from ._harness import (
    CUTOFFS,
    HEADLINE,
    ModelResult,
    Protocol,
    evaluate_all,
    evaluate_model,
    few_users_said,
    ndcg_at_10,
    repeat_targets_said,
    sampled_unscored_said,
    sessions_said,
)
from ._metrics import (
    bootstrap_ci,
    coverage,
    graded_ndcg_at_k,
    hits_matrix,
    novelty,
    per_user_metrics,
    wilson_interval,
)

__all__ = [
    "CUTOFFS",
    "HEADLINE",
    "ModelResult",
    "Protocol",
    "bootstrap_ci",
    "coverage",
    "evaluate_all",
    "evaluate_model",
    "graded_ndcg_at_k",
    "hits_matrix",
    "ndcg_at_10",
    "novelty",
    "per_user_metrics",
    "few_users_said",
    "repeat_targets_said",
    "sampled_unscored_said",
    "sessions_said",
    "wilson_interval",
]
