"""What a stopping worker says of the spool when another worker's absorb holds the lock (an
SRE's walk: after `kill -9` of the supervisor, one worker gave up waiting after half of
`--drain-seconds` and said 10,184 of its events were left, which the other worker was absorbing;
the other said none were left, of its own, while 113 of the first's remained)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import shelfwise.serving._feedback as feedback
import shelfwise.serving._http_tasks as tasks
from tests.conftest import run_async


def _said(run) -> str:
    """What the drain logs on `uvicorn.error`, read by a handler of its own (another test may have
    configured that logger not to propagate to pytest's capture)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("uvicorn.error")
    handler, level = Keep(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return "\n".join(lines)


def test_a_worker_waits_for_the_neighbours_absorb_and_then_counts(tmp_path: Path, monkeypatch):
    other = threading.Event()  # the other worker's absorb, holding the lock for 3.5 s
    spooled = {"n": 40}

    def other_absorb() -> None:
        time.sleep(3.5)
        spooled["n"] = 0  # it took every closed segment, this worker's included
        other.set()

    def absorb_once(workdir, redis_client):
        if not other.is_set():
            return {"status": "busy", "reason": "another absorb is running"}
        return {"status": "nothing"}

    monkeypatch.setattr(feedback, "_absorb_once", absorb_once)
    monkeypatch.setattr(tasks, "pending_events", lambda *a, **k: spooled["n"])
    threading.Thread(target=other_absorb).start()
    # (it waits 4.5 s of its 6: half of them, 3 s, was the old wait)
    said = _said(lambda: run_async(lambda: tasks.drain(tmp_path, None, seconds=6.0)))
    assert "events not absorbed on the way out" not in said, said
    assert "no acknowledged event is left in the spool by this process" in said, said


def test_a_worker_that_cannot_wait_says_whose_events_and_that_another_absorb_may_take_them(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(
        feedback, "_absorb_once", lambda w, r: {"status": "busy", "reason": "another absorb is running"}
    )
    monkeypatch.setattr(tasks, "pending_events", lambda *a, **k: 7)
    said = _said(lambda: run_async(lambda: tasks.drain(tmp_path, None, seconds=1.0)))
    assert "7 acknowledged events left in the spool" in said
    assert "this process's (another absorb, still running, may be taking them now)" in said, said
