"""Lists served through Python (`served=True`) are written to the exposure log in batches, as the
server writes its own: 300 calls wrote 300 segment files (one closed segment per call), which
every reader of the log (reports, erasure, retention, the console's tally) then opened one by
one. A Shop holds them and appends them when a batch is full or half a second old, to one
segment a minute; what reads the log (a report, an absorb, an erasure, an export) reads them
all, and none is lost at `close`, at the end of a `with` block or at a normal exit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from shelfwise import Shop
from shelfwise.serving import _exposures
from tests.serving.conftest import known_users


def _segments(work: Path) -> list[Path]:
    from shelfwise.serving._feedback import EXPOSURES_DIR
    from shelfwise.storage._segments import all_segments

    return all_segments(work / EXPOSURES_DIR)


def _logged(work: Path) -> list[dict]:
    from shelfwise.serving._feedback import EXPOSURES_DIR
    from shelfwise.storage._segments import iter_records

    return list(iter_records(work / EXPOSURES_DIR)) if (work / EXPOSURES_DIR).exists() else []


def _fresh(trained, tmp_path: Path) -> tuple[Path, Path]:
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    shutil.rmtree(work / "spool" / "exposures", ignore_errors=True)
    return data, work


def test_three_hundred_served_lists_are_a_few_batches_in_one_segment(trained, tmp_path):
    data, work = _fresh(trained, tmp_path)
    users = known_users(data, work, 3)
    ids = []
    with Shop(work) as shop:
        for n in range(300):
            ids.append(shop.recommend(users[n % 3], 5, served=True)["recommendation_id"])
        product = shop.recommend(users[0], 3)["items"][0]
        ids.append(shop.similar(product, 3, detail=True, served=True)["recommendation_id"])
        ids += [p["search_id"] for p in shop.search_pages(["bike light", "mug"], 5, served=True)]
    files = _segments(work)
    assert 1 <= len(files) <= 2, files  # (one a minute: a slow machine may cross into a second)
    assert all(f.name.endswith(".jsonl") for f in files)  # closed at the block's end
    logged = [r["id"] for r in _logged(work)]
    assert sorted(logged) == sorted(ids) and len(set(ids)) == 303  # each once, none lost


def test_a_batch_is_written_within_its_age_and_before_anything_reads_the_log(trained, tmp_path, monkeypatch):
    data, work = _fresh(trained, tmp_path)
    user = known_users(data, work, 1)[0]
    shop = Shop(work)
    rid = shop.recommend(user, 5, served=True)["recommendation_id"]
    deadline = time.monotonic() + 10
    while rid not in {r["id"] for r in _logged(work)}:  # written by the age rule (0.5 s), not closed
        assert time.monotonic() < deadline, "a served list was not written within its age"
        time.sleep(0.1)
    assert all(f.name.endswith(".jsonl.open") for f in _segments(work))  # (readable while open)

    # held longer than any test: only the readers' flush can write them
    monkeypatch.setattr(_exposures, "EXPOSURE_AGE_S", 3600.0)
    (page,) = shop.search_pages(["bike light"], 5, served=True)
    assert shop._exposures.held == 1 and page["search_id"] not in {r["id"] for r in _logged(work)}
    report = Shop(work).search_report()  # (another Shop of the process: every buffer of the workdir)
    assert page["search_id"] in {r["id"] for r in _logged(work)} and shop._exposures.held == 0
    assert report["served"]["pages"] >= 1, report["served"]
    # an erasure reads the log: a list served to the user and still held is erased with the rest
    # (written after the erasure, it would have named the erased user again)
    shop.search_pages(["mug"], 5, served=True, user_id=user)
    pseudo = shop._pseudonym(user)
    Shop(work).erase(user)
    shop.close()
    assert not [r for r in _logged(work) if r.get("user") == pseudo]


def test_no_served_list_is_lost_at_a_normal_exit(trained, tmp_path):
    """A script serving lists and ending without `close` (nor `with`): written at exit."""
    data, work = _fresh(trained, tmp_path)
    user = known_users(data, work, 1)[0]
    script = (
        "import sys\n"
        "from shelfwise import Shop\n"
        "from shelfwise.serving import _exposures\n"
        "_exposures.EXPOSURE_AGE_S = 3600.0\n"  # (held until the exit)
        f"shop = Shop({str(work)!r})\n"
        f"ids = [shop.recommend({user!r}, 5, served=True)['recommendation_id'] for _ in range(20)]\n"
        "assert shop._exposures.held == 20\n"
        "print(' '.join(ids))\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(src)},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ids = proc.stdout.split()
    assert len(ids) == 20 and sorted(r["id"] for r in _logged(work)) == sorted(ids)
    assert [f.name.endswith(".jsonl") for f in _segments(work)] == [True]  # closed, one segment
