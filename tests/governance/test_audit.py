"""The audit trail is append-only and tamper-evident."""

from __future__ import annotations

import json

import pytest

from shelfwise.governance import AuditLog
from tests.cli.test_cli import sw


def test_chain_verifies_and_names_the_first_tampered_line(tmp_path):
    log = AuditLog(tmp_path)
    for i in range(4):
        log.append("ingest", actor="steward", run_id=f"r{i}")
    assert log.verify().ok and log.verify().entries == 4
    lines = log.path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["details"]["run_id"] = "forged"
    log.path.write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
    v = log.verify()
    assert not v.ok and v.first_bad_line == 2 and "edited" in v.reason


def test_deleting_or_reordering_breaks_the_chain(tmp_path):
    log = AuditLog(tmp_path)
    for i in range(3):
        log.append("train", run_id=f"r{i}")
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert AuditLog(tmp_path).verify().first_bad_line == 2
    log.path.write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")
    assert AuditLog(tmp_path).verify().first_bad_line == 1


def test_unknown_actions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown audit action"):
        AuditLog(tmp_path).append("coffee")


def test_ingest_is_audited_and_cli_detects_tampering(tmp_path):
    from shelfwise.demo import generate_demo

    data = tmp_path / "d"
    generate_demo(data, products=100, users=30, events=1500, seed=2)
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    out = json.loads(sw("audit", "--workdir", str(work), "--json").stdout)
    assert out["verification"]["ok"]
    assert [e["action"] for e in out["entries"]] == ["ingest"]
    assert out["entries"][0]["details"]["tables"]["events"]["rows_in"] > 0
    # each table's quality verdict is in the entry, as the summary and the catalog say it
    for t in out["entries"][0]["details"]["tables"].values():
        share = t["quarantined"] / t["rows_in"] if t["rows_in"] else 0.0
        assert t["contract_check"] == ("passed" if share <= 0.05 else "failed"), t
    assert out["entries"][0]["details"]["tables"]["products"]["contract_check"] == "failed"  # by design
    path = work / "audit" / "audit.jsonl"
    path.write_text(path.read_text().replace('"outcome": "ok"', '"outcome": "OK"'))
    proc = sw("audit", "--workdir", str(work), check=False)
    assert proc.returncode == 1 and "TAMPERED" in proc.stdout


def _append_many(workdir: str, n: int, go) -> None:  # noqa: ANN001 (a multiprocessing Event)
    from shelfwise.governance import AuditLog

    log = AuditLog(workdir)
    go.wait(60)  # every writer starts at once
    for _ in range(n):
        log.append("access.denied", actor="racer", outcome="denied", denied_action="audit.read")


def test_writers_in_several_processes_keep_one_chain(tmp_path):
    """A CLI run beside a server (or two server workers) append at once: each entry chains to
    the one before it (they used to chain two to the same entry: duplicate seq, "tampered")."""
    import multiprocessing

    from shelfwise.governance import AuditLog

    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), 150, go)) for _ in range(4)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(120)
    entries = AuditLog(tmp_path).entries()
    assert len(entries) == 600 and [e["seq"] for e in entries] == list(range(1, 601))
    assert AuditLog(tmp_path).verify().ok


def test_removing_the_newest_entries_is_detected(tmp_path):
    """The chain alone cannot tell a log whose newest lines were removed from a shorter one: the
    head written beside it (the last entry's seq and hash) does."""
    log = AuditLog(tmp_path)
    for i in range(4):
        log.append("train", run_id=f"r{i}")
    assert log.verify().ok
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:2]) + "\n")
    v = AuditLog(tmp_path).verify()
    assert not v.ok and "entry 4 was written" in (v.reason or "")
    # entries written after the removal do not hide it: the head stays at entry 4, which the
    # log no longer holds as written
    for i in range(3):
        AuditLog(tmp_path).append("train", run_id=f"after{i}")
    v = AuditLog(tmp_path).verify()
    assert not v.ok and "differs" in (v.reason or ""), v
    log.path.unlink()
    assert not AuditLog(tmp_path).verify().ok


