"""The README's notebook session runs as written (in a temporary directory), so it cannot rot."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Python API (`shelfwise.Shop`)"


def readme_session() -> str:
    """The first ```python block of the README's Python API section."""
    text = README.read_text(encoding="utf-8")
    assert HEADING in text, f"README.md lost its section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the Python API section has no ```python block"
    return blocks[0]


@pytest.mark.slow
def test_the_readme_notebook_session_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # (nobody acting: tests/api/conftest.py's `_nobody`)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(readme_session(), str(README), "exec"), namespace)  # noqa: S102 - our own README
    printed = capsys.readouterr().out
    assert "sam (role scientist) may not models.promote" in printed
    # what the session did is in the audit trail, each entry naming who did it
    entries = [json.loads(x) for x in (tmp_path / "shop" / "audit" / "audit.jsonl").read_text().splitlines()]
    done = {(e["action"], e["outcome"], e["actor"]) for e in entries}
    assert ("access.denied", "denied", "sam") in done
    assert {("train", "ok", "sam"), ("model.approve", "ok", "eve"), ("model.promote", "ok", "eve")} <= done
    versions = namespace["eve"].versions()  # type: ignore[attr-defined]
    assert [v["aliases"] for v in versions] == [[], ["production"]]
    # the candidate was evaluated before approval: its own bundle, not the one live then
    candidate = namespace["candidate"]
    assert candidate["bundle_version"] == versions[1]["bundle"] != versions[0]["bundle"]  # type: ignore[index]
    report = json.loads((tmp_path / "shop" / "reports" / "evaluation.json").read_text())  # (train's, of it)
    assert report["bundle_version"] == candidate["bundle_version"]  # type: ignore[index]
