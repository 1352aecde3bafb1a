"""The exposure log's search queries are masked as the warehouse masks text, off the event loop,
all of a flush's queries at once."""

from __future__ import annotations

import json

from shelfwise.governance._privacy import mask_pii, mask_pii_many
from shelfwise.serving._http_tasks import exposure_lines


def test_a_flush_masks_every_query_and_leaves_other_lists_as_they_are() -> None:
    records = [
        {"id": "s1", "kind": "search", "query": "tent for jane.doe@mail.com", "items": ["P1"]},
        {"id": "r1", "kind": "recommendations", "items": ["P2"], "context": None},
        {"id": "s2", "kind": "search", "query": "size 42 boots", "items": []},
        {"id": "s3", "kind": "search", "query": "call +44 20 7946 0000", "items": []},
    ]
    got = [json.loads(x) for x in exposure_lines(records)]
    assert [r.get("query") for r in got] == ["tent for [email]", None, "size 42 boots", "call [phone]"]
    assert [r.get("masked") for r in got] == [True, None, True, True]
    texts = ["a@b.co", "plain", "2001:db8::1", "10.0.0.1 x", "42"]
    assert mask_pii_many(texts) == [mask_pii(t) for t in texts]
