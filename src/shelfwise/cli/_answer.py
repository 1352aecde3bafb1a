"""Answers in batch, as the HTTP API gives them: `recommend`, `search`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from ._app import (
    SparkMaster,
    SparkRemote,
    Workdir,
    app,
    find_columns,
    header_names,
    json_field,
    json_lines,
    mapped_headers,
    read_ids,
    shop,
    sniff_table,
)

__all__ = ["recommend", "search", "similar"]


@app.command()
def recommend(
    workdir: Workdir,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="FILE.jsonl: one {user_id, items, source, personalized, fallback, filled} per line "
            "(--engine spark: a folder of Parquet).",
        ),
    ],
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            help="CSV with a user_id column (a session_id column names anonymous sessions: a row with no user_id is its session's), JSONL, or one id per line.",
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Items per user.")] = 10,
    model: Annotated[
        str | None, typer.Option(help="A model of the bundle (default: its default model).")
    ] = None,
    explain: Annotated[
        bool, typer.Option(help="Add `because`: the history items behind the top item.")
    ] = False,
    context: Annotated[
        str | None, typer.Option(help="A category path prefix: unknown users get what is popular there.")
    ] = None,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules/--no-rules",
            help="Apply the business rules (config/rules.json, the out-of-stock filter) as "
            "/v1/recommendations does; --no-rules: the model's ranking alone.",
        ),
    ] = True,
    all_users: Annotated[
        bool,
        typer.Option(
            "--all-users",
            help="--engine spark: every user of the current bundle (their shop ids from the raw layer) "
            "instead of --users.",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="duckdb (the one-node path) or spark: the users ranked as a Spark job (--no-rules).",
        ),
    ] = "duckdb",
    spark_remote: SparkRemote = None,
    spark_master: SparkMaster = None,
) -> None:
    """Top-k items per user, in the shop's own ids: the ranking /v1/recommendations answers for
    the same user (same model, experiments and business rules); seen items excluded; unknown
    users get the cold-start list. --engine spark --no-rules: the users are ranked as a Spark
    job (the bundle's model broadcast), written as Parquet (user_id, rank, product_id, score,
    source) in the folder --out, each user's list the one-node --no-rules list."""
    if engine.lower() not in ("duckdb", "spark"):
        raise typer.BadParameter(f"--engine {engine!r}: duckdb or spark")
    if engine.lower() == "spark":
        _recommend_on_spark(
            workdir, out, users, k, model, rules, all_users, explain, context, spark_remote, spark_master
        )
        return
    if all_users or users is None:
        raise typer.BadParameter(
            "give --users FILE (--all-users is for --engine spark: the one-node path answers listed users)"
        )
    listed = users
    from ..storage import outside_workdir

    outside_workdir(out, workdir)
    skipped: list[int] = []
    mapped = mapped_headers(workdir, "user_id")  # (the shop's own header for its customers)

    def ids() -> Iterator[str]:  # read once the Shop has checked the permission and the workdir
        yield from read_ids(listed, "user_id", skipped, mapped)

    answers = shop(workdir).recommend(ids(), k, model=model, explain=explain, context=context, rules=rules)
    out.parent.mkdir(parents=True, exist_ok=True)
    cold = filled = 0
    # shop user ids beside their lists: the owner's only, as the other customer files are
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:  # (closes the descriptor whatever happens)
        os.fchmod(fd, 0o600)  # (a file that existed keeps its mode through O_CREAT)
        for line in answers:
            cold += line["source"] == "cold_start"
            # a known shopper whose list the popular list made whole: the model had no evidence
            # for them, the rules removed its items, or the model is popularity itself
            filled += line["source"] != "cold_start" and not line["personalized"] and bool(line["items"])
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    typer.echo(
        f"wrote {len(answers):,} users to {out} ({cold:,} unknown to the bundle or not to be "
        "personalized: served the cold-start list"
        + (
            f"; {filled:,} known to the bundle served the popular list (nothing of the model's for them: "
            "no evidence, or the rules removed its items)"
            if filled
            else ""
        )
        + ")"
    )
    _say_skipped(listed, skipped)


