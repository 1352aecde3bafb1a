"""Features: interactions, id maps and point-in-time splits from curated tables."""

from ._build import Catalog, load_interactions
from ._interactions import DEFAULT_EVENT_WEIGHTS, Interactions
from ._splits import Fold, Split, global_time, leave_last_out

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "Catalog",
    "load_interactions",
    "Fold",
    "Interactions",
    "Split",
    "global_time",
    "leave_last_out",
]
