"""The gated model registry, on MLflow's model registry (aliases, not the deprecated stages).

Every bundle `shelfwise train` writes is registered as a version of the registered model
`shelfwise-bundle` with alias `candidate`, its metrics, data versions and lineage run id as tags.
Going live (`promote`) needs every gate to pass and a sign-off by a person with an approving role
who is not the one who trained it (four eyes); it moves the `production` alias and
`bundles/CURRENT`, which every running server follows. `rollback` moves both back to the previous
production version. Each step is audited.

Gates (stated in `gates()` with their numbers):
- `data_contracts`: the curated tables the bundle learned from were published under the
  contract versions in force now (publication requires the contract's pandera schema to pass),
  and the delivery behind each version passed its check (at most 5% of its new rows quarantined:
  the verdict `shelfwise ingest` and the catalog say, `governance._ingest_report.quality_check`);
- `not_worse_than_production`: production's model ranks for the candidate's test users (those
  it knows), and the candidate is not worse when the paired 95% interval of the per-user NDCG@10
  difference reaches zero (`_head_to_head`; where that cannot be measured, the candidate's upper
  95% bound against production's own test number; no production yet passes);
- `beats_popularity`: the candidate's NDCG@10 lower 95% bound is above the popularity baseline's
  NDCG@10 in the same evaluation (a bundle whose default model is popularity itself passes: it
  serves the baseline);
- `coverage_floor`: catalog coverage@10 of the default model at least `coverage_floor` (0.05).

The quality gates read the metric that chose the bundle's default model (its manifest's
`default_chosen_by`, `governance._model_versions.chosen_metric`): NDCG@10, or where the catalog
has product groups `group_ndcg@10` (lists collapsed to one product per group as served) with
its own 95% interval; each gate's text names it. A candidate chosen by the group NDCG@10 is
compared with production user by user on it (production's lists collapsed by the candidate's
groups); production's own test number only where it has that metric, else "not comparable".

A bundle with no test metrics (a shop with no or too few events: no test users) passes
`beats_popularity` and `coverage_floor` as not applicable, and `not_worse_than_production` only
when production has no test metrics either: a new shop's first bundle can go live, an
unmeasured bundle never replaces a measured one.

In single-user mode (nobody registered, see governance._access) a trained bundle is promoted at
once, as before the registry existed; the gates are still computed and recorded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GateFailed, NotApproved, ShelfwiseError, UnknownVersion
from ..governance._model_versions import (
    HEADLINE,
    MODEL,
    alias_version,
    chosen_metric,
    measured_as,
    registered_versions,
)
from ..governance._model_versions import mlflow_client as _client

if TYPE_CHECKING:
    from ..models import BundleManifest


@dataclass
class Gate:
    name: str
    passed: bool
    detail: str
    # passed only because nothing could measure it (production's numbers are of another
    # protocol): the approver decides, and listings say so instead of "all gates pass"
    review: bool = False


class Registry:
    def __init__(self, workdir: str | Path, coverage_floor: float = 0.05):
        self.workdir = Path(workdir)
        self.coverage_floor = coverage_floor
        self.client = _client(self.workdir)

    # -- reading -------------------------------------------------------------------------------
    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(MODEL)
        except MlflowException:
            self.client.create_registered_model(
                MODEL, description="shelfwise serving bundles: candidate and production aliases"
            )

    def _alias(self, alias: str) -> str | None:
        return alias_version(self.client, alias)

    def production(self) -> str | None:
        return self._alias("production")

    def candidate(self) -> str | None:
        return self._alias("candidate")

    def _version(self, version: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(MODEL, str(version))
        except MlflowException:
            raise _unknown_version(version) from None

    def bundle_dir(self, version: str) -> str:
        """Where the bundle of registry `version` is."""
        from ..governance._model_versions import bundle_path

        return bundle_path(self.workdir, self._version(version).source)

    def manifest(self, version: str) -> BundleManifest:
        from ..models import read_manifest

        return read_manifest(self.bundle_dir(version))

    def versions(self) -> list[dict[str, Any]]:
        return registered_versions(self.workdir, self.client)

    # -- gates ---------------------------------------------------------------------------------
    def gates(self, version: str, *, measure: bool = True) -> list[Gate]:
        """The gates of `version`. `measure=False` (a page listing candidates): the user-by-user
        comparison with production only when it was measured before (at registration, at
        promotion, by `models gates`), never measured on the spot (it scores both bundles' test
        users: seconds to minutes on a large shop)."""
        m = self.manifest(version)
        gates = [self._data_gate(m)]
        default = m["default_model"]
        metrics = m.get("metrics", {})
        ci = m.get("ci95", {})
        if default not in metrics:
            # no test users (a new shop: no or few events): the quality gates have nothing to
            # measure; such a bundle may go live first, never replace a measured production one
            return gates + self._unmeasured_gates(version)
        # the metric that chose the default model (`group_ndcg@10` where the catalog has product
        # groups): a candidate chosen by one number is gated by it, not by another
        metric = chosen_metric(m)
        score = float(metrics.get(default, {}).get(metric, 0.0))
        lo, hi = (ci.get(default, {}).get(metric) or [score, score])[:2]
        prod = self.production()
        if prod == str(version):
            # production itself: the gate as it stood when it went live, against the version it
            # replaced (recomputed against itself, a failed gate read "passed" afterwards)
            prod = self._version(str(version)).tags.get("previous_production") or None
        if prod is None:
            gates.append(Gate("not_worse_than_production", True, "no other production version"))
        elif (pm := self.manifest(prod))["default_model"] not in pm.get("metrics", {}):
            gates.append(Gate("not_worse_than_production", True, f"production v{prod} has no test metrics"))
        elif measured_as(pm) != measured_as(m):
            # e.g. `global_time` before and after it followed "Time to Split" (other targets):
            # the two numbers are not on one scale; the gate says so and the approver decides
            gates.append(
                Gate(
                    "not_worse_than_production",
                    True,
                    f"not comparable: production v{prod} was measured as {measured_as(pm)}, "
                    f"this bundle as {measured_as(m)}: the approver decides",
                    review=True,
                )
            )
        else:
            gates.append(self._not_worse(version, prod, m, pm, metric, score, lo, hi, measure=measure))
        pop = metrics.get("popularity", {}).get(metric)
        if pop is None:
            gates.append(Gate("beats_popularity", False, "no popularity baseline in this evaluation"))
        else:
            # (popularity the only model trained: nothing was compared with it on validation,
            # which "no model beat it" said of a `train --models popularity` bundle)
            others = sorted(set(metrics) - {"popularity"})
            why = (
                "no model beat it on validation"
                if others
                else "the only model trained: nothing was compared with it"
            )
            gates.append(
                Gate(
                    "beats_popularity",
                    True,
                    f"the default model is popularity itself ({why}): the bundle "
                    f"serves the baseline, {metric} {float(pop):.4f}",
                )
                if default == "popularity"
                else Gate(
                    "beats_popularity",
                    lo > float(pop),
                    f"{default} {metric} 95% CI lower bound {lo:.4f} vs popularity {float(pop):.4f}",
                )
            )
        gates.append(self._coverage_gate(m, float(metrics.get(default, {}).get("coverage@10", 0.0))))
        return gates

    def _coverage_gate(self, m: BundleManifest, cov: float) -> Gate:
        """`coverage_floor` for a model of bundle `m` whose coverage@10 is `cov`: left to the
        approver when the test users' lists could not show twice the floor of the catalog."""
        p = m.get("protocol") or {}
        listed = int(p.get("items") or 0) - int(p.get("unlisted_items") or 0)
        # the most of the catalog the test users' lists can show: 20 users x 10 of 3,972
        # products is 0.050, so a tiny shop's gate measured its test fold, not the model
        most = min(1.0, int(p.get("users") or 0) * 10 / listed) if listed > 0 else 1.0
        if most < 2 * self.coverage_floor:
            return Gate(
                "coverage_floor",
                True,
                f"coverage@10 {cov:.3f}: not measurable against the floor {self.coverage_floor}: the "
                f"{int(p.get('users') or 0):,} test users' lists can show at most {most:.3f} of the "
                f"{listed:,} products; the approver decides",
                review=True,
            )
        return Gate(
            "coverage_floor",
            cov >= self.coverage_floor,
            f"coverage@10 {cov:.3f} (floor {self.coverage_floor})",
        )

    def model_shortfalls(self, m: BundleManifest, model: str) -> list[str]:
        """Why `model`, a model of bundle `m` other than its default, does not pass the gates on
        its own numbers in that bundle's evaluation (empty: it does): not worse than the default
        the gates passed (the upper 95% bound of its headline number reaches the default's, the
        rule `not_worse_than_production` falls back to) and the coverage floor (when the test
        fold can measure it)."""
        default = m["default_model"]
        if model == default:
            return []
        metrics, ci = m.get("metrics", {}), m.get("ci95", {})
        if model not in metrics or default not in metrics:
            return [f"{model} has no test numbers in its bundle's evaluation"]
        metric = chosen_metric(m)  # (the number the gates read)
        best = float(metrics[default].get(metric, 0.0))
        score = float(metrics[model].get(metric, 0.0))
        hi = float((ci.get(model, {}).get(metric) or [score, score])[1])
        why = []
        if hi < best:
            why.append(
                f"{metric} {score:.4f} (95% upper bound {hi:.4f}) is worse than the default "
                f"{default}'s {best:.4f}"
            )
        cov = self._coverage_gate(m, float(metrics[model].get("coverage@10", 0.0)))
        if not cov.passed:
            why.append(cov.detail)
        return why

    def _not_worse(
        self,
        version: str,
        prod: str,
        m: BundleManifest,
        pm: BundleManifest,
        metric: str,
        score: float,
        lo: float,
        hi: float,
        *,
        measure: bool = True,
    ) -> Gate:
        """`not_worse_than_production` for two bundles measured alike: production's model ranks
        for this bundle's test users and the two are compared user by user (`head_to_head`);
        the candidate fails when the 95% interval of the difference is wholly below zero. When
        that cannot be measured (a bundle whose files are gone, or no fit made without the test
        targets), each bundle's own test number, as before, with why. Both are compared on
        `metric`, the one that chose this bundle's default (`chosen_metric`): user by user, both
        lists collapsed to one product per group of this bundle's catalog where it is
        `group_ndcg@10` (whatever chose production's default); production's own number only
        where it has that metric, else not on one scale (for the approver)."""
        from ._head_to_head import head_to_head

        name = "not_worse_than_production"
        h2h: dict[str, Any] | None
        try:
            h2h = head_to_head(
                self.workdir, self.bundle_dir(version), self.bundle_dir(prod), compute=measure, metric=metric
            )
        except (ShelfwiseError, OSError, ValueError, KeyError) as exc:
            h2h = {"skipped": f"{type(exc).__name__}: {exc}"}
        if h2h is None:
            h2h = {"skipped": "not measured yet: at promotion, or by `shelfwise models gates`"}
        if "difference" in h2h:
            d_lo, d_hi = h2h["ci95"]
            new = f"; {h2h['new_users']:,} new to production not compared" if h2h["new_users"] else ""
            if h2h.get("leaked_users"):
                new += (
                    f"; {h2h['leaked_users']:,} whose held-out steps production's fit learned (a newer "
                    "snapshot holding less) not compared"
                )
            return Gate(
                name,
                d_hi >= 0,
                f"on this bundle's {h2h['users']:,} test users production knows{new}: {metric} "
                f"{h2h['candidate']:.4f} vs production v{prod} {h2h['production']:.4f}, difference "
                f"{h2h['difference']:+.4f} (paired 95% CI {d_lo:+.4f} to {d_hi:+.4f})",
            )
        if metric not in pm["metrics"][pm["default_model"]]:
            # (production chose and measured by the item NDCG@10: its catalog had no groups)
            return Gate(
                name,
                True,
                f"not comparable: production v{prod} was measured by {chosen_metric(pm)}, this bundle "
                f"by {metric} {score:.4f} (not compared user by user: {h2h['skipped']}): the approver decides",
                review=True,
            )
        pscore = float(pm["metrics"][pm["default_model"]][metric])
        # each on its own held-out steps: after a new delivery those are other steps (still
        # compared: a worse candidate must not pass for it; said)
        ev, pev = (x.get("data_versions", {}).get("events", {}).get("version") for x in (m, pm))
        other = (
            f"; each measured on its own data's held-out steps (production: events v{pev}, this "
            f"bundle: events v{ev})"
            if ev != pev and ev is not None and pev is not None
            else ""
        )
        return Gate(
            name,
            hi >= pscore,
            f"{metric} {score:.4f} (95% CI {lo:.4f}-{hi:.4f}) vs production v{prod} {pscore:.4f}{other} "
            f"(not compared user by user: {h2h['skipped']})",
        )

    def _data_gate(self, m: BundleManifest) -> Gate:
        """`data_contracts`: each curated input was published under the contract in force. It
        also says which delivery behind a version failed its quality check (the verdict the
        ingest summary, its `contract_check` and the catalog say:
        `governance._ingest_report.quality_check`), without failing for it: the quarantined
        rows were held back and the curated ones are valid, and a shop's first export often
        quarantines more than the check's share (the demo's, by design) - the stewards' work,
        not a reason to keep a model from serving. The gate never says "passed" of such a
        delivery."""
        from ..governance import CONTRACTS
        from ..governance._catalog import failing_deliveries_behind

        inputs = m.get("data_versions", {})
        stale = [
            f"{t} (v{v.get('contract_version')}, now v{CONTRACTS[t].version})"
            for t, v in inputs.items()
            if t in CONTRACTS and v.get("contract_version") != CONTRACTS[t].version
        ]
        behind = failing_deliveries_behind(self.workdir, {t: v.get("run_id") for t, v in inputs.items()})
        failing = [f"{t} v{inputs[t].get('version')}: {'; '.join(bad)}" for t, bad in sorted(behind.items())]
        why = []
        if stale:
            why.append("learned from data checked by older contracts: " + ", ".join(stale))
        if not inputs:
            detail = "no curated input recorded"
        elif why:
            detail = "; ".join(why)
        else:
            detail = "every curated input is valid under its contract in force"
        if failing:
            detail += "; a delivery failed its quality check (its quarantined rows held back): " + "; ".join(
                failing
            )
        return Gate("data_contracts", bool(inputs) and not stale, detail)

    def _unmeasured_gates(self, version: str) -> list[Gate]:
        """Gates of a bundle with no test metrics (its recommendations are cold-start lists,
        content similarity or models nobody could test yet)."""
        why = "n/a: no test users in this bundle's data (nothing to measure)"
        prod = self.production()
        if prod is None or prod == str(version):
            worse = Gate("not_worse_than_production", True, "no other production version")
        else:
            pm = self.manifest(prod)
            measured = pm["default_model"] in pm.get("metrics", {})
            worse = Gate(
                "not_worse_than_production",
                not measured,
                f"production v{prod} is measured and this bundle is not: it cannot show it is not worse"
                if measured
                else f"neither this bundle nor production v{prod} has test metrics",
            )
        return [worse, Gate("beats_popularity", True, why), Gate("coverage_floor", True, why)]

    # -- writing -------------------------------------------------------------------------------
    def register(self, bundle: Path, run_id: str | None, actor: str | None) -> str:
        from ..governance import AuditLog
        from ..governance._audit import actor_name

        self._ensure_model()
        from ..models import read_manifest

        m = read_manifest(bundle)
        default = m["default_model"]
        tags = {
            "bundle_version": m["version"],
            "default_model": default,
            "ndcg_at_10": str(m.get("metrics", {}).get(default, {}).get(HEADLINE, "")),
            # the metric the gates read (the one that chose the default model) and its value
            "gate_metric": chosen_metric(m),
            "gate_score": str(m.get("metrics", {}).get(default, {}).get(chosen_metric(m), "")),
            "measured_as": measured_as(m),
            "lineage_run_id": str(m.get("lineage", {}).get("train_run_id")),
            "data_versions": json.dumps({t: v.get("version") for t, v in m.get("data_versions", {}).items()}),
            # (the audit entry's name: a shop without registered people names its OS user)
            "registered_by": actor_name(actor),
            "status": "candidate",
        }
        mv = self.client.create_model_version(MODEL, source=str(bundle.resolve()), run_id=run_id, tags=tags)
        version = str(mv.version)
        gates = self.gates(version)
        self.client.set_model_version_tag(MODEL, version, "gates", json.dumps([asdict(g) for g in gates]))
        self.client.set_registered_model_alias(MODEL, "candidate", version)
        AuditLog(self.workdir).append(
            "model.register",
            actor=actor,
            version=version,
            bundle=m["version"],
            gates={g.name: g.passed for g in gates},
        )
        self.versions()  # the snapshot readers take without MLflow (`registered_versions`)
        return version

    def approve(self, version: str, actor: str) -> None:
        from ..governance import AccessDenied, AuditLog

        mv = self._version(version)
        if str(version) == str(self.production()):
            # ("approved by" would read as a review before it went live), refused and audited
            why = f"version {version} is already in production: nothing to approve"
            AuditLog(self.workdir).append(
                "model.approve", actor=actor, outcome="refused", version=str(version), reason=why
            )
            raise ShelfwiseError(why)
        self._bundle_held(version, "model.approve", actor)
        if mv.tags.get("registered_by") and mv.tags.get("registered_by") == actor:
            AuditLog(self.workdir).append(
                "access.denied",
                actor=actor,
                outcome="denied",
                denied_action="models.approve",
                reason="four eyes",
                version=version,
            )
            raise AccessDenied(f"{actor} trained version {version}: someone else must approve it (four eyes)")
        self.client.set_model_version_tag(MODEL, str(version), "approved_by", actor)
        self.client.set_model_version_tag(MODEL, str(version), "approved_at", datetime.now(UTC).isoformat())
        AuditLog(self.workdir).append("model.approve", actor=actor, version=str(version))
        self.versions()

    def promote(self, version: str, actor: str | None, *, require_approval: bool | None = None) -> list[Gate]:
        """Make `version` production if its gates pass and (when required) it is approved. The
        approval is required unless said otherwise where a person acts (`actor`); in single-user
        mode (`actor` None) nobody else could approve: the gates alone (every new version went
        live unattended there, and a rollback then a promote asked for an approval)."""
        from ..governance import AuditLog

        if require_approval is None:
            require_approval = actor is not None

        mv = self._version(version)
        if str(version) == str(self.production()):
            raise ShelfwiseError(f"version {version} is already in production")
        self._bundle_held(version, "model.promote", actor)
        gates = self.gates(version)
        failed = [g for g in gates if not g.passed]
        approved = mv.tags.get("approved_by")
        if failed or (require_approval and not approved):
            why = [f"gate {g.name} failed: {g.detail}" for g in failed]
            if require_approval and not approved:
                why.append(
                    "no approval: a person with an approving role must approve it (`shelfwise models approve`, `Shop.approve(VERSION)`, or Approve on the console's models page)"
                )
            AuditLog(self.workdir).append(
                "model.promote", actor=actor, outcome="refused", version=str(version), reasons=why
            )
            said = f"version {version} not promoted: " + "; ".join(why)
            if failed:  # (an approval would not help: said apart from a missing one)
                raise GateFailed(
                    said, version=str(version), failed=[g.name for g in failed], approved=bool(approved)
                )
            raise NotApproved(said, version=str(version))
        previous = self.production()
        self._go_live(str(version), mv.source, previous)
        AuditLog(self.workdir).append(
            "model.promote",
            actor=actor,
            version=str(version),
            bundle=mv.tags.get("bundle_version"),
            previous=previous,
            approved_by=approved,
            gates={g.name: g.passed for g in gates},
        )
        self.versions()
        return gates

    def _bundle_held(self, version: str, action: str, actor: str | None) -> None:
        """Refuse (audited) a version whose bundle folder is gone: promoted, `bundles/CURRENT`
        named a folder retention had removed and every server and `recommend` failed."""
        from ..governance import AuditLog

        folder = Path(self.bundle_dir(version))
        if not (folder / "manifest.json").exists():
            why = (
                f"version {version}'s bundle {folder.name} is gone (retention keeps the newest "
                "bundles and those the aliases name; or a person removed it): it cannot go live"
            )
            AuditLog(self.workdir).append(
                action, actor=actor, outcome="refused", version=str(version), reason=why
            )
            raise ShelfwiseError(why)

    def promote_unattended(self, version: str, actor: str | None) -> None:
        """Single-user mode: live at once (the gates are recorded on the version, not enforced)."""
        from ..governance import AuditLog

        previous = self.production()
        mv = self._version(version)
        self._go_live(str(version), mv.source, previous)
        AuditLog(self.workdir).append(
            "model.promote", actor=actor, version=str(version), previous=previous, mode="single-user"
        )
        self.versions()

    def _go_live(self, version: str, source: str, previous: str | None) -> None:
        from ..serving._bundle import BUNDLES_DIR, CURRENT

        if previous and previous != version:
            self.client.set_model_version_tag(MODEL, version, "previous_production", previous)
            self.client.set_model_version_tag(MODEL, previous, "status", "retired")
        self.client.set_model_version_tag(MODEL, version, "status", "production")
        self.client.set_registered_model_alias(MODEL, "production", version)
        if self.candidate() == version:
            self.client.delete_registered_model_alias(MODEL, "candidate")
        root = self.workdir / BUNDLES_DIR
        tmp = root / f".{CURRENT}.tmp"
        tmp.write_text(Path(source).name)
        tmp.replace(root / CURRENT)  # every server follows this pointer

    def rollback(self, actor: str | None) -> str:
        from ..governance import AuditLog

        def refuse(why: str) -> ShelfwiseError:  # (audited as a refused promote is)
            AuditLog(self.workdir).append("model.rollback", actor=actor, outcome="refused", reason=why)
            return ShelfwiseError(why)

        prod = self.production()
        if prod is None:
            raise refuse("nothing in production to roll back")
        previous = self._version(prod).tags.get("previous_production")
        if not previous:
            raise refuse(f"version {prod} has no previous production version to go back to")
        pv = self._version(previous)
        from ..serving._bundle import BUNDLES_DIR as _BUNDLES

        folder = self.workdir / _BUNDLES / Path(pv.source).name
        if not (folder / "manifest.json").exists():  # (retention or a person removed it)
            raise refuse(
                f"version {previous}'s bundle {folder.name} is gone: nothing to roll back to "
                f"(version {prod} stays in production)"
            )
        self.client.set_model_version_tag(MODEL, prod, "status", "rolled_back")
        # a version taken out of production goes live again only on a new approval (its old one
        # approved what was found wanting), kept as `approval_withdrawn`
        old = self._version(prod).tags.get("approved_by")
        if old:
            self.client.set_model_version_tag(MODEL, prod, "approval_withdrawn", f"{old} (rolled back)")
            self.client.delete_model_version_tag(MODEL, prod, "approved_by")
        self.client.set_model_version_tag(MODEL, previous, "status", "production")
        self.client.set_registered_model_alias(MODEL, "production", previous)
        from ..serving._bundle import BUNDLES_DIR, CURRENT

        root = self.workdir / BUNDLES_DIR
        tmp = root / f".{CURRENT}.tmp"
        tmp.write_text(Path(pv.source).name)
        tmp.replace(root / CURRENT)
        AuditLog(self.workdir).append("model.rollback", actor=actor, version=previous, rolled_back=prod)
        self.versions()
        return previous


class RegistryView(Registry):
    """The registry as `registered_versions` last read it (its snapshot while the registry is
    unchanged: no MLflow import), for what only reads: the gates on a console page."""

    def __init__(self, workdir: str | Path, coverage_floor: float = 0.05):
        self.workdir = Path(workdir)
        self.coverage_floor = coverage_floor
        self.rows = registered_versions(self.workdir, use_snapshot=True)

    def versions(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    def _alias(self, alias: str) -> str | None:
        return next((str(r["version"]) for r in self.rows if alias in r["aliases"]), None)

    def bundle_dir(self, version: str) -> str:
        for r in self.rows:
            if str(r["version"]) == str(version):
                return str(r["path"])
        raise _unknown_version(version)

    def manifest(self, version: str) -> BundleManifest:
        from ..models import read_manifest

        return read_manifest(self.bundle_dir(version))


def _unknown_version(version: object) -> UnknownVersion:
    return UnknownVersion(
        f"model version {version!r} is not registered (see `shelfwise models list`, `Shop.versions()`)",
        kind="model version",
        name=str(version),
    )
