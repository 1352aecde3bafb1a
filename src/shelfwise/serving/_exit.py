"""How a `shelfwise serve` process ends once its orderly shutdown is done: exit status 0, never
an abort.

A server runs background threads that read the warehouse and are daemons, so that a stop does
not wait for them (the console's figure refreshes and warm-up, the profile fit, an absorb left
running at the drain's deadline: minutes for a fit, and a 2-worker server missed its 60 s stop
while they were not daemons). A daemon thread still inside DuckDB when the interpreter finalizes
is ended by CPython with `pthread_exit` when it takes the GIL back (DuckDB takes it every few
milliseconds of a query, to check for Ctrl-C); the unwinding through DuckDB's C++ frames calls
`std::terminate` (DuckDB issue #13904) and the process aborts (exit -6, "terminate called without
an active exception" or "FATAL: exception not rethrown"; -11 too was seen). A server stopped
with Ctrl-C (SIGINT) crashed so whenever such a read was running (5 times in 5); one stopped with
SIGTERM was killed by the SIGTERM that uvicorn raises again after its graceful shutdown (-15).

So the process never finalizes after serving: when uvicorn raises the stop signal again (its
shutdown done: requests answered, the exposure log flushed, the spools closed, the acknowledged
events absorbed within `--drain-seconds`, the event-id store closed, each of which this package's
lifespan awaits before `served()` marks it), `clean_exit`'s handler runs the interpreter's exit
functions (`logging.shutdown`, FastAPI's telemetry flush and anything else registered with
`atexit`) and leaves with `os._exit(0)`. What that skips is the interpreter's own teardown and the
join of the threads of the event loop's executor (a profile request still waiting for its fit, a
periodic absorb the stop cancelled, which then ends as a crash would: its segments are absorbed
by the next absorb, which never curates an event twice): the same as the SIGTERM kill before.
A stop signal before the server served (it is still loading) acts as it always did.

The workers that `serve --workers N` forks (`_prefork`) reset SIGTERM to its default action and
end by uvicorn's repeated SIGTERM or `os._exit`, never finalizing; those that uvicorn spawns
(`--no-preload`) end through `served()`'s exit function.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

from .._process import leave

__all__ = ["clean_exit", "end_process", "finalizes", "server_process", "served"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SERVED = threading.Event()  # set by the lifespan once its shutdown finished
_SERVER_PROCESS = threading.Event()  # set where `serve`'s app factory made the app


def server_process() -> None:
    """This process serves for `shelfwise serve` (its app factory, `_app.app_from_env`, runs
    here): its end after serving is this module's (an app made in another program, a test's,
    leaves that program's exit alone)."""
    _SERVER_PROCESS.set()


def finalizes() -> bool:
    """Whether this process will finalize the interpreter at its end (an app made in another
    program: a test's client, an application embedding the routes), so that its daemon threads
    must be out of native code by then; a `shelfwise serve` process never finalizes."""
    return not _SERVER_PROCESS.is_set()


def served() -> None:
    """The app's shutdown is done (the lifespan's last step): a stop signal may end the process
    (`clean_exit`). In a worker process that uvicorn started (`--workers N --no-preload`), which
    `clean_exit` does not reach, the interpreter's exit ends the same way: the first of its exit
    functions (registered last) runs the others and leaves with `os._exit(0)`, before
    finalization (such a worker stopped by Ctrl-C returns and exits: 2 in 5 aborted during a
    read). That comes after the interpreter joined its non-daemon threads (the event loop's
    executor), as such a worker's exit always did."""
    _SERVED.set()
    if _SERVER_PROCESS.is_set():
        atexit.register(_end_at_exit)


def _end_at_exit() -> None:
    end_process(0)


def end_process(code: int = 0) -> NoReturn:
    """Run the exit functions, flush the standard streams and leave with `os._exit(code)`:
    no interpreter finalization, so no daemon thread is ended inside native code."""
    atexit.unregister(_end_at_exit)  # (called from the exit functions: the others run once)
    leave(code)


@contextmanager
def clean_exit() -> Iterator[None]:
    """While the server runs: SIGTERM and SIGINT that arrive after its shutdown (uvicorn raises
    the stop signal again once it is done) end the process with `end_process(0)`; before that,
    each does what it did before (SIGTERM: the default action; SIGINT: KeyboardInterrupt).
    uvicorn installs its own handlers while it serves and puts these back after."""
    previous: dict[int, Any] = {int(s): signal.getsignal(s) for s in STOP_SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        if _SERVED.is_set():
            end_process(0)
        before = previous[signum]
        if callable(before):  # SIGINT's default_int_handler: KeyboardInterrupt
            before(signum, frame)
        elif before != signal.SIG_IGN:  # the default action (SIGTERM: the process ends by it)
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for signum, h in previous.items():
            signal.signal(signum, h)
