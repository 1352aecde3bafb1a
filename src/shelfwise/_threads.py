"""How many threads a LightGBM fit gets.

OpenMP threads busy-wait between the (tiny) parallel regions of a boosting iteration: on a small
training set a second thread costs more than it gives, and on a busy machine (two training jobs
on two cores) the spinning threads of one starve the other — a 20k-row ranker took 0.2 s of CPU
per iteration with two threads instead of a few milliseconds with one. The count depends only on
the data's size, so a fit stays the same from machine to machine (LightGBM's deterministic mode
holds for a fixed thread count).
"""

from __future__ import annotations

__all__ = ["lightgbm_threads"]

SMALL_ROWS = 100_000


def lightgbm_threads(rows: int) -> int:
    """One thread below `SMALL_ROWS` training rows, two from there."""
    return 1 if rows < SMALL_ROWS else 2
