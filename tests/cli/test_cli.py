"""End-to-end through the command line, as a shop's script would drive it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shelfwise.demo import generate_demo
from shelfwise.errors import ShelfwiseError

# The JVM of a CLI's local Spark (`--engine spark`) compiles with the quick C1 compiler only and
# collects garbage on one thread: it lives seconds on a test's tiny data, where the optimizing C2
# compiler's threads take the cores from the other worker and pay back nothing (measured at load
# 15-19, tests/storage alone: the Spark CLI module's fixture 58 -> 48 s, its recommend test
# 49 -> 45 s, the dirty export through the CLI 42 -> 37 s; the in-process session, which runs
# minutes, was slower so and keeps the defaults). The test runs' setting, not the product's.
CLI_SPARK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def sw(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.setdefault("SPARK_SUBMIT_OPTS", CLI_SPARK_JVM)
    proc = subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"shelfwise {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


# what a command imports when it needs it, never at start: seconds of CPU on every run otherwise
HEAVY = frozenset(
    {"mlflow", "openlineage", "matplotlib", "pandas", "numpy", "pyarrow", "ibis", "torch", "sklearn"}
)


def sw_imports(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`shelfwise ARGS` in a fresh interpreter, and the top-level packages it imported (what it
    needed; nothing is imported after the command to say it)."""
    code = (
        "import sys\n"
        "from shelfwise.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('\\nimported:', *sorted({m.split('.')[0] for m in sys.modules}))\n"
        "sys.exit(rc)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, (
        f"shelfwise {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    out, _, imported = proc.stdout.rpartition("\nimported:")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, proc.stderr), set(imported.split())


def sw_in_terminal(*args: str, timeout: float = 600, columns: int = 250) -> str:
    """`shelfwise ARGS` with its stdout and stderr a terminal (a pseudo-terminal `columns`
    wide), as a person at a console runs it: what the terminal received, escape sequences
    included; a failure raises, with that transcript."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    # (the terminal's size said as a shell says it: pytest-xdist's workers carry COLUMNS=80 and
    # LINES=24, which rich reads before the terminal's own size)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TERM="xterm-256color",
        COLUMNS=str(columns),
        LINES="50",
    )
    env.setdefault("SPARK_SUBMIT_OPTS", CLI_SPARK_JVM)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shelfwise.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env=env,
        )
    finally:
        os.close(slave)
    got = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            # read as it comes (a full terminal buffer would stop the command), to the end
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # (EIO: every writer closed its end)
                    break
                if not chunk:
                    break
                got += chunk
        else:
            proc.kill()
    finally:
        os.close(master)
        rc = proc.wait(60)
    text = got.decode("utf-8", "replace")
    if rc != 0:
        raise AssertionError(f"shelfwise {' '.join(args)} -> {rc} (in a terminal)\n{text[-5000:]}")
    return text


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("cli")
    data = base / "data"
    generate_demo(data, products=400, users=150, events=8000, seed=3)
    work = base / "work"
    out = json.loads(sw("ingest", "--data", str(data), "--workdir", str(work), "--json").stdout)
    return data, work, out


def test_ingest_json_report_fields(shop):
    _, work, out = shop
    assert out["lineage_run_id"] and out["status"] == "COMPLETE"
    for t in ("products", "events", "users", "queries", "judgments"):
        rep = out["tables"][t]
        assert {"rows_in", "rows_curated", "rows_quarantined", "reasons"} <= set(rep)
        assert rep["rows_in"] == rep["rows_curated"] + rep["rows_quarantined"]
    assert Path(out["html_report"]).exists()
    html = Path(out["html_report"]).read_text()
    assert (
        html.count("<svg") >= 4
        and "Quarantined rows by reason" in html
        and "http" not in html.split("<body>")[0]
    )


def test_readable_summary_and_demo_command(tmp_path):
    proc = sw(
        "demo",
        "--workdir",
        str(tmp_path / "w"),
        "--products",
        "200",
        "--users",
        "50",
        "--events",
        "3000",
        "--no-train",
    )
    assert "HTML quality report:" in proc.stdout and "quarantined" in proc.stdout
    assert (tmp_path / "w" / "reports" / "quality.html").exists()


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_export_has_no_raw_personal_data(shop, tmp_path, suffix):
    data, work, _ = shop
    for table in ("events", "users"):
        out = tmp_path / f"{table}.{suffix}"
        sw("export", "--workdir", str(work), "--table", table, "--out", str(out))
        content = out.read_bytes()
        assert b"C100" not in content  # raw customer ids never leave
        # the demo's phone numbers as written ("020 7946 ...", "+44 20 7946 ..."); a bare "7946" can
        # occur by chance inside a hex pseudonym
        assert b"@example." not in content and b"20 7946" not in content
    raw_ids = (data / "users.csv").read_text().splitlines()[1].split(",")[0]
    assert raw_ids.startswith("C1")


def test_no_output_is_written_inside_the_workdir(shop, tmp_path):
    """An analyst's `export --out W/governance/people.json` replaced the people register (every
    key gone, every later command a traceback); `recommend --out W/bundles/CURRENT` stopped the
    shop serving. Every --out inside the workdir is refused before anything is written."""
    import shutil

    from shelfwise import Shop

    _, work0, _ = shop
    work = tmp_path / "w"
    shutil.copytree(work0, work)
    people = work / "governance" / "people.json"
    audit = (work / "audit" / "audit.jsonl").read_bytes()
    users = tmp_path / "users.csv"
    users.write_text("user_id\nC100001\n")
    for args in (
        ["export", "--table", "users", "--out", str(people)],
        ["export", "--table", "users", "--out", str(work / "audit" / "audit.jsonl")],
        ["recommend", "--users", str(users), "--out", str(work / "bundles" / "CURRENT")],
        ["quarantine", "export", "--out", str(work / "q.jsonl")],
    ):
        proc = sw(args[0], *args[1:], "--workdir", str(work), check=False)
        assert proc.returncode == 2 and "inside the workdir" in proc.stderr, (args, proc.stderr)
    assert not people.exists() and not (work / "bundles" / "CURRENT").exists()
    assert (work / "audit" / "audit.jsonl").read_bytes().startswith(audit)  # (kept; denials may add)
    with pytest.raises(ShelfwiseError, match="inside the workdir"):
        Shop(work).export_audience("anyone", work / "a.csv")
    # a damaged register is said, not a traceback
    people.parent.mkdir(exist_ok=True)
    people.write_text('{"user_id": "x"}\n{"user_id": "y"}\n')
    proc = sw(
        "recommend",
        "--users",
        str(users),
        "--out",
        str(tmp_path / "r.jsonl"),
        "--workdir",
        str(work),
        check=False,
    )
    assert (
        proc.returncode == 2
        and "people register is damaged" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_bad_input_exits_2_with_a_clear_message(tmp_path):
    proc = sw("ingest", "--data", str(tmp_path / "missing"), "--workdir", str(tmp_path / "w"), check=False)
    assert proc.returncode == 2 and "missing" in proc.stderr and "not found" in proc.stderr
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text("who,what,when\nx,y,z\n")
    proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), check=False)
    assert proc.returncode == 2 and "events.csv:1" in proc.stderr and "missing required column" in proc.stderr
    proc = sw(
        "export",
        "--workdir",
        str(tmp_path / "nowork"),
        "--table",
        "events",
        "--out",
        str(tmp_path / "x.csv"),
        check=False,
    )
    assert proc.returncode == 2 and "not a shelfwise workdir" in proc.stderr


def test_quarantine_list_export_fix_and_reprocess(shop, tmp_path):
    _, work, out = shop
    listed = json.loads(
        sw(
            "quarantine",
            "list",
            "--workdir",
            str(work),
            "--table",
            "events",
            "--reason",
            "unparseable_timestamp",
            "--json",
        ).stdout
    )
    assert listed["rows"] and all(r["source_line"] for r in listed["rows"])
    exported = tmp_path / "q.jsonl"
    sw(
        "quarantine",
        "export",
        "--workdir",
        str(work),
        "--table",
        "events",
        "--reason",
        "unparseable_timestamp",
        "--out",
        str(exported),
    )
    # raw rows out of the warehouse: the owner's alone, and audited
    assert exported.stat().st_mode & 0o777 == 0o600
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "quarantine.export"
    assert audit[-1]["details"]["rows"] == len(exported.read_text().splitlines())
    fixed = tmp_path / "fixed.jsonl"
    recs = [json.loads(x) for x in exported.read_text().splitlines()]
    for i, r in enumerate(recs):
        # fix half of them (distinct times: two fixed copies of one event would be duplicates)
        r["timestamp"] = f"2026-09-01T12:{i // 60:02d}:{i % 60:02d}Z" if i % 2 == 0 else r["timestamp"]
    fixed.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    before = out["tables"]["events"]["rows_curated"]
    res = json.loads(
        sw(
            "quarantine",
            "reprocess",
            "--workdir",
            str(work),
            "--table",
            "events",
            "--file",
            str(fixed),
            "--json",
        ).stdout
    )
    assert res["retried"] == len(recs)
    assert res["released"] == (len(recs) + 1) // 2 and res["still_quarantined"] == len(recs) // 2
    import duckdb

    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        after = con.sql("SELECT count(*) FROM curated.events").fetchone()[0]
        statuses = dict(
            con.sql(
                "SELECT status, count(*) FROM quarantine.rows WHERE reason = 'unparseable_timestamp' "
                "GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    assert after == before + res["released"]
    assert statuses["released"] == res["released"]
    # the rows that fail again are the open queue still (one open row each, the earlier one
    # superseded), not re-sent copies that leave it
    assert statuses["open"] == res["still_quarantined"] and statuses["superseded"] == res["still_quarantined"]
    lineage = json.loads(sw("lineage", "--workdir", str(work), "--json").stdout)
    assert any(
        e["job"]["name"] == "shelfwise.quarantine.reprocess" and e["eventType"] == "COMPLETE" for e in lineage
    )
    # the same file again, and as another table's: nothing re-processed, and said why (it said
    # "retried 0" and nothing else)
    again = sw("quarantine", "reprocess", "--workdir", str(work), "--table", "events", "--file", str(fixed))
    assert "retried 0" in again.stdout and "no longer open (released)" in again.stdout, again.stdout
    other = sw("quarantine", "reprocess", "--workdir", str(work), "--table", "products", "--file", str(fixed))
    assert "rows of the events table (give --table events)" in other.stdout, other.stdout


def test_known_public_format_is_converted_on_ingest(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "u.data").write_text("1\t10\t4\t881250949\n2\t10\t5\t881250950\nbroken line\n")
    out = json.loads(sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), "--json").stdout)
    ev = out["tables"]["events"]
    assert ev["rows_in"] == 3 and ev["rows_curated"] == 2 and ev["reasons"] == {"malformed_row": 1}
    assert "movielens" in out["notes"][0]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["train", "--tune-trials", "-1"], "Invalid value for '--tune-trials'"),
        (["recommend", "--users", "u.txt", "--out", "o.jsonl", "--k", "0"], "Invalid value for '--k'"),
        (["recommend", "--out", "o.jsonl"], "give --users FILE"),
        (["recommend", "--all-users", "--out", "d", "--engine", "spark"], "add --no-rules"),
        (["train", "--no-such-flag"], "No such option: --no-such-flag"),
    ],
)
def test_usage_errors_are_one_clear_message_not_a_traceback(tmp_path, args, said):
    proc = sw(*args, "--workdir", str(tmp_path / "w"), check=False)
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_dash_m_shelfwise_is_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "shelfwise", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "python -m shelfwise" in proc.stdout and "train" in proc.stdout


def test_ingest_exits_1_when_a_full_snapshot_curates_no_row(tmp_path: Path) -> None:
    """walk49a: 0 of 1,216 events curated (`check FAILING`) and exit 0; the load failed."""
    from tests.governance.test_shopify_exports import WOO_CATALOG, WOO_ORDERS, woo_map

    d = tmp_path / "shop"
    d.mkdir()
    (d / "orders.csv").write_text(WOO_ORDERS)
    (d / "products.csv").write_text(WOO_CATALOG)
    (d / "shelfwise.toml").write_text(woo_map("Product Id"))
    proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "curated none of its 2 rows" in proc.stdout
