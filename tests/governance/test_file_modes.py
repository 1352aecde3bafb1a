"""Who can read what shelfwise writes: a new workdir (raw shop ids, the spool, the feedback
archive) is its owner's and the team group's, never the world's; the files that name or hold
customers which commands write outside it are their owner's only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from shelfwise import Shop


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_workdir_and_the_exports_of_customers_data_are_not_world_readable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        + "".join(f"C{i},p{i % 3},purchase,2026-0{1 + i % 6}-0{1 + i % 7}T10:00:00\n" for i in range(40))
    )
    shop = Shop(tmp_path / "w")
    shop.ingest(data)
    assert _mode(tmp_path / "w") == 0o750  # (its files were 0644 to everyone: the folder guards them)
    # a folder made for it with its own mode keeps it (a shared 2770, a private 700)
    for mode in (0o2770, 0o700):
        made = tmp_path / f"w{mode:o}"
        made.mkdir()
        made.chmod(mode)
        Shop(made).ingest(data)
        assert _mode(made) == mode
    # a shop begun by registering its first person is made the same way
    Shop(tmp_path / "begun").add_person("ada", "admin")
    assert _mode(tmp_path / "begun") == 0o750
    shop.export("events", tmp_path / "events.csv")
    assert _mode(tmp_path / "events.csv") == 0o600
    # a whole table leaving the workdir is audited (an analyst's export left no trace)
    entry = shop.audit(limit=1)[0]
    assert entry["action"] == "export" and entry["details"]["table"] == "events"
    assert entry["details"]["rows"] == 40
    shop.consent("C1")  # a person's consent history read: audited as its changes are
    assert shop.audit(limit=1)[0]["action"] == "privacy.consent.read"
    shop.customers(tmp_path / "profiles.jsonl")
    assert _mode(tmp_path / "profiles.jsonl") == 0o600
    assert json.loads((tmp_path / "profiles.jsonl").read_text().splitlines()[0])["user_id"].startswith("C")
