"""Replicas on one workdir keep their Prometheus counters apart: each server has its own
multiprocess folder; a stopped server's is removed at the next start, a running one's is not."""

from __future__ import annotations

import os
import subprocess
import sys

from shelfwise.cli._serve import metrics_folder


def test_each_server_has_its_own_metrics_folder(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        root = tmp_path / "run" / "prometheus"
        running = root / str(other.pid)
        running.mkdir(parents=True)
        (running / "counter_1.db").write_bytes(b"x")
        gone = root / "999999999"
        gone.mkdir()
        (root / "counter_7.db").write_bytes(b"x")  # the one shared folder's file, of before
        mine = metrics_folder(tmp_path, os.getpid())
        assert mine == root / str(os.getpid()) and list(mine.iterdir()) == []
        assert (running / "counter_1.db").exists()  # another replica's, running: kept
        assert not gone.exists() and not (root / "counter_7.db").exists()
    finally:
        other.kill()
        other.wait()