@app.command()
def similar(
    workdir: Workdir,
    products: Annotated[
        Path,
        typer.Option(
            "--products",
            help="CSV with a product_id column (or an alias: `Product ID`, `sku`, ...), JSONL, or one "
            "id per line.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="FILE.jsonl: one {product_id, model, items, related, fallback, bundle_version} per line (a product "
            "the bundle does not know: {product_id, items: [], error}).",
        ),
    ],
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Items per product.")] = 10,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules/--no-rules",
            help="Apply the business rules (config/rules.json, the out-of-stock filter) as "
            "/v1/items/{id}/similar does; --no-rules: the model's neighbours alone.",
        ),
    ] = True,
) -> None:
    """Products like each listed product, in the shop's own ids: what /v1/items/{id}/similar
    answers for it (same model and business rules; `related`: how many items the model relates to
    the product, `fallback: "popular"` when best sellers filled the rest). A product the current
    bundle does not know (new since it was trained, or gone from the catalog) gets a line with its
    `error` and no items, counted on stderr; the exit status stays 0."""
    from ..errors import UnknownName
    from ..storage import outside_workdir

    outside_workdir(out, workdir)
    the_shop = shop(workdir)
    the_shop.authorize("recommend")  # (before the file is read, as recommend and search do)
    skipped: list[int] = []
    ids = read_ids(products, "product_id", skipped)
    lines: list[dict[str, object]] = []
    unknown = filled = 0
    for pid in ids:
        try:
            lines.append(the_shop.similar(pid, k, rules=rules, detail=True))
        except UnknownName as exc:  # (a product it does not know; anything else stops the run:
            # no bundle, a refusal, a busy warehouse are not the ids' fault)
            unknown += 1
            lines.append({"product_id": pid, "items": [], "error": str(exc)})
            continue
        filled += lines[-1].get("fallback") is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    typer.echo(
        f"wrote {len(lines):,} products to {out}"
        + (
            f" ({filled:,} filled with best sellers: the model relates fewer than {k} items)"
            if filled
            else ""
        )
    )
    if unknown:
        typer.echo(
            f"  {unknown:,} product(s) on no list (not in the catalog, no longer in it, not published, or "
            "new since the current bundle was trained): written with their `error`, which says which, "
            "and no items",
            err=True,
        )
    _say_skipped(products, skipped, "a product_id")


def _say_skipped(listed: Path, skipped: list[int], wanted: str = "a user_id or session_id") -> None:
    """The lines of an ids file that named nobody (no user id, no session; no product), on stderr."""
    if skipped:
        typer.echo(
            f"  {len(skipped):,} line(s) of {listed.name} without {wanted} skipped "
            f"(line {', '.join(map(str, skipped[:5]))}{', ...' if len(skipped) > 5 else ''})",
            err=True,
        )


