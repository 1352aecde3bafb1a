"""Marketing audiences: who to reach, from rules over the customer profile or from the trained
recommenders read from the item side; stored with lineage, exported only to roles allowed.

Two kinds (`AudienceSpec`):
- **rule**: users whose profile (`insights customers`, fitted on the history up to `as_of`)
  matches a rule such as `churn_risk > 0.6 and segment == 'loyal'` (`_audience_rules`);
- **model**: the users most likely to buy given products, or any product of a category, in the
  next `days` days: every user known to the trained bundle is scored by one of its recommenders
  (the bundle's default model unless named) and ranked by where the best target product sits in
  their own ranking of the catalog (1 = their top pick; ties by the model's score). Reading ranks
  rather than raw scores keeps users comparable under models whose scores have a per-user scale
  (co-occurrence sums). A bundle is needed for model audiences only.

An audience smaller than `min_size` (default 50: a k-anonymity style floor, so that an audience
cannot single out a handful of people) is neither stored nor exported.

**Lift** (offline, out of sample): the same audience is built as it would have been `days` days
before the latest event (a rule on profiles fitted only on the history up to then; a model
audience from the same model class refit, with the same parameters, on the interactions up to
then), and its conversion in the following `days` days (any purchase for a rule audience; a
purchase of a target product for a model audience) is compared with the base rate of every user
known at that date. The 95% interval of the lift comes from a seeded multinomial bootstrap of
the 2x2 table (member x converted), exact for this statistic and cheap at any shop size.

Stored under `<workdir>/audiences/<name>/`: `audience.json` (the spec, who built it, the as-of,
the curated table versions, the bundle and model version, the lift, the lineage run) and
`members.jsonl` (`{"user": pseudonym, "score": ...}`, best first). Members are warehouse
pseudonyms, never the shop's ids: the shop id is recovered at export from the raw layer (as
`insights customers` does), so a user erased or aged out by retention is never exported;
erasure also rewrites `members.jsonl` (governance/_erase.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ShelfwiseError
from ._audience_rules import Rule

AUDIENCES_DIR = "audiences"
MEMBERS_FILE = "members.jsonl"
META_FILE = "audience.json"
MIN_SIZE = 50
DEFAULT_DAYS = 30
DEFAULT_SHARE = 0.10  # a model audience without a size: the top 10% of users
BOOTSTRAP = 2000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class AudienceSpec:
    """What an audience is made of: exactly one of `rule`, `products`, `category`."""

    name: str
    rule: str | None = None
    products: list[str] = field(default_factory=list)
    category: str | None = None
    days: int = DEFAULT_DAYS  # the model audience's horizon, and the lift's
    # how many users: a model audience's (default: DEFAULT_SHARE of them); a rule audience's
    # best by expected value (default: every match)
    size: int | None = None
    model: str | None = None  # model audiences: the bundle's model (default: its default)
    min_size: int = MIN_SIZE
    horizon_days: int = 90  # rule audiences: the profile's churn / expected-purchases horizon
    lift: bool = True

    @property
    def kind(self) -> str:
        return "rule" if self.rule is not None else "model"

    def validate(self) -> None:
        if not _NAME.fullmatch(self.name or ""):
            raise ShelfwiseError(
                f"audience name {self.name!r}: 1-64 letters, digits, '.', '_', '-' (starting with a letter or digit)"
            )
        given = [
            k for k, v in (("rule", self.rule), ("products", self.products), ("category", self.category)) if v
        ]
        if len(given) != 1:
            raise ShelfwiseError(
                f"audience {self.name}: give exactly one of a rule, products or a category (got "
                f"{', '.join(given) or 'none'})"
            )
        if self.rule is not None:
            Rule(self.rule)  # a mistake fails before any data is read
        for k in ("days", "min_size"):
            if int(getattr(self, k)) < 1:
                raise ShelfwiseError(f"audience {self.name}: {k} must be at least 1")
        from ._customers import check_horizon_days

        try:  # the profiles' own check, before any data is read
            check_horizon_days(self.horizon_days)
        except ShelfwiseError as exc:
            raise ShelfwiseError(f"audience {self.name}: {exc}") from None
        if self.size is not None and self.size < 1:
            raise ShelfwiseError(f"audience {self.name}: size must be at least 1")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> AudienceSpec:
        """A spec from TOML or JSON (the fields of this class; a TOML file may hold them at the top
        or under [audience]); `overrides` (the command line's flags) win."""
        import tomllib

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ShelfwiseError(f"{path}: cannot read an audience spec (TOML or JSON): {exc}") from None
        if isinstance(doc.get("audience"), dict):
            doc = doc["audience"]
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ShelfwiseError(
                f"{path}: unknown audience field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        doc.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(doc.get("products"), str):
            doc["products"] = [p.strip() for p in doc["products"].split(",") if p.strip()]
        try:
            return cls(**doc)
        except TypeError as exc:
            raise ShelfwiseError(f"{path}: {exc}") from None


# -- the population a rule reads: profiles at a date ------------------------------------------
def _profiles_at(
    workdir: Path, at: Any, horizon_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any]:
    """(profiles indexed by pseudonym, every curated event (to measure what followed), the
    catalog, the as-of)."""
    from ._customers import profile_customers
    from ._data import load_curated, no_customer_events, require_purchase

    # an audience is profiling: users without personalization consent are not in the population
    events, products, latest = load_curated(workdir, None, consent="personalization")
    at = latest if at is None else at
    past = events[events["timestamp"] <= pd.Timestamp(at)]
    if past.empty:
        raise ShelfwiseError(no_customer_events(workdir, at))
    require_purchase(past, at, workdir)
    prof, _ = profile_customers(past, products, at, horizon_days)
    return _with_browsing(prof, past, products, at), events, products, at


def _with_browsing(prof: pd.DataFrame, events: pd.DataFrame, products: pd.DataFrame, at: Any) -> pd.DataFrame:
    """The profiles with what a rule may also read of each user's browsing (`category_history`:
    `viewed_categories`, `bought_categories`)."""
    from ._customers import category_history

    hist = category_history(events, products, at)
    out = prof.join(hist)
    for c in hist.columns:
        out[c] = out[c].map(lambda v: v if isinstance(v, list) else [])
    return out


def _purchasers(events: pd.DataFrame, start: Any, days: int, products: set[str] | None = None) -> set[str]:
    """Users with a purchase in (start, start + days] (of one of `products` when given)."""
    t0 = pd.Timestamp(start)
    e = events[
        (events["event_type"] == "purchase")
        & (events["timestamp"] > t0)
        & (events["timestamp"] <= t0 + pd.Timedelta(days=days))
    ]
    if products is not None:
        e = e[e["product_id"].isin(products)]
    return set(e["user_id"].astype(str))


def lift_estimate(members: np.ndarray, converted: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Audience conversion vs the base rate (everyone), with a 95% bootstrap interval of the lift.
    `members`, `converted`: booleans over the base population."""
    members, converted = np.asarray(members, bool), np.asarray(converted, bool)
    n, n_a = len(members), int(members.sum())
    cells = np.array(
        [
            (members & converted).sum(),
            (members & ~converted).sum(),
            (~members & converted).sum(),
            (~members & ~converted).sum(),
        ]
    )
    out: dict[str, Any] = {
        "base_users": n,
        "audience_users": n_a,
        "audience_conversions": int(cells[0]),
        "base_conversions": int(cells[0] + cells[2]),
        "audience_rate": round(cells[0] / n_a, 4) if n_a else None,
        "base_rate": round((cells[0] + cells[2]) / n, 4) if n else None,
        "lift": None,
        "lift_ci95": None,
    }
    if not n_a or not (cells[0] + cells[2]):
        out["note"] = "no audience" if not n_a else "nobody converted in the period: no lift to measure"
        return out
    out["lift"] = round(float(cells[0] / n_a / ((cells[0] + cells[2]) / n)), 3)
    if not cells[0]:
        # no member converted: every bootstrap draw has none either ([0, 0] is no interval);
        # the exact (Clopper-Pearson) 97.5% bound of a rate with none seen in n_a, over the base rate
        upper = (1.0 - 0.025 ** (1.0 / n_a)) / ((cells[0] + cells[2]) / n)
        out["lift_ci95"] = [0.0, round(float(upper), 3)]
        out["note"] = "no member converted in the period: the interval's upper end is exact (none seen)"
        return out
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=BOOTSTRAP).astype(float)
    aud = draws[:, 0] + draws[:, 1]
    base = (draws[:, 0] + draws[:, 2]) / n
    ok = (aud > 0) & (base > 0)
    lifts = draws[ok, 0] / aud[ok] / base[ok]
    lo, hi = np.percentile(lifts, [2.5, 97.5])
    out["lift_ci95"] = [round(float(lo), 3), round(float(hi), 3)]
    return out


# -- model audiences: recommenders read from the item side ------------------------------------
def _targets(
    item_ids: np.ndarray, categories: Sequence[str], spec: AudienceSpec
) -> tuple[np.ndarray, list[str]]:
    ids = [str(x) for x in item_ids]
    if spec.products:
        pos = {p: i for i, p in enumerate(ids)}
        missing = [p for p in spec.products if p not in pos]
        if missing:
            raise ShelfwiseError(
                f"audience {spec.name}: product(s) {', '.join(missing[:5])} not in the trained bundle's catalog"
            )
        idx = np.array([pos[p] for p in spec.products], np.int64)
    else:
        c = str(spec.category)
        idx = np.array(
            [i for i, cat in enumerate(categories) if cat and (cat == c or str(cat).startswith(c + " > "))],
            np.int64,
        )
        if not len(idx):
            known = sorted({str(x).split(" > ")[0] for x in categories if x})[:10]
            raise ShelfwiseError(
                f"audience {spec.name}: no product of category {c!r} in the trained bundle "
                f"(top-level categories: {', '.join(known)})"
            )
    return idx, [ids[i] for i in idx]


def rank_users(
    model: Any, users: np.ndarray, targets: np.ndarray, history: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """(rank, score) per user: where the best of `targets` sits in the user's own ranking of the
    whole catalog (0 = first) and the model's score for it."""
    ranks, scores = [], []
    for start in range(0, len(users), 1024):
        s = np.asarray(model.score(users[start : start + 1024], history), np.float32)
        t = s[:, targets].max(axis=1)
        ranks.append((s > t[:, None]).sum(axis=1))
        scores.append(t)
    if not ranks:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(ranks), np.concatenate(scores)


def _top(ranks: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    order = np.lexsort((-scores, ranks))  # best rank first, then the higher score
    return order[:size]


def _audience_model(bundle: Any) -> str:
    """The bundle's default model, unless it is a fusion: a fusion re-ranks candidates it has
    not seen the user take (what a user bought scores -inf), so it cannot tell who will buy a
    product again, and the regular buyers of a category are its likeliest buyers. Then the
    fusion's generator with the best held-out NDCG@10 stands in."""
    m = bundle.manifest
    if m.default_model not in ("fusion", *UNPERSONAL) or (
        m.default_model == "fusion" and not m.fusion_generators
    ):
        return str(m.default_model)
    # (a popularity model ranks every shopper alike: it cannot tell who is likelier to buy)
    pool = list(m.fusion_generators) if m.default_model == "fusion" else list(bundle.models)
    pool = [g for g in pool if g not in UNPERSONAL and g != "fusion" and g in bundle.models]
    if not pool:
        raise ShelfwiseError(
            f"no personalized model in bundle {bundle.version} ({', '.join(sorted(bundle.models))}): "
            "popularity ranks every shopper alike, so it cannot choose an audience; train a personalized "
            "model (itemknn, als, ease, ...) or build a rule audience over what shoppers did (`--rule`, e.g. "
            "\"'Sports' in top_categories and frequency >= 2\"; rule= from Python)"
        )
    ndcg = {g: float((m.metrics.get(g) or {}).get("ndcg@10", 0.0)) for g in pool}
    return max(pool, key=lambda g: (ndcg[g], g))


def ties_at_cut(ranks: np.ndarray, scores: np.ndarray, eligible: np.ndarray, size: int) -> tuple[int, int]:
    """(users tied with the last member, how many of them are members) when the tie spans the
    cut (0, 0 otherwise): `eligible` the candidates best first, the first `size` the members.
    Who of a tie is in is the order users are stored in, not the model."""
    if not 0 < size < len(eligible):
        return 0, 0
    last = eligible[size - 1]
    same = (ranks[eligible] == ranks[last]) & (scores[eligible] == scores[last])
    if not same[size]:
        return 0, 0
    return int(same.sum()), int(same[:size].sum())


# models whose ranking is the same for every shopper (but for what each has seen)
UNPERSONAL = ("popularity",)


def _model_audience(
    workdir: Path, spec: AudienceSpec, check: Any
) -> tuple[list[tuple[str, float]], dict[str, Any], dict[str, Any] | None]:
    from ..serving import Bundle, current_bundle

    path = current_bundle(workdir)
    bundle = Bundle.load(path)
    name = spec.model or _audience_model(bundle)
    if name not in bundle.models:
        raise ShelfwiseError(
            f"audience {spec.name}: the bundle has no model {name!r} (it has {', '.join(sorted(bundle.models))})"
        )
    model = bundle.models[name]
    inter = bundle.interactions
    targets, target_ids = _targets(inter.item_ids, bundle.categories, spec)
    # users the bundle knows with some history (erased users keep an index but no steps)
    users = np.flatnonzero(np.bincount(inter.user_idx, minlength=inter.n_users) > 0)
    # nor users who withdrew personalization consent after the bundle was trained
    from ..governance._consent import consent_withdrawn

    out = consent_withdrawn(workdir, "personalization", among=inter.user_ids[users].astype(str).tolist())
    if out:
        users = users[~np.isin(inter.user_ids[users].astype(str), sorted(out))]
    # the members are chosen among those an export may write (marketing consent): `--size N`
    # is N users reached, not N minus the opt-outs
    reachable = np.array(_eligible_for_marketing(workdir, inter.user_ids[users].astype(str).tolist()), bool)
    size = spec.size or max(1, math.ceil(DEFAULT_SHARE * int(reachable.sum())))
    if name in UNPERSONAL:
        raise ShelfwiseError(
            f"audience {spec.name}: {name} ranks every shopper alike, so it cannot choose an audience; "
            "name a personalized model of the bundle (--model), or build it from what shoppers did"
        )
    ranks, scores = rank_users(model, users, targets)
    ranked = _top(ranks, scores, len(users))
    eligible = ranked[reachable[ranked]]
    top = eligible[:size]
    members = [(str(inter.user_ids[users[i]]), float(-ranks[i])) for i in top]
    tied, tied_in = ties_at_cut(ranks, scores, eligible, len(top))
    made = {
        "bundle_version": bundle.version,
        "model": name,
        "model_params": model.get_params(),
        "targets": target_ids[:50],
        "targets_count": len(target_ids),
        "score": "minus the best target's rank in the user's ranking of the catalog (0 = their top pick)",
        "tied_at_cut": tied,
    }
    if tied:
        made["note"] = (
            f"{tied:,} users tie with the last member (same rank and score): {name} cannot tell them "
            f"apart, and which of them are in is arbitrary ({tied_in:,} of them are)"
        )
    check([u for u, _ in members])  # before the lift: a refused audience costs no second fit
    lift = None
    if spec.lift:
        lift = _model_lift(
            workdir,
            path / "models" / name,
            model,
            inter,
            users,
            targets,
            set(target_ids),
            len(top) / max(len(users), 1),
            spec,
        )
    return members, made, lift


def _refit(model: Any, past: Any, model_dir: Path) -> Any:
    """The same model class with the same parameters fitted on `past` alone. A fusion refits its
    generators and keeps its learned blend (fitted on the bundle's whole history: the one part
    not redone); text embeddings of the catalog are kept (they hold no behaviour)."""
    from ..models import load_model
    from ..models._fusion import Fusion

    if isinstance(model, Fusion):
        gens = {g: _refit(m, past, model_dir.parent / g) for g, m in model.generators_.items()}
        return load_model(model_dir, past, generators=gens)
    new = type(model)(**model.get_params())
    if hasattr(model, "item_embeddings_"):
        new.item_embeddings_ = model.item_embeddings_
    return new.fit(past)


def _model_lift(
    workdir: Path,
    model_dir: Path,
    model: Any,
    inter: Any,
    users: np.ndarray,
    targets: np.ndarray,
    target_ids: set[str],
    share: float,
    spec: AudienceSpec,
) -> dict[str, Any]:
    """The same audience made `days` before the latest interaction by the same model class refit
    on the history up to then, against the target purchases in the `days` that followed."""
    from ._data import load_curated

    latest = int(inter.timestamp.max()) if len(inter) else 0
    cut = latest - spec.days * 86400
    # what was known at the cut: a step weighs its events up to it (a later purchase of an item
    # viewed before the cut is not the past's, `Interactions.before`)
    past = inter.before(cut + 1)
    known = np.flatnonzero(np.bincount(past.user_idx, minlength=past.n_users) > 0)
    at = datetime.fromtimestamp(cut, UTC).replace(tzinfo=None)
    rep: dict[str, Any] = {
        "as_of": at.isoformat(),
        "days": spec.days,
        "converts_on": "a purchase of a target product",
    }
    if len(known) == 0:
        return {**rep, "note": f"no interactions before {at:%Y-%m-%d}: no lift to measure"}
    try:
        refit = _refit(model, past, model_dir)
    except Exception as exc:  # noqa: BLE001 - a model that needs more than interactions to fit
        return {
            **rep,
            "note": f"{type(model).__name__} cannot be refit on past interactions alone ({exc}); no lift",
        }
    ranks, scores = rank_users(refit, known, targets, past)
    top = _top(ranks, scores, max(1, round(share * len(known))))
    events, _, _ = load_curated(workdir, None)
    bought = _purchasers(events, at, spec.days, target_ids)
    ids = inter.user_ids[known].astype(str)
    member = np.zeros(len(known), bool)
    member[top] = True
    return {**rep, **lift_estimate(member, np.isin(ids, list(bought)))}


def _rule_audience(
    workdir: Path, spec: AudienceSpec, check: Any
) -> tuple[list[tuple[str, float]], dict[str, Any], dict[str, Any] | None]:
    rule = Rule(str(spec.rule))
    prof, events, products, at = _profiles_at(workdir, None, spec.horizon_days)
    hit = prof[rule.mask(prof)]
    # best first: the highest expected value, then the highest churn risk (those worth a message)
    hit = hit.sort_values(["expected_value", "churn_risk"], ascending=False, kind="stable")
    members = [(str(u), float(v) if pd.notna(v) else 0.0) for u, v in hit["expected_value"].items()]
    made = {
        "as_of": pd.Timestamp(at).isoformat(),
        "horizon_days": spec.horizon_days,
        "score": "expected_value",
    }
    if spec.size is not None:
        # `--size N`: the N best by expected value among the matches an export may write (as a
        # model audience's N are users reached); the flag was stored and every match kept
        matched = len(members)
        reachable = _eligible_for_marketing(workdir, [u for u, _ in members])
        members = [m for m, ok in zip(members, reachable, strict=True) if ok][: spec.size]
        made["size_cut"] = (
            f"the best {len(members):,} by expected value of the {matched:,} users the rule matches "
            f"(--size {spec.size}, among those who may receive marketing); the lift is the rule's"
        )
    check([u for u, _ in members])  # before the lift: a refused audience costs no second fit
    lift = None
    if spec.lift:
        cut = pd.Timestamp(at) - pd.Timedelta(days=spec.days)
        rep: dict[str, Any] = {"as_of": cut.isoformat(), "days": spec.days, "converts_on": "any purchase"}
        past = events[events["timestamp"] <= cut]
        if past.empty:
            lift = {**rep, "note": f"no events before {cut:%Y-%m-%d}: no lift to measure"}
        else:
            from ._customers import profile_customers

            then, _ = profile_customers(past, products, cut.to_pydatetime(), spec.horizon_days)
            then = _with_browsing(then, past, products, cut)
            bought = _purchasers(events, cut, spec.days)
            converted = then.index.astype(str).isin(list(bought))
            lift = {**rep, **lift_estimate(rule.mask(then).to_numpy(), converted)}
            if "churn_risk" in rule.fields and "churn_risk" in then:
                lift.update(churn_skill(then["churn_risk"].to_numpy(dtype=float), converted, cut, spec.days))
    return members, made, lift


def churn_skill(risk: np.ndarray, converted: np.ndarray, cut: Any, days: int) -> dict[str, Any]:
    """How well the churn risk of the profiles at the lift's cut ranked who did NOT buy in the
    `days` after it (held out: the profiles saw nothing after the cut): the ROC AUC with its 95%
    interval, and a note when the interval holds 0.5. A rule on `churn_risk` on a shop where the
    model has no skill picks customers about as a random draw would (the customers report said
    AUC 0.50 where `audiences build` said nothing)."""
    from ._customers_report import _auc_interval

    ok = np.isfinite(risk)
    lapsed = ~np.asarray(converted, bool)[ok]
    if not ok.any() or lapsed.all() or not lapsed.any():
        return {"churn_auc": None}
    auc, lo, hi = _auc_interval(lapsed, risk[ok])
    out: dict[str, Any] = {"churn_auc": round(auc, 3), "churn_auc_ci95": [round(lo, 3), round(hi, 3)]}
    if lo <= 0.5 <= hi:
        out["churn_note"] = (
            f"churn_risk ranked these customers no better than chance (AUC {auc:.2f}, 95% {lo:.2f}-{hi:.2f}: "
            f"the profiles of {pd.Timestamp(cut):%Y-%m-%d} against who did not buy in the {days} days after): "
            "an audience by churn risk is close to a random pick of them"
        )
    return out


# -- storing, listing, exporting --------------------------------------------------------------
def _data_versions(workdir: Path) -> dict[str, Any]:
    from ..storage import read_only

    with read_only(workdir) as (con, _):
        rows = con.sql(
            "SELECT table_name, max(version), arg_max(content_hash, version) FROM meta.table_versions GROUP BY 1"
        ).fetchall()
    return {r[0]: {"version": r[1], "content_hash": r[2]} for r in rows}


def audience_dir(workdir: str | Path, name: str) -> Path:
    if not _NAME.fullmatch(name or ""):
        raise ShelfwiseError(f"audience name {name!r}: 1-64 letters, digits, '.', '_', '-'")
    return Path(workdir) / AUDIENCES_DIR / name


def read_members(path: Path) -> list[dict[str, Any]]:
    f = path / MEMBERS_FILE
    if not f.exists():
        return []
    return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_audience(
    workdir: str | Path, spec: AudienceSpec, *, actor: str | None = None, replace: bool = False
) -> dict[str, Any]:
    """Build and store an audience (the caller has checked `audiences.build`)."""
    from ..governance import AuditLog, DatasetRef, LineageRun
    from ._data import curated_inputs

    workdir = Path(workdir)
    spec.validate()
    where = audience_dir(workdir, spec.name)
    if where.exists() and not replace:
        raise ShelfwiseError(f"audience {spec.name!r} exists ({where}); pass --replace to rebuild it")
    inputs, versions = curated_inputs(workdir)
    lineage = LineageRun(
        workdir,
        "shelfwise.audiences.build",
        inputs,
    ).start()

    counted: dict[str, int] = {}

    def check(users: list[str]) -> None:
        # the size is what an export would write now (README: every size shown counts those):
        # the members who may receive marketing, and so is the minimum size checked on it
        size = sum(_eligible_for_marketing(workdir, users))
        counted.update(size=size, without_marketing_consent=len(users) - size)
        if size < spec.min_size:
            without = len(users) - size
            also = f" ({without} more match but may not receive marketing)" if without else ""
            raise ShelfwiseError(
                f"audience {spec.name}: {size} users an export could write{also}, fewer than the "
                f"minimum audience size {spec.min_size} (an audience this small could single people "
                "out); widen it or lower --min-size"
            )

    try:
        if spec.kind == "rule":
            members, made, lift = _rule_audience(workdir, spec, check)
        else:
            members, made, lift = _model_audience(workdir, spec, check)
        meta = {
            "name": spec.name,
            "kind": spec.kind,
            "spec": asdict(spec),
            "size": counted["size"],
            "members_stored": len(members),
            "members_without_marketing_consent": counted["without_marketing_consent"],
            "created_at": datetime.now(UTC).isoformat(),
            "created_by": actor,
            "data_versions": _data_versions(workdir),
            **made,
            "lift": lift,
            "lineage_run_id": lineage.run_id,
        }
        tmp = where.with_name(f".{spec.name}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        with open(tmp / MEMBERS_FILE, "w", encoding="utf-8") as fh:
            for u, s in members:
                fh.write(json.dumps({"user": u, "score": round(s, 6)}) + "\n")
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        if where.exists():
            import shutil

            shutil.rmtree(where)
        tmp.rename(where)  # whole or not at all
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete([DatasetRef("file", str((where / MEMBERS_FILE).resolve()), rows=len(members))])
    AuditLog(workdir).append(
        "audiences.build", actor=actor, name=spec.name, kind=spec.kind, size=meta["size"],
        bundle_version=meta.get("bundle_version"), lift=(lift or {}).get("lift"), data_versions=versions, lineage_run_id=lineage.run_id,
    )  # fmt: skip
    return {k: v for k, v in meta.items() if k != "model_params"}


def list_audiences(workdir: str | Path) -> list[dict[str, Any]]:
    """Every stored audience's summary; `size` counts the members an export would write now
    (`members_now`: after erasures and consent withdrawals)."""
    out = []
    for d in sorted((Path(workdir) / AUDIENCES_DIR).glob("[A-Za-z0-9]*")):
        if not (d / META_FILE).exists():
            continue
        meta = json.loads((d / META_FILE).read_text())
        lift = meta.get("lift") or {}
        out.append(
            {
                "name": meta["name"],
                "kind": meta["kind"],
                "size": len(members_now(Path(workdir), d)),
                "built_size": meta["size"],
                "created_at": meta["created_at"],
                "created_by": meta.get("created_by"),
                "rule": meta["spec"].get("rule"),
                "products": meta["spec"].get("products") or None,
                "category": meta["spec"].get("category"),
                "bundle_version": meta.get("bundle_version"),
                "model": meta.get("model"),
                "lift": lift.get("lift"),
                "lift_ci95": lift.get("lift_ci95"),
                "data_versions": {t: v["version"] for t, v in meta.get("data_versions", {}).items()},
                "lineage_run_id": meta.get("lineage_run_id"),
            }
        )
    return out


def _eligible_for_marketing(workdir: Path, pseudonyms: list[str]) -> list[bool]:
    """Which users may receive marketing. Every export goes through here and only here.

    A user needs marketing consent (issue 19) and, an audience being profiling, personalization
    consent too (a model audience may come from a bundle trained before a withdrawal); the shop's
    default applies to users it has never heard from. The export leaves the others out and
    re-checks the minimum size."""
    from ..governance._consent import consent_withdrawn

    out = consent_withdrawn(workdir, "marketing", among=pseudonyms)
    out |= consent_withdrawn(workdir, "personalization", among=pseudonyms)
    return [p not in out for p in pseudonyms]


def members_now(workdir: Path, where: Path) -> list[dict[str, Any]]:
    """The members of the audience stored in `where` that an export may write now: those held
    (erasure rewrites the file) who may receive marketing. Every size shown of an audience
    counts these, so that no list or report counts a user the export leaves out."""
    members = read_members(where)
    ok = _eligible_for_marketing(workdir, [m["user"] for m in members])
    return [m for m, keep in zip(members, ok, strict=True) if keep]


def may_see_shop_ids(workdir: str | Path, actor: str | None) -> bool:
    """Whether the acting person may have users named by the shop's own ids in a file
    (`audiences.shop_ids`: admin, steward, analyst), the one rule for every output that names
    customers (`audiences export`, `insights customers`); single-user mode (no actor): the
    shop's owner may. The others get the warehouse's pseudonyms."""
    if actor is None:
        return True
    from ..governance import PERMISSIONS, People

    person = People(Path(workdir)).load().get(actor)
    return person is not None and person.role in PERMISSIONS["audiences.shop_ids"]


def export_audience(
    workdir: str | Path, name: str, out: str | Path, *, shop_ids: bool, actor: str | None = None
) -> dict[str, Any]:
    """Write an audience's members (shop ids when `shop_ids`, else the warehouse pseudonyms) to
    CSV or JSON lines. The caller has checked `audiences.export` and decided `shop_ids`."""
    from ..governance import AuditLog, DatasetRef, LineageRun
    from ..governance._audit import file_named

    workdir, out = Path(workdir), Path(out)
    if out.suffix not in (".csv", ".jsonl"):
        raise ShelfwiseError(f"{out}: unknown output format {out.suffix!r} (use .csv or .jsonl)")
    where = audience_dir(workdir, name)
    if not (where / META_FILE).exists():
        from ..errors import UnknownName

        names = [a["name"] for a in list_audiences(workdir)]
        raise UnknownName(
            f"no audience {name!r} (audiences: {', '.join(names) or 'none'}); build it with "
            "`shelfwise audiences build` (`Shop.build_audience`)",
            kind="audience",
            name=name,
            known=names,
        )
    meta = json.loads((where / META_FILE).read_text())
    members = members_now(workdir, where)
    if shop_ids:
        from ._data import shop_ids as to_shop_ids

        ids = to_shop_ids(workdir, [m["user"] for m in members])
        rows = [{"user_id": ids[m["user"]], "score": m["score"]} for m in members if m["user"] in ids]
    else:
        rows = [{"user_id": m["user"], "score": m["score"]} for m in members]
    min_size = int(meta["spec"].get("min_size", MIN_SIZE))
    if len(rows) < min_size:
        raise ShelfwiseError(
            f"audience {name}: {len(rows)} users can be exported now (erasures, retention or consent "
            f"left out {meta['size'] - len(rows)}), fewer than its minimum size {min_size}; not exported"
        )
    lineage = LineageRun(
        workdir, "shelfwise.audiences.export", [DatasetRef("file", str((where / MEMBERS_FILE).resolve()))]
    ).start()
    from ._run import write_records

    write_records(rows, out, ("user_id", "score"), private=True)
    lineage.complete([DatasetRef("file", str(out.resolve()), rows=len(rows))])
    id_kind = "shop" if shop_ids else "pseudonym"
    AuditLog(workdir).append(
        "audiences.export", actor=actor, name=name, rows=len(rows), ids=id_kind, out=file_named(out),
        lineage_run_id=lineage.run_id,
    )  # fmt: skip
    return {
        "name": name,
        "rows": len(rows),
        "ids": id_kind,
        "out": str(out),
        "lineage_run_id": lineage.run_id,
    }


__all__ = [
    "AUDIENCES_DIR",
    "MEMBERS_FILE",
    "MIN_SIZE",
    "AudienceSpec",
    "audience_dir",
    "build_audience",
    "export_audience",
    "lift_estimate",
    "list_audiences",
    "may_see_shop_ids",
    "members_now",
    "rank_users",
    "read_members",
]
