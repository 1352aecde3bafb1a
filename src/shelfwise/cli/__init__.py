"""The command line: a thin layer over the Python API, `shelfwise.Shop` (see DESIGN.md: commands,
flags and output fields are a contract that shops' scripts rely on).

Each command parses its flags, calls one `Shop` method (which checks the acting person's
permission and audits), and prints. One module per command group; a new group is a module that
makes its `typer.Typer()`, adds it with `app.add_typer(..., name=...)` and is imported below.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, NoReturn

import typer

from ..errors import ShelfwiseError
from ._app import app, leave_quickly, leaving_quickly

# the command groups register themselves on `app` when imported; the order is --help's order
# isort: off
from . import _data, _train, _answer, _governance, _quarantine, _insights  # noqa: F401
from . import _serve, _rules, _people, _registry, _privacy  # noqa: F401
from . import _audiences  # noqa: F401

# isort: on

__all__ = ["app", "exit_with", "main", "run"]


def _take_identity(argv: list[str]) -> list[str]:
    """`--as NAME` may stand anywhere on the command line; it sets SHELFWISE_AS for this run."""
    import os

    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--as" and i + 1 < len(argv):
            os.environ["SHELFWISE_AS"] = argv[i + 1]
            i += 2
            continue
        if a.startswith("--as="):
            os.environ["SHELFWISE_AS"] = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out


def _warehouse_busy(exc: BaseException) -> str | None:
    """`storage.busy_message`: DuckDB refusing a database file another process holds."""
    from ..storage._warehouse import busy_message

    return busy_message(exc)


def _said(exc: ShelfwiseError) -> str:
    """The one line a user error prints: its message, made plainer where the path it names
    explains it better (`--data` naming a file, not the folder that holds it)."""
    from pathlib import Path

    from ..errors import SourceError

    if (
        isinstance(exc, SourceError)
        and exc.reason.startswith("a file, not a dataset folder")
        and Path(exc.file).is_file()
    ):
        folder = Path(exc.file).parent
        return (
            f"{exc.file}: a file, not a dataset folder: --data takes the folder holding the shop's "
            f"files (here --data {folder})"
        )
    return str(exc)


_python_show_warning = warnings.showwarning


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """shelfwise's own warnings (an --as-of weeks past the data...) as one `warning:` line, not
    Python's `file:line: Category: text` with the source line; other warnings as Python shows
    them."""
    if category.__module__.startswith("shelfwise"):
        typer.echo(f"warning: {message}", err=True)
        return
    _python_show_warning(message, category, *args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one clear line and exit with status 2 (4: access denied,
    3: the warehouse is busy, held by another process)."""
    from ..errors import (  # (not through `governance`: `--help` needs no warehouse)
        AccessDenied,
        WarehouseBusy,
        WorkdirUnwritable,
    )

    warnings.showwarning = _show_warning
    argv = _take_identity(list(sys.argv[1:] if argv is None else argv))
    leave_quickly(False)
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and rv:  # click turns typer.Exit(n) into a return value here
            return rv
    except AccessDenied as exc:
        typer.echo(f"denied: {exc}", err=True)
        return 4
    except WarehouseBusy as exc:  # exit 3, as `events absorb` when busy
        typer.echo(str(exc), err=True)
        return 3
    except WorkdirUnwritable as exc:  # nothing was published: exit 1, one line
        typer.echo(f"error: {_said(exc)}", err=True)
        return 1
    except ShelfwiseError as exc:
        typer.echo(f"error: {_said(exc)}", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return 130
    except Exception as exc:  # usage errors: typer raises those of its own vendored click
        import click
        from typer.exceptions import TyperException

        if isinstance(exc, click.exceptions.ClickException | TyperException) and hasattr(exc, "show"):
            exc.show()
            return int(getattr(exc, "exit_code", 2))
        busy = _warehouse_busy(exc)
        if busy:  # exit 3, as `events absorb` when busy: the command stopped where it met the lock
            typer.echo(busy, err=True)
            return 3
        raise
    return 0


def exit_with(code: int) -> NoReturn:
    """End the process with `code`. After a command that said it holds nothing open
    (`leave_quickly`: `ingest` on DuckDB) and with no other thread that would be waited for,
    the exit handlers run and the output is flushed as at a normal exit, then the process ends
    without the interpreter's teardown of its modules (measured: 0.45-0.5 s of a `shelfwise
    ingest`, whatever the data's size; nothing is written then)."""
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if code == 0 and leaving_quickly() and not others:
        from .._process import leave

        leave(code)
    sys.exit(code)


def run() -> None:
    """Console-script entry point."""
    exit_with(main())
