"""The console of a long run (`shelfwise train`): what the user reads, and where the rest goes.

The run's own lines go to the console and to the run's log file (`<workdir>/logs/train-<UTC
time>.log`). Library chatter (Python warnings, library loggers, Hugging Face download and
weight-loading bars) goes to that file only: a real shop's train used to print thousands of
them. Long steps show a progress display (rich) on stderr with the stage, its own progress
and the stages that remain, only when stderr is a terminal and the output is not JSON.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

__all__ = ["RunConsole", "progress_display"]


def progress_display() -> Any:
    """The display of a long run's steps on stderr (rich; gone when stopped): the step, its bar,
    done of total, the time spent and what remains (each task's `remaining` field)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[remaining]}"),
        console=Console(stderr=True),
        transient=True,
    )


class StepDisplay:
    """A long run's steps shown on stderr (`progress_display`), one at a time: its name, its
    progress (done of a total known ahead or growing, `expect`) and the steps after it; `show`
    False: nothing is shown. `RunConsole` (train) and the demand forecasts show theirs with it."""

    def __init__(self, show: bool):
        self._progress: Any = progress_display() if show else None
        self._task: Any = None

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextmanager
    def stage(
        self, name: str, remaining: list[str] | None = None, total: int | None = None
    ) -> Iterator[None]:
        """A step shown while it runs; `total` None: not known ahead (a pulsing bar, or one
        that `expect` grows)."""
        if self._progress is not None:
            self._task = self._progress.add_task(
                name, total=total, remaining=("then: " + ", ".join(remaining)) if remaining else ""
            )
            # drawn as it begins, and (below) as it ends: a step shorter than rich's timed refresh
            # (a tenth of a second) was never drawn at all, or drawn at either end by chance
            self._progress.refresh()
        try:
            yield
        finally:
            if self._progress is not None:
                self._progress.refresh()  # (the step as it ended: done of its total)
                self._progress.remove_task(self._task)
                self._task = None

    def expect(self, steps: int) -> None:
        """The step's total grows by `steps` (work it has started)."""
        if self._progress is not None and self._task is not None:
            total = self._progress.tasks[self._progress.task_ids.index(self._task)].total
            self._progress.update(self._task, total=(total or 0) + steps)

    def advance(self, steps: float = 1.0, total: float | None = None) -> None:
        if self._progress is not None and self._task is not None:
            if total is not None:
                self._progress.update(self._task, total=total)
            self._progress.advance(self._task, steps)


# libraries that log through `logging` to handlers of their own or through the root logger
_LIBRARY_LOGGERS = (
    "mlflow",
    "alembic",
    "optuna",
    "lightgbm",
    "transformers",
    "sentence_transformers",
    "torch",
)


class RunConsole:
    """`with RunConsole(workdir, echo, progress=...) as con:` then `con.log(line)` and
    `con.stage(name, remaining)` / `con.step(total, label)` / `con.advance()` around long steps."""

    def __init__(
        self, workdir: str | Path, echo: Callable[[str], Any], *, progress: bool, name: str = "train"
    ):
        self.echo = echo
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = Path(workdir) / "logs" / f"{name}-{stamp}.log"
        self.show_progress = progress
        self._steps = StepDisplay(False)
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []
        self._warnings_ctx: Any = None

    # -- setup ----------------------------------------------------------------------------------
    def __enter__(self) -> RunConsole:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(self.path, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._file = logging.getLogger("shelfwise.run")
        # libraries: to the file only (their own console handlers are set aside for the run)
        for name in ("py.warnings", "shelfwise.run", *_LIBRARY_LOGGERS, ""):
            lg = logging.getLogger(name)
            self._saved.append((lg, list(lg.handlers), lg.propagate, lg.level))
            for h in list(lg.handlers):
                lg.removeHandler(h)
            lg.addHandler(self._handler)
            lg.propagate = False
            if name in ("py.warnings", "shelfwise.run", ""):
                lg.setLevel(logging.INFO)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers loads
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        if "transformers" in sys.modules:  # already loaded: switch its bars off directly
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        # warnings go to the file through logging (with the filters in force: once per place)
        self._warnings_ctx = warnings.catch_warnings()
        self._warnings_ctx.__enter__()
        logging.captureWarnings(True)
        self._steps = StepDisplay(self.show_progress).__enter__()
        self._file.info("run log of %s (pid %d)", " ".join(sys.argv), os.getpid())
        return self

    def __exit__(self, *exc: Any) -> None:
        self._steps.__exit__(*exc)
        logging.captureWarnings(False)
        if self._warnings_ctx is not None:
            self._warnings_ctx.__exit__(*exc)
        if exc[0] is not None:
            self._file.error("run failed", exc_info=exc)  # type: ignore[arg-type]
        for lg, handlers, propagate, level in reversed(self._saved):
            lg.removeHandler(self._handler)
            for h in handlers:
                lg.addHandler(h)
            lg.propagate = propagate
            lg.setLevel(level)
        self._handler.close()

    # -- what the user reads --------------------------------------------------------------------
    def log(self, line: str) -> None:
        self._file.info(line)
        self.echo(line)

    @contextmanager
    def stage(
        self, name: str, remaining: list[str] | None = None, total: int | None = None
    ) -> Iterator[None]:
        """A long step: its name, its progress (`advance`, out of `total` when known) and the
        stages after it."""
        t0 = time.monotonic()
        self._file.info("stage %s started", name)
        try:
            with self._steps.stage(name, remaining, total):
                yield
        finally:
            self._file.info("stage %s ended after %.1fs", name, time.monotonic() - t0)

    def advance(self, steps: float = 1.0, total: float | None = None) -> None:
        self._steps.advance(steps, total)
