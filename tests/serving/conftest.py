"""Fixtures for serving: a real redis-server, a trained demo workdir, a real uvicorn server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from shelfwise.demo import generate_demo
from tests.cli.test_cli import sw_in_terminal
from tests.conftest import built_once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn in a thread of this process (its base URL), stopped after."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("needs redis-server (Debian package redis-server; .ci/run installs it)")
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", "always", "--dir", str(d)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def _train_served_shop(base: Path) -> None:
    data = base / "data"
    generate_demo(data, products=300, users=150, events=8000, seed=21)
    # at a terminal, as a person runs it: what it showed is kept (train.console) for the test
    # of its progress display (tests/serving/test_http.py)
    shown = sw_in_terminal(
        "train", "--data", str(data), "--workdir", str(base / "w"), "--models", "popularity,itemknn,transitions,als",
        "--tune-seconds", "300", "--tune-trials", "3", "--finetune-seconds", "0", "--cross-encoder-seconds", "0",
    )  # fmt: skip
    (base / "train.console").write_text(shown)


@pytest.fixture(scope="session")
def served_workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A demo shop trained with fast settings: (data dir, workdir); trained once per run, each
    xdist worker serving its own copy."""
    base = built_once(tmp_path_factory, "serve", _train_served_shop)
    return base / "data", base / "w"


def _train_fill_shop(base: Path) -> None:
    """Twelve garden and tool products; shoppers who view three or four of them in turn; `loner`,
    who viewed the one product nobody else did (item-kNN has no evidence for them); `partial`,
    who viewed p10, which `buddy` viewed before p11 (one place of evidence, the rest filled)."""
    from shelfwise import Shop

    data = base / "data"
    data.mkdir(parents=True)
    cats = ["Garden > Hoses"] * 6 + ["Tools > Drills"] * 6
    (data / "products.csv").write_text(
        "product_id,title,category,price,in_stock\n"
        + "".join(f"p{i:02d},{c.split(' > ')[1]} {i},{c},{10 + i},true\n" for i, c in enumerate(cats, 1))
    )
    histories = {f"r{u:02d}": ["p01", "p02", "p03"] + (["p04"] if u <= 3 else []) for u in range(1, 7)}
    histories |= {f"r{u:02d}": ["p07", "p08", "p09"] for u in range(7, 13)}
    histories |= {"loner": ["p12"], "buddy": ["p10", "p11"], "partial": ["p10"]}
    rows = ["user_id,product_id,event_type,timestamp"]
    for d, (user, items) in enumerate(histories.items(), 1):
        rows += [f"{user},{p},view,2024-03-{d:02d}T10:{m:02d}:00" for m, p in enumerate(items)]
    (data / "events.csv").write_text("\n".join(rows) + "\n")
    fast = {"tune_budget_s": 0, "search_finetune_budget_s": 0, "search_cross_budget_s": 0, "log": None}
    Shop(base / "w").train(data, models=["itemknn"], **fast)


@pytest.fixture()
def fill_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shop served by item-kNN alone (`_train_fill_shop`), each test its own copy: its
    workdir."""
    return built_once(tmp_path_factory, "fill", _train_fill_shop) / "w"


class Server:
    """`shelfwise serve` in a subprocess on a free port (`module`: a test's wrapper of the
    command line, run as `python -m module serve ...`)."""

    def __init__(
        self, workdir: Path, *args: str, env: dict[str, str] | None = None, module: str = "shelfwise.cli"
    ):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(env or {}))
        self.log = open(workdir / f"serve-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--workdir", str(workdir), "--port", str(self.port), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise AssertionError(
                    f"server exited: {(workdir / f'serve-{self.port}.log').read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            self.proc.kill()  # not left running (holding the port and workdir) after a failed start
            self.proc.wait(30)
            self.log.close()
            raise AssertionError(f"server did not become ready in 120 s: {self.logs()[-3000:]}")
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)
        self.log.close()
        return self.proc.returncode

    def logs(self) -> str:
        return (self.workdir / f"serve-{self.port}.log").read_text()


@pytest.fixture(scope="module")
def server(served_workdir) -> Iterator[Server]:
    _, work = served_workdir
    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0.5")
    yield s
    s.stop()


def events_in_warehouse(
    workdir: Path,
    where: str = "true",
    columns: str = "user_id, product_id, event_type, session_id, recommendation_id",
) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(f"SELECT {columns} FROM curated.events WHERE {where}").fetchall()
    finally:
        con.close()


def known_users(data: Path, workdir: Path, n: int = 5) -> list[str]:
    """Raw user ids of the demo data that the serving bundle knows."""
    import csv

    from shelfwise.governance import Pseudonymizer, SecretStore
    from shelfwise.serving import Bundle, current_bundle

    pseudo = Pseudonymizer(SecretStore(workdir).pseudonym_key())
    known = set(Bundle.load(current_bundle(workdir), verify=False).interactions.user_ids)
    out: list[str] = []
    with open(data / "events.csv") as fh:
        for row in csv.DictReader(fh):
            u = row["user_id"]
            if u and u not in out and pseudo(u) in known:
                out.append(u)
                if len(out) == n:
                    break
    return out


def catalog_products(workdir: Path) -> list[str]:
    from shelfwise.serving import Bundle, current_bundle

    b = Bundle.load(current_bundle(workdir), verify=False)
    listed = b.listed if b.listed is not None else [True] * len(b.in_stock)
    # in stock and in the curated catalog (a product known from events alone is never served)
    return [str(p) for p, s, c in zip(b.interactions.item_ids, b.in_stock, listed, strict=True) if s and c]


__all__ = ["Server", "catalog_products", "events_in_warehouse", "free_port", "json", "known_users"]
