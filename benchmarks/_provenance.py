"""Where and how a benchmark result was measured, recorded by every script in the file it writes
whole: the commit (and whether the tree had local changes), the UTC date, the machine (cores,
memory, load at the start) and the command as typed, its paths made portable (`portable`): a
reader elsewhere has neither this machine's scratch folders nor its checkout's location."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def portable(path: str | Path) -> str:
    """`path` as a reader elsewhere can place it: relative to the repository when inside it,
    `../NAME/...` for its siblings (the shared data beside the checkout), and otherwise only its
    last part under `<local>/` (a scratch folder of the machine that ran the benchmark)."""
    p = Path(path).resolve()
    if p.is_relative_to(ROOT):
        return p.relative_to(ROOT).as_posix() or "."
    if ROOT.parent != Path(ROOT.anchor) and p.is_relative_to(ROOT.parent):  # (a checkout at /x: no)
        return "../" + p.relative_to(ROOT.parent).as_posix()
    return f"<local>/{p.name}"


def _portable_arg(arg: str) -> str:
    """A command-line word with an absolute path in it (`/x/y` or `--opt=/x/y`) made portable."""
    head, eq, tail = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    return head + eq + portable(tail) if tail.startswith("/") else arg


def _cpu_model_and_vnni() -> dict:
    """The CPU's model name and whether it has VNNI: int8 numbers (onnxruntime's u8 x s8
    products) differ between CPUs with and without it."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), None
    )
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    return {"cpu_model": model, "vnni": any("vnni" in f for f in flags)}


def provenance() -> dict:
    script = Path(sys.argv[0]).resolve()
    try:
        script_name = str(script.relative_to(ROOT))
    except ValueError:
        script_name = script.name
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    # a copy of the tree run elsewhere (without its .git, or with a stale one) is told its
    # commit by SHELFWISE_BENCH_COMMIT, which then wins; its local changes are unknown (None)
    told = os.environ.get("SHELFWISE_BENCH_COMMIT") or None
    head = None if told else _git("rev-parse", "HEAD") or None
    return {
        "commit": told or head,
        # the results files (benchmarks/*.json) are outputs, not code: a script that writes its
        # parts as they end would otherwise record its own first part as a local change
        "uncommitted_changes": bool(
            _git(
                "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude,glob)benchmarks/*.json"
            )
        )
        if head
        else None,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", script_name, *map(_portable_arg, sys.argv[1:])]),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gib": round(mem / 2**30, 1),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            **_cpu_model_and_vnni(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }


def write_report(out: str | Path, report: dict) -> None:
    """Write a benchmark's whole file (its parent made) and say where."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
