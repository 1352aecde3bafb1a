"""`Shop.train` is a library call: by default it prints nothing (its progress lines are in the
run's log file; `log=print` shows them) and leaves no thread behind (a `tqdm_monitor`
thread stayed alive after it, and every line went to stdout: a web app's training printed)."""

from __future__ import annotations

import threading

from shelfwise import Shop
from shelfwise.demo import generate_demo


def _monitors() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tqdm_monitor" and t.is_alive()]


def test_training_prints_nothing_and_leaves_no_thread(tmp_path, capsys):
    from tqdm import std

    for cls in [std.tqdm, *std.tqdm.__subclasses__()]:  # (one an earlier test's run left: stopped)
        if cls.__dict__.get("monitor") is not None:
            cls.monitor.exit()
            cls.monitor = None
    for t in _monitors():
        t.join(timeout=15)
    assert _monitors() == []
    generate_demo(tmp_path / "data", products=100, users=40, events=1500, seed=5)
    fast = {"tune_budget_s": 0, "search_finetune_budget_s": 0, "search_cross_budget_s": 0}
    Shop(tmp_path / "w").train(tmp_path / "data", models=["popularity"], **fast)
    assert capsys.readouterr().out == ""
    (run_log,) = (tmp_path / "w" / "logs").glob("train-*.log")  # (the lines, for who wants them)
    assert "ingested" in run_log.read_text()
    assert _monitors() == []
    assert std.tqdm.monitor_interval == 10  # (the process's setting, as it was)
    lines: list[str] = []
    Shop(tmp_path / "w").train(models=["popularity"], log=lines.append, **fast)
    assert lines and _monitors() == []


def test_two_trainings_in_two_threads_keep_the_monitor_off_until_both_end(tmp_path):
    """tqdm's monitor switch is the process's: a training that ended turned the monitor back on
    under another thread's training still running, and the last to end left it off for the
    rest of the process (it restored the 0 the first had set). Now it is off from the first
    start to the last end, then as it was. The second training starts once the first is
    training and runs on after the first ended (each waits for the other at its first progress
    line)."""
    from tqdm import std

    generate_demo(tmp_path / "data", products=100, users=40, events=1500, seed=5)
    fast = {"tune_budget_s": 0, "search_finetune_budget_s": 0, "search_cross_budget_s": 0}
    first_started, second_started, first_done = threading.Event(), threading.Event(), threading.Event()
    seen_after: list[float] = []  # the switch as the second training saw it once the first ended
    failed: list[BaseException] = []

    def first_log(_msg: str) -> None:
        first_started.set()
        second_started.wait(timeout=300)

    def second_log(_msg: str) -> None:
        if not second_started.is_set():
            second_started.set()
            first_done.wait(timeout=300)
        elif first_done.is_set():
            seen_after.append(std.tqdm.monitor_interval)

    def run(name: str, log, done: threading.Event | None) -> None:
        try:
            if done is None:  # the second starts once the first is training
                first_started.wait(timeout=300)
            Shop(tmp_path / name).train(tmp_path / "data", models=["popularity"], log=log, **fast)
        except BaseException as exc:  # (said below, in the test's thread)
            failed.append(exc)
        finally:
            if done is not None:
                done.set()
            first_started.set()  # (a training that failed early frees the other)
            second_started.set()

    before = std.tqdm.monitor_interval
    threads = [
        threading.Thread(target=run, args=("a", first_log, first_done)),
        threading.Thread(target=run, args=("b", second_log, None)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not failed, failed
    assert seen_after and set(seen_after) == {0}, seen_after  # still off under the second training
    assert std.tqdm.monitor_interval == before == 10  # and as it was once both ended
    assert _monitors() == []
