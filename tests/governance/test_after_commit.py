"""A write that fails after the warehouse commit (the lineage file, the audit folder, the
reports folder not writable) leaves the delivery published: the command says so in one line
per record, what could not be written, where, why and how to repair it, and exits 5; the audit
entry is written first. A write refused before the commit says that nothing was published
(exit 1, no traceback). A run killed right after its commit gets its audit entry at the next
ingest, marked recovered; a run refused as busy leaves no lineage START and names who holds
the warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.governance._audit import AuditLog
from tests.conftest import curated_rows

HEADER = "user_id,product_id,event_type,timestamp\n"


def _days(tmp: Path) -> tuple[Path, Path]:
    d1, d2 = tmp / "d1", tmp / "d2"
    for d, hour in ((d1, 10), (d2, 11)):
        d.mkdir()
        (d / "events.csv").write_text(
            HEADER + "".join(f"u{i},p{i % 3},view,2024-03-01T{hour}:{i:02d}:00\n" for i in range(6))
        )
    (d1 / "products.csv").write_text("product_id,title\np0,A\np1,B\np2,C\n")
    return d1, d2


def _run(patch: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`shelfwise ARGS` in a fresh interpreter after `patch` (Python) ran."""
    code = f"import sys\n{patch}\nfrom shelfwise.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )


def _ingest_entries(work: Path) -> list[dict]:
    return [e for e in AuditLog(work).entries() if e.get("action") == "ingest"]


def _lineage(work: Path) -> list[tuple[str, str]]:
    path = work / "lineage" / "openlineage.jsonl"
    return [(e["eventType"], e["run"]["runId"]) for e in map(json.loads, path.read_text().splitlines()) if e]


def test_a_lineage_file_not_writable_after_the_commit_is_said_and_exits_5(tmp_path):
    d1, d2 = _days(tmp_path)
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    patch = (
        "from shelfwise.governance._lineage import LineageRun\n"
        "def complete(self, outputs):\n"
        "    raise RuntimeError(f'Log file {self._path} is not writeable')\n"
        "LineageRun.complete = complete\n"
    )
    proc = _run(patch, "ingest", "--data", str(d2), "-w", str(work), "--append")
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("published, but")]
    assert len(said) == 1 and "lineage COMPLETE event" in said[0] and "openlineage.jsonl" in said[0]
    assert "to repair" in said[0]
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(12,)]
    # the audit says the run succeeded, once; lineage has no FAIL for it
    entries = _ingest_entries(work)
    assert [e["outcome"] for e in entries] == ["ok", "ok"]
    run_id = entries[-1]["details"]["run_id"]
    assert ("FAIL", run_id) not in _lineage(work)


def test_an_audit_folder_not_writable_after_the_commit_then_the_entry_is_recovered(tmp_path):
    d1, d2 = _days(tmp_path)
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    patch = (
        "from shelfwise.governance._audit import AuditLog\n"
        "append = AuditLog.append\n"
        "def refuse(self, action, **kw):\n"
        "    if action == 'ingest':\n"
        "        raise PermissionError(1, 'Operation not permitted', str(self.head))\n"
        "    return append(self, action, **kw)\n"
        "AuditLog.append = refuse\n"
    )
    proc = _run(patch, "ingest", "--data", str(d2), "-w", str(work), "--append", "--json")
    assert proc.returncode == 5, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "COMPLETE" and len(out["unrecorded"]) == 1
    assert "audit entry" in out["unrecorded"][0] and "head.json" in out["unrecorded"][0]
    assert len(_ingest_entries(work)) == 1  # no entry, and no `failed` one
    assert ("COMPLETE", out["run_id"]) in _lineage(work)
    # the next ingest finds the published run without an entry and writes it, marked recovered
    rep = Ingestor(work, mode="append").run(d2)
    assert any("marked recovered" in n and out["run_id"] in n for n in rep.notes)
    rec = [e for e in _ingest_entries(work) if e["details"].get("run_id") == out["run_id"]]
    assert len(rec) == 1 and rec[0]["details"]["recovered"] is True and rec[0]["outcome"] == "ok"
    assert AuditLog(work).verify().ok


def test_a_run_killed_right_after_its_commit_gets_its_audit_entry_at_the_next_run(tmp_path):
    d1, d2 = _days(tmp_path)
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    patch = (
        "import os, signal\n"
        "from shelfwise.governance._audit import AuditLog\n"
        "append = AuditLog.append\n"
        "def die(self, action, **kw):\n"
        "    if action == 'ingest':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return append(self, action, **kw)\n"
        "AuditLog.append = die\n"
    )
    proc = _run(patch, "ingest", "--data", str(d2), "-w", str(work), "--append")
    assert proc.returncode == -9
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(12,)]
    assert len(_ingest_entries(work)) == 1
    killed = [r for s, r in _lineage(work) if s == "START"][-1]
    assert ("COMPLETE", killed) not in _lineage(work)  # killed before its lineage end
    rep = Ingestor(work, mode="append").run(d2)
    assert rep.tables["events"].rows_redelivered == 6
    assert ("COMPLETE", killed) in _lineage(work)  # the recovery ended its lineage run too
    entries = _ingest_entries(work)
    assert len(entries) == 3 and entries[1]["details"]["recovered"] is True
    # a later run finds nothing more to recover
    assert not any("recovered" in n for n in Ingestor(work, mode="append").run(d2).notes)


