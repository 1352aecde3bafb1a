"""The files and flags commands take, read as ingestion reads a shop's files (delimiter detected,
headers matched by name and contract alias, ids trimmed), and refused in one line (exit 2,
`error: ...`, the valid choices named) when they cannot mean anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shelfwise.cli import main
from shelfwise.cli._answer import _read_queries
from shelfwise.cli._app import read_ids
from shelfwise.errors import SourceError

# -- recommend --users FILE -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("User ID\nLW-17215\n", ["LW-17215"]),  # the header named as people write it
        ("customer_id;segment\nLW-17215;x\nLW-2;y\n", ["LW-17215", "LW-2"]),  # `;` and an alias
        ("segment\tuserId\nx\tLW-17215\n", ["LW-17215"]),  # tab-separated, the id column second
        ("user_id\n LW-17215 \n\n", ["LW-17215"]),  # trimmed, as ingestion trims ids
        ('"User-Id","segment"\n" LW-17215",x\n', ["LW-17215"]),
        ("LW-17215\n LW-2\n", ["LW-17215", "LW-2"]),  # one id per line, no header
    ],
)
def test_users_file_is_read_as_ingestion_reads_ids(tmp_path: Path, text: str, ids: list[str]) -> None:
    path = tmp_path / "users.csv"
    path.write_text(text, encoding="utf-8")
    assert read_ids(path, "user_id") == ids


def test_users_json_lines_take_the_aliases_and_are_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text('{"user_id": " A "}\n\n{"customer_id": "B"}\n', encoding="utf-8")
    assert read_ids(path, "user_id") == ["A", "B"]


@pytest.mark.parametrize(
    ("name", "text", "ids", "skipped"),
    [
        # a file of sessions: its header was read as an id and session "2" got user 2's list
        ("s.csv", "session_id\n1\n2\n", ["~anonymous:1", "~anonymous:2"], []),
        # a row without a user id is its session's; a row with neither is skipped, and said
        ("s.csv", "user_id;session_id\n;1\n2;48\n;\n", ["~anonymous:1", "2"], [4]),
        # "NA", "null", "-" are a missing id, as ingestion reads them
        ("s.csv", "user_id,session_id\nNA,7\nnull,8\nC1,9\n-,-\n", ["~anonymous:7", "~anonymous:8", "C1"], [5]),
        ("s.jsonl", '{"session_id": "7"}\n{"user_id": "A", "session_id": "8"}\n{"user_id": null}\n',
         ["~anonymous:7", "A"], [3]),
    ],
)  # fmt: skip
def test_a_users_file_names_anonymous_sessions_as_ingestion_does(
    tmp_path: Path, name: str, text: str, ids: list[str], skipped: list[int]
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    got: list[int] = []
    assert read_ids(path, "user_id", got) == ids and got == skipped


def test_users_file_of_several_columns_without_a_user_id_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("customer;segment\nLW-17215;x\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        read_ids(path, "user_id")
    said = str(err.value)
    assert said.startswith(f"{path}:1: ") and "'customer', 'segment'" in said and "user_id" in said


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("users.csv", "", "the file is empty"),
        ("users.csv", "\n \n", "the file is empty"),  # blank lines only
        ("users.csv", "user_id\n", "its header ('user_id') and no id below it"),
        ("users.csv", "User ID;segment\n;x\n", "its header ('User ID') and no id below it"),  # blank ids
        ("users.jsonl", "", "the file is empty"),
        ("users.jsonl", '{"user_id": " "}\n', "every line's user_id is blank"),
    ],
)
def test_users_file_without_ids_is_an_error(tmp_path: Path, name: str, text: str, said: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as err:
        read_ids(path, "user_id")
    assert str(err.value).startswith(f"{path}: ") and said in str(err.value), err.value


@pytest.mark.parametrize("text", ["", "user_id\n"])
def test_recommend_with_an_empty_users_file_exits_2_naming_it(demo_ingested, tmp_path, capsys, text):
    """`recommend --users FILE` with no id in FILE is bad input, as an empty file of queries or
    questions is: one line naming the file, exit 2, nothing written (not "wrote 0 users")."""
    workdir, _ = demo_ingested
    users, out = tmp_path / "users.csv", tmp_path / "o.jsonl"
    users.write_text(text, encoding="utf-8")
    assert main(["recommend", "--workdir", str(workdir), "--users", str(users), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {users}: ") and captured.err.count("\n") == 1, captured.err
    assert "user_id" in captured.err and not out.exists() and "wrote" not in captured.out


# -- search --queries FILE ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "query_id\tquery\tquery_class\n0\tsalon chair\tMassage Chairs\n1\tsmart coffee table\tTables\n",
        "Query ID,Query\n0,salon chair\n1,smart coffee table\n",
        "qid;search_term\n0;salon chair\n\n1;smart coffee table\n",
        '\ufeffquery_id,query\n0,salon chair\n1,"smart coffee table"\n',
    ],
)
def test_queries_file_is_read_with_its_delimiter_and_the_contracts_aliases(tmp_path: Path, text: str) -> None:
    path = tmp_path / "queries.csv"
    path.write_text(text, encoding="utf-8")
    assert _read_queries(path) == [("0", "salon chair"), ("1", "smart coffee table")]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "q.json",
            '{"query_id": "0", "query": "salon chair"}\n{"query_id": 1, "query": "smart coffee table"}\n',
        ),
        (
            "q.json",
            '[{"qid": "0", "query": "salon chair"}, {"query_id": "1", "query": "smart coffee table"}]',
        ),
        (
            "q.csv",
            '[{"query_id": "0", "query": "salon chair"}, {"query_id": "1", "query": "smart coffee table"}]',
        ),
    ],
)
def test_a_queries_file_in_json_is_read_as_json_whatever_its_name(
    tmp_path: Path, name: str, text: str
) -> None:
    """JSON lines in a `.json` file, or one JSON array (ESCI's query set): read as JSON (they
    were read as a CSV whose header was `{"query_id":"0"`)."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert _read_queries(path) == [("0", "salon chair"), ("1", "smart coffee table")]
    path.write_text('[{"query": "no id"}]', encoding="utf-8")
    with pytest.raises(SourceError, match="element 1: needs query_id and query"):
        _read_queries(path)


