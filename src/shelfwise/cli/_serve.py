"""Serving over HTTP and its feedback loop: `serve`, `events absorb`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = ["events_absorb", "events_app", "serve"]

WORKER_HEALTHCHECK_S = 120  # see `serve`


@app.command()
def serve(
    workdir: Workdir,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (use --redis-url when > 1).")] = 1,
    redis_url: Annotated[
        str | None, typer.Option(help="Shared online state and event stream, e.g. redis://host:6379/0.")
    ] = None,
    max_k: Annotated[int, typer.Option(help="Largest k a request may ask for.")] = 100,
    max_body_bytes: Annotated[int, typer.Option(help="Largest POST body.")] = 1 << 20,
    max_events: Annotated[int, typer.Option(help="Most events in one POST /v1/events.")] = 1000,
    absorb_seconds: Annotated[
        float,
        typer.Option(help="Ingest accepted events into the warehouse at start and this often (0: never)."),
    ] = 30.0,
    drain_seconds: Annotated[
        float,
        typer.Option(
            help="On a graceful stop (SIGTERM), absorb the acknowledged events for at most this long; "
            "what is left waits in the spool (0: leave it all there)."
        ),
    ] = 20.0,
    reload_seconds: Annotated[
        float, typer.Option(help="Check for a new production bundle this often (0: never).")
    ] = 2.0,
    search_budget_ms: Annotated[
        float,
        typer.Option(
            help="Time a search-cache miss may take from arrival to answer; stages are skipped "
            "(ranker, then encoder) to keep it under load (0: always the cheapest).",
            min=0,
        ),
    ] = 40.0,
    search_queue: Annotated[
        int, typer.Option(help="Search misses that may wait or be in progress; more get 503.", min=1)
    ] = 256,
    search_max_wait_ms: Annotated[
        float,
        typer.Option(help="Refuse a search miss (503 + Retry-After) whose predicted wait is longer.", min=0),
    ] = 500.0,
    recommend_queue: Annotated[
        int,
        typer.Option(
            help="Recommendation lists that need the model (not precomputed or cached) that may "
            "wait or be in progress; more get 503.",
            min=1,
        ),
    ] = 256,
    recommend_max_wait_ms: Annotated[
        float,
        typer.Option(
            help="Refuse such a list (503 + Retry-After) whose predicted answer time is longer.", min=0
        ),
    ] = 200.0,
    similar_queue: Annotated[
        int,
        typer.Option(
            help="Similar-item lists that are not cached that may wait or be in progress; more get 503.",
            min=1,
        ),
    ] = 256,
    similar_max_wait_ms: Annotated[
        float,
        typer.Option(
            help="Refuse such a list (503 + Retry-After) whose predicted answer time is longer.", min=0
        ),
    ] = 200.0,
    warm_queries: Annotated[
        int,
        typer.Option(
            help="After a bundle loads, search this many of the most frequent logged queries in the "
            "background so the head of real traffic is a cache lookup (0: none).",
            min=0,
            envvar="SHELFWISE_WARM_QUERIES",
        ),
    ] = 1_000,
    preload: Annotated[
        bool,
        typer.Option(
            help="With --workers > 1: load the bundle once and fork the workers from it, which "
            "then share its memory (--no-preload: each worker loads its own, uvicorn's workers).",
        ),
    ] = True,
    personalization: Annotated[
        bool,
        typer.Option(
            help="--no-personalization: answer every shopper with the non-personalized lists "
            "(the shop-wide setting is personalized_serving in config/privacy.json)."
        ),
    ] = True,
) -> None:
    """Serve /v1/search, /v1/recommendations, /v1/items/{id}/similar and /v1/events over HTTP."""
    shop(workdir).authorize("serve.run")
    import os
    from dataclasses import asdict

    import uvicorn

    from ..serving import ServeSettings, current_bundle
    from ..serving._app import CONFIG_ENV

    current_bundle(workdir)  # a clear error before any worker starts
    # one core per worker process: the encoder (onnxruntime), faiss and LightGBM would otherwise
    # start a spinning thread per core, which a server shares with its own event loop and clients
    os.environ.setdefault("SHELFWISE_ENCODER_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = ServeSettings(
        max_k=max_k,
        max_body_bytes=max_body_bytes,
        max_events_per_request=max_events,
        absorb_interval_s=absorb_seconds,
        reload_interval_s=reload_seconds,
        redis_url=redis_url,
        drain_seconds=drain_seconds,
        search_budget_ms=search_budget_ms,
        search_queue=search_queue,
        search_max_wait_ms=search_max_wait_ms,
        recommend_queue=recommend_queue,
        recommend_max_wait_ms=recommend_max_wait_ms,
        similar_queue=similar_queue,
        similar_max_wait_ms=similar_max_wait_ms,
        personalization=personalization,
        warm_search_queries=warm_queries,
    )
    os.environ[CONFIG_ENV] = json.dumps({"workdir": str(workdir), "settings": asdict(settings)})
    if workers > 1:  # Prometheus metrics summed over the worker processes
        # one folder per server: two replicas on one workdir shared one (each start wiped the
        # other's counters, and each /metrics answered both servers' sums)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_folder(workdir))
    options: dict = {
        "factory": True,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "timeout_graceful_shutdown": 15,
        "log_level": "info",
        "log_config": _log_config(),
    }
    import logging.config

    logging.config.dictConfig(options["log_config"])  # (this process's lines too: the supervisor's)
    if workers > 1 and not redis_url:
        logging.getLogger("uvicorn.error").warning(
            "%d workers without --redis-url: each worker keeps its own online state (a shopper's "
            "recent items and purchases), so an event posted to one worker does not change the "
            "lists the others answer until the next bundle loads; give the workers one Redis "
            "(--redis-url redis://HOST:6379/0). Events, ids and consent are shared as they are",
            workers,
        )
    if workers > 1 and preload:
        # the bundle is loaded once and the workers forked from it (see `serving._prefork`)
        from ..serving._prefork import serve_forked

        def run_worker(sock: Any) -> None:
            config = uvicorn.Config("shelfwise.serving._app:app_from_env", **options)
            uvicorn.Server(config).run(sockets=[sock])

        serve_forked(workdir, host, port, workers, run_worker)
        return
    from ..serving._exit import clean_exit, end_process

    # once its orderly shutdown is done, the process ends with os._exit(0): a background thread
    # still reading the warehouse would abort the interpreter's finalization (see `serving._exit`)
    with clean_exit():
        uvicorn.run(
            "shelfwise.serving._app:app_from_env",
            host=host,
            port=port,
            workers=workers,
            # a worker loading a large bundle holds the GIL for seconds at a time, longer on a busy
            # machine: uvicorn's default (5 s without an answer to its ping) killed and restarted
            # such workers over and over, and with several workers none ever finished loading
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
            **options,
        )
    # uvicorn returned (a second Ctrl-C that skipped the shutdown, uvicorn's own workers all
    # stopped): ended the same way (a failed start raised SystemExit and exits as it did)
    end_process(0)


events_app = typer.Typer(help="Events posted to the server: the feedback loop.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("absorb")
def events_absorb(
    workdir: Workdir,
    redis_url: Annotated[str | None, typer.Option(help="Also drain this Redis event stream.")] = None,
    as_json: AsJson = False,
) -> None:
    """Ingest the events the server accepted (governed path) and quarantine the rejected ones."""
    res = shop(workdir).absorb_events(redis_url=redis_url)
    if as_json:
        print_json(res)
    else:
        typer.echo(", ".join(f"{k}: {v}" for k, v in res.items()))
    if res.get("status") == "busy":
        raise typer.Exit(3)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, each line with its time and process id (several workers write to one
    stream), and shelfwise's own server loggers through it: a bundle swapped in, a bundle that
    failed to load, a synonyms file refused were printed by Python's last-resort handler (no
    level, no time) or not at all (info)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    for name in ("default", "access"):
        cfg["formatters"][name]["fmt"] = "%(asctime)s [%(process)d] " + cfg["formatters"][name]["fmt"]
        cfg["formatters"][name]["datefmt"] = "%Y-%m-%dT%H:%M:%S%z"
    cfg["loggers"]["shelfwise"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return cfg


def metrics_folder(workdir: Path) -> Path:
    """This server's own Prometheus folder (`run/prometheus/<host>-<pid>-<random>`, empty, held
    for as long as this process lives), the folders of servers no longer running removed:
    replicas on one workdir keep their counters apart, also in containers where each server is
    process 1 (a folder by pid alone was shared, and wiped, by two of them)."""
    import os
    import socket

    from ..storage._segments import own_folder, remove_unheld_folders

    root = Path(workdir) / "run" / "prometheus"
    remove_unheld_folders(root)
    prom, fd = own_folder(root, f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}")
    _HELD.append(fd)  # (held until the process ends)
    return prom


_HELD: list[int] = []