def test_removing_the_newest_entries_and_the_head_is_detected(tmp_path):
    """Removing the newest lines and `head.json` with them read "hash chain intact": a log of
    entries written with a head (format 2) must have one, and the next entry does not make a
    new one (it would hide the removal again); an older log (entries without `v`) has none."""
    import json

    from shelfwise.governance import _audit
    from shelfwise.governance._audit import AUDIT_HEAD

    log = AuditLog(tmp_path)
    for i in range(4):
        log.append("train", run_id=f"r{i}")
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:3]) + "\n")
    (tmp_path / AUDIT_HEAD).unlink()
    v = AuditLog(tmp_path).verify()
    assert not v.ok and "head record" in (v.reason or "") and "missing" in (v.reason or "")
    AuditLog(tmp_path).append("train", run_id="after")  # an absorb's entry, 30 s later
    assert not (tmp_path / AUDIT_HEAD).exists()
    assert not AuditLog(tmp_path).verify().ok
    # a log written before the head was kept (its entries without `v`) verifies without one
    old = tmp_path / "old"
    AuditLog(old).append("train", run_id="x")
    entry = json.loads(AuditLog(old).path.read_text())
    (old / AUDIT_HEAD).unlink()
    entry.pop("v")
    entry["hash"] = _audit.hashlib.sha256(
        _audit._canonical({k: v for k, v in entry.items() if k != "hash"})
    ).hexdigest()
    AuditLog(old).path.write_text(json.dumps(entry) + "\n")
    assert AuditLog(old).verify().ok
    AuditLog(old).append("train", run_id="y")  # the first entry of this version makes the head
    assert (old / AUDIT_HEAD).exists() and AuditLog(old).verify().ok


def test_a_log_rewritten_whole_fails_its_anchor_and_a_removed_log_is_noticed(tmp_path):
    """A log with entries removed and every hash and the head recomputed, or no log at all,
    read "hash chain intact": the head recorded outside the workdir (an anchor) tells the first;
    the lineage's completed runs tell the second (every audited command records a run)."""
    import hashlib

    from shelfwise.governance._audit import AUDIT_HEAD, _canonical

    w = tmp_path / "w"
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\np1,Chair\n")
    (d / "events.csv").write_text("user_id,product_id,event_type,timestamp\nu1,p1,view,2024-01-01T10:00:00\n")
    sw("ingest", "--data", str(d), "--workdir", str(w))
    log = AuditLog(w)
    log.append("access.denied", outcome="denied", denied_action="export")
    log.append("train", run_id="r1")
    out = sw("audit", "--workdir", str(w)).stdout
    head = log.head_entry()
    assert head is not None and f"head: {head['seq']}:{head['hash']}" in out
    anchor = f"{head['seq']}:{head['hash']}"
    # the denial removed, every later hash and the head recomputed: the chain is intact
    entries = [e for e in log.entries() if e["action"] != "access.denied"]
    prev = "0" * 64
    for n, e in enumerate(entries, 1):
        e["seq"], e["prev"] = n, prev
        e["hash"] = prev = hashlib.sha256(_canonical(e)).hexdigest()
    log.path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    (w / AUDIT_HEAD).write_text(json.dumps({"seq": len(entries), "hash": prev}))
    assert AuditLog(w).verify().ok
    v = AuditLog(w).verify((head["seq"], head["hash"]))
    assert not v.ok and "not in the log" in (v.reason or "")
    bad = sw("audit", "--workdir", str(w), "--anchor", anchor, check=False)
    assert bad.returncode == 1 and "AUDIT LOG TAMPERED" in bad.stdout
    assert "line None" not in bad.stdout  # (no line is bad in a log that was rewritten whole)
    # the whole audit folder removed
    import shutil

    shutil.rmtree(w / "audit")
    v = AuditLog(w).verify()
    assert not v.ok and "completed run" in (v.reason or "")
    assert AuditLog(tmp_path / "new").verify().ok  # a workdir with nothing done yet
