"""A/B experiments: deterministic bucketing, exposure logging and an online report.

`<workdir>/config/experiments.json` (changed with `shelfwise experiments set`, audited):

    {"experiments": [
      {"name": "sasrec-vs-fusion", "surface": "recommendations", "salt": "2026-11",
       "variants": [
         {"name": "control", "weight": 50},
         {"name": "sasrec", "weight": 50, "model": "sasrec"},
         {"name": "old", "weight": 0, "bundle": "20261101T000000000000Z"},
         {"name": "diverse", "weight": 0, "rules": {"max_per_category": 2}}
       ],
       "start": "2026-11-01", "end": null}
    ]}

A variant may name a model of the serving bundle, another bundle version, or rule overrides:
its settings replace the shop's, its `items` are added after the shop's (a variant cannot lift
a rule of the shop). `experiments set` checks every value, and that each bundle and model named
exists (a model in the bundle that will serve the variant); one gone by serving time is served
from the current bundle or its default model, said in the log. A user's variant is a pure function of (experiment, salt, raw user id):
`sha256` into 10,000 buckets, split by weight, stable across processes, replicas and restarts.

Every served list is logged (the exposure log, `spool/exposures/`) with its id, the user's
pseudonym, the bundle, the model and the variant; events posted with that `recommendation_id` /
`search_id` are attributed to it. `experiment_report` joins the two.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ._rules import Rules, is_number, parse_when, write_json_atomically

EXPERIMENTS_FILE = Path("config") / "experiments.json"
BUCKETS = 10_000


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    model: str | None = None
    bundle: str | None = None
    rules: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    name: str
    surface: str
    variants: tuple[Variant, ...]
    salt: str = ""
    start: datetime | None = None
    end: datetime | None = None

    def active(self, now: datetime) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)

    def assign(self, raw_user_id: str) -> Variant:
        h = hashlib.sha256(f"{self.name}\x00{self.salt}\x00{raw_user_id}".encode()).digest()
        bucket = int.from_bytes(h[:8], "big") % BUCKETS
        total = sum(v.weight for v in self.variants)
        edge = 0.0
        for v in self.variants:
            edge += v.weight / total * BUCKETS
            if bucket < edge:
                return v
        return self.variants[-1]


_EXPERIMENT_FIELDS = {"name", "surface", "salt", "variants", "start", "end", "description", "note"}
_VARIANT_FIELDS = {"name", "weight", "model", "bundle", "rules", "description", "note"}


def parse_experiments(doc: Any, source: str = "experiments", *, strict: bool = True) -> list[Experiment]:
    """The experiments of a file, every value checked (a clear error naming the experiment,
    the variant and the field; `check_servable` checks the models and bundles named). Not
    `strict` (a server reading the installed file): an unknown field is left aside instead of
    refused, as it was before fields were checked, so a file a server ran yesterday still loads."""
    if not isinstance(doc, dict) or not isinstance(doc.get("experiments", []), list):
        raise ShelfwiseError(f'{source}: expected {{"experiments": [...]}}')
    out = []
    names = set()
    for i, e in enumerate(doc.get("experiments", [])):
        where = f"{source}: experiments[{i}]"
        if not isinstance(e, dict) or not e.get("name") or not isinstance(e["name"], str):
            raise ShelfwiseError(f"{where}: an object with a name (a text)")
        if e["name"] in names:
            raise ShelfwiseError(f"{where}: duplicate experiment name {e['name']!r}")
        names.add(e["name"])
        where = f"{source}: experiment {e['name']!r}"
        # a misspelt field would otherwise be ignored: the experiment would run without it
        if strict and (unknown := set(e) - _EXPERIMENT_FIELDS):
            raise ShelfwiseError(
                f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_EXPERIMENT_FIELDS)}"
            )
        surface = e.get("surface", "recommendations")
        if surface not in ("recommendations", "search"):
            raise ShelfwiseError(f"{where}: surface must be recommendations or search, not {surface!r}")
        if not isinstance(e.get("variants") or [], list):
            raise ShelfwiseError(f"{where}: variants must be a list, not {e['variants']!r}")
        variants: list[Variant] = []
        for j, v in enumerate(e.get("variants") or []):
            if not isinstance(v, dict) or not v.get("name") or not isinstance(v["name"], str):
                raise ShelfwiseError(f"{where}: variants[{j}] needs a name (a text)")
            vwhere = f"{where}: variant {v['name']!r}"
            if any(x.name == str(v["name"]) for x in variants):
                raise ShelfwiseError(
                    f"{vwhere}: two variants have this name (the report could not tell them apart)"
                )
            if strict and (unknown := set(v) - _VARIANT_FIELDS):
                raise ShelfwiseError(
                    f"{vwhere}: unknown field(s) {sorted(unknown)}; known: {sorted(_VARIANT_FIELDS)}"
                )
            w = v.get("weight", 1)
            if not is_number(w) or float(w) < 0:
                raise ShelfwiseError(f"{vwhere}: weight must be a number >= 0, not {w!r}")
            for name in ("model", "bundle"):
                if v.get(name) is not None and (not isinstance(v[name], str) or not v[name].strip()):
                    raise ShelfwiseError(f"{vwhere}: {name} must be a name, not {v[name]!r}")
            rules = v.get("rules") or {}
            if not isinstance(rules, dict):
                raise ShelfwiseError(f"{vwhere}: rules must be an object of rule settings, not {rules!r}")
            Rules.from_dict(rules, f"{vwhere}: rules")  # checked as `rules set` checks a rules file
            variants.append(Variant(str(v["name"]), float(w), v.get("model"), v.get("bundle"), dict(rules)))
        if len(variants) < 2 or sum(v.weight for v in variants) <= 0:
            raise ShelfwiseError(f"{where}: at least two variants with a positive total weight")
        out.append(
            Experiment(
                str(e["name"]),
                surface,
                tuple(variants),
                str(e.get("salt", "")),
                parse_when(e.get("start"), where),
                parse_when(e.get("end"), where),
            )
        )
    return out


def load_experiments(workdir: str | Path) -> list[Experiment]:
    path = Path(workdir) / EXPERIMENTS_FILE
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise ShelfwiseError(f"{path}: not valid JSON: {exc}") from None
    return parse_experiments(doc, str(path), strict=False)


def check_servable(workdir: str | Path, experiments: list[Experiment], source: str = "experiments") -> None:
    """Every bundle a variant names is in the workdir, and every model a variant names is in the
    bundle that will serve it (its own, else the current one): a typo is refused here instead of
    being served as the default model, or failing every request of the variant's users."""
    from ..models._manifest import MANIFEST_FILE, read_manifest
    from ._bundle import BUNDLES_DIR, current_bundle

    workdir = Path(workdir)
    models: dict[Path, list[str]] = {}
    for e in experiments:
        for v in e.variants:
            where = f"{source}: experiment {e.name!r}: variant {v.name!r}"
            if v.bundle:
                path = workdir / BUNDLES_DIR / v.bundle
                # (a name, not a path: `bundles/../x` is no bundle of this shop)
                if (
                    "/" in v.bundle
                    or "\\" in v.bundle
                    or v.bundle.startswith(".")
                    or not (path / MANIFEST_FILE).is_file()
                ):
                    raise ShelfwiseError(
                        f"{where}: bundle {v.bundle!r} does not exist in {workdir / BUNDLES_DIR}"
                    )
            if not v.model:
                continue
            try:
                path = workdir / BUNDLES_DIR / v.bundle if v.bundle else current_bundle(workdir)
            except ShelfwiseError as exc:  # no bundle trained yet: nothing to name a model of
                raise ShelfwiseError(f"{where}: model {v.model!r} cannot be checked: {exc}") from None
            if path not in models:
                models[path] = list(read_manifest(path).models)
            if v.model not in models[path]:
                raise ShelfwiseError(
                    f"{where}: model {v.model!r} is not in bundle {path.name} (it has {', '.join(models[path])})"
                )


