"""What the Python API refuses, as the CLI refuses it (from a data scientist's walk through the
API): a consent given as the string "false" was recorded as consent; " C1" was another user;
a mistyped workdir became a new shop; a delivery was appended before a mistyped split was
found; typos in filters listed nothing; out-of-range numbers crashed inside libraries or wrote
impossible values."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shelfwise import ShelfwiseError, Shop
from tests.api.conftest import FAST
from tests.serving.conftest import known_users


@pytest.fixture()
def shop(trained, tmp_path) -> tuple[Shop, Path]:
    data, work = trained
    copy = tmp_path / "w"
    shutil.copytree(work, copy)
    return Shop(copy), data


def test_consent_takes_booleans_and_the_trimmed_id_of_an_existing_shop(shop, tmp_path):
    s, data = shop
    user = known_users(data, s.workdir, 1)[0]
    s.set_consent(user, personalization=False)
    for bad in ("false", "no", 0, 1):
        with pytest.raises(ShelfwiseError, match="give True or False"):
            s.set_consent(user, personalization=bad)
    assert s.consent(user)["consent"]["personalization"] is False  # the withdrawal stands
    s.set_consent(f" {user} ", marketing=False)  # the same user, as curation trims ids
    assert s.consent(user)["consent"]["marketing"] is False
    assert s.consent(f"{user} ")["consent"] == s.consent(user)["consent"]
    typo = tmp_path / "typo"
    with pytest.raises(ShelfwiseError, match="not a shelfwise workdir"):
        Shop(typo).set_consent(user, marketing=False)
    assert not typo.exists()  # no new shop (with a key of its own) made by a typo


def test_train_checks_its_choices_before_loading_the_delivery(shop, tmp_path):
    s, data = shop
    delivery = tmp_path / "day2"
    delivery.mkdir()
    (delivery / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nZ1,P1,view,2026-01-01T00:00:00Z\n"
    )
    before = len(s.audit())
    for kwargs, said in (
        ({"split": "bogus"}, "unknown split protocol; choose leave_last_out or global_time"),
        ({"models": ["nosuch"]}, "unknown model(s) nosuch; known models: als"),
        ({"models": []}, "names no model"),
    ):
        with pytest.raises(ShelfwiseError, match=said.replace("(", r"\(").replace(")", r"\)")):
            s.train(delivery, append=True, **kwargs, **FAST)
    from shelfwise.lifecycle import TrainSettings

    with pytest.raises(ShelfwiseError, match="unknown model"):  # named in the settings too
        s.train(delivery, append=True, settings=TrainSettings(models=("nosuch",)), **FAST)
    # a budget or count out of range: said before anything runs (bootstrap_rounds=0 failed with
    # numpy's IndexError after every fit; a negative budget ran as none)
    for kwargs, said in (
        ({"bootstrap_rounds": 0}, "bootstrap_rounds=0: at least 1"),
        ({"tune_trials": -1}, "tune_trials=-1: at least 0"),
        ({"tune_budget_s": -5.0}, "tune_budget_s=-5.0: seconds, 0 or more"),
        ({"settings": TrainSettings(search_candidates=0)}, "search_candidates=0: at least 1"),
    ):
        with pytest.raises(ShelfwiseError, match=said):
            s.train(delivery, append=True, **{**FAST, **kwargs})
    import pandas as pd

    frame = pd.DataFrame({"user_id": ["u1"], "product_id": ["P1"]})
    with pytest.raises(ShelfwiseError, match="data: a directory or file path, not a DataFrame .*to_csv"):
        s.ingest(frame)  # type: ignore[arg-type]
    with pytest.raises(ShelfwiseError, match="data: a directory or file path, not a DataFrame"):
        s.train(frame, **FAST)  # type: ignore[arg-type]
    assert len(s.audit()) == before  # nothing ingested, nothing audited
    with pytest.raises(ShelfwiseError, match=r"not in bundle"):
        s.evaluate(["nosuch"])
    with pytest.raises(ShelfwiseError, match="sampled -5"):
        s.evaluate(sampled=-5)


def test_a_frame_or_a_dict_is_no_list_of_users_and_a_frame_of_events_is_its_rows(shop):
    """Iterated, a DataFrame gives its column names and a dict its keys: `recommend(df)` answered
    the stranger "user_id" with a cold-start list, `send_events(df)` quarantined its headers."""
    import pandas as pd

    s, data = shop
    users = pd.DataFrame({"user_id": known_users(data, s.workdir, 2)})
    for given in (users, {"user_id": "u1"}):
        with pytest.raises(ShelfwiseError, match="is no list of user ids; give its column"):
            s.recommend(given, k=3)  # type: ignore[call-overload]
    assert len(s.recommend(users["user_id"], k=3)) == 2  # its column is
    product = s.recommend(users["user_id"].iloc[0], k=1)["items"][0]
    events = pd.DataFrame(
        {
            "user_id": ["frame-shopper"],
            "product_id": [product],
            "event_type": ["view"],
            "timestamp": [pd.Timestamp("2026-09-01T10:00:00Z")],
        }
    )
    out = s.send_events(events)
    assert [r["status"] for r in out["results"]] == ["accepted"]
    # a missing time (NaT) is no time, not the text "NaT"; a Polars frame is its rows too
    gap = events.assign(timestamp=[pd.NaT], user_id=["frame-shopper-2"])
    (res,) = s.send_events(gap)["results"]
    assert res["status"] == "rejected" and [e["reason"] for e in res["errors"]] == ["missing_required"], res
    import polars as pl

    out = s.send_events(
        pl.DataFrame({**{c: list(events[c].astype(str)) for c in events}, "user_id": ["frame-3"]})
    )
    assert [r["status"] for r in out["results"]] == ["accepted"], out


def test_answers_refuse_what_http_answers_422(shop):
    s, data = shop
    user = known_users(data, s.workdir, 1)[0]
    for k in (0, -5, 2.5, "3", True):
        with pytest.raises(ShelfwiseError, match="whole number >= 1"):
            s.recommend(user, k)
        with pytest.raises(ShelfwiseError, match="whole number >= 1"):
            s.search("bike light", k)
    with pytest.raises(ShelfwiseError, match="a user id"):
        s.recommend(100035)  # type: ignore[arg-type]
    with pytest.raises(ShelfwiseError, match=r"users\[1\]: an empty user id"):
        s.recommend([user, "  "])
    # an id that is not text (a pandas column with gaps gives 100035.0) is refused, not read
    # as the stranger "100035.0" and answered with the cold-start list
    for bad in (100035, 100035.0):
        with pytest.raises(ShelfwiseError, match=r"users\[1\] .*as a string"):
            s.recommend([user, bad])  # type: ignore[list-item]
    import numpy as np

    assert s.recommend([np.str_(user)])[0]["items"] == s.recommend(user)["items"]

    assert s.recommend(user, np.int64(5))["items"] == s.recommend(user, 5)["items"]  # numpy's ints are ints
    assert len(s.audit(limit=np.int64(2))) == 2
    with pytest.raises(ShelfwiseError, match="a query"):
        s.search(None)  # type: ignore[arg-type]
    assert s.recommend(f" {user} ", 5)["items"] == s.recommend(user, 5)["items"]
    assert s.recommend(user, 5)["source"] != "cold_start"
    pseudonym = s.table("events")["user_id"].iloc[0]
    with pytest.raises(ShelfwiseError, match="is a pseudonym"):
        s.recommend(pseudonym)
    items = s.search("bike light", 5)
    assert s.search("bike light", 5, candidates=items[:3]) == s.search(
        "bike light", 5, candidates=[items[:3]]
    )
    assert set(s.search("bike light", 5, candidates=items[:3])) <= set(items[:3])


def test_a_context_that_names_no_category_is_said_not_silently_ignored(shop):
    import warnings

    from shelfwise.errors import UnknownContextWarning

    s, _ = shop
    categories = s.table("products")["category"].dropna()
    prefix = str(categories.iloc[0]).split(">")[0].strip()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known prefix steers the list without a word
        steered = s.recommend("never-seen-shopper", 5, context=prefix)
    assert steered["source"] == "cold_start"
    with pytest.warns(UnknownContextWarning, match="starts no category path"):
        plain = s.recommend("never-seen-shopper", 5, context="No Such Aisle")
    assert plain["items"] == s.recommend("never-seen-shopper", 5)["items"]


def test_listings_refuse_a_mistyped_filter_or_limit(shop, tmp_path):
    s, _ = shop
    with pytest.raises(ShelfwiseError, match=r"table 'evnts': unknown; choose one of .*events"):
        s.quarantine(table="evnts")
    with pytest.raises(ShelfwiseError, match=r"status 'opn': unknown"):
        s.quarantine(status="opn")
    with pytest.raises(ShelfwiseError, match=r"limit -1"):
        s.quarantine(status="all", limit=-1)
    assert s.quarantine(status="all", limit=0)["rows"] == []  # the summary alone
    assert len(s.quarantine(status="all", limit=None)["rows"]) == sum(
        r["rows"] for r in s.quarantine(status="all", limit=0)["summary"]
    )  # every row
    with pytest.raises(ShelfwiseError, match=r"table 'evnts': unknown"):
        s.export_quarantine(tmp_path / "q.jsonl", table="evnts")
    with pytest.raises(ShelfwiseError, match=r"limit 0"):
        s.audit(limit=0)
    assert len(s.audit(limit=1)) == 1
    for days in (0, -5, 2.5, 3651):
        with pytest.raises(
            ShelfwiseError, match=r"horizon_days .*: the days ahead, a whole number in 1..3650"
        ):
            s.customers(tmp_path / "c.jsonl", horizon_days=days)


def test_the_people_register_takes_a_new_person_only_from_a_registered_admin(tmp_path):
    """`People.add` without `by` once people exist wrote "users.add by mallory" of mallory
    making herself admin: the register refuses it (Shop.add_person passes the checked admin)."""
    from shelfwise.governance import People

    people = People(tmp_path)
    people.add("ada", "admin")
    with pytest.raises(ShelfwiseError, match="only a registered admin adds people"):
        people.add("mallory", "admin")
    people.add("sam", "scientist", people.load()["ada"])
    with pytest.raises(ShelfwiseError, match="only a registered admin adds people"):
        people.add("mallory", "admin", people.load()["sam"])
    assert sorted(people.load()) == ["ada", "sam"]


def test_privacy_requests_and_answers_refuse_what_is_not_a_string(shop, tmp_path):
    """`erase(None)`, `erase(123)` and `erase(['C1'])` erased users "None", "123" and "['C1']"
    (audited "ok", a tombstone each) and left the person untouched; `answer(None)` and a context
    of 5 crashed with AttributeError; `Shop(5)` with pathlib's TypeError; `top=0` was taken."""
    s, data = shop
    user = known_users(data, s.workdir, 1)[0]
    for bad in (None, 123, [user]):
        with pytest.raises(ShelfwiseError, match="give the shop's own user id as a string"):
            s.erase(bad)
        with pytest.raises(ShelfwiseError, match="give the shop's own user id as a string"):
            s.access_export(bad, tmp_path / "a.json")
    assert not (s.workdir / "governance" / "erasures.jsonl").exists()
    for bad in (None, 42):
        with pytest.raises(ShelfwiseError, match="a shopper's question, as a string"):
            s.answer(bad)
    for top in (0, -1, 1.5):
        with pytest.raises(ShelfwiseError, match="top"):
            s.answer("where is my order", top=top)
    with pytest.raises(ShelfwiseError, match="context 5: a category path prefix"):
        s.recommend("NEW", k=3, context=5)
    with pytest.raises(ShelfwiseError, match="workdir 5: a folder's path"):
        Shop(5)


