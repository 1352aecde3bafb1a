"""The prefork supervisor's rules, without a server: a stale preloaded bundle is not handed to a
worker, and workers that keep failing at start stop the supervisor instead of a fork loop."""

from __future__ import annotations

import signal
import socket

import pytest

from shelfwise.serving import _prefork


def test_a_preloaded_snapshot_is_not_used_after_an_erasure(tmp_path):
    bundle = tmp_path / "bundles" / "20260101T000000Z"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    loaded = object()
    _prefork._PRELOADED[str(bundle)] = (loaded, _prefork._stamp(bundle))
    assert _prefork.preloaded_snapshot(bundle) is loaded
    assert _prefork.preloaded_snapshot(bundle) is None  # taken once

    _prefork._PRELOADED[str(bundle)] = (loaded, _prefork._stamp(bundle))
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "erasures.jsonl").write_text('{"pseudonym": "p1"}\n')  # an erasure since
    assert _prefork.preloaded_snapshot(bundle) is None  # the worker loads the erased bundle itself


def test_workers_that_keep_failing_at_start_stop_the_supervisor(tmp_path, monkeypatch):
    monkeypatch.setattr(_prefork, "_preload", lambda workdir: None)
    monkeypatch.setattr(_prefork, "RESPAWN_PAUSE_S", 0.01)
    monkeypatch.setattr(_prefork, "FAST_FAILURES", 3)

    def broken(sock: socket.socket) -> None:
        raise RuntimeError("the worker cannot start (e.g. Redis is down)")

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(SystemExit) as stopped:
            _prefork.serve_forked(tmp_path, "127.0.0.1", 0, 2, broken)
    finally:  # the supervisor installed its own: this process is pytest's
        for s, h in handlers.items():
            signal.signal(s, h)
    assert stopped.value.code == 1