def _recommend_on_spark(
    workdir: Path,
    out: Path,
    users: Path | None,
    k: int,
    model: str | None,
    rules: bool,
    all_users: bool,
    explain: bool,
    context: str | None,
    spark_remote: str | None,
    spark_master: str | None,
) -> None:
    from ..lifecycle._spark_jobs import check_output_folder
    from ..storage import engine_from

    if rules:  # (the rules - stock, hides, boosts, repurchase windows - are the server's, one node)
        raise typer.BadParameter(
            "--engine spark ranks with the model alone: add --no-rules (the business rules apply on "
            "the one-node path: `recommend --users FILE`)"
        )
    if explain or context:
        raise typer.BadParameter("--explain and --context are for the one-node path, not --engine spark")
    if all_users == (users is not None):
        raise typer.BadParameter("--engine spark: give --users FILE or --all-users (one of them)")
    the_shop = shop(workdir)
    # the permissions first: a refused person neither has the file read nor starts a Spark session
    the_shop.authorize("recommend")
    if all_users:
        the_shop.authorize("recommend.all_users")
    check_output_folder(out, workdir)
    skipped: list[int] = []
    ids = None if users is None else read_ids(users, "user_id", skipped, mapped_headers(workdir, "user_id"))
    if users is not None:  # (said as on the one-node path)
        _say_skipped(users, skipped)
    chosen = engine_from("spark", workdir, remote=spark_remote, master=spark_master)
    try:
        counts = the_shop.recommend_on_spark(chosen, out, ids, k, model=model)
    finally:
        chosen.close()
    typer.echo(
        f"wrote {counts['users']:,} users to {out}/ as Parquet ({counts['scored_on_spark']:,} ranked on Spark, "
        f"{counts['cold_start']:,} given the cold-start list)"
        + (
            f"; {counts['bundle_users_without_shop_id']:,} bundle user(s) have no shop id left in the raw "
            "layer (retention)"
            if counts.get("bundle_users_without_shop_id")
            else ""
        )
        + (
            f"; {counts['anonymous_sessions']:,} anonymous session(s) not scored (no customer to name)"
            if counts.get("anonymous_sessions")
            else ""
        )
    )