def test_queries_file_without_the_columns_is_an_error_naming_its_header(tmp_path: Path) -> None:
    path = tmp_path / "queries.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"query_id and query .*the header has: 'a', 'b'"):
        _read_queries(path)


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("queries.csv", "", "the file is empty"),
        ("queries.csv", "query_id,query\n\n", "its header and no row below it"),
        ("queries.jsonl", "\n", "the file is empty"),
    ],
)
def test_queries_file_without_queries_is_an_error(tmp_path: Path, name: str, text: str, said: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as err:
        _read_queries(path)
    assert str(err.value).startswith(f"{path}: ") and said in str(err.value), err.value


# -- ask --questions FILE -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("questions.csv", "", "the file is empty"),
        ("questions.csv", "\n\n", "the file is empty"),
        ("questions.jsonl", "", "the file is empty"),
        ("questions.csv", "question_id,question\n", "no questions in the file"),
    ],
)
def test_ask_with_an_empty_questions_file_exits_2_naming_it(
    demo_ingested, tmp_path, capsys, name, text, said
) -> None:
    """Not "needs the columns question_id,question (has None)": the file is named and said to be
    empty, in one line, exit 2, nothing written."""
    workdir, _ = demo_ingested
    questions, out = tmp_path / name, tmp_path / "answers.jsonl"
    questions.write_text(text, encoding="utf-8")
    assert main(["ask", "--workdir", str(workdir), "--questions", str(questions), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {questions}: ") and said in err and err.count("\n") == 1, err
    assert "None" not in err and not out.exists()


# -- train / evaluate flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--models", "nosuch"], "unknown model(s) nosuch; known models: als, bpr, content"),
        (["--split", "bogus"], "choose leave_last_out or global_time"),
    ],
)
def test_train_refuses_unknown_models_and_splits_in_one_line(demo_ingested, capsys, flags, said) -> None:
    workdir, _ = demo_ingested
    assert main(["train", "--workdir", str(workdir), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and err.count("\n") == 1, err


# -- quarantine list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "valid"),
    [
        (["--status", "bogus"], "open, released, superseded, redelivered, withheld, all"),
        (["--table", "bogus"], "products, queries, users, events, judgments"),
        (["--reason", "bogus"], "malformed_row, missing_required"),
    ],
)
def test_quarantine_list_refuses_unknown_filters(demo_ingested, tmp_path, capsys, flags, valid) -> None:
    workdir, _ = demo_ingested
    assert main(["quarantine", "list", "--workdir", str(workdir), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flags[0]} 'bogus'") and valid in err and err.count("\n") == 1, err
    if flags[0] != "--status":  # `quarantine export` takes the same filters
        out = tmp_path / "q.jsonl"
        assert main(["quarantine", "export", "--workdir", str(workdir), "--out", str(out), *flags]) == 2
        assert capsys.readouterr().err.startswith(f"error: {flags[0]} 'bogus'") and not out.exists()


def test_quarantine_list_summary_follows_the_filters(demo_ingested, capsys) -> None:
    workdir, _ = demo_ingested
    flags = ["--table", "events", "--reason", "out_of_range", "--limit", "1"]
    assert main(["quarantine", "list", "--workdir", str(workdir), *flags]) == 0
    text = capsys.readouterr().out
    summary = text.split("\n\n")[0].splitlines()
    assert summary and all(line.split()[:3] == ["events", "out_of_range", "open"] for line in summary), text
    assert main(["quarantine", "list", "--workdir", str(workdir), *flags, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {s["table"] for s in res["summary"]} > {"events"}  # `summary`: the whole quarantine, as before
    assert res["filtered_summary"] == [
        s
        for s in res["summary"]
        if (s["table"], s["reason"], s["status"]) == ("events", "out_of_range", "open")
    ]


# -- --data naming a file -------------------------------------------------------------------------


def test_data_naming_a_file_says_it_is_a_file(demo_data, tmp_path, capsys) -> None:
    file = demo_data / "products.csv"
    assert main(["ingest", "--data", str(file), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert f"{file}: a file, not a dataset folder" in err and f"--data {demo_data}" in err, err
    assert "not found" not in err


def test_shelfwises_own_warnings_print_as_one_line(capsys, monkeypatch) -> None:
    """A shelfwise warning (an --as-of weeks past the data) prints `warning: text`, not Python's
    `file:line: Category: text` and the source line; other warnings as Python shows them."""
    from shelfwise.cli import _show_warning
    from shelfwise.insights._data import StaleAsOfWarning

    _show_warning(StaleAsOfWarning("--as-of is 455 days after the last event"), StaleAsOfWarning, "x.py", 3)
    assert capsys.readouterr().err == "warning: --as-of is 455 days after the last event\n"
    shown = []
    monkeypatch.setattr("shelfwise.cli._python_show_warning", lambda *a, **k: shown.append(a[:2]))
    _show_warning(UserWarning("other"), UserWarning, "x.py", 3)
    assert capsys.readouterr().err == "" and shown and shown[0][1] is UserWarning


def test_a_users_file_with_the_shops_own_header_is_read_by_it(tmp_path: Path) -> None:
    """A Shopify shop keys its customers on `Email` (`[map.events] user_id = "Email"`): its file
    of customers, headed `Email`, served a customer called "Email" (walk48a F7)."""
    path = tmp_path / "users.csv"
    path.write_text("Email\npaul@example.com\nnever.seen@example.com\n", encoding="utf-8")
    assert read_ids(path, "user_id") == ["paul@example.com", "never.seen@example.com"]
    # a header the shop's map names, whatever its ids look like
    path.write_text("Kundennummer\nK1\nK2\n", encoding="utf-8")
    assert read_ids(path, "user_id", mapped=["Kundennummer"]) == ["K1", "K2"]
    assert read_ids(path, "user_id") == ["Kundennummer", "K1", "K2"]  # (unknown: one id per line)


def test_the_shops_mapped_customer_header_is_found_in_its_ingests(tmp_path: Path) -> None:
    from shelfwise.cli._app import mapped_headers

    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text(
        "Email,sku,event_type,Created\na@x.com,P1,purchase,2024-01-01T10:00:00\n", encoding="utf-8"
    )
    (data / "shelfwise.toml").write_text('[map.events]\nuser_id = "Email"\ntimestamp = "Created"\n')
    assert main(["ingest", "--data", str(data), "--workdir", str(tmp_path / "w")]) == 0
    assert mapped_headers(tmp_path / "w", "user_id") == ["Email"]
    assert mapped_headers(tmp_path / "nothing", "user_id") == []
