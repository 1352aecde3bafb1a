"""The command a benchmark JSON records is one a reader elsewhere can place: paths inside the
repository relative to it, the shared data beside it as `../`, this machine's scratch folders by
their last part only."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _provenance import _portable_arg, portable  # noqa: E402


def test_recorded_paths_are_portable():
    assert portable(ROOT / "benchmarks" / "console.json") == "benchmarks/console.json"
    assert portable(ROOT) == "."
    if ROOT.parent != Path(ROOT.anchor):
        assert portable(ROOT.parent / "shared" / "data") == "../shared/data"
    scratch = Path("/nonexistent-scratch/s14con")  # (outside the checkout and its parent)
    assert portable(scratch / "demo") == "<local>/demo"
    words = ["--workdir", f"{scratch}/demo", f"--out={scratch}/r.json", "--rounds", "3", "benchmarks/x.json"]
    assert [_portable_arg(w) for w in words] == [
        "--workdir",
        "<local>/demo",
        "--out=<local>/r.json",
        "--rounds",
        "3",
        "benchmarks/x.json",
    ]


def test_a_changed_result_file_is_not_a_local_change_but_changed_code_is(tmp_path, monkeypatch):
    import subprocess

    import _provenance

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "x.json").write_text("{}")
    (tmp_path / "benchmarks" / "x.py").write_text("a = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(_provenance, "ROOT", tmp_path)
    assert _provenance.provenance()["uncommitted_changes"] is False
    (tmp_path / "benchmarks" / "x.json").write_text('{"part": 1}')  # a run writing its first part
    assert _provenance.provenance()["uncommitted_changes"] is False
    (tmp_path / "benchmarks" / "x.py").write_text("a = 2\n")
    assert _provenance.provenance()["uncommitted_changes"] is True


def test_a_copy_without_git_records_the_commit_it_is_told_and_unknown_local_changes(tmp_path, monkeypatch):
    import _provenance

    monkeypatch.setattr(_provenance, "ROOT", tmp_path)  # no .git here (a copy sent to another machine)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("SHELFWISE_BENCH_COMMIT", raising=False)
    assert _provenance.provenance()["commit"] is None
    monkeypatch.setenv("SHELFWISE_BENCH_COMMIT", "abc123")
    record = _provenance.provenance()
    assert record["commit"] == "abc123"
    assert record["uncommitted_changes"] is None


def test_the_commit_it_is_told_wins_over_a_stale_git(tmp_path, monkeypatch):
    import _provenance

    monkeypatch.setenv("SHELFWISE_BENCH_COMMIT", "def456")  # ROOT is this checkout, with its .git
    record = _provenance.provenance()
    assert record["commit"] == "def456" and record["uncommitted_changes"] is None
