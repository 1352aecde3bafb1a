"""Each loader on a small slice of the real public data in ../shared/data (skipped when absent)."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from shelfwise.datasets import convert, detect_format
from shelfwise.errors import SourceError
from shelfwise.governance import ingest
from tests.conftest import copy_head, curated_rows, shared


def test_movielens_recbole_slice(tmp_path):
    src = shared("movielens_100k")
    d = tmp_path / "ml"
    copy_head(src / "ml-100k.inter", d / "ml-100k.inter", 3001)
    shutil.copy(src / "ml-100k.item", d / "ml-100k.item")
    shutil.copy(src / "ml-100k.user", d / "ml-100k.user")
    assert detect_format(d) == "movielens"
    res = convert(d, tmp_path / "out")
    assert res.files == {"events.jsonl": 3000, "products.jsonl": 1682, "users.jsonl": 943}
    rep = ingest(tmp_path / "out", tmp_path / "w")
    assert rep.tables["events"].rows_curated == 3000
    assert curated_rows(tmp_path / "w", "SELECT title FROM curated.products WHERE product_id = '1'") == [
        ("Toy Story",)
    ]
    # zip codes are personal data: kept out of the curated users
    assert rep.tables["users"].personal_columns_dropped == ["zip_code"]


def test_amazon_reviews_with_dirty_metadata(tmp_path):
    src = shared("amazon2018_magazine_subscriptions")
    d = tmp_path / "amz"
    d.mkdir()
    with (
        gzip.open(src / "Magazine_Subscriptions_5.json.gz", "rb") as fi,
        open(d / "Magazine_5.json", "wb") as fo,
    ):
        for i, line in enumerate(fi):
            if i >= 300:
                break
            fo.write(line)
    with (
        gzip.open(src / "meta_Magazine_Subscriptions.json.gz", "rb") as fi,
        gzip.open(d / "meta_Magazine.json.gz", "wb") as fo,
    ):
        for i, line in enumerate(fi):
            if i >= 400:
                break
            fo.write(line)
    assert detect_format(d) == "amazon"
    res = convert(d, tmp_path / "out")
    rep = ingest(tmp_path / "out", tmp_path / "w")
    p = rep.tables["products"]
    assert p.balanced and p.rows_in == 400
    # most titles are a fragment of the page's markup: titled from the description instead (they
    # were quarantined as empty after cleaning: 3 of 150 reviewed magazines kept a catalog row)
    assert res.cleaned["products.title: markup replaced by a derived title"] > 300
    assert p.reasons.get("missing_required", 0) < 10 and p.rows_curated > 380
    titles = [r[0] for r in curated_rows(tmp_path / "w", "SELECT title FROM curated.products")]
    assert titles and not any("<" in t or "/>" in t or "&amp;" in t for t in titles)
    e = rep.tables["events"]
    assert e.balanced and e.rows_curated > 200
    assert (
        curated_rows(
            tmp_path / "w",
            "SELECT count(*) FROM curated.events WHERE event_type = 'rating' AND value BETWEEN 1 AND 5",
        )[0][0]
        == e.rows_curated
    )


def test_amazon_metadata_debris_is_cleaned_and_counted(tmp_path):
    """Amazon 2018 metadata holds pieces of the scraped page where the title and the price were:
    a title is taken from the description's first sentence (else brand and category), a CSS
    price is left empty (its row was quarantined whole for an optional field), HTML entities
    are read, and the convert result counts each cleaning."""
    d = tmp_path / "amz"
    d.mkdir()
    (d / "Mags_5.json").write_text(
        json.dumps({"reviewerID": "R1", "asin": "A1", "overall": 5.0, "unixReviewTime": 1500000000}) + "\n"
    )
    metas = [
        {"asin": "A1", "title": '<span class="a-size-medium a-color-secondary"', "price": ".a-box-inner{background-color:#fff}",
         "description": ["Written by and for musicians. Covers many styles."], "category": ["Magazines", "Arts, Music &amp; Photography"]},
        {"asin": "A2", "title": ' Magazines" />', "brand": "String Letter", "category": ["Magazines", "Music"], "price": "$12.99"},
        {"asin": "A3", "title": "Woman&#39;s Day", "price": "$5.00 - $9.00"},
        # (from a review: braces and a "<" are text; a description's tags are taken out first)
        {"asin": "A4", "title": "Rolling Stone June 19 2014{the Country Issue}"},
        {"asin": "A5", "title": "Kids <12"},
        {"asin": "A6", "title": "<span class=\"a-size", "description": ["<p>The <b>best</b> of jazz. Monthly.</p>"]},
        # (a sentence does not end at an abbreviation: it was titled "Dr")
        {"asin": "A7", "title": "<span", "description": ["Dr. Oz The Good Life is a magazine. Recipes."]},
        # (nor does it run on past a short word that ends one)
        {"asin": "A8", "title": "<span", "description": ["Organic Green Tea. 100 bags per box."]},
    ]  # fmt: skip
    (d / "meta_Mags.json").write_text("".join(json.dumps(m) + "\n" for m in metas))
    res = convert(d, tmp_path / "out", "amazon")
    got = {
        r["product_id"]: r
        for r in map(json.loads, (tmp_path / "out" / "products.jsonl").read_text().splitlines())
    }
    assert got["A1"]["title"] == "Written by and for musicians" and got["A1"]["price"] is None
    assert got["A1"]["category"] == "Magazines > Arts, Music & Photography"
    assert got["A2"]["title"] == "String Letter - Music" and got["A2"]["price"] == "$12.99"
    assert got["A3"]["title"] == "Woman's Day" and got["A3"]["price"] == "$5.00 - $9.00"
    assert (
        got["A4"]["title"] == "Rolling Stone June 19 2014{the Country Issue}"
        and got["A5"]["title"] == "Kids <12"
    )
    assert got["A6"]["title"] == "The best of jazz"
    assert got["A7"]["title"] == "Dr. Oz The Good Life is a magazine"
    assert got["A8"]["title"] == "Organic Green Tea"
    assert res.cleaned == {
        "products.title: markup replaced by a derived title": 5,
        "products.price: not a price, left empty": 1,
    }
    # ingested as it is (converted on the way), the load's report says what the conversion did
    from shelfwise.lifecycle import ingest_dataset

    notes = " | ".join(ingest_dataset(d, tmp_path / "w").notes)
    assert "converting, 5 products.title: markup replaced by a derived title" in notes, notes


def test_sequence_per_line_format(tmp_path):
    src = shared("amazon_s3rec_seq")
    d = tmp_path / "seq"
    copy_head(src / "Beauty.txt", d / "Beauty.txt", 200)
    shutil.copy(src / "Beauty_item2attributes.json", d / "Beauty_item2attributes.json")
    assert detect_format(d) == "sequences"
    res = convert(d, tmp_path / "out")
    n_events = sum(len(line.split()) - 1 for line in (d / "Beauty.txt").read_text().splitlines())
    assert res.files["events.jsonl"] == n_events
    rep = ingest(tmp_path / "out", tmp_path / "w")
    assert rep.tables["events"].rows_curated == n_events
    # order survives: the first user's items come back in file order
    first = (d / "Beauty.txt").read_text().splitlines()[0].split()
    got = curated_rows(
        tmp_path / "w",
        "SELECT product_id FROM curated.events WHERE user_id = (SELECT user_id FROM "
        f'curated.events WHERE product_id = \'{first[1]}\' ORDER BY "timestamp" LIMIT 1) ORDER BY "timestamp"',
    )
    assert [g[0] for g in got] == first[1:]
    # the attributes beside the file reach the catalog, and SASRec's attribute matrix from it
    from shelfwise.features import load_interactions
    from shelfwise.lifecycle._train import _item_attributes

    inter, catalog = load_interactions(tmp_path / "w")
    table = json.loads((d / "Beauty_item2attributes.json").read_text())
    item = str(inter.item_ids[0])
    assert json.loads(catalog.attributes[0]) == {"attribute_ids": table.get(item, [])}
    attrs = _item_attributes(catalog)
    assert attrs is not None and attrs.shape[0] == inter.n_items and attrs.nnz > inter.n_items


def test_homedepot_judgments_latin1(tmp_path):
    src = shared("homedepot_search_relevance")
    d = tmp_path / "hd"
    copy_head(src / "train_dev.csv", d / "train.csv", 3000)
    assert detect_format(d) == "homedepot"
    convert(d, tmp_path / "out")
    rep = ingest(tmp_path / "out", tmp_path / "w")
    assert rep.tables["judgments"].rows_curated == 2999 and rep.tables["judgments"].balanced
    assert rep.tables["queries"].rows_curated > 100
    rel = curated_rows(tmp_path / "w", "SELECT min(relevance), max(relevance) FROM curated.judgments")[0]
    assert 1.0 <= rel[0] <= rel[1] <= 3.0


def test_diginetica_sessions(tmp_path):
    src = shared("diginetica_sample")
    d = tmp_path / "dg"
    copy_head(src / "sample_train-item-views.csv", d / "views.csv", 501)
    assert detect_format(d) == "diginetica"
    convert(d, tmp_path / "out")
    rep = ingest(tmp_path / "out", tmp_path / "w")
    ev = rep.tables["events"]
    assert ev.rows_in == 500 and ev.balanced and ev.rows_curated >= 490
    assert "no products file" in " ".join(rep.notes)
    # a session without a user is anonymous browsing, never a customer (it was "session-N": a
    # user profiled by `insights customers` and counted a marketing contact)
    lines = (d / "views.csv").read_text().splitlines()[1:]
    no_user = sum(1 for x in lines if x.split(";")[1] in ("", "NA"))
    anonymous = curated_rows(
        tmp_path / "w", "SELECT count(*) FROM curated.events WHERE starts_with(user_id, 'a_')"
    )
    assert no_user > 0 and anonymous[0][0] >= no_user - 10


def test_a_diginetica_session_without_a_user_is_anonymous(tmp_path):
    d = tmp_path / "dg"
    d.mkdir()
    (d / "views.csv").write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n2;42;31331;1031018;2016-05-09\n"
    )
    convert(d, tmp_path / "out", "diginetica")
    rows = [json.loads(x) for x in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert [(r["user_id"], r["session_id"]) for r in rows] == [(None, "1"), ("42", "2")]


def test_diginetica_views_keep_their_milliseconds_and_a_bad_timeframe_is_quarantined(tmp_path):
    """Two views 450 ms apart were cut to one second (the second a duplicate_row); a timeframe
    that is no number of milliseconds became the day's midnight without a word."""
    d = tmp_path / "dg"
    d.mkdir()
    (d / "views.csv").write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "1609;NA;4753;219802;2016-05-09\n1609;NA;4753;219352;2016-05-09\n"
        "1610;NA;4753;abc;2016-05-09\n1611;NA;4753;-5;2016-05-09\n"
    )
    convert(d, tmp_path / "out", "diginetica")
    rep = ingest(tmp_path / "out", tmp_path / "w")
    ev = rep.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.rows_quarantined) == (4, 2, 2)
    assert set(ev.reasons) == {"unparseable_timestamp"}, ev.reasons
    times = curated_rows(
        tmp_path / "w", "SELECT strftime(timestamp, '%H:%M:%S.%g') FROM curated.events ORDER BY 1"
    )
    assert times == [("00:03:39.352",), ("00:03:39.802",)]


