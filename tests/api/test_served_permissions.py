"""Who may serve lists to shoppers through Python is who may over HTTP: `recommend`, `similar`
and `search_pages` with `served=True` need `serve.call`, what /v1/recommendations,
/v1/items/{id}/similar and /v1/search need. The service role (a shop front calling shelfwise)
was refused them in Python, for want of `recommend` / `search`, although it calls the same
endpoints over HTTP and those log the same exposures. Offline lists (no `served`) stay the
people's."""

from __future__ import annotations

import shutil

import pytest

from shelfwise import AccessDenied, Shop
from shelfwise.governance import PERMISSIONS, Role
from tests.serving.conftest import known_users


def test_whoever_may_call_the_endpoints_may_serve_their_lists_in_python(trained, tmp_path):
    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    shutil.rmtree(work / "spool" / "exposures", ignore_errors=True)
    ada = Shop(work, as_="ada", api_key=Shop(work).add_person("ada", "admin"))
    user = known_users(data, work, 1)[0]
    product = ada.recommend(user, 3)["items"][0]

    served_by: dict[str, bool] = {}
    for role in Role:
        name = f"{role.value}-1"
        shop = Shop(work, as_=name, api_key=ada.add_person(name, role.value))
        calls = (
            lambda s=shop: s.recommend(user, 3, served=True)["recommendation_id"],
            lambda s=shop: s.similar(product, 3, detail=True, served=True)["recommendation_id"],
            lambda s=shop: s.search_pages(["bike light"], 3, served=True)[0]["search_id"],
            # what a shop front shows as the shopper types, as /v1/suggest answers it
            lambda s=shop: s.suggest("bi", 3) is not None,
        )
        allowed = []
        for call in calls:
            try:
                allowed.append(bool(call()))
            except AccessDenied as exc:
                assert "may not" in str(exc), exc
                allowed.append(False)
        assert len(set(allowed)) == 1, (role, allowed)  # (the three twins agree)
        served_by[role.value] = allowed[0]
    # exactly the roles the endpoints let in (`serve.call`, what `_http_auth.authorize` checks)
    assert served_by == {r.value: r in PERMISSIONS["serve.call"] for r in Role}
    assert served_by["service"] and not served_by["steward"]
    with pytest.raises(AccessDenied, match="may not serve.call"):  # (the endpoints' permission named)
        Shop(work, as_="steward-1", api_key=ada.rotate_key("steward-1")).recommend(user, 3, served=True)

    # the service role's served lists are logged under its ids, as the server logs its calls
    svc = Shop(work, as_="service-1", api_key=ada.rotate_key("service-1"))
    rid = svc.recommend(user, 3, served=True)["recommendation_id"]
    from shelfwise.serving._feedback import EXPOSURES_DIR
    from shelfwise.storage._segments import iter_records

    svc.close()  # (its buffered lists written)
    assert rid in {r["id"] for r in iter_records(work / EXPOSURES_DIR)}
    # an offline batch (nothing served) stays a person's: the role table's `recommend`, `search`
    with pytest.raises(AccessDenied, match="may not recommend"):
        svc.recommend(user, 3)
    with pytest.raises(AccessDenied, match="may not search"):
        svc.search_pages(["bike light"], 3)
