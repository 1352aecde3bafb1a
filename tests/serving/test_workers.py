"""Several worker processes share the bundle's big arrays: the search embeddings, the faiss index
and the models' factor matrices are memory-mapped from the bundle's files (one copy in the page
cache for every worker); the rest of the loaded bundle is loaded once and the workers forked
from it; the workers answer alike."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import Server


def _memmaps(obj: Any, depth: int = 3) -> int:
    """How many memory-mapped arrays `obj` holds (its attributes, dicts, lists; `depth` deep)."""
    if isinstance(obj, np.memmap):
        return 1
    if depth == 0 or isinstance(obj, (str, bytes, np.ndarray)):
        return 0
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        items = list(obj)
    else:
        items = list(getattr(obj, "__dict__", {}).values())
    return sum(_memmaps(v, depth - 1) for v in items)


def test_a_loaded_bundle_maps_its_big_arrays_from_the_files(served_workdir):
    from shelfwise.serving._service import Service

    _, work = served_workdir
    svc = Service(work)
    snap = svc.snapshot
    assert snap.search is not None
    assert isinstance(snap.search.semantic_.embeddings_, np.memmap)
    # the search index's tables and catalog columns too, as `train` wrote them into the bundle
    tables = snap.bundle.path / "search" / "tables"
    for arr in (snap.search._tables["title_norm"].blob, snap.search.catalog.price, snap.search._cjk):
        assert isinstance(arr, np.memmap) and Path(arr.filename).resolve().parent == tables.resolve()
    models_dir = snap.bundle.path / "models"
    saved = {d.name for d in models_dir.iterdir() if any((d / "arrays").glob("*.npy"))}
    assert "als" in saved  # its factor matrices (the other models are under the size on 300 products)
    for name in saved:
        assert _memmaps(snap.bundle.models[name]) > 0, name
    # and they answer as the arrays they were saved from
    assert svc.recommend("u1", 10).items == Service(work).recommend("u1", 10).items


def _workers(server: Server) -> list[int]:
    import psutil

    out = []
    for c in psutil.Process(server.proc.pid).children():
        try:  # a worker just killed is a zombie until the supervisor reaps it
            if c.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(c.cmdline()):
                out.append(c.pid)
        except psutil.Error:
            pass
    return out


def _rollup(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        out[name] = int(rest.split()[0])
    return out


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.slow
def test_two_workers_share_the_mapped_files_and_answer_alike(served_workdir, redis_url):
    _, work = served_workdir
    # a budget no page reaches: a page that skipped a stage on a busy machine (`degraded`)
    # would differ from its twin for that reason, not for the worker it came from
    server = Server(work, "--workers", "2", "--redis-url", redis_url, "--absorb-seconds", "0",
                    "--reload-seconds", "0", "--search-budget-ms", "60000",
                    "--search-max-wait-ms", "60000")  # fmt: skip
    try:
        bundle = (work / "bundles" / (work / "bundles" / "CURRENT").read_text().strip()).resolve()
        faiss_file = str(bundle / "search" / "embeddings.faiss")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # both workers have loaded the bundle
            pids = _workers(server)
            if len(pids) == 2 and all(faiss_file in _maps(p) for p in pids):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"two workers did not map {faiss_file}: {server.logs()[-2000:]}")
        model_arrays = sorted(str(f) for f in (bundle / "models").glob("*/arrays/*.npy"))
        for pid in pids:
            maps = _maps(pid)
            assert str(bundle / "search" / "embeddings.npy") in maps
            assert any(f in maps for f in model_arrays)
        # many requests on fresh connections: both workers answer, and alike
        import httpx

        pages, lists = set(), set()
        for _ in range(24):
            with httpx.Client(base_url=server.url, timeout=30) as c:
                r = c.get("/v1/search", params={"q": "wireless headphones", "k": 5})
                assert r.status_code == 200
                assert not r.json()["degraded"], r.json()
                pages.add(tuple(it["product_id"] for it in r.json()["items"]))
                r = c.get("/v1/recommendations/u7", params={"k": 5})
                assert r.status_code == 200
                lists.add(tuple(r.json()["items"]))
        assert len(pages) == 1 and len(lists) == 1
        # the bundle was loaded once, by the supervisor, and the workers forked from it: the
        # pages it wrote while loading (the libraries, the catalog, the search index) are
        # shared with every worker (copy-on-write), which spawned workers never share
        assert "forking 2 workers" in server.logs()
        for pid in pids:
            assert _rollup(pid)["Shared_Dirty"] > 100 * 1024, _rollup(pid)  # kB
        # a worker that dies is forked again from the loaded bundle, and it answers alike
        import os
        import signal

        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(_workers(server)) != 2 or pids[0] in _workers(server)):
            time.sleep(0.2)
        assert len(_workers(server)) == 2 and pids[0] not in _workers(server), server.logs()[-2000:]
        for _ in range(8):
            with httpx.Client(base_url=server.url, timeout=30) as c:
                r = c.get("/v1/search", params={"q": "wireless headphones", "k": 5})
                assert r.status_code == 200 and not r.json()["degraded"]
                assert tuple(it["product_id"] for it in r.json()["items"]) in pages
    finally:
        assert server.stop() == 0
