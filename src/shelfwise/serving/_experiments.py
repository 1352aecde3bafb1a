"""A/B experiments: deterministic bucketing, exposure logging and an online report.

`<workdir>/config/experiments.json` (changed with `shelfwise experiments set`, audited):

    {"experiments": [
      {"name": "sasrec-vs-fusion", "surface": "recommendations", "salt": "2026-11",
       "variants": [
         {"name": "control", "weight": 50},
         {"name": "sasrec", "weight": 50, "model": "sasrec"},
         {"name": "old", "weight": 0, "bundle": "20261101T000000000000Z"},
         {"name": "diverse", "weight": 0, "rules": {"max_per_category": 2}},
         {"name": "no-merchandising", "weight": 0, "shop_rules": false}
       ],
       "start": "2026-11-01", "end": null}
    ]}

A variant may name a model of the serving bundle, another bundle version, or rule overrides:
its settings replace the shop's, its `items` are added after the shop's (a variant cannot lift
a rule of the shop). `"shop_rules": false` serves a variant without the shop's merchandising (its
pins, boosts and buries; the shop's hides and settings stay): the "rules off" arm of a test of
the rules (`experiments set` warns of a variant whose rules change nothing). `experiments set` checks every value, and that each bundle and model named
exists (a model in the bundle that will serve the variant); one gone by serving time is served
from the current bundle or its default model, said in the log. A user's variant is a pure function of (experiment, salt, raw user id):
`sha256` into 10,000 buckets, split by weight, stable across processes, replicas and restarts.

Every served list is logged (the exposure log, `spool/exposures/`) with its id, the user's
pseudonym, the bundle, the model, the variant and what served it (`served_by`: the model, or
`fallback` for the popular list served in its place; `filled`: how many of its items the popular
fill supplied); events posted with that `recommendation_id` /
`search_id` are attributed to it. `experiment_report` joins the two.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ..search._analytics import CLOCK_SKEW_S, not_counted
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
    # False: served without the shop's pins, boosts and buries (its hides and settings stay)
    shop_rules: bool = True


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
_VARIANT_FIELDS = {"name", "weight", "model", "bundle", "rules", "shop_rules", "description", "note"}


def parse_experiments(doc: Any, source: str = "experiments", *, strict: bool = True) -> list[Experiment]:
    """The experiments of a file, every value checked (a clear error naming the experiment,
    the variant and the field; `check_servable` checks the models and bundles named). Not
    `strict` (a server reading the installed file): an unknown field is left aside instead of
    refused, as it was before fields were checked, so a file a server ran yesterday still loads."""
    if not isinstance(doc, dict) or not isinstance(doc.get("experiments", []), list):
        raise ShelfwiseError(f'{source}: expected {{"experiments": [...]}}')
    out: list[Experiment] = []
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
            shop_rules = v.get("shop_rules", True)
            if not isinstance(shop_rules, bool):
                raise ShelfwiseError(f"{vwhere}: shop_rules must be true or false, not {shop_rules!r}")
            variants.append(
                Variant(str(v["name"]), float(w), v.get("model"), v.get("bundle"), dict(rules), shop_rules)
            )
        total = sum(v.weight for v in variants)
        if len(variants) < 2 or not total > 0:
            raise ShelfwiseError(f"{where}: at least two variants with a positive total weight")
        if strict and not math.isfinite(total):  # (1e308 + 1e308: every user in the last variant)
            raise ShelfwiseError(
                f"{where}: the variants' weights add up past any number; use shares such as 50 and 50"
            )
        exp = Experiment(
            str(e["name"]),
            surface,
            tuple(variants),
            str(e.get("salt", "")),
            parse_when(e.get("start"), where),
            parse_when(e.get("end"), where),
        )
        if strict and exp.start is not None and exp.end is not None and exp.start >= exp.end:
            raise ShelfwiseError(
                f"{where}: start {e.get('start')} is not before end {e.get('end')}: never running"
            )
        if strict:  # a request is assigned by the first active experiment of its surface
            now = datetime.now(UTC)
            for other in out:
                ended = any(x.end is not None and x.end <= now for x in (other, exp))  # (kept as history)
                if other.surface == exp.surface and not ended and _overlap(other, exp):
                    raise ShelfwiseError(
                        f"{where}: runs on {exp.surface} while experiment {other.name!r} does; a shopper is "
                        "assigned by one experiment per surface, so it would get no traffic: end one "
                        "before the other starts (start / end), or make them variants of one experiment"
                    )
        out.append(exp)
    return out


def _overlap(a: Experiment, b: Experiment) -> bool:
    """Whether two experiments' running periods meet (an open start or end runs for ever)."""
    starts_before_b_ends = b.end is None or a.start is None or a.start < b.end
    ends_after_b_starts = a.end is None or b.start is None or a.end > b.start
    return starts_before_b_ends and ends_after_b_starts


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


class ExperimentsWarning(UserWarning):
    """An experiments configuration installed with something that cannot do what it says (a
    variant whose rules change nothing): `Shop.set_experiments` warns it."""


# the rule actions a variant's `"shop_rules": false` takes away (the shop's hides stay: a product
# hidden for a recall or a legal reason is never an experiment's to show)
MERCHANDISING = ("pin", "boost", "bury")
_RULE_SETTINGS = ("filter_out_of_stock", "max_per_category", "category_level", "repurchase_days")


def shop_rules_for(shop: Rules, variant: Variant) -> tuple[Any, ...]:
    """The shop's rule items a variant's users are served with: all of them, or without its
    pins, boosts and buries for a variant with `"shop_rules": false`."""
    if variant.shop_rules:
        return shop.items
    return tuple(r for r in shop.items if r.action not in MERCHANDISING)


