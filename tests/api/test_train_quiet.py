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
