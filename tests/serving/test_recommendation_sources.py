"""What a recommendation list says of itself, alike in /v1/recommendations, `Shop.recommend` and
`shelfwise recommend`: how many of its places the popular list filled (a known shopper the model
had no evidence for was answered as the model's, `personalized: true`, with best sellers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shelfwise import Shop
from shelfwise.serving import create_app
from tests.cli.test_cli import sw

FIELDS = ("items", "personalized", "fallback", "filled")


@pytest.fixture()
def client(fill_shop: Path) -> Iterator[TestClient]:
    with TestClient(create_app(fill_shop)) as c:  # (single-user mode: no key)
        yield c


def recs(client: TestClient, user: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/v1/recommendations/{user}", params={"k": 5, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_list_the_popular_list_filled_says_so_and_is_not_personalized(fill_shop, client, tmp_path):
    loner, partial, cold = (recs(client, u) for u in ("loner", "partial", "someone-new"))
    # item-kNN knows nothing that goes with the loner's one product: five best sellers, said so;
    # the source stays the model's (`cold_start` says a shopper was not to be personalized)
    assert loner["source"] != "cold_start" and loner["model"] == "itemknn", loner
    assert (loner["personalized"], loner["fallback"], loner["filled"]) == (False, "popular", 5), loner
    # one place of evidence (buddy went on from p10 to p11), four filled: both visible
    assert partial["items"][0] == "p11", partial
    assert (partial["personalized"], partial["fallback"], partial["filled"]) == (True, "popular", 4), partial
    assert (cold["source"], cold["personalized"], cold["fallback"], cold["filled"]) == (
        "cold_start",
        False,
        "popular",
        5,
    )
    # the Python API and the batch CLI say the same of the same shoppers
    users = ["loner", "partial", "someone-new"]
    http = {u: {f: a[f] for f in FIELDS} for u, a in zip(users, (loner, partial, cold), strict=True)}
    shop = Shop(fill_shop)
    assert {u: {f: shop.recommend(u, 5)[f] for f in FIELDS} for u in users} == http
    assert [shop.recommend(u, 5)["source"] for u in users] == ["itemknn", "itemknn", "cold_start"]
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    out = tmp_path / "recs.jsonl"
    proc = sw("recommend", "--workdir", str(fill_shop), "--users", str(tmp_path / "users.txt"), "--k", "5", "--out", str(out))  # fmt: skip
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert {d["user_id"]: {f: d[f] for f in FIELDS} for d in lines} == http
    assert "1 known to the bundle served the popular list (nothing of the model's" in proc.stdout, proc.stdout


def test_a_context_that_steers_nothing_is_said_in_warnings(fill_shop, client, tmp_path):
    """`?context=Gardn` (a typo) was answered as if no context had been sent, without a word.
    Contexts are open-ended (any category path prefix), so it is no refusal: `warnings` says it,
    for a shopper with a history too (a context-limited rule reads the context); a context a
    rule is limited to is one that steers something."""
    for user in ("someone-new", "partial"):
        assert recs(client, user, context="Garden")["warnings"] == []
        assert recs(client, user)["warnings"] == []
        said = recs(client, user, context="Gardn")["warnings"]
        assert len(said) == 1 and "'Gardn' starts no category path" in said[0], said
    (tmp_path / "users.txt").write_text("partial\n")
    args = ["recommend", "--workdir", str(fill_shop), "--users", str(tmp_path / "users.txt")]
    proc = sw(*args, "--out", str(tmp_path / "r.jsonl"), "--context", "Gardn")
    assert f"warning: {said[0]}" in proc.stderr, proc.stderr
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"items": [{"action": "bury", "product_id": "p01", "context": "Homepage"}]}))
    sw("rules", "set", "--workdir", str(fill_shop), "--file", str(rules))
    with TestClient(create_app(fill_shop)) as again:
        assert recs(again, "partial", context="Homepage > Spring")["warnings"] == []
        assert recs(again, "partial", context="Gardn")["warnings"] != []


def test_a_context_only_a_variants_rule_reads_is_not_said_to_steer_nothing(fill_shop, tmp_path):
    """An experiment variant's rules are merged in for its shoppers: a context only a variant's
    rule is limited to steers that variant's lists, so neither `warnings` nor `Shop.recommend`
    says it steered nothing (the check read the shop's own rules and production alone)."""
    import shutil
    import warnings

    from shelfwise.errors import UnknownContextWarning

    w = tmp_path / "w"
    shutil.copytree(fill_shop, w)
    (w / "config").mkdir(exist_ok=True)
    hide = {"items": [{"action": "hide", "product_id": "p01", "context": "Homepage"}]}
    (w / "config" / "experiments.json").write_text(
        json.dumps(
            {
                "experiments": [
                    {
                        "name": "homepage",
                        "salt": "s1",
                        "surface": "recommendations",
                        "variants": [
                            {"name": "control", "weight": 0},
                            {"name": "hide-home", "weight": 1, "rules": hide},
                        ],
                    }
                ]
            }
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownContextWarning)
        got = Shop(w).recommend("someone-new", 5, context="Homepage > Spring")
    assert got["experiment"]["variant"] == "hide-home" and "p01" not in got["items"]
    with TestClient(create_app(w)) as c:
        assert recs(c, "someone-new", context="Homepage > Spring")["warnings"] == []
        assert recs(c, "someone-new", context="Gardn")["warnings"] != []
