"""`Shop.promote` in single-user mode and beside a server's absorb (an SRE's walk): a rollback
then a promote of the version rolled back asked for an approval nobody else could give (every
new version goes live unattended in that mode), and a promote that met an absorb holding the
warehouse failed "busy" (its data gate reads the warehouse) instead of waiting for it."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from shelfwise import GateFailed, Shop
from tests.api.conftest import FAST
from tests.cli.test_busy_warehouse import _holding, _let_go


def test_single_user_promote_needs_no_approval_and_waits_for_an_absorb(trained, tmp_path: Path):
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    shop = Shop(work)
    first = next(v["version"] for v in shop.versions() if "production" in v["aliases"])
    second = shop.train(data, models=["popularity", "itemknn"], **FAST).registry["version"]
    assert str(second) != str(first)
    back = shop.rollback()
    assert str(back) != str(second)
    holder = _holding(work)  # a server's absorb holds the warehouse for a few seconds

    def let_go() -> None:
        time.sleep(1.5)
        _let_go(holder)

    threading.Thread(target=let_go).start()
    t0 = time.monotonic()
    out = shop.promote(second)
    assert out["production"] is True and str(out["version"]) == str(second)
    assert time.monotonic() - t0 >= 1.0  # it waited for the absorb, then went on
    holder.wait(30)
    entries = [e for e in shop.audit(limit=5) if e["action"] == "model.promote"]
    assert entries[-1]["outcome"] == "ok" and entries[-1].get("approved_by") is None


def test_single_user_promote_still_enforces_failed_gates(trained, tmp_path: Path):
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    shop = Shop(work)
    weaker = shop.train(data, models=["popularity"], **FAST).registry["version"]
    if any(str(v["version"]) == str(weaker) and "production" in v["aliases"] for v in shop.versions()):
        shop.rollback()  # (live unattended: rolled back first)
    gates = shop.gates(weaker)["gates"]
    if all(g["passed"] for g in gates):
        pytest.skip("the weaker model passed its gates on this data")
    with pytest.raises(GateFailed):
        shop.promote(weaker)
