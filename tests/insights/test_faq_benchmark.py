"""benchmarks/insights.py's FAQ section is `shelfwise report ask --questions` itself: on the same
FAQ and labeled questions the benchmark reports what the command reports (the matcher's
accuracy with its abstentions, bm25s's at its best threshold, the margin), not the figures of a
copy of the protocol."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.insights.test_ask import FAQ, LABELED
from tests.insights.test_customers import ok, run

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
# two ingests and two loads of the encoders (one in a CLI subprocess)
pytestmark = pytest.mark.slow


def _split() -> dict:
    from io import StringIO

    labeled = pd.read_csv(StringIO(LABELED), dtype=str, keep_default_na=False)
    return {
        "data": "planted",
        "faq": pd.read_csv(StringIO(FAQ), dtype=str),
        "questions": labeled["question"].tolist(),
        "truth": [f or None for f in labeled["faq_id"]],
        "held_out": [],
    }


def test_the_faq_benchmark_reports_what_report_ask_reports(tmp_path: Path):
    import insights as bench

    got = bench.faq_benchmark(_split())

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,Red running shoes\n")
    (data / "faq.csv").write_text(FAQ)
    ok(run("ingest", "--data", str(data), "--workdir", str(tmp_path / "w")))
    labeled = tmp_path / "labeled.csv"
    labeled.write_text(LABELED)
    doc = json.loads(
        ok(
            run("report", "ask", "--workdir", str(tmp_path / "w"), "--questions", str(labeled), "--json")
        ).stdout
    )
    want = {k: v for k, v in doc["evaluation"].items() if k != "file"}

    assert {k: got[k] for k in want if k != "shelfwise"} == {
        k: v for k, v in want.items() if k != "shelfwise"
    }
    assert {k: v for k, v in got["shelfwise"].items() if k != "s"} == want["shelfwise"]
    # the known answer (tests/insights/test_ask.py): all four right, bm25s three, 25 points
    assert got["shelfwise"]["accuracy"] == 1.0 and got["bm25s_question_answer"]["accuracy"] == 0.75
    assert got["margin_points_over_best_bm25s"] == 25.0 and got["faq_entries"] == 3