def save_experiments(workdir: str | Path, doc: dict[str, Any], actor: str | None = None) -> list[Experiment]:
    from ..governance import AuditLog

    exps = parse_experiments(doc)
    check_servable(workdir, exps)
    write_json_atomically(Path(workdir) / EXPERIMENTS_FILE, doc)
    AuditLog(workdir).append(
        "experiments.change",
        actor=actor,
        experiments=[e.name for e in exps],
        sha256=hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest(),
    )
    return exps


def _bootstrap_mean(values: np.ndarray, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    if len(values) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (rounds, len(values)))].mean(axis=1)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


def experiment_report(workdir: str | Path, experiment: str | None = None) -> dict[str, Any]:
    """Per experiment and variant: users, exposures, CTR, add-to-cart rate, conversion and
    revenue per user (95% CIs: Wilson for rates, bootstrap over users for revenue), from the
    exposure log and the attributed events in the warehouse (absorb first to count the newest)."""
    from ..storage._segments import iter_records
    from ._feedback import EXPOSURES_DIR

    workdir = Path(workdir)
    exposures = []
    # each segment read whole, never half rewritten by an erasure or retention run; a line a
    # crash cut short is left out
    for rec in iter_records(workdir / EXPOSURES_DIR):
        if (e := experiment_exposure(rec)) is not None:
            exposures.append(e)
    if experiment is not None:
        exposures = [e for e in exposures if e[0] == experiment]
    return experiment_summary(exposures, attributed_events(workdir) if exposures else {})


