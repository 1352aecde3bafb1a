"""The governed jobs behind the insights commands: permission, point-in-time read, model, the
output file in the shop's own ids, an OpenLineage run and an audit entry."""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ShelfwiseError
from ._customers import PROFILE_COLUMNS, monetary_source, money_currency, profile_customers
from ._data import (
    NO_QUESTIONS,
    curated_inputs,
    header_said,
    load_curated,
    parse_as_of,
    questions_file,
    require_purchase,
    stale_as_of,
)
from ._data import shop_ids as _shop_ids

PROFILE_FIELDS = ("user_id", *PROFILE_COLUMNS)
# the file `insights customers` writes: the profile and whether the user may receive marketing
# (a profile file is analytics, not a contact list: filter on this column to make one)
OUTPUT_FIELDS = (*PROFILE_FIELDS, "marketing_consent")
NOT_A_CONTACT_LIST = (
    "profiles are personalization analytics, not a marketing contact list: users who withdrew "
    "marketing consent are in it (marketing_consent false); contact only through "
    "`shelfwise audiences export`, or keep the rows with marketing_consent true"
)
_ROUND = {"recency_days": 2, "monetary": 2, "expected_purchases": 4, "churn_risk": 4, "expected_value": 2}


def _clean(v: Any, digits: int | None = None) -> Any:
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return round(v, digits) if digits is not None else v
    return v