def test_a_warehouse_that_cannot_be_written_says_nothing_was_published(tmp_path):
    d1, d2 = _days(tmp_path)
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    patch = (
        "import duckdb\n"
        "from shelfwise.storage import _warehouse\n"
        "def refuse(self, *a, **k):\n"
        "    raise duckdb.IOException(f'IO Error: Cannot open file \"{a[0]}/warehouse.duckdb\": Operation not permitted')\n"
        "_warehouse.Warehouse.__init__ = refuse\n"
    )
    before = _lineage(work)
    proc = _run(patch, "ingest", "--data", str(d2), "-w", str(work), "--append")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nothing was published" in lines[0]
    assert "warehouse.duckdb" in lines[0]
    assert _lineage(work) == before  # no START for a run that never held the warehouse


def test_an_ingest_refused_as_busy_names_the_other_ingest_and_leaves_no_lineage_start(tmp_path):
    d1, d2 = _days(tmp_path)
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    # another ingest holds the warehouse (a process whose command line reads `-m shelfwise ingest`)
    hold = (
        "import sys, time, duckdb\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(work / "warehouse.duckdb"), "-m", "shelfwise", "ingest"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = _lineage(work)
        t0 = time.time()
        proc = _run("", "ingest", "--data", str(d2), "-w", str(work), "--append")
        assert time.time() - t0 < 200
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 3, proc.stderr
    assert f"PID {holder.pid}" in proc.stderr and "shelfwise ingest" in proc.stderr
    assert "serve" not in proc.stderr
    assert _lineage(work) == before


def test_reading_the_audit_trail_recovers_a_run_killed_right_after_its_commit(tmp_path):
    """Only the next `ingest` wrote a killed run's missing entry: `shelfwise audit` listed the
    trail without the published delivery and said nothing of it."""
    d1, d2 = _days(tmp_path)
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    patch = (
        "import os, signal\n"
        "from shelfwise.governance._audit import AuditLog\n"
        "append = AuditLog.append\n"
        "def die(self, action, **kw):\n"
        "    if action == 'ingest':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return append(self, action, **kw)\n"
        "AuditLog.append = die\n"
    )
    assert _run(patch, "ingest", "--data", str(d2), "-w", str(work), "--append").returncode == -9
    killed = [r for s, r in _lineage(work) if s == "START"][-1]
    proc = _run("", "audit", "-w", str(work), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["recovered"] == [killed] and out["verification"]["ok"]
    assert "marked recovered" in proc.stderr and killed in proc.stderr
    rec = [e for e in out["entries"] if e["action"] == "ingest" and e["details"].get("run_id") == killed]
    assert len(rec) == 1 and rec[0]["details"]["recovered"] is True
    assert ("COMPLETE", killed) in _lineage(work)
    # read again: nothing more to recover, the entry is not written twice
    again = json.loads(_run("", "audit", "-w", str(work), "--json").stdout)
    assert again["recovered"] == [] and len(_ingest_entries(work)) == 2


def test_train_with_data_exits_5_when_a_record_after_the_ingest_commit_fails(tmp_path):
    """`train --data` ingested, the lineage COMPLETE event could not be written, and it exited 0:
    the one-line `published, but ...` and exit 5 of `ingest` were missing."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\n" + "".join(f"p{i},Item {i}\n" for i in range(8)))
    (data / "events.csv").write_text(
        HEADER
        + "".join(
            f"u{u},p{(u + k) % 8},{'purchase' if k % 3 == 0 else 'view'},2024-03-{1 + k:02d}T10:{u:02d}:00\n"
            for u in range(20)
            for k in range(6)
        )
    )
    patch = (
        "from shelfwise.governance._lineage import LineageRun\n"
        "complete = LineageRun.complete\n"
        "def refuse(self, outputs):\n"
        "    if self.job_name == 'shelfwise.ingest':\n"
        "        raise RuntimeError(f'Log file {self._path} is not writeable')\n"
        "    return complete(self, outputs)\n"
        "LineageRun.complete = refuse\n"
    )
    work = tmp_path / "w"
    proc = _run(
        patch, "train", "--data", str(data), "-w", str(work), "--models", "popularity", "--no-fusion",
        "--tune-trials", "1", "--finetune-steps", "0", "--cross-encoder-steps", "0",
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr[-3000:]
    said = [line for line in proc.stderr.splitlines() if line.startswith("published, but")]
    assert len(said) == 1 and "lineage COMPLETE event" in said[0], proc.stderr[-3000:]
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(120,)]
