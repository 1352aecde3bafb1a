"""Small disagreements between what the Python API says and does (a walk's): the audit check's
answer could not be written as JSON, the quarantine summary's docstring promised it to the
service role, the README's method list left out methods an integrator needs, swapped price
bounds gave an empty page without a word, and an erased user's consent read as a person's."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from shelfwise import Shop
from shelfwise.errors import AccessDenied, EmptyRangeWarning
from tests.serving.conftest import known_users

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_audit_check_is_plain_json_and_keeps_its_attributes(trained):
    got = Shop(trained[1]).verify_audit()  # (a read)
    doc = json.loads(json.dumps(got.to_dict()))
    assert doc == {"ok": True, "entries": got.entries, "first_bad_line": None, "reason": None}
    assert got.ok and got.entries >= 1


def test_the_quarantine_summary_says_who_may_read_it(tmp_path):
    from shelfwise.governance._access import PERMISSIONS, Role

    work = tmp_path / "w"
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    svc = Shop(work, as_="svc", api_key=ada.add_person("svc", "service"))
    assert Role.SERVICE not in PERMISSIONS["quarantine.summary"]
    with pytest.raises(AccessDenied, match="quarantine.summary"):
        svc.quarantine(limit=0)
    doc = " ".join((Shop.quarantine.__doc__ or "").split())
    assert "every person may read, not a service" in doc  # (it said "every person" alone)


def test_the_readme_names_every_public_method():
    section = (
        README.read_text().split("## Python API (`shelfwise.Shop`)", 1)[1].split("A notebook session", 1)[0]
    )
    named = set(re.findall(r"`(\w+)", section))
    public = {m for m in dir(Shop) if not m.startswith("_") and callable(getattr(Shop, m))}
    assert public - named == set()


def test_swapped_price_bounds_warn_and_an_erased_users_consent_says_so(trained, tmp_path):
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    shop = Shop(work)
    with pytest.warns(EmptyRangeWarning, match="price_min 100 is above price_max 10") as got:
        assert shop.search("bike light", 5, price_min=100, price_max=10) == []
    assert got[0].filename == __file__  # (the caller's line, not the library's)
    with pytest.warns(EmptyRangeWarning) as got:
        shop.search_pages(["bike light"], 5, price_min=100, price_max=10)
    assert got[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shop.search("bike light", 5, price_min=10, price_max=100)  # (in order: no warning)

    user = known_users(data, work, 1)[0]
    assert "erased_at" not in shop.consent(user)
    shop.erase(user)
    after = shop.consent(user)
    assert after["erased_at"] and "not a consent this person gave" in after["note"]
    shop.set_consent(user, marketing=False)  # (a consent given since: a person again)
    again = shop.consent(user)
    assert "note" not in again and again["consent"]["marketing"] is False