def profile_records(
    workdir: str | Path, as_of: str | None = None, horizon_days: int = 90, *, shop_ids: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The profiles as JSON-ready dicts, what made them, and who was left out.

    `shop_ids`: name users by the shop's own ids (a user whose raw rows are gone, retention, is
    then left out: `left_out_without_shop_id`), else by the warehouse's pseudonyms (every
    profile; `pseudonymized` counts them), the rule of `audiences export`. Every record says
    whether the user may receive marketing (`marketing_consent`)."""
    from ..governance._consent import consent_withdrawn
    from ._customers import check_horizon_days
    from ._data import count_customers, no_customer_events

    horizon_days = check_horizon_days(horizon_days)  # before the events are read
    at = parse_as_of(as_of)
    # profiles are profiling: users without personalization consent are left out
    events, products, at = load_curated(workdir, at, consent="personalization")
    if events.empty:
        raise ShelfwiseError(no_customer_events(workdir, at))
    require_purchase(events, at, workdir)
    stale = stale_as_of(events, at)
    prof, info = profile_customers(events, products, at, horizon_days)
    pseudonyms = [str(p) for p in prof.index]
    ids = _shop_ids(workdir, pseudonyms) if shop_ids else {p: p for p in pseudonyms}
    no_marketing = consent_withdrawn(workdir, "marketing", among=pseudonyms)
    records = []
    for pseudo, row in prof.iterrows():
        raw = ids.get(str(pseudo))
        if raw is None:
            continue
        rec: dict[str, Any] = {"user_id": raw}
        for f in PROFILE_FIELDS[1:]:
            v = row[f]
            rec[f] = int(v) if f == "frequency" else _clean(v, _ROUND.get(f))
        rec["marketing_consent"] = str(pseudo) not in no_marketing
        records.append(rec)
    records.sort(key=lambda r: r["user_id"])
    without_id = len(prof) - len(records)
    meta = {
        "as_of": pd.Timestamp(at).isoformat(),
        "events": len(events),
        "model": asdict(info),
        "ids": "shop" if shop_ids else "pseudonym",
        "pseudonymized": 0 if shop_ids else len(records),
        # `left_out` (kept for callers): the same count as `left_out_without_shop_id`
        "left_out": without_id,
        "left_out_without_shop_id": without_id,
        "left_out_without_consent": count_customers(workdir, at) - int(events["user_id"].nunique()),
        "marketing_opt_outs": sum(not r["marketing_consent"] for r in records),
        "monetary_source": monetary_source(events, products),
        # (the one currency the money is in; None where the files name none)
        "currency": money_currency(events, products),
        "contact_list": False,
        "warning": stale,
        "note": NOT_A_CONTACT_LIST,
    }
    return records, meta


def write_records(
    records: list[dict[str, Any]], out: Path, fields: tuple[str, ...], *, private: bool = False
) -> None:
    """JSON lines, or CSV (lists joined with '|'), by the file's suffix; `private`: readable by
    its owner only (customers named by id, a contact list), as the privacy exports are."""
    out.parent.mkdir(parents=True, exist_ok=True)

    def opener(path: str, flags: int) -> int:
        fd = os.open(path, flags, 0o600 if private else 0o666)
        try:
            if private:
                os.fchmod(fd, 0o600)  # (a file that existed keeps its mode through O_CREAT)
        except OSError:
            os.close(fd)
            raise
        return fd

    if out.suffix == ".jsonl":
        with open(out, "w", encoding="utf-8", opener=opener) as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    elif out.suffix == ".csv":
        with open(out, "w", encoding="utf-8", newline="", opener=opener) as fh:
            w = csv.DictWriter(fh, fieldnames=list(fields))
            w.writeheader()
            for r in records:
                w.writerow({k: "|".join(v) if isinstance(v, list) else v for k, v in r.items()})
    else:
        raise ShelfwiseError(f"{out}: unknown output format {out.suffix!r} (use .jsonl or .csv)")


def run_customers(
    workdir: str | Path,
    out: str | Path,
    *,
    as_of: str | None = None,
    horizon_days: int = 90,
    actor: str | None = None,
    shop_ids: bool = True,
) -> dict[str, Any]:
    """Profiles of every user up to `as_of`, written to `out`. The caller (`shelfwise.Shop`) has
    checked the `insights.customers` permission and decided `shop_ids` as `audiences export`
    does (`audiences.shop_ids`); `actor` is the person the audit entry names."""
    from ..governance import AuditLog, DatasetRef, LineageRun
    from ..governance._audit import file_named

    workdir, out = Path(workdir), Path(out)
    if out.suffix not in (".jsonl", ".csv"):
        raise ShelfwiseError(f"{out}: unknown output format {out.suffix!r} (use .jsonl or .csv)")
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(
            f"{workdir}: not a shelfwise workdir (no warehouse.duckdb; ingest data first: `Shop.ingest(DIR)` or `shelfwise ingest`)"
        )
    inputs, versions = curated_inputs(workdir)
    lineage = LineageRun(
        workdir,
        "shelfwise.insights.customers",
        inputs,
    ).start()
    try:
        records, meta = profile_records(workdir, as_of, horizon_days, shop_ids=shop_ids)
        write_records(records, out, OUTPUT_FIELDS, private=True)
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete([DatasetRef("file", str(out.resolve()), rows=len(records), columns=OUTPUT_FIELDS)])
    rep = {"users": len(records), "out": str(out), "lineage_run_id": lineage.run_id, **meta}
    AuditLog(workdir).append(
        "insights.customers",
        actor=actor,
        out=file_named(out),
        users=len(records),
        ids=meta["ids"],
        marketing_opt_outs=meta["marketing_opt_outs"],
        as_of=meta["as_of"],
        horizon_days=horizon_days,
        data_versions=versions,
        lineage_run_id=lineage.run_id,
    )
    return rep


def read_questions(path: Path) -> list[tuple[str, str]]:
    """(question_id, question) from a CSV with those headers or JSON lines; a bad row names the
    file and line, as does a file with no question (`questions_file`, NO_QUESTIONS)."""
    from ..errors import SourceError

    questions_file(path, "question_id,question")
    out: list[tuple[str, str]] = []
    if path.suffix == ".txt":  # one question a line (its id: the line's number)
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        out = [(str(n), line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    elif path.suffix == ".jsonl":
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                    # (no question_id: the line's number, as for a CSV row)
                    out.append((str(obj.get("question_id", n)), str(obj["question"])))
                except (ValueError, KeyError, TypeError) as exc:
                    raise SourceError(
                        str(path), n, f"not a JSON object with question_id, question: {exc}"
                    ) from exc
    else:
        out = _csv_questions(path)
    if not out:
        raise SourceError(str(path), None, NO_QUESTIONS)
    return out


def _csv_questions(path: Path) -> list[tuple[str, str]]:
    from ..errors import SourceError

    out: list[tuple[str, str]] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "question" not in reader.fieldnames:
            raise SourceError(
                str(path),
                1,
                f"needs the columns question_id,question (question alone: each named by its line's "
                f"number) ({header_said(reader.fieldnames)}; a .txt file is read one question a line)",
            )
        ids = "question_id" in reader.fieldnames
        for row in reader:
            if (ids and row.get("question_id") is None) or row.get("question") is None:
                raise SourceError(str(path), reader.line_num, "a row without question_id or question")
            out.append((row["question_id"] if ids else str(reader.line_num), row["question"]))
    return out


def load_faq(workdir: str | Path) -> tuple[list[str], list[str], list[str]]:
    from ..storage import read_only

    with read_only(workdir) as (con, curated):
        if "faq" not in curated:
            raise ShelfwiseError(
                f"{workdir}: no FAQ; add a faq.csv (faq_id,question,answer) to the data and run `shelfwise ingest`"
            )
        rows = con.sql("SELECT faq_id, question, answer FROM curated.faq ORDER BY faq_id").fetchall()
    if not rows:
        raise ShelfwiseError(f"{workdir}: the curated faq table is empty")
    return [r[0] for r in rows], [r[1] or "" for r in rows], [r[2] or "" for r in rows]


def run_ask(
    workdir: str | Path, questions: str | Path, out: str | Path, *, actor: str | None = None
) -> dict[str, Any]:
    """Answer each question from the shop's FAQ (or abstain), as JSON lines. The caller
    (`shelfwise.Shop`) has checked the `ask` permission; `actor` is who the audit entry names."""
    from ..governance import AuditLog, DatasetRef, LineageRun
    from ..governance._lineage import warehouse_namespace
    from ._faq import question_refused
    from ._faq_stage import attach_products, faq_matcher, live_bundle, search_engine

    workdir, questions, out = Path(workdir), Path(questions), Path(out)
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(
            f"{workdir}: not a shelfwise workdir (no warehouse.duckdb; ingest data first: `Shop.ingest(DIR)` or `shelfwise ingest`)"
        )
    asked = read_questions(questions)
    # one rule for every door (`question_refused`): a blank or too long question is refused,
    # row by row, saying why (the file is answered); the CLI answered a blank one with an
    # abstention and 100,000 characters that POST /v1/ask refused
    refused = {i: why for i, (_, q) in enumerate(asked) if (why := question_refused(q)) is not None}
    seen = Counter(qid for qid, _ in asked)
    duplicates = sorted(qid for qid, n in seen.items() if n > 1)  # (answered, but said: ids join answers)
    todo = [i for i in range(len(asked)) if i not in refused]
    ns = warehouse_namespace(workdir)
    lineage = LineageRun(
        workdir,
        "shelfwise.ask",
        [DatasetRef(ns, "curated.faq"), DatasetRef("file", str(questions.resolve()), rows=len(asked))],
    ).start()
    try:
        bundle = live_bundle(workdir)
        matcher, faq_from = faq_matcher(workdir, bundle)  # the bundle's encodings when current
        answers = matcher.match([asked[i][1].strip() for i in todo])
        products = attach_products(
            search_engine(bundle),
            [asked[i][1].strip() for i in todo],
            [a.faq_id is not None for a in answers],
            workdir=workdir,
        )
        got = dict(zip(todo, zip(answers, products, strict=True), strict=True))
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            for i, (qid, _) in enumerate(asked):
                line: dict[str, Any]
                if i in refused:
                    line = {"question_id": qid, "faq_id": None, "answer": None, "score": None, "products": [],
                            "refused": refused[i]}  # fmt: skip
                else:
                    a, prods = got[i]
                    line = {"question_id": qid, "faq_id": a.faq_id, "answer": a.answer,
                            "score": round(a.score, 4), "products": prods}  # fmt: skip
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete([DatasetRef("file", str(out.resolve()), rows=len(asked))])
    answered = sum(a.faq_id is not None for a in answers)
    AuditLog(workdir).append(
        "ask", actor=actor, out=str(out), questions=len(asked), answered=answered, refused=len(refused),
        lineage_run_id=lineage.run_id,
    )  # fmt: skip
    return {
        "questions": len(asked), "answered": answered, "out": str(out), "lineage_run_id": lineage.run_id,
        "faq_from": faq_from, "with_products": sum(bool(p) for p in products),
        "refused": [{"question_id": asked[i][0], "reason": why} for i, why in refused.items()],
        "duplicate_question_ids": duplicates,
    }  # fmt: skip


def profile_part(workdir: str | Path, user_id: str) -> dict[str, Any]:
    """A user's customer profile as `insights customers` computes it now, for the right of
    access (`privacy export`, the console's download): the part's rows and lineage, or why it
    could not be computed."""
    from ..governance._compile import trim_id

    lineage = {"layer": "derived", "job": "insights customers", "from": "curated.events"}
    try:
        records, meta = profile_records(workdir)
    except Exception as exc:  # noqa: BLE001 - a shop too small to profile still answers the request
        return {"lineage": lineage, "rows": [], "note": f"not computable: {exc}"}
    rows = [r for r in records if r["user_id"] == trim_id(user_id)]
    return {"lineage": {**lineage, "as_of": meta["as_of"], "model": meta["model"]}, "rows": rows}


__all__ = [
    "NOT_A_CONTACT_LIST",
    "OUTPUT_FIELDS",
    "PROFILE_FIELDS",
    "load_faq",
    "profile_part",
    "profile_records",
    "read_questions",
    "run_ask",
    "run_customers",
    "write_records",
]