def rules_warnings(workdir: str | Path, doc: dict[str, Any], experiments: list[Experiment]) -> list[str]:
    """What `experiments set` warns of in a configuration that installs: each variant that names
    `rules` (or `"shop_rules": false`) that change nothing of what the shop's rules serve (a
    "rules off" arm written `{"items": []}` served the shop's boosted list, as its control did:
    an A/B test of two identical treatments)."""
    shop = Rules.load(workdir)
    said = []
    for e, raw in zip(experiments, doc.get("experiments") or [], strict=False):
        for v, rv in zip(e.variants, raw.get("variants") or [], strict=False):
            if not isinstance(rv, dict) or ("rules" not in rv and v.shop_rules):
                continue  # (no rules arm: its model or bundle is what it tests)
            if shop_rules_for(shop, v) != shop.items:
                continue  # the shop's merchandising is off for it
            settings = {f: getattr(shop, f) for f in _RULE_SETTINGS}
            mine = Rules.from_dict({**settings, **v.rules})
            if mine.items or any(getattr(mine, f) != settings[f] for f in _RULE_SETTINGS):
                continue
            merch = [r for r in shop.items if r.action in MERCHANDISING]
            said.append(
                f"experiment {e.name!r}: variant {v.name!r}: its rules change nothing (a variant's items are "
                f"added after the shop's {len(shop.items)} rule(s), which stay in force): its shoppers get "
                "what the shop's rules serve"
                + (
                    '; to test the shop\'s pins, boosts and buries off, give the variant "shop_rules": false'
                    if merch
                    else ""
                )
            )
    return said


def running_left_out(workdir: str | Path, experiments: list[Experiment]) -> list[dict[str, Any]]:
    """The experiments installed and running now that `experiments` (a new configuration) leaves
    out, which installing it ends: per experiment its name, surface, the users its exposure log
    holds and when it first served (`since`, None before any list).

    Only the segments of the log written since the experiments started are read (`start`, less
    a day of clock skew: `CLOCK_SKEW_S`): a server serves an experiment's lists only once it
    started, so an older segment holds none of them (a shop's months of served lists were read
    whole on every `experiments set`). An experiment without a `start` (running since it was
    installed, whenever that was) has the whole log read."""
    from ..storage._segments import iter_records
    from ._feedback import EXPOSURES_DIR

    try:
        installed = load_experiments(workdir)
    except ShelfwiseError:  # (the file being replaced cannot be read: nothing known to end)
        return []
    now = datetime.now(UTC)
    keep = {e.name for e in experiments}
    gone = {e.name: e for e in installed if e.name not in keep and e.active(now)}
    if not gone:
        return []
    users: dict[str, set[str]] = {n: set() for n in gone}
    since: dict[str, float] = {}
    starts = [e.start.timestamp() for e in gone.values() if e.start is not None]
    written_since = min(starts) - CLOCK_SKEW_S if len(starts) == len(gone) else None  # (else: all of it)
    for rec in iter_records(Path(workdir) / EXPOSURES_DIR, written_since=written_since):
        if isinstance(rec, dict) and (name := rec.get("experiment")) in gone:
            users[name].add(str(rec.get("user")))
            try:
                at = float(rec.get("at") or 0.0)
            except (TypeError, ValueError):
                continue
            if at and at < since.get(name, float("inf")):
                since[name] = at
    return [
        {
            "name": n,
            "surface": gone[n].surface,
            "users": len(users[n]),
            "since": datetime.fromtimestamp(since[n], UTC).isoformat(timespec="seconds")
            if n in since
            else None,
        }
        for n in sorted(gone)
    ]


def ended_said(ended: list[dict[str, Any]]) -> str:
    """The running experiments a configuration ends, as `experiments set` names them."""
    return ", ".join(f"{e['name']} ({e['surface']}, {e['users']:,} user(s))" for e in ended)


def save_experiments(
    workdir: str | Path,
    doc: dict[str, Any],
    actor: str | None = None,
    *,
    end_missing: bool = False,
    said: list[str] | None = None,
    ended: list[dict[str, Any]] | None = None,
) -> list[Experiment]:
    """Check and install an experiments configuration. The file is the whole configuration: a
    running experiment it leaves out ends, which is refused unless `end_missing` (the ones it
    ends are added to `ended`, and audited). `said` gets the configuration's warnings
    (`rules_warnings`), audited too."""
    from ..governance import AuditLog

    exps = parse_experiments(doc)
    check_servable(workdir, exps)
    gone = running_left_out(workdir, exps)
    if gone and not end_missing:
        raise ShelfwiseError(
            f"this experiments file leaves out running experiment(s) {ended_said(gone)}: installing it "
            "would end them. Keep them in the file (an `end` date ends one on a date of your choosing), "
            "or end them on purpose: `experiments set --end-missing` (`Shop.set_experiments(..., "
            "end_missing=True)`); an ended experiment's report stays readable (`experiments report "
            "--experiment NAME`)"
        )
    warned = rules_warnings(workdir, doc, exps)
    write_json_atomically(Path(workdir) / EXPERIMENTS_FILE, doc)
    if said is not None:
        said.extend(warned)
    if ended is not None:
        ended.extend(gone)
    noted: dict[str, Any] = {}  # (the running experiments it ended, its warnings: when any)
    if gone:
        noted["ended"] = gone
    if warned:
        noted["warnings"] = warned
    AuditLog(workdir).append(
        "experiments.change",
        actor=actor,
        experiments=[e.name for e in exps],
        **noted,
        # what each variant serves: a reviewer reads which bundle, model and rules went to whom
        variants={
            e.name: [
                {
                    "name": v.name,
                    "weight": v.weight,
                    **({"bundle": v.bundle} if v.bundle else {}),
                    **({"model": v.model} if v.model else {}),
                    **({"rules": v.rules} if v.rules else {}),
                    **({"shop_rules": False} if not v.shop_rules else {}),
                }
                for v in e.variants
            ]
            for e in exps
        },
        sha256=hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest(),
    )
    return exps


