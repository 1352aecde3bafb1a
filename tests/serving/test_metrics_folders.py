"""Replicas on one workdir keep their Prometheus counters apart: each server has its own
multiprocess folder, locked while it runs (named by host, process id and a random part: in
containers each server may be process 1); a stopped server's folder is removed at the next
start, a running one's is not."""

from __future__ import annotations

import subprocess
import sys

from shelfwise.cli._serve import metrics_folder

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_each_server_has_its_own_metrics_folder(tmp_path):
    root = tmp_path / "run" / "prometheus"
    running, stopped, same_pid = root / "host-1-aaaa", root / "host-1-bbbb", root / "1"
    for folder in (running, stopped, same_pid):
        folder.mkdir(parents=True)
        (folder / "counter_1.db").write_bytes(b"x")
    (stopped / ".lock").write_text("")
    (root / "counter_7.db").write_bytes(b"x")  # the one shared folder's file, of before
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(running / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        mine = metrics_folder(tmp_path)
        assert mine.parent == root and [p.name for p in mine.iterdir()] == [".lock"]
        assert (running / "counter_1.db").exists()  # another replica's, running: kept
        assert not stopped.exists() and not same_pid.exists() and not (root / "counter_7.db").exists()
        again = metrics_folder(tmp_path)  # a second server of the same process id: its own
        assert again != mine and mine.exists() and again.exists()
    finally:
        other.kill()
        other.wait()
