"""Live search synonyms (config/synonyms.txt): a save is checked, versioned, kept and audited,
and every process that reads the file (a serving worker each) follows it on its next search,
falling back to the bundle's own list when the file goes away."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.serving._synonyms import (
    SYNONYMS_FILE,
    LiveSynonyms,
    check_synonyms,
    save_synonyms,
    synonyms_text,
)


class Engine:
    """What LiveSynonyms touches of a SearchEngine: its query-time synonyms."""

    def __init__(self, synonyms: dict[str, list[str]]):
        self.synonyms_ = synonyms


def audit(work: Path) -> list[dict]:
    return [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines() if x.strip()]


def test_a_save_is_checked_versioned_kept_and_audited(tmp_path: Path) -> None:
    with pytest.raises(ShelfwiseError, match="line 2: a group needs two or more different words"):
        save_synonyms(tmp_path, "tv, television\nsofa\n", actor="eve")
    with pytest.raises(ShelfwiseError, match="line 1: a group needs two or more different words"):
        check_synonyms("a, A ,a\n")  # one word three times
    with pytest.raises(ShelfwiseError, match="line 1: 'a => b, c' needs words on both sides"):
        check_synonyms("sofa =>")
    assert not (tmp_path / SYNONYMS_FILE).exists()
    one = save_synonyms(tmp_path, "sofa => couch  # furniture\ntv, television\n", actor="eve")
    assert one["version"] == 1 and one["synonyms"] == 3  # sofa, tv, television
    # what a person edits comes back without the header; a save of it bumps the version
    text, version = synonyms_text(tmp_path)
    assert version == 1 and text == "sofa => couch  # furniture\ntv, television\n"
    two = save_synonyms(tmp_path, text + "laptop, notebook\n", actor="ada")
    assert two["version"] == 2
    kept = (tmp_path / "config" / "synonyms-history" / "synonyms-v1.txt").read_text()
    assert kept.startswith("# shelfwise synonyms version 1") and "laptop" not in kept
    entries = [e for e in audit(tmp_path) if e["action"] == "rules.change"]
    assert [(e["actor"], e["details"]["what"], e["details"]["version"]) for e in entries] == [
        ("eve", "synonyms", 1),
        ("ada", "synonyms", 2),
    ]
    # without a file: the bundle's list, one `a => b` line per word
    assert synonyms_text(tmp_path / "none", {"tv": ["television"]}) == ("tv => television\n", 0)


def test_every_process_follows_the_file_and_falls_back_to_the_bundle(tmp_path: Path) -> None:
    bundle = {"tv": ["television"]}
    a, b = Engine(bundle), Engine(bundle)
    worker1, worker2 = LiveSynonyms(tmp_path), LiveSynonyms(tmp_path)  # two serving processes
    s0 = worker1.check()
    worker1.apply(a)
    assert s0 is None and a.synonyms_ is bundle
    save_synonyms(tmp_path, "sofa => couch\n", actor="eve")
    for w, e in ((worker1, a), (worker2, b)):
        assert w.check() != s0  # a new stamp: pages cached under the old one are not served
        w.apply(e)
        assert e.synonyms_ == {"sofa": ["couch"]} and w.version == 1
    stamp = worker1.check()
    assert worker1.check() == stamp  # nothing changed: the same stamp, no reload
    (tmp_path / SYNONYMS_FILE).unlink()
    worker1.check()
    worker1.apply(a)
    assert a.synonyms_ is bundle and worker1.bundle_synonyms(a) is bundle


def test_the_cli_installs_a_synonyms_file(tmp_path: Path) -> None:
    import subprocess

    src = tmp_path / "syn.txt"
    src.write_text("sofa => couch\n")
    work = tmp_path / "w"
    work.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", "rules", "synonyms", "--workdir", str(work), "--file", str(src), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout)
    assert got["version"] == 1 and got["synonyms"] == 1
    assert (work / SYNONYMS_FILE).read_text().endswith("sofa => couch\n")
    src.write_text("sofa\n")
    bad = subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", "rules", "synonyms", "--workdir", str(work), "--file", str(src)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "line 1" in bad.stderr