def _revenue_varies(values: np.ndarray) -> bool:
    """Whether revenue per user can have a bootstrap interval: two users or more and a purchase."""
    return len(values) >= 2 and bool(np.any(values))


def _bootstrap_mean(values: np.ndarray, rounds: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% bootstrap interval of the mean revenue per user; None while nobody bought or one user
    was served: every resample is then the same number ([0, 0], [20, 20]), a certainty the data
    do not give (how much a purchase is worth is unknown until one is made; conversion's Wilson
    interval says how likely one is)."""
    if not _revenue_varies(values):
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (rounds, len(values)))].mean(axis=1)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


SRM_P = 0.001  # the sample-ratio check's threshold (the usual one: a split this unlikely is broken)

# the fewest users each arm needs before the report says one variant does better or worse than
# the control (below it the verdict is "too little data", whatever the interval says)
MIN_ARM_USERS = 200
CONTROL = "control"  # the variant compared against: this name, else the first configured variant
COMPARED = ("ctr", "add_to_cart_rate", "conversion", "revenue_per_user")
_COMPARED_SAID = {
    "ctr": "CTR",
    "add_to_cart_rate": "add-to-cart rate",
    "conversion": "conversion",
    "revenue_per_user": "revenue per user",
}


_CI_KEY = {"ctr": "ctr_ci95", "add_to_cart_rate": "add_to_cart_ci95", "conversion": "conversion_ci95"}


def _control_of(served: list[str], weights: dict[str, float] | None) -> str | None:
    """The variant the others are compared against: the one named CONTROL, else the first
    configured variant that served, else the first by name (None while none served)."""
    if CONTROL in served:
        return CONTROL
    for v in weights or {}:
        if v in served:
            return v
    return min(served) if served else None


def _bootstrap_difference(
    variant: np.ndarray, control: np.ndarray, rounds: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95% bootstrap interval of mean(variant) - mean(control) (revenue per user): each arm's
    users resampled on their own, seeded; None when either arm's own interval is
    (`_bootstrap_mean`: no purchase, or one user)."""
    if not (_revenue_varies(variant) and _revenue_varies(control)):
        return None
    rng = np.random.default_rng(seed)
    a = variant[rng.integers(0, len(variant), (rounds, len(variant)))].mean(axis=1)
    b = control[rng.integers(0, len(control), (rounds, len(control)))].mean(axis=1)
    d = a - b
    return (float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975)))


def _newcombe(
    p1: float, ci1: tuple[float, float], p0: float, ci0: tuple[float, float]
) -> tuple[float, float]:
    """95% interval of p1 - p0 from each arm's own 95% interval (Newcombe's square-and-add,
    MOVER): with Wilson intervals it is Newcombe's hybrid score interval for two proportions;
    with the delta-method intervals of CTR and add-to-cart it keeps the user as the unit."""
    l1, u1 = ci1
    l0, u0 = ci0
    d = p1 - p0
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2),
    )


def _fmt(metric: str, x: float) -> str:
    return f"{x:+.2f}" if metric == "revenue_per_user" else f"{x:+.4f}"


def _compare(
    name: str,
    m: dict[str, Any],
    c: dict[str, Any],
    control: str,
    revenue: dict[str, np.ndarray],
    split_broken: bool,
) -> dict[str, Any]:
    """One non-control variant against the control, per metric: the difference, the relative
    lift (when the control's value is > 0), its 95% interval and a verdict that names a
    direction only when the interval excludes 0, each arm has MIN_ARM_USERS users and the split
    is not broken."""
    out: dict[str, Any] = {}
    few = min(m["users"], c["users"]) < MIN_ARM_USERS
    for metric in COMPARED:
        if m[metric] is None or c[metric] is None:
            continue  # (revenue in several currencies: no one figure to compare, `_revenue_per_currency`)
        v, k = float(m[metric]), float(c[metric])
        diff = v - k
        ci: tuple[float, float] | None
        if metric == "revenue_per_user":
            ci = _bootstrap_difference(revenue[name], revenue[control])
        else:
            key = _CI_KEY[metric]
            ci = _newcombe(v, (m[key][0], m[key][1]), k, (c[key][0], c[key][1]))
        said = _COMPARED_SAID[metric]
        if split_broken:
            verdict, text = "split_broken", "no verdict: the sample-ratio check says the split is broken"
        elif few:
            verdict, text = (
                "too_little_data",
                f"too little data to conclude: {control} has {c['users']:,} user(s), {name} {m['users']:,}; "
                f"a verdict needs at least {MIN_ARM_USERS:,} in each",
            )
        elif ci is None:
            verdict, text = (
                "no_interval",
                f"no verdict: no interval of the difference in {said} (needs a purchase and two users in each arm)",
            )
        elif ci[0] <= 0.0 <= ci[1]:
            verdict, text = (
                "inconclusive",
                f"no difference shown: {said} {_fmt(metric, diff)}, its 95% interval "
                f"[{_fmt(metric, ci[0])}, {_fmt(metric, ci[1])}] covers 0",
            )
        else:
            verdict = "higher" if diff > 0 else "lower"
            text = (
                f"{name}'s {said} is {verdict} than {control}'s: {_fmt(metric, diff)}, 95% interval "
                f"[{_fmt(metric, ci[0])}, {_fmt(metric, ci[1])}]"
            )
        out[metric] = {
            "control": k,
            "variant": v,
            "difference": diff,
            "difference_ci95": ci,
            "relative_lift": diff / k if k > 0 else None,
            "verdict": verdict,
            "verdict_said": text,
        }
    return out


