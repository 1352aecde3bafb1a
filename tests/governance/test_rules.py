"""Row and set rules with known answers, on tiny hand-written files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from shelfwise.errors import ContractViolation, SourceError
from shelfwise.governance import (
    Ingestor,
    IngestSettings,
    Pseudonymizer,
    Quarantine,
    ingest,
    mask_pii,
    normalize_text,
)
from tests.conftest import curated_rows

HEADER = "user_id,product_id,event_type,timestamp,session_id,query,value,text\n"


def _events(d: Path, body: str) -> Path:
    (d / "events.csv").write_text(HEADER + body, encoding="utf-8")
    return d


def test_timestamps_iso_offsets_and_epochs_are_utc(tiny_dir, tmp_path):
    _events(
        tiny_dir,
        "a,p1,view,2024-01-05T10:00:00Z,,,,\n"
        "a,p2,view,2024-01-05T12:00:00+02:00,,,,\n"
        "a,p3,view,1704448800,,,,\n"
        "a,p4,view,1704448800000,,,,\n"
        "a,p5,view,2024-01-05 10:00:00,,,,\n"
        "a,p6,view,yesterday,,,,\n"
        "a,p7,view,1969-12-31T00:00:00Z,,,,\n"
        # a space before the offset: Shopify's `Created at` (every order was quarantined)
        "a,s1,view,2024-01-05 05:00:00 -0500,,,,\n"
        "a,s2,view,2024-01-05 11:00:00 +01:00,,,,\n"
        "a,s3,view,2024-01-05T12:00 +0200,,,,\n"
        "a,s4,view,2024-01-05 05:00:00.000 -05,,,,\n",
    )
    r = ingest(tiny_dir, tmp_path / "w")
    got = dict(
        curated_rows(
            tmp_path / "w",
            "SELECT product_id, strftime(\"timestamp\", '%Y-%m-%d %H:%M:%S') FROM curated.events",
        )
    )
    assert got == {p: "2024-01-05 10:00:00" for p in ("p1", "p2", "p3", "p4", "p5", "s1", "s2", "s3", "s4")}
    assert r.tables["events"].reasons == {"unparseable_timestamp": 1, "out_of_range": 1}


def test_event_type_synonyms_and_unknown_types(tiny_dir, tmp_path):
    _events(
        tiny_dir,
        "a,p1,Add-To-Cart,2024-01-05,,,,\na,p1,PageView,2024-01-05,,,,\na,p1,teleport,2024-01-05,,,,\n"
        "a,,search,2024-01-05,,,,\na,,search,2024-01-06,,red shoes,,\n",
    )
    r = ingest(tiny_dir, tmp_path / "w")
    types = sorted(x[0] for x in curated_rows(tmp_path / "w", "SELECT event_type FROM curated.events"))
    assert types == ["add_to_cart", "search", "view"]
    assert r.tables["events"].reasons == {"invalid_value": 1, "missing_required": 1}


def test_bot_rule_uses_a_sliding_window(tiny_dir, tmp_path):
    body = "".join(f"bot,p{i % 7},view,{1704448800 + i // 3},,,,\n" for i in range(130))  # 3 per second
    body += "".join(f"human,p{i},view,{1704448800 + 40 * i},,,,\n" for i in range(130))  # one per 40 s
    _events(tiny_dir, body)
    r = ingest(tiny_dir, tmp_path / "w", IngestSettings(bot_max_events=120, bot_window_seconds=60))
    assert r.tables["events"].reasons == {"bot_traffic": 130}
    assert r.tables["events"].rows_curated == 130
    r2 = ingest(tiny_dir, tmp_path / "w2", IngestSettings(bot_max_events=500))
    assert r2.tables["events"].rows_quarantined == 0


def test_conflicting_keys_keep_the_last_row_and_references_are_checked(tiny_dir, tmp_path):
    (tiny_dir / "products.csv").write_text(
        'product_id,title,price\np1,Old title,10\np2,Hat,5\np1,New title,12\np3,<span class="a-size",3\n'
    )
    _events(tiny_dir, "a,p1,view,2024-01-05,,,,\na,p3,view,2024-01-05,,,,\na,p9,view,2024-01-05,,,,\n")
    r = ingest(tiny_dir, tmp_path / "w")
    assert curated_rows(
        tmp_path / "w", "SELECT title, price FROM curated.products WHERE product_id='p1'"
    ) == [("New title", 12.0)]
    assert r.tables["products"].reasons == {"duplicate_key": 1, "missing_required": 1}
    # p3's catalog row is broken (title is an HTML fragment) but p3 is a known product; p9 is not
    assert r.tables["events"].reasons == {"unknown_reference": 1}
    q = Quarantine(tmp_path / "w").list(table="events")
    assert q[0]["source_line"] == 4 and "p9" in q[0]["detail"]


def test_malformed_lines_are_quarantined_with_their_line(tiny_dir, tmp_path):
    _events(
        tiny_dir,
        'a,p1,view,2024-01-05,,,,\na,p1,view,2024-01-05,s,"a review\nthat spans lines",,\n'
        "a,p2,view,2024-01-05,,,,,oops,extra\n\na,p3\na,p4,view,2024-01-05,,,,\n",
    )
    r = ingest(tiny_dir, tmp_path / "w")
    t = r.tables["events"]
    assert t.rows_in == 5 and t.blank_lines == 1 and t.balanced
    lines = {x["source_line"]: x["reason"] for x in Quarantine(tmp_path / "w").list()}
    assert lines == {5: "malformed_row", 7: "malformed_row"}
    assert t.rows_curated == 3
    # the quoted field that spans two lines is one record, with its newline folded to a space
    assert curated_rows(tmp_path / "w", "SELECT query FROM curated.events WHERE session_id = 's'") == [
        ("a review that spans lines",)
    ]


def test_mixed_encodings_in_one_file(tiny_dir, tmp_path):
    raw = (
        HEADER.encode()
        + "a,p1,rating,2024-01-05,,,5,très bien\n".encode()
        + "a,p2,rating,2024-01-05,,,4,très bien\n".encode("latin-1")
    )
    (tiny_dir / "events.csv").write_bytes(raw)
    r = ingest(tiny_dir, tmp_path / "w")
    assert r.tables["events"].transcoded_lines == 1
    assert sorted(x[0] for x in curated_rows(tmp_path / "w", "SELECT text FROM curated.events")) == [
        "très bien",
        "très bien",
    ]


def test_jsonl_and_parquet_sources(tiny_dir, tmp_path):
    (tiny_dir / "events.jsonl").write_text(
        '{"user_id": "a", "product_id": "p1", "event_type": "view", "timestamp": 1704448800}\n'
        "{not json}\n"
        '["an", "array"]\n'
        '{"user_id": "b", "item_id": "p2", "event_type": "click", "timestamp": "2024-01-05T10:00:00Z", "extra": 1}\n'
    )
    r = ingest(tiny_dir, tmp_path / "w")
    assert r.tables["events"].rows_curated == 2 and r.tables["events"].reasons == {"malformed_row": 2}
    assert {x["source_line"] for x in Quarantine(tmp_path / "w").list()} == {2, 3}
    pq = tmp_path / "pq"
    pq.mkdir()
    con = duckdb.connect()
    con.sql(
        f"COPY (SELECT 'u' || i AS user_id, 'p' || (i % 5) AS product_id, 'view' AS event_type, "
        f"TIMESTAMP '2024-01-01' + INTERVAL (i) MINUTE AS timestamp, CASE WHEN i = 3 THEN -1 ELSE 2.5 END AS value "
        f"FROM range(10) t(i)) TO '{pq}/events.parquet' (FORMAT PARQUET)"
    )
    r = ingest(pq, tmp_path / "w2")
    assert r.tables["events"].rows_curated == 9
    assert [x["source_line"] for x in Quarantine(tmp_path / "w2").list()] == [4]


def test_bad_input_gets_a_clear_error(tiny_dir, tmp_path):
    with pytest.raises(SourceError, match="not found"):
        ingest(tmp_path / "nope", tmp_path / "w")
    with pytest.raises(SourceError, match="no events"):
        ingest(tiny_dir, tmp_path / "w")
    (tiny_dir / "events.csv").write_text("")
    with pytest.raises(SourceError, match=r"events.csv:1: the file is empty"):
        ingest(tiny_dir, tmp_path / "w")
    (tiny_dir / "events.csv").write_text("userid,product_id,event_typ,timestamp\na,p1,view,2024-01-01\n")
    with pytest.raises(SourceError) as exc:
        ingest(tiny_dir, tmp_path / "w")
    msg = str(exc.value)
    assert "events.csv:1" in msg and "'event_type'" in msg and "event_typ" in msg
    (tiny_dir / "events.csv").write_text("a,p1,view,2024-01-01\nb,p2,view,2024-01-01\n")  # no header line
    with pytest.raises(SourceError, match="missing required column"):
        ingest(tiny_dir, tmp_path / "w")


def test_curated_data_must_satisfy_the_pandera_contract(tmp_path):
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.storage import Warehouse

    w = Warehouse(tmp_path / "w")
    try:
        w.sql(
            "CREATE TABLE curated.events__v1 AS SELECT 'u' AS user_id, 'p' AS product_id, 'teleport' AS event_type, "
            "TIMESTAMP '2024-01-01' AS timestamp, NULL::VARCHAR AS session_id, NULL::VARCHAR AS query, "
            "NULL::DOUBLE AS value, NULL::VARCHAR AS text"
        )
        w.sql("CREATE VIEW curated.events AS SELECT * FROM curated.events__v1")
        with pytest.raises(ContractViolation, match="event_type"):
            Ingestor(tmp_path / "w")._validate(w, EVENTS)
    finally:
        w.close()


def test_pii_masking_and_pseudonyms():
    text = (
        "Mail jane.doe+shop@example.co.uk or call +44 (20) 7946 0958, card 4111 1111 1111 1111, ip 10.1.2.3"
    )
    masked = mask_pii(text)
    assert "jane" not in masked and "7946" not in masked and "4111" not in masked and "10.1.2.3" not in masked
    assert "[email]" in masked and "[phone]" in masked and "[card]" in masked
    assert mask_pii("size 42, 3 pack, 2024 model") == "size 42, 3 pack, 2024 model"
    # IPv6 too (only IPv4 was masked), in the full and the "::" forms; times, C++ names and MAC
    # addresses are no address
    assert mask_pii("from 2001:db8::ff00:42:8329 or ::1") == "from [ip] or [ip]"
    assert mask_pii("ip 2001:0db8:85a3:0000:0000:8a2e:0370:7334") == "ip [ip]"
    assert "192" not in mask_pii("client ::ffff:192.168.1.10 error")  # (a mapped IPv4 kept its tail)
    kept = "at 10:30:45, std::vector, Beef:: stew, mac 00:1A:2B:3C:4D:5E"
    assert mask_pii(kept) == kept
    # phone numbers written in one run (E.164, a national number with its trunk 0) and an IBAN
    # written in groups: wholly masked, with their own token and the words around them kept
    assert mask_pii("kettle +447700900123") == "kettle [phone]"
    assert mask_pii("call me on +14155550199 thanks") == "call me on [phone] thanks"
    assert mask_pii("whatsapp +4917012345678 ok") == "whatsapp [phone] ok"
    assert mask_pii("ring 07700900123 after 6") == "ring [phone] after 6"
    assert mask_pii("refund to GB82 WEST 1234 5698 7654 32 please") == "refund to [iban] please"
    assert mask_pii("iban DE89370400440532013000.") == "iban [iban]."
    assert mask_pii("card 4111111111111111 exp") == "card [card] exp"
    assert mask_pii("order 12345678, size 42, model 2024") == "order 12345678, size 42, model 2024"
    # numbers as other countries group them were half masked (`+33 6 [phone] 78`) or read as a card
    for number in ("+31 6 12345678", "06 12 34 56 78", "+33 6 12 34 56 78", "+91 98765 43210",
                   "+34 612 34 56 78", "+81 3-1234-5678", "+1 (555) 123-4567", "0170 1234567"):  # fmt: skip
        assert mask_pii(f"bel {number} ok") == "bel [phone] ok", number
    assert mask_pii("0049 170 1234567") == "[phone]"
    assert mask_pii("between 10 and 20 items, +5 10 points") == "between 10 and 20 items, +5 10 points"
    for kept in ("Bought 2+1 10 20 pack", "Size 10+2 20 30 cm", "score +1 2 34"):  # (the review's)
        assert mask_pii(kept) == kept
    p = Pseudonymizer(b"k" * 32)
    assert p("123") == p("123") != p("124") != Pseudonymizer(b"x" * 32)("124")
    ids = ["123", "C00042", "ünïcode", ""]
    for key in (b"k" * 32, b"long" * 40, b""):  # short, longer than a SHA-256 block, empty
        q = Pseudonymizer(key)
        assert q.many(ids) == [q(i) for i in ids]


def test_text_normalization():
    assert normalize_text("  <b>Red</b>&nbsp;Shoe &amp; Lace\u200b  ") == "Red Shoe & Lace"
    assert normalize_text("ＵＳＢ－Ｃ cable") == "USB-C cable"
    assert normalize_text('<span class="a-size-medium a-color-secondary"') is None
    assert normalize_text("   ") is None