def test_a_consent_withdrawn_by_another_shop_holds_from_the_next_call(shop):
    """A long-lived Shop kept personalizing for a while after another Shop of the process
    recorded the shopper's withdrawal (its consent view looked at the register at most every
    0.1 s, a server's pace): the next call honours it."""
    s, data = shop
    user = known_users(data, s.workdir, 1)[0]
    other = Shop(s.workdir)
    assert s.recommend(user, 3)["source"] != "cold_start"
    other.set_consent(user, personalization=False)
    assert s.recommend(user, 3)["source"] == "cold_start"
    other.set_consent(user, personalization=True)
    assert s.recommend(user, 3)["source"] != "cold_start"


def test_a_context_that_steers_nothing_is_said_for_a_known_shopper_too(shop):
    """It was said only when some list was a cold-start one: a known shopper's misspelled
    context (context-limited rules read it) went without a word, where /v1/recommendations
    says it in `warnings`."""
    import warnings

    from shelfwise.errors import UnknownContextWarning

    s, data = shop
    user = known_users(data, s.workdir, 1)[0]
    assert s.recommend(user, 5)["source"] != "cold_start"
    prefix = str(s.table("products")["category"].dropna().iloc[0]).split(">")[0].strip()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.recommend(user, 5, context=prefix)
    with pytest.warns(UnknownContextWarning, match="starts no category path"):
        s.recommend(user, 5, context="No Such Aisle")