def _currency_counts(purchases: dict[str | None, int]) -> dict[str, int]:
    """The counted purchases per currency label (`_currency_label`), most first; {} where no
    purchase names a currency (a shop whose files name none)."""
    if not set(purchases) - {None}:
        return {}
    counts: dict[str, int] = {}
    for c, n in purchases.items():
        counts[_currency_label(c)] = counts.get(_currency_label(c), 0) + n
    return dict(sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def _currency_label(code: str | None) -> str:
    """A currency as the report names it: its code, or "unknown" (`UNKNOWN_CURRENCY`, or none
    named where the others name more than one: `_none_named_as_the_one`)."""
    from ..governance import UNKNOWN_CURRENCY

    return "unknown" if code is None or code == UNKNOWN_CURRENCY else code


def _one_currency(purchases: dict[str | None, int]) -> str | None:
    """The one currency every counted purchase is in; None when they mix or name none."""
    labels = {_currency_label(c) for c in purchases}
    return next(iter(labels)) if len(labels) == 1 and labels != {"unknown"} else None


def _none_named_as_the_one(
    by_currency: dict[str, dict[str | None, tuple[np.ndarray, np.ndarray]]],
    purchases: dict[str | None, int],
    refunds: dict[str | None, int],
) -> tuple[str, int] | None:
    """The purchases and returns that name no currency (none of their own, their product's or,
    for a return, the purchase it undoes': a live `/v1/events` purchase carries none) are put in
    the one currency the others name, in place (`UNKNOWN_CURRENCY`, a code given but unreadable,
    is no currency named); returned: that currency and how many lines name none, or None where
    none is put (no line without one, or not exactly one currency named)."""
    from ..governance import UNKNOWN_CURRENCY

    known = set(_merged(purchases, refunds)) - {None, UNKNOWN_CURRENCY}
    unnamed = purchases.get(None, 0) + refunds.get(None, 0)
    if len(known) != 1 or not unnamed:
        return None
    code = next(iter(known))
    for counts in (purchases, refunds):
        if None in counts:
            counts[code] = counts.get(code, 0) + counts.pop(None)
    for per in by_currency.values():
        if None in per:
            gross, back = per.pop(None)
            if code in per:
                per[code] = (per[code][0] + gross, per[code][1] + back)
            else:
                per[code] = (gross, back)
    return str(code), unnamed


def _merged(a: dict[str | None, int], b: dict[str | None, int]) -> dict[str | None, int]:
    """Two counts per currency added up (the purchases and the returns counted)."""
    return {c: a.get(c, 0) + b.get(c, 0) for c in {*a, *b}}


def _revenue_per_currency(
    variants: dict[str, dict[str, Any]],
    by_currency: dict[str, dict[str | None, tuple[np.ndarray, np.ndarray]]],
    purchases: dict[str | None, int],
    refunds: dict[str | None, int] | None = None,
) -> str | None:
    """Each variant's revenue per user per currency, net of returns
    (`revenue_per_user_by_currency`; `gross_revenue_per_user_by_currency` and
    `returns_per_user_by_currency` beside it); where the experiment's purchases and returns are
    in more than one currency (or of unknown currency beside a known one), `revenue_per_user`,
    its interval, `gross_revenue_per_user` and `returns_per_user` are None (shelfwise does not
    convert: a sum of euros and pounds is no figure, and no arm is compared on it) and the
    warning naming the currencies with their counts is returned."""
    refunds = refunds or {}
    counted = _merged(purchases, refunds)
    labels: dict[str | None, str] = {c: _currency_label(c) for c in counted}
    named = bool(set(counted) - {None})  # ({} for a shop whose files name no currency)
    for var, m in variants.items():
        gross: dict[str, float] = {}
        back: dict[str, float] = {}
        for c, (bought, returned) in by_currency.get(var, {}).items() if named else ():
            gross[labels[c]] = gross.get(labels[c], 0.0) + float(bought.sum())
            back[labels[c]] = back.get(labels[c], 0.0) + float(returned.sum())
        n = m["users"]
        m["revenue_per_user_by_currency"] = {k: (v - back[k]) / n for k, v in gross.items()} if n else {}
        m["gross_revenue_per_user_by_currency"] = {k: v / n for k, v in gross.items()} if n else {}
        m["returns_per_user_by_currency"] = {k: v / n for k, v in back.items()} if n else {}
    if len(set(labels.values())) < 2:
        return None
    for m in variants.values():
        for key in (
            "revenue_per_user",
            "revenue_per_user_ci95",
            "gross_revenue_per_user",
            "returns_per_user",
        ):
            m[key] = None
    counts = _currency_counts(purchases)
    said = ", ".join(f"{c} {n:,} purchase(s)" for c, n in counts.items())
    back_counts = _currency_counts(refunds)
    if back_counts:
        said += "; returns: " + ", ".join(f"{c} {n:,}" for c, n in back_counts.items())
    n_currencies = len(set(labels.values()))
    return (
        f"revenue in {n_currencies} currencies: {said} - shelfwise does not convert: revenue per user is "
        "given per currency (revenue_per_user_by_currency), with no single figure and no comparison of it"
    )


def experiment_report(workdir: str | Path, experiment: str | None = None) -> dict[str, Any]:
    """Per experiment and variant: users, exposures, CTR, add-to-cart rate, conversion and
    revenue per user (95% CIs with the user as unit: `experiment_summary`), from the exposure log and the
    attributed events in the warehouse (absorb first to count the newest), with the
    sample-ratio check against the configured weights; `experiment` names one (refused when
    neither the log nor the configuration knows it)."""
    from ..storage._segments import iter_records
    from ._feedback import EXPOSURES_DIR

    workdir = Path(workdir)
    exposures = []
    served: set[str] = set()
    # each segment read whole, never half rewritten by an erasure or retention run; a line a
    # crash cut short is left out
    for rec in iter_records(workdir / EXPOSURES_DIR):
        if isinstance(rec, dict) and rec.get("id"):
            served.add(str(rec["id"]))
        if (e := experiment_exposure(rec)) is not None:
            exposures.append(e)
    try:
        configured = load_experiments(workdir)
    except ShelfwiseError:
        configured = []
    if experiment is not None:
        known = {e[0] for e in exposures} | {e.name for e in configured}
        if experiment not in known:
            raise ShelfwiseError(
                f"no experiment {experiment!r} in the exposure log or the configuration"
                + (f" (known: {', '.join(sorted(known))})" if known else " (none is)")
            )
        exposures = [e for e in exposures if e[0] == experiment]
    by_list = attributed_events(workdir) if exposures else {}
    out = experiment_summary(exposures, by_list, weights=configured_weights(configured))
    # events naming a list the log does not hold (a mistyped id, or one past the log's retention)
    out["unknown_list_events"] = sum(len(v) for k, v in by_list.items() if k not in served and k != BOTS_KEY)
    return out


def configured_weights(experiments: list[Experiment]) -> dict[str, dict[str, float]]:
    """Each configured experiment's variant weights (the split the sample-ratio check expects)."""
    return {e.name: {v.name: v.weight for v in e.variants} for e in experiments}


# one exposure as the report reads it (`experiment_exposure`)
Exposure = tuple[str, str, str, str, str, float, str | None, int, int | None]


def experiment_exposure(rec: Any) -> Exposure | None:
    """What the report needs of one exposure-log line: (experiment, variant, list id, user,
    bundle, served at: epoch seconds, served by: the model that made the list or `fallback`,
    None in a line logged before it was recorded, the list's items, how many of them the
    popular fill supplied: None in a line logged before that was recorded), or None when no
    experiment served it. Order-free: a reader may keep these as the log grows (the console
    does) and give `experiment_summary` the same report."""
    if not isinstance(rec, dict) or not rec.get("experiment") or not rec.get("variant"):
        return None  # (a line without its variant cannot count for one: not a variant "None")
    try:
        at = float(rec.get("at") or 0.0)
    except (TypeError, ValueError):
        at = 0.0
    by = rec.get("served_by")
    items = rec.get("items")
    slots = len(items) if isinstance(items, list) else 0
    filled = rec.get("filled")
    # (a count that is no whole number of the list's places: not recorded, never a share past 1)
    if isinstance(filled, bool) or not isinstance(filled, int) or not 0 <= filled <= slots:
        filled = None
    return (str(rec["experiment"]), str(rec.get("variant")), str(rec.get("id")), str(rec.get("user")),
            str(rec.get("bundle")), at, str(by) if by else None, slots, filled)  # fmt: skip


def attributed_events(workdir: str | Path) -> dict[str, list[list[Any]]]:
    """Per served list id a curated event names (`recommendation_id`, else `search_id`): its
    events as `[user (pseudonym), time (epoch seconds), event_type, value, the shoppers linked
    to it, currency, product_id, quantity]` (the warehouse's part of the report;
    `experiment_summary` counts those of the list's own user, not dated before it was served;
    `currency`: the line's own, else its product's, None where neither names one: revenue is
    summed per currency). A return (event type `return`, or a purchase line of fewer than 0
    units, curated as one) counts for the list its own `recommendation_id` / `search_id` names,
    else for the list of the user's latest purchase of that product before the return (for no
    list where that purchase came from none); its value is the refund written, else the price
    paid for the returned units, and its currency, where it names none, that purchase's."""
    from ..storage import read_only, relation_columns

    by_list: dict[str, list[list[Any]]] = {}
    with read_only(workdir) as (con, tables):
        if "events" not in tables:
            return by_list
        cols = set(relation_columns(con, "curated.events"))
        if "recommendation_id" not in cols:
            return by_list
        from ..search._analytics import linked_shoppers_sql

        cte, also, params = linked_shoppers_sql(
            workdir,
            "coalesce(recommendation_id, search_id) IS NOT NULL "
            "AND event_type IN ('click', 'add_to_cart', 'purchase', 'return')",
        )
        # (the money's currency: the line's own, else its product's; NULL where neither names one)
        own = "currency" if "currency" in cols else "NULL::VARCHAR"
        qty = "quantity" if "quantity" in cols else "NULL::DOUBLE"
        listed = (
            "(SELECT any_value(p.currency) FROM curated.products p WHERE p.product_id = e.product_id)"
            if "products" in tables and "currency" in relation_columns(con, "curated.products")
            else "NULL::VARCHAR"
        )
        lid = "coalesce(recommendation_id, search_id)"
        # each return with the purchase it undoes: its own list's purchase of the product by the
        # user, else the user's latest purchase of it, listed or not, not after the return (a
        # return of a product last bought outside any list counts for no list: not for an older
        # list's purchase of it); it is in that purchase's currency where it names none
        returns = (
            f'bought AS (SELECT {lid} AS list, user_id, product_id, session_id, "timestamp" AS ts, '
            f"value, {qty} AS quantity, {own} AS currency FROM curated.events WHERE event_type = 'purchase'), "
            f"rets AS (SELECT row_number() OVER () AS k, {lid} AS list, user_id, product_id, session_id, "
            f'"timestamp" AS ts, value, {qty} AS quantity, {own} AS currency '
            "FROM curated.events WHERE event_type = 'return'), "
            "matched AS (SELECT r.*, b.list AS b_list, b.session_id AS b_session, b.value AS b_value, "
            "b.quantity AS b_quantity, b.currency AS b_currency FROM rets r LEFT JOIN bought b "
            "ON b.user_id = r.user_id AND b.product_id = r.product_id AND b.ts <= r.ts "
            "QUALIFY row_number() OVER (PARTITION BY r.k ORDER BY coalesce(b.list = r.list, false) DESC, "
            "b.ts DESC) = 1), "
            f'ev AS (SELECT {lid} AS list, user_id, session_id, "timestamp", event_type, value, '
            f"{own} AS currency, product_id, {qty} AS quantity FROM curated.events "
            f"WHERE {lid} IS NOT NULL AND event_type IN ('click', 'add_to_cart', 'purchase') "
            "UNION ALL SELECT coalesce(list, b_list), user_id, "
            "CASE WHEN list IS NOT NULL THEN session_id ELSE b_session END, ts, 'return', "
            "coalesce(value, b_value / coalesce(b_quantity, 1) * coalesce(quantity, 1)), "
            "coalesce(currency, b_currency), product_id, "
            "quantity FROM matched WHERE coalesce(list, b_list) IS NOT NULL)"
        )
        rows = con.execute(
            f"WITH {cte}, {returns} "
            'SELECT e.list, e.user_id, epoch(e."timestamp"), e.event_type, '
            f"coalesce(e.value, 0), {also}, coalesce(e.currency, {listed}), e.product_id, "
            "coalesce(e.quantity, 1) FROM ev e LEFT JOIN links l ON l.session_id = e.session_id",
            params,
        ).fetchall()
        bots = _bot_users(con, workdir)
    for sid, user, ts, etype, value, others, currency, product, quantity in rows:
        by_list.setdefault(str(sid), []).append(
            [
                str(user),
                float(ts),
                str(etype),
                float(value),
                list(others),
                None if currency is None else str(currency),
                None if product is None else str(product),
                float(quantity),
            ]
        )
    if bots:
        by_list[BOTS_KEY] = [[b] for b in sorted(bots)]
    return by_list


# `attributed_events`' entry (no list id is this) of the shoppers whose events were quarantined
# as robot traffic: their exposures leave the report too (their clicks did: a bot's 100 lists
# counted as 100 unclicked exposures of its variant)
BOTS_KEY = "\x00robots"


def _bot_users(con: Any, workdir: str | Path) -> set[str]:
    """The pseudonyms of the users (or anonymous sessions) whose events ingestion quarantined as
    robot traffic (`bot_traffic`)."""
    from ..governance import Pseudonymizer
    from ..governance._compile import MISSING_VALUES, trim_id
    from ..governance._privacy import anonymous_user_id
    from ..storage._warehouse import has_table

    if not has_table(con.sql, "quarantine", "rows"):
        return set()
    rows = con.sql(
        "SELECT DISTINCT json_extract_string(raw, '$.user_id'), json_extract_string(raw, '$.session_id') "
        "FROM quarantine.rows WHERE table_name = 'events' AND reason = 'bot_traffic' AND status = 'open'"
    ).fetchall()
    raw = set()
    for user, session in rows:
        u = trim_id(user or "")
        if u and u not in MISSING_VALUES:
            raw.add(u)
        elif (sess := trim_id(session or "")) and sess not in MISSING_VALUES:
            raw.add(anonymous_user_id(sess))
    if not raw:
        return set()
    return set(Pseudonymizer.of(workdir).many(sorted(raw)))


def _ratio_interval(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """95% interval of the rate sum(num) / sum(den) over users (per user: their clicked lists
    and their lists), by the delta method with the user as unit, never narrower than Wilson
    over exposures: `evaluation._metrics.ratio_interval` (one implementation for this report,
    the console's traffic and the search analytics)."""
    from ..evaluation._metrics import ratio_interval

    return ratio_interval(num, den)


def _served_by(exposures: list[tuple[Any, ...]]) -> dict[str, Any]:
    """What made a variant's lists (`served_by`: the model, `fallback` for the popular list
    served in its place, `unrecorded` for lines logged before this was recorded) and how many
    were the fallback (`fallback_lists`, `fallback_share`): an arm whose users mostly got the
    fallback (new shoppers, no personalization consent) dilutes the effect of its model. A list
    the model only partly made (2 of its places, the popular fill the other 8) is the model's
    there: `filled_slots` of `served_slots` (`filled_slot_share`) are the places of the arm's
    lists the popular fill supplied, fallback lists included (every place of theirs), over the
    lists that record it (`filled_unrecorded_lists`: logged before it was recorded)."""
    by: dict[str, int] = {}
    slots = filled = unrecorded = 0
    for e in exposures:
        key = (e[6] if len(e) > 6 else None) or "unrecorded"
        by[key] = by.get(key, 0) + 1
        if len(e) > 8 and e[8] is not None:
            slots += e[7]
            filled += e[8]
        else:
            unrecorded += 1
    fallback = by.get("fallback", 0)
    recorded = len(exposures) - by.get("unrecorded", 0)
    return {
        "served_by": dict(sorted(by.items())),
        "fallback_lists": fallback,
        "fallback_share": fallback / recorded if recorded else None,
        "served_slots": slots,
        "filled_slots": filled,
        "filled_slot_share": filled / slots if slots else None,
        "filled_unrecorded_lists": unrecorded,
    }


def _sample_ratio(users: dict[str, int], weights: dict[str, float] | None) -> dict[str, Any] | None:
    """The sample-ratio check: the users per variant against the configured weights (chi-square);
    a mismatch (p below SRM_P) means the split was broken (load shedding that fell on one arm,
    a redirect, a bot) and the comparison is not to be trusted."""
    if weights:  # (a variant ramped down to weight 0 gets nobody new: not part of the split)
        weights = {v: w for v, w in weights.items() if w > 0 or users.get(v)}
    if not weights or set(users) - set(weights) or sum(users.values()) == 0:
        return None
    from scipy.stats import chisquare

    names = sorted(weights)
    total_w = sum(weights[n] for n in names)
    n = sum(users.values())
    expected = [n * weights[v] / total_w for v in names]
    observed = [users.get(v, 0) for v in names]
    if any(e <= 0 for e in expected):
        return None
    p = float(chisquare(observed, expected).pvalue)
    return {
        "expected_share": {v: round(weights[v] / total_w, 4) for v in names},
        "observed_share": {v: round(users.get(v, 0) / n, 4) for v in names},
        "p_value": p,
        "mismatch": p < SRM_P,
    }


def experiment_summary(
    exposures: list[tuple[Any, ...]],
    by_list: dict[str, list[list[Any]]],
    *,
    weights: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The report from the exposures (`experiment_exposure`'s tuples) and `attributed_events`;
    `weights` (`configured_weights`): the split each experiment was configured with."""
    from ..evaluation import wilson_interval

    out: dict[str, Any] = {
        "protocol": (
            "unit = user (pseudonym); exposure = one served list; an event counts for the list whose "
            "recommendation_id/search_id it carries unless another shopper's (an anonymous session's "
            "list bought after a login in that session counts, as does a customer's list clicked in a "
            "session of theirs) or dated more than "
            f"{CLOCK_SKEW_S / 3600:g} hours before the list was served; CTR and add-to-cart "
            "rate per exposure, conversion = share of exposed users with an attributed purchase not wholly "
            "returned, revenue per exposed user = sum of attributed purchase values net of attributed returns "
            "(gross and returns beside it; a return counts for the list its recommendation_id/search_id "
            "names, else the list its user bought the product from, the latest purchase before it; worth "
            "its refund, else the price paid); 95% CIs with the user as unit: delta "
            "method (CTR, add-to-cart rate: users' lists are not independent), Wilson over users "
            "(conversion), bootstrap over users (revenue); "
            f"sample-ratio check: users per variant against the configured weights (chi-square, p < {SRM_P:g}); "
            f"each other variant against the control (the variant named {CONTROL!r}, else the experiment's "
            "first configured variant): the difference per metric (relative lift when the control's is > 0) "
            "with its 95% interval: Newcombe's square-and-add of the two arms' own intervals (CTR, "
            "add-to-cart rate: delta method; conversion: Wilson, i.e. Newcombe's hybrid score interval), "
            "bootstrap over each arm's users, seed 0 (revenue); a variant is called higher or lower only "
            f"when that interval excludes 0, both arms have at least {MIN_ARM_USERS} users and the split "
            "is not broken"
        ),
        "experiments": {},
    }
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    seen_in: dict[tuple[str, str], set[str]] = {}  # (experiment, user) -> the variants that served them
    bots = {str(b[0]) for b in by_list.get(BOTS_KEY, ())}
    robots: dict[str, set[str]] = {}  # experiment -> the robots it served, left out
    for e in exposures:
        if e[3] in bots:
            robots.setdefault(e[0], set()).add(e[3])
            continue
        groups.setdefault((e[0], e[1]), []).append(e)
        seen_in.setdefault((e[0], e[3]), set()).add(e[1])
    for exp_name in sorted({k[0] for k in groups}):
        variants: dict[str, Any] = {}
        # a user served by two variants (the weights changed while it ran: the hash moved them)
        # is no clean unit of either: left out of both, and counted
        crossed = {u for (x, u), vs in seen_in.items() if x == exp_name and len(vs) > 1}
        per_user_revenue: dict[str, np.ndarray] = {}  # variant -> net revenue per user (`_compare`)
        purchases: dict[str | None, int] = {}  # currency (None: none named) -> counted purchases
        refunds: dict[str | None, int] = {}  # currency -> counted returns
        # variant -> currency -> (gross revenue, returned value) per user
        variant_by_currency: dict[str, dict[str | None, tuple[np.ndarray, np.ndarray]]] = {}
        for var in sorted(v for x, v in groups if x == exp_name):
            ex = [e for e in groups[(exp_name, var)] if e[3] not in crossed]
            if not ex:
                continue
            users = sorted({e[3] for e in ex})
            row = {u: i for i, u in enumerate(users)}
            n_u = len(users)
            shown, clicked, carted = np.zeros(n_u), np.zeros(n_u), np.zeros(n_u)
            bought, revenue, returned = np.zeros(n_u, bool), np.zeros(n_u), np.zeros(n_u)
            by_currency: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}  # (gross, returned)
            units: dict[tuple[int, str | None], float] = {}  # (user, product) -> units kept
            n_returns = other_user = before = 0
            for e in ex:
                u = row[e[3]]
                shown[u] += 1
                kinds: set[str] = set()
                for ev_user, ts, etype, value, *others in by_list.get(e[2], ()):
                    why = not_counted(e[3], e[5], ev_user, ts, others[0] if others else ())
                    if why is not None:
                        other_user += why == "another_user"
                        before += why == "before_the_list"
                        continue
                    kinds.add(etype)
                    if etype in ("purchase", "return"):
                        cur = others[1] if len(others) > 1 else None
                        line = (u, others[2] if len(others) > 2 else None)
                        n_units = float(others[3]) if len(others) > 3 else 1.0
                        pair = by_currency.setdefault(cur, (np.zeros(n_u), np.zeros(n_u)))
                    if etype == "purchase":
                        revenue[u] += value
                        pair[0][u] += value
                        purchases[cur] = purchases.get(cur, 0) + 1
                        units[line] = units.get(line, 0.0) + n_units
                    elif etype == "return":  # (what came back: its refund, positive)
                        returned[u] += value
                        pair[1][u] += value
                        refunds[cur] = refunds.get(cur, 0) + 1
                        units[line] = units.get(line, 0.0) - n_units
                        n_returns += 1
                clicked[u] += "click" in kinds
                carted[u] += "add_to_cart" in kinds
                bought[u] |= "purchase" in kinds
            # converted: a purchase not wholly returned (units of a product bought and kept)
            kept = np.zeros(n_u, bool)
            for (u, _product), left in units.items():
                kept[u] |= left > 0
            net = revenue - returned
            n = len(ex)
            per_user_revenue[var] = net
            variant_by_currency[var] = by_currency
            variants[var] = {
                "users": n_u,
                "exposures": n,
                "ctr": float(clicked.sum() / n) if n else 0.0,
                "ctr_ci95": _ratio_interval(clicked, shown),
                "add_to_cart_rate": float(carted.sum() / n) if n else 0.0,
                "add_to_cart_ci95": _ratio_interval(carted, shown),
                # net of returns: a user whose every purchase came back did not convert, and
                # revenue is what was bought less what was refunded (`gross_*` beside them)
                "conversion": float(kept.mean()) if n_u else 0.0,
                "conversion_ci95": wilson_interval(int(kept.sum()), n_u),
                "gross_conversion": float(bought.mean()) if n_u else 0.0,
                "revenue_per_user": float(net.mean()) if n_u else 0.0,
                "revenue_per_user_ci95": _bootstrap_mean(net),
                "gross_revenue_per_user": float(revenue.mean()) if n_u else 0.0,
                "returns_per_user": float(returned.mean()) if n_u else 0.0,
                "returns": n_returns,
                "bundles": sorted({e[4] for e in ex}),
                **_served_by(ex),
                # events naming the variant's lists that did not count: another user's, or dated
                # before the list was served
                "events_not_counted": {"another_user": other_user, "before_the_list": before},
            }
        filled = _none_named_as_the_one(variant_by_currency, purchases, refunds)
        revenue_warning = _revenue_per_currency(variants, variant_by_currency, purchases, refunds)
        srm = _sample_ratio({v: m["users"] for v, m in variants.items()}, (weights or {}).get(exp_name))
        control = _control_of(list(variants), (weights or {}).get(exp_name))
        comparisons = {
            var: _compare(var, m, variants[control], control, per_user_revenue, bool(srm and srm["mismatch"]))
            for var, m in variants.items()
            if control is not None and var != control
        }
        out["experiments"][exp_name] = {
            "variants": variants,
            # each other variant against the control (`_compare`); {} while only one variant served
            "control": control,
            "min_users_per_arm": MIN_ARM_USERS,
            "comparisons": comparisons,
            "sample_ratio": srm,
            "crossed_users": len(crossed),
            # shoppers whose events were quarantined as robot traffic: their lists too
            "robot_users_left_out": len(robots.get(exp_name, ())),
            # the counted purchases per currency (`_revenue_per_currency`; "unknown": a code shelfwise
            # cannot read, or none named beside two that are; a line naming none is in the one
            # currency the others name: `_none_named_as_the_one`), and the one currency of
            # the revenue figures (None: mixed, or none named)
            "revenue_currencies": _currency_counts(purchases),
            "revenue_currency": _one_currency(_merged(purchases, refunds)),
        }
        if filled and not revenue_warning:  # (the figure's currency, and how many lines name none)
            out["experiments"][exp_name]["revenue_currency_said"] = (
                f"in {filled[0]} ({filled[1]:,} purchase or return line{'s' if filled[1] != 1 else ''} "
                f"name{'' if filled[1] != 1 else 's'} none)"
            )
        if revenue_warning:
            out["experiments"][exp_name]["revenue_warning"] = revenue_warning
        if crossed:
            out["experiments"][exp_name]["warning"] = (
                f"{len(crossed):,} user(s) were served by more than one variant (the weights changed while "
                "the experiment ran: a user's bucket moved) and are left out of every variant; the "
                "sample-ratio check compares the rest with the weights configured now. A new experiment "
                "name compares a new split cleanly."
            )
    return out