def _read_queries(queries: Path) -> list[tuple[str, str]]:
    """(query_id, query) pairs from a delimited file (CSV, TSV, `;` or `|`, detected as ingestion
    detects it) whose header names those columns or their aliases in the queries contract
    (`Query ID`, `qid`, `query_text`, `search_term`, ...), or from a JSON-lines file."""
    import csv
    import io

    from ..errors import SourceError

    if not queries.exists():
        raise SourceError(str(queries), None, "file not found")
    if queries.is_dir():
        raise SourceError(str(queries), None, "a folder, not a file of queries")
    wanted = {c: header_names(c, "queries") for c in ("query_id", "query")}

    def pick(obj: object) -> tuple[str, str]:
        qid = json_field(obj, wanted["query_id"])
        try:
            text = json_field(obj, wanted["query"])
        except KeyError:
            text = ""
        return str(qid), str(text or "")

    text = queries.read_text(encoding="utf-8-sig", errors="replace")
    start = text.lstrip()[:1]
    # JSON whatever the name says: lines of objects (`.jsonl`, or a `.json` file of them), or one
    # array of objects (a `.json` export); it was read as a CSV whose header was `{"query_id":"1"`
    if start == "[":
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise SourceError(str(queries), None, f"not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise SourceError(str(queries), None, "a JSON array of {query_id, query} objects was expected")
        pairs: list[tuple[str, str]] = []
        for i, obj in enumerate(items, 1):
            try:
                pairs.append(pick(obj))
            except (KeyError, TypeError, ValueError) as exc:
                raise SourceError(
                    str(queries), None, f"element {i}: needs query_id and query ({exc})"
                ) from None
        if not pairs:
            raise SourceError(str(queries), None, "the file is empty: no queries to search")
        return pairs
    if queries.suffix.lower() in (".jsonl", ".ndjson") or start == "{":
        pairs = json_lines(queries, "query_id and query", pick)
        if not pairs:
            raise SourceError(str(queries), None, "the file is empty: no queries to search")
        return pairs
    delimiter, header = sniff_table(queries, text)
    cols = find_columns(header, wanted)
    aliases = "; ".join(f"{c}: {', '.join(n[1:])}" for c, n in wanted.items())
    columns = f"query_id and query (or aliases: {aliases})"
    if not text.strip():
        raise SourceError(
            str(queries), None, f"the file is empty: give a header naming the columns {columns}"
        )
    if len(cols) < 2:
        raise SourceError(
            str(queries),
            1,
            f"the header must name the columns {columns}; the header has: "
            + (", ".join(repr(h) for h in header) or "no columns"),
        )
    qi, ti = cols["query_id"], cols["query"]
    rows: list[tuple[str, str]] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    in_header = True
    for row in reader:
        if not row or not any(f.strip() for f in row):
            continue  # a blank line
        if in_header:  # the header (the first line that is not blank)
            in_header = False
            continue
        if len(row) <= max(qi, ti):
            raise SourceError(
                str(queries), reader.line_num, f"expected {len(header)} fields, found {len(row)}"
            )
        rows.append((row[qi].strip(), row[ti]))
    if not rows:
        raise SourceError(str(queries), None, "no queries in the file: its header and no row below it")
    return rows


@app.command()
def search(
    workdir: Workdir,
    queries: Annotated[Path, typer.Option("--queries", help="CSV with query_id,query (or JSON lines).")],
    out: Annotated[
        Path, typer.Option("--out", help="FILE.jsonl: one {query_id, items, match, fallback} per line.")
    ],
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Items per query.")] = 10,
    candidates: Annotated[
        Path | None,
        typer.Option(
            "--candidates",
            help="JSON lines {query_id, items}: re-rank these lists only (the ranker alone: no rules).",
        ),
    ] = None,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules/--no-rules",
            help="Apply the business rules (config/rules.json, the out-of-stock filter) as /v1/search "
            "does; --no-rules: the search ranking alone.",
        ),
    ] = True,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            metavar="KEY=VALUE",
            help="An attribute filter for every query, as /v1/search's attr.KEY=VALUE (e.g. --attr "
            "color=red --attr size=M): a key given twice ORs its values, different keys AND.",
        ),
    ] = None,
) -> None:
    """Search the catalog: lexical + semantic retrieval, fused and re-ranked; the same results
    /v1/search answers for the same query (business rules and attribute filters included)."""
    from ..errors import SourceError

    attributes: dict[str, list[str]] = {}
    for pair in attr or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise typer.BadParameter(f"{pair!r}: give KEY=VALUE, e.g. color=red", param_hint="--attr")
        attributes.setdefault(key.strip(), []).append(value)

    # the Shop checks the permission, the workdir and the bundle's index before it reads the
    # queries, and the queries before the candidates: the files are read in its order
    rows: list[tuple[str, str]] = []

    def texts() -> Iterator[str]:
        rows.extend(_read_queries(queries))
        yield from (text for _, text in rows)

    def given() -> Iterator[list[str] | None]:
        assert candidates is not None
        if not candidates.exists():
            raise SourceError(str(candidates), None, "file not found")
        pairs = json_lines(
            candidates,
            "query_id and items",
            lambda obj: (str(obj["query_id"]), [str(x) for x in obj["items"]]),
        )
        lists = dict(pairs)
        # a list for a query id the queries file does not have (a typo, another file's ids) would
        # rank nothing: refused, naming the ids, before anything is written
        unknown = sorted(set(lists) - {qid for qid, _ in rows})
        if unknown:
            shown = ", ".join(repr(x) for x in unknown[:5]) + (
                f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            )
            raise SourceError(
                str(candidates),
                None,
                f"candidate lists for query ids the queries file ({queries}) does not have: {shown}",
            )
        yield from (lists.get(qid) for qid, _ in rows)

    from ..storage import outside_workdir

    outside_workdir(out, workdir)
    pages = shop(workdir).search_pages(
        texts(),
        k,
        candidates=given() if candidates is not None else None,
        rules=rules,
        attributes=dict(attributes) if attributes else None,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for (qid, _), page in zip(rows, pages, strict=True):
            # how the list was found, as /v1/search says it: a fallback list (nothing matched,
            # the popular products instead) says it is one, so an evaluation can tell
            line = {
                "query_id": qid,
                "items": page["items"],
                "match": page["match"],
                "fallback": page["fallback"],
            }
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {len(rows):,} queries to {out}")
