"""The serving benchmark's open-loop client against a tiny local server (no shelfwise server):
what it reports when some requests are never answered."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import serve  # noqa: E402


def _serve_forever(port_box: list[int], ready: threading.Event, stop: threading.Event) -> None:
    """GET /fast: 200 at once; GET /slow: never answered."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b" /slow " in head.split(b"\r\n")[0]:
                    await asyncio.sleep(3600)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()

    asyncio.run(main())


def test_unanswered_requests_count_at_their_timeout_and_not_as_achieved(tmp_path: Path):
    """Every other request is never answered: those are timeouts, in the percentiles at the
    timeout, and the achieved rate counts the answered ones only (it was the arrivals sampled
    over the run's seconds, whatever the server did)."""
    rate, seconds, timeout_s = 40, 1, 0.5
    rng = random.Random(rate)  # the client's own arrival times (the seed is the rate)
    times: list[float] = []
    t = rng.expovariate(rate)
    while t < seconds:
        times.append(t)
        t += rng.expovariate(rate)
    paths = ["/fast" if i % 2 == 0 else "/slow" for i in range(len(times))]
    (tmp_path / "paths").write_text("\n".join(paths))
    port: list[int] = []
    ready, stop = threading.Event(), threading.Event()
    th = threading.Thread(target=_serve_forever, args=(port, ready, stop), daemon=True)
    th.start()
    assert ready.wait(10)
    try:
        spec = {"url": f"http://127.0.0.1:{port[0]}", "paths": str(tmp_path / "paths"), "rate": rate,
                "seconds": seconds, "seed": rate, "timeout_s": timeout_s}  # fmt: skip
        # in a thread of its own: it calls asyncio.run, and another test of this process
        # (Playwright's sync API) may have left an event loop running in the test's thread
        box: list[dict] = []
        client = threading.Thread(target=lambda: box.append(serve._open_loop_client(spec)))
        client.start()
        client.join(60)
        (res,) = box
    finally:
        stop.set()
    fast, slow = paths.count("/fast"), paths.count("/slow")
    assert res["requests"] == len(times) and slow >= 5
    assert res["completed"] == fast and res["timeouts"] == slow and res["errors"] == slow
    assert res["p99_ms"] >= timeout_s * 1000 and res["max_ms"] >= timeout_s * 1000
    # answered ones over (at least) the time to the last answered arrival
    last_fast = max(t for t, p in zip(times, paths, strict=True) if p == "/fast")
    assert res["achieved_rps"] <= round(fast / last_fast, 1)
    assert res["achieved_rps"] < len(times) / seconds
