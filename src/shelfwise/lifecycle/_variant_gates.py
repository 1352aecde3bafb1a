"""The registry's word on an experiment's variants: a variant serves only what the registry
lets serve (a bundle that is or was in production, or approved with its gates passed; a model
no gate passed never takes more traffic than a control serving production). Checked by
`Shop.set_experiments` and the console's experiments editor alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError
from ._registry import Registry

__all__ = ["changes_shop_rules", "variants_may_serve"]


def changes_shop_rules(experiments: Sequence[Any]) -> bool:
    """Whether a variant serves other rules than the shop's: its own `rules`, or none of the
    shop's pins, boosts and buries (`shop_rules: false`). Who may not change the rules
    (`rules.change`) may not do either through an experiment."""
    return any(v.rules or not v.shop_rules for e in experiments for v in e.variants)


def variants_may_serve(workdir: str | Path, experiments: Sequence[Any]) -> None:
    """Raise a `ShelfwiseError` naming the experiment, the variant and why, where a variant
    would serve what the registry does not let serve (in a shop with people; single-user mode:
    nothing to check)."""
    _bundles_may_serve(Path(workdir), experiments)
    _models_may_serve(Path(workdir), experiments)


def _models_may_serve(workdir: Path, experiments: Sequence[Any]) -> None:
    """In a shop with people, a variant serving a model of its bundle other than the
    default one the registry approved (`"model": "popularity"`) is a model no gate passed
    unless its own numbers in that bundle's evaluation pass them: not worse than the
    default (its upper 95% bound reaches the default's NDCG@10) and the coverage floor. One
    that does not pass may be tried beside a control serving production, never take more of
    the traffic than that control (a weight of 1 beside a control of 0 put popularity live
    for every shopper while the registry said production was fusion)."""
    from ..governance._access import People

    if not any(v.model for e in experiments for v in e.variants) or not People(workdir).governed:
        return
    reg = Registry(workdir)
    prod = reg.production()
    if prod is None:
        return
    by_bundle = {r["bundle"]: r for r in reg.versions() if r.get("bundle")}
    prod_bundle = next((b for b, r in by_bundle.items() if str(r["version"]) == str(prod)), None)
    manifests: dict[str, Any] = {}

    def manifest(bundle: str | None) -> Any:
        version = str(by_bundle[bundle]["version"]) if bundle in by_bundle else str(prod)
        if version not in manifests:
            manifests[version] = reg.manifest(version)
        return manifests[version]

    def failed(v: Any) -> str | None:
        return "; ".join(reg.model_shortfalls(manifest(v.bundle), v.model)) or None

    def production_itself(v: Any) -> bool:
        return v.bundle in (None, prod_bundle) and (
            v.model is None or v.model == manifest(v.bundle)["default_model"]
        )

    for e in experiments:
        control = sum(v.weight for v in e.variants if production_itself(v))
        # (all of them together: two such variants at 1 beside a control at 1 served models no
        # gate passed to two thirds of the shoppers, the review's)
        weak = [(v, why) for v in e.variants if v.model and (why := failed(v)) is not None]
        total = sum(v.weight for v, _ in weak)
        if not weak or total <= control:
            continue
        v, why = weak[0]
        others = f" ({len(weak)} such variants, {total:g} together)" if len(weak) > 1 else ""
        raise ShelfwiseError(
            f"experiment {e.name!r}: variant {v.name!r}: model {v.model!r} did not pass the "
            f"registry's gates ({why}){others}: such variants may be tried beside a control serving "
            f"production with at least their weight ({total:g} against {control:g}), never take more "
            "of the traffic; to serve one, train a bundle whose default it is and go through "
            "`Shop.approve` / `promote` (`shelfwise models approve` / `promote`)"
        )


def _bundles_may_serve(workdir: Path, experiments: Sequence[Any]) -> None:
    """In a shop with people, a variant serves a bundle that is or was in production, or
    one whose gates passed and that a person approved: an experiment is no way around the
    registry (a variant of weight 1 beside a control of weight 0 is a promotion)."""
    from ..governance._access import People

    named = {v.bundle for e in experiments for v in e.variants if v.bundle}
    if not named or not People(workdir).governed:
        return
    by_bundle = {r["bundle"]: r for r in Registry(workdir).versions() if r.get("bundle")}
    for e in experiments:
        for v in e.variants:
            if not v.bundle:
                continue
            where = f"experiment {e.name!r}: variant {v.name!r}: bundle {v.bundle!r}"
            r = by_bundle.get(v.bundle)
            if r is None:
                raise ShelfwiseError(
                    f"{where} is not in the model registry: only a registered bundle can serve"
                )
            failed = [g["name"] for g in r.get("gates") or [] if not g.get("passed")]
            if r["status"] in ("production", "retired") or (r.get("approved_by") and not failed):
                continue
            why = (
                "it was rolled back"
                if r["status"] == "rolled_back"
                else f"its gates failed ({', '.join(failed)})"
                if failed
                else "nobody approved it"
            )
            raise ShelfwiseError(
                f"{where} (version {r['version']}) may not serve shoppers: {why}; a variant serves a "
                "bundle that is or was in production, or one whose gates passed and that a person "
                "approved (`Shop.approve`, `shelfwise models approve`)"
            )
