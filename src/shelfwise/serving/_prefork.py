"""`shelfwise serve --workers N`: load the bundle once, then fork the worker processes.

uvicorn's own multi-worker mode spawns fresh interpreters, each of which imports the libraries
and loads the bundle on its own: the memory-mapped arrays were shared, but every worker kept a
private copy of everything else (the libraries' code and data, the search index's Python and
native structures, the catalog's lists and dicts), about 1 GB each on a 100,000-product shop.
Here the supervising process imports the libraries and loads the current bundle (`Snapshot`:
models, catalog, search index, encoders) before it forks: the workers start with those pages
shared copy-on-write, and only the pages a worker writes become its own (Python's reference
counts make some of them so; `gc.freeze` keeps the garbage collector off the rest).

Fork safety: nothing that runs threads is started before the fork (no event loop, no queue
worker, no Redis or SQLite connection: each worker's lifespan opens its own); the encoders'
onnxruntime sessions, faiss and torch run one thread each in a server (`SHELFWISE_ENCODER_THREADS`,
`OMP_NUM_THREADS`, set before loading), so they have no thread pool to lose across the fork.

The supervisor forwards SIGTERM / SIGINT to the workers and waits for them (each stops
gracefully: absorbs what it acknowledged); a worker that dies otherwise is forked again from the
loaded bundle. A bundle swapped in later (`--reload-seconds`, `/v1/admin/reload`) is loaded by
each worker on its own, but its large parts are files every worker maps (the search index's
tables, catalog columns and embeddings, the faiss graph, the models' arrays: one copy in the page
cache, see `search._compact`), and the encoders are the process's, loaded before the fork and
kept across bundles: what a worker allocates privately for a new bundle is its small Python state.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["preloaded_snapshot", "serve_forked"]

log = logging.getLogger("shelfwise.serve")

# the bundle path -> (its Snapshot, loaded before the fork; the stamp of what it was made from)
_PRELOADED: dict[str, tuple[Any, tuple[tuple[int, int], ...]]] = {}
RESPAWN_PAUSE_S = 1.0  # between re-forks of a worker that keeps dying
FAST_FAILURES = 5  # workers in a row that ended within FAST_FAILURE_S of their start: give up
FAST_FAILURE_S = 10.0


def _stamp(bundle: Path) -> tuple[tuple[int, int], ...]:
    """(mtime, size) of the erasure register and of the bundle's manifest: an erasure appends to
    the one and rewrites the bundle (the same path) in place."""
    from ..governance._erasures import ERASURES_FILE
    from ..models._manifest import MANIFEST_FILE

    out = []
    for f in (bundle.parent.parent / ERASURES_FILE, bundle / MANIFEST_FILE):
        try:
            st = f.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((0, -1))
    return tuple(out)


def preloaded_snapshot(bundle: Path) -> Any | None:
    """The snapshot the supervisor loaded for `bundle` (taken: a worker uses it once), or None;
    None too when a user was erased (or the bundle rewritten) since it was loaded: a worker
    forked again later must not serve what the erasure removed."""
    got = _PRELOADED.pop(str(bundle), None)
    if got is None or got[1] != _stamp(bundle):
        return None
    return got[0]


def _preload(workdir: Path) -> None:
    from ..governance import Pseudonymizer
    from ._bundle import current_bundle
    from ._service import Snapshot

    bundle = current_bundle(workdir)
    stamp = _stamp(bundle)  # before loading: an erasure meanwhile makes the copy stale
    pseudonymize = Pseudonymizer.of(workdir)
    snapshot = Snapshot(bundle, pseudonymize)
    _PRELOADED[str(bundle)] = (snapshot, stamp)
    _warm(snapshot)


def _warm(snapshot: Any) -> None:
    """A few searches at every level before the fork: what the engine allocates on its first
    queries (the encoder's buffers, the ranker's and the index's lazily built structures) is
    then allocated once and shared, instead of once per worker (measured on 100,000 products:
    a worker's private memory after its start-up searches 300 -> 40 MiB)."""
    engine = snapshot.search
    if engine is None:
        return
    from ..search import Filters

    titles = [t.split() for t in engine.catalog.title[:1000] if t.split()] or [["x"]]
    for level in engine.levels():
        for i in range(3):
            a, b = (7919 * (i + 1)) % len(titles), (104729 * (i + 1)) % len(titles)
            try:
                engine.query(f"{titles[a][0]} {titles[b][-1]}", 100, filters=Filters(), level=level)
            except Exception as exc:  # a warm-up only: the workers report real failures
                log.warning("warming the search engine before the fork: %s", exc)
                return


def serve_forked(
    workdir: Path, host: str, port: int, workers: int, run_worker: Callable[[socket.socket], None]
) -> None:
    """Bind `host:port`, load the current bundle, fork `workers` processes that each call
    `run_worker(sock)` (a uvicorn server on the shared socket), and supervise them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no Rust thread pool across the fork
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus_client picks its value class when imported, which the command line did
        # before it set the directory (uvicorn's spawned workers import it afresh)
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    log.info("listening on http://%s:%d with %d forked workers", host, port, workers)
    t0 = time.monotonic()
    _preload(workdir)
    if "torch" in sys.modules:  # the bundle's models score with torch: one thread, set before the fork
        sys.modules["torch"].set_num_threads(1)
    gc.collect()
    gc.freeze()  # what was loaded stays out of every worker's garbage collections
    print(
        f"shelfwise serve: bundle loaded in {time.monotonic() - t0:.1f} s; forking {workers} workers",
        file=sys.stderr,
        flush=True,
    )
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def fork(n: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # its own process group: a terminal's Ctrl-C reaches the supervisor only, which
                # stops every worker with one SIGTERM (a second SIGINT makes uvicorn skip the
                # graceful shutdown that absorbs what was acknowledged)
                os.setpgid(0, 0)
                _die_with_parent()
                run_worker(sock)
            except BaseException:  # reported, then the worker ends (the supervisor re-forks)
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = n
        started[pid] = time.monotonic()

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)  # whatever arrived: SIGTERM is the graceful stop
            except ProcessLookupError:
                pass

    started: dict[int, float] = {}
    fast_failures = 0
    failed = False
    signal.signal(signal.SIGTERM, stop)  # before the first fork (each worker resets its own)
    signal.signal(signal.SIGINT, stop)
    # the supervisor keeps the loaded bundle (shared with the workers: it costs nothing more)
    # for a worker forked again
    for n in range(workers):
        fork(n)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        n = children.pop(pid)
        _mark_dead(pid)
        lived = time.monotonic() - started.pop(pid, 0.0)
        fast_failures = fast_failures + 1 if lived < FAST_FAILURE_S else 0
        if stopping and not _stopped_cleanly(status):  # an abort, a kill: not the graceful stop
            print(
                f"shelfwise serve: worker {pid} ended ({_describe(status)}) while stopping",
                file=sys.stderr,
                flush=True,
            )
        if not stopping and fast_failures >= FAST_FAILURES:  # e.g. Redis down, a bundle unreadable
            print(
                f"shelfwise serve: {fast_failures} workers in a row ended within {FAST_FAILURE_S:.0f} s "
                f"of their start (last: {_describe(status)}); stopping",
                file=sys.stderr,
                flush=True,
            )
            failed = True
            stop(signal.SIGTERM, None)
        if not stopping:
            print(
                f"shelfwise serve: worker {pid} ended ({_describe(status)}); starting another",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(RESPAWN_PAUSE_S)
            if not stopping:  # (a bundle swapped in since: the new worker loads it itself)
                fork(n)
    sock.close()
    if failed:
        raise SystemExit(1)


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM when the supervisor dies (killed -9, out of memory)
    instead of holding the port as an orphan."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _mark_dead(pid: int) -> None:
    """Prometheus' multiprocess files: a dead worker's live gauges no longer count."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _stopped_cleanly(status: int) -> bool:
    """A worker's end after the SIGTERM it was sent: exit 0, or the SIGTERM itself (uvicorn raises
    it again after its graceful shutdown, and it ends a worker still loading)."""
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) == signal.SIGTERM
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"