def test_a_folder_of_two_shops_sequences_is_refused_not_half_converted(tmp_path):
    """Beauty.txt and Sports_and_Outdoors.txt side by side: converting the folder took the first
    and dropped the other without a word (their user and item ids collide: one shop a file)."""
    d = tmp_path / "seq"
    d.mkdir()
    (d / "Beauty.txt").write_text("1 1 2 3\n2 4 5\n")
    (d / "Sports.txt").write_text("1 7 8\n")
    with pytest.raises(
        SourceError, match=r"2 sequence files \(Beauty.txt, Sports.txt\).*give the file itself"
    ):
        convert(d, tmp_path / "out")
    res = convert(d / "Sports.txt", tmp_path / "out2")
    assert res.files["events.jsonl"] == 2


def test_amazon_2014_category_paths_keep_the_first_and_count_the_rest(tmp_path):
    """Amazon's 2014 metadata lists a product's category paths; the conversion keeps the first,
    and did so without a word: the convert result counts the products that had several."""
    d = tmp_path / "amz"
    d.mkdir()
    (d / "Books_5.json").write_text(
        json.dumps({"reviewerID": "R1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1400000000}) + "\n"
    )
    metas = [
        {"asin": "B1", "title": "A novel", "categories": [["Books", "Fiction"], ["Books", "Sale"]]},
        {"asin": "B2", "title": "Poems", "categories": [["Books", "Poetry"]]},
    ]
    (d / "meta_Books.json").write_text("".join(json.dumps(m) + "\n" for m in metas))
    res = convert(d, tmp_path / "out", "amazon")
    got = {
        r["product_id"]: r
        for r in map(json.loads, (tmp_path / "out" / "products.jsonl").read_text().splitlines())
    }
    assert (got["B1"]["category"], got["B2"]["category"]) == ("Books > Fiction", "Books > Poetry")
    assert res.cleaned == {"products.category: several category paths, the first kept": 1}