def experiment_exposure(rec: Any) -> tuple[str, str, str, str, str] | None:
    """What the report needs of one exposure-log line: (experiment, variant, list id, user,
    bundle), or None when no experiment served it. Order-free: a reader may keep these as the
    log grows (the console does) and give `experiment_summary` the same report."""
    if not isinstance(rec, dict) or not rec.get("experiment") or not rec.get("variant"):
        return None  # (a line without its variant cannot count for one: not a variant "None")
    return (str(rec["experiment"]), str(rec.get("variant")), str(rec.get("id")), str(rec.get("user")),
            str(rec.get("bundle")))  # fmt: skip


def attributed_events(workdir: str | Path) -> dict[str, dict[str, float]]:
    """Per served list id a curated event names (`recommendation_id`, else `search_id`): its
    clicks, add-to-carts, purchases and purchase revenue (the warehouse's part of the report)."""
    from ..storage import read_only, relation_columns

    by_list: dict[str, dict[str, float]] = {}
    with read_only(workdir) as (con, tables):
        if "events" not in tables:
            return by_list
        cols = set(relation_columns(con, "curated.events"))
        if "recommendation_id" not in cols:
            return by_list
        rows = con.sql(
            "SELECT coalesce(recommendation_id, search_id), event_type, coalesce(value, 0) "
            "FROM curated.events WHERE coalesce(recommendation_id, search_id) IS NOT NULL"
        ).fetchall()
    for sid, etype, value in rows:
        d = by_list.setdefault(sid, {"click": 0, "add_to_cart": 0, "purchase": 0, "revenue": 0.0})
        if etype in d:
            d[etype] += 1
        if etype == "purchase":
            d["revenue"] += float(value)
    return by_list


def experiment_summary(
    exposures: list[tuple[str, str, str, str, str]], by_list: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """The report from the exposures (`experiment_exposure`'s tuples) and `attributed_events`."""
    from ..evaluation import wilson_interval

    out: dict[str, Any] = {
        "protocol": (
            "unit = user (pseudonym); exposure = one served list; an event counts for the list whose "
            "recommendation_id/search_id it carries; CTR and add-to-cart rate per exposure, conversion "
            "= share of exposed users with an attributed purchase, revenue per exposed user = sum of "
            "attributed purchase values; 95% CIs: Wilson (rates), bootstrap over users (revenue)"
        ),
        "experiments": {},
    }
    groups: dict[tuple[str, str], list[tuple[str, str, str, str, str]]] = {}
    for e in exposures:
        groups.setdefault((e[0], e[1]), []).append(e)
    for exp_name in sorted({k[0] for k in groups}):
        variants: dict[str, Any] = {}
        for var in sorted(v for x, v in groups if x == exp_name):
            ex = groups[(exp_name, var)]
            users = sorted({e[3] for e in ex})
            n = len(ex)
            clicks = sum(min(by_list.get(e[2], {}).get("click", 0), 1) for e in ex)
            carts = sum(min(by_list.get(e[2], {}).get("add_to_cart", 0), 1) for e in ex)
            per_user_rev = {u: 0.0 for u in users}
            buyers = set()
            for e in ex:
                got = by_list.get(e[2])
                if got and got["purchase"]:
                    buyers.add(e[3])
                    per_user_rev[e[3]] += got["revenue"]
            rev = np.array(list(per_user_rev.values()), float)
            variants[var] = {
                "users": len(users),
                "exposures": n,
                "ctr": clicks / n if n else 0.0,
                "ctr_ci95": wilson_interval(clicks, n),
                "add_to_cart_rate": carts / n if n else 0.0,
                "add_to_cart_ci95": wilson_interval(carts, n),
                "conversion": len(buyers) / len(users) if users else 0.0,
                "conversion_ci95": wilson_interval(len(buyers), len(users)),
                "revenue_per_user": float(rev.mean()) if len(rev) else 0.0,
                "revenue_per_user_ci95": _bootstrap_mean(rev),
                "bundles": sorted({e[4] for e in ex}),
            }
        out["experiments"][exp_name] = {"variants": variants}
    return out
