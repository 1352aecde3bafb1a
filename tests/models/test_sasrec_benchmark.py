"""benchmarks/sasrec.py chooses among candidate settings on validation alone: the chosen one is
the candidate with the best validation NDCG@10, it alone is scored on the test step, and every
candidate's curve, epochs and cost are recorded (end to end, the script in a subprocess, on a
planted set in the S3-Rec text format)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# a fresh interpreter importing torch, two fits, an ONNX export and its int8 quantization
pytestmark = pytest.mark.slow


def _planted(directory: Path) -> None:
    """`user item item ...`: each user walks the cycle 1 -> 2 -> ... -> 12 -> 1 from its own
    start, so the next item is always the successor of the last (a learnable, known answer)."""
    folder = directory / "amazon_s3rec_seq"
    folder.mkdir(parents=True)
    lines = []
    for u in range(80):
        start = u % 12
        lines.append(" ".join([str(u), *(str((start + k) % 12 + 1) for k in range(10))]))
    (folder / "Planted.txt").write_text("\n".join(lines) + "\n")


def test_the_candidate_best_on_validation_is_chosen_and_alone_scored_on_test(tmp_path):
    _planted(tmp_path)
    out = tmp_path / "sasrec.json"
    small = {"dim": 16, "heads": 1, "layers": 1, "max_len": 8, "batch_size": 32, "dropout": 0.0}
    # an untrained candidate (1 epoch at a negligible rate) against one that learns the cycle
    candidates = [{"epochs": 1, "lr": 1e-6}, {"epochs": 30, "lr": 5e-3, "eval_every": 10}]
    env = {**os.environ, "SHELFWISE_SHARED_DATA": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "sasrec.py"),
            "--datasets",
            "Planted",
            "--out",
            str(out),
            "--params",
            json.dumps(small),
            "--candidates",
            json.dumps(candidates),
            "--threads",
            "1",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    first, second = result["candidates"]
    assert second["best_validation_ndcg@10"] > 0.9 > first["best_validation_ndcg@10"]
    assert result["selected"].startswith("candidate 1 ")
    assert result["params"]["lr"] == 5e-3 and result["epochs"] == 30
    assert result["ndcg@10"] > 0.9  # the chosen model, scored once on the last step
    # no candidate carries a test number: the choice could not have read one
    assert all("ndcg@10" not in c and "hr@10" not in c for c in result["candidates"])
    assert [p["epoch"] for p in second["validation_curve"]] == [10, 20, 30]
    assert second["train_seconds"] >= 0 and second["peak_rss_mb"] > 0
