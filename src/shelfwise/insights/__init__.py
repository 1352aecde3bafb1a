"""Insights for the business on the governed, pseudonymized data (issue 18): customer profiles
with churn risk and expected purchases (point in time, in the shop's own ids), marketing
audiences, weekly demand forecasts and reorder suggestions, and answers from the shop's FAQ.

Names are imported on first use (PEP 562): the command line registers `insights` and `ask`
without loading pandas, LightGBM or the text encoders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._ask import answer_question, evaluate_faq
    from ._audience_rules import Rule, RuleError
    from ._audiences import AudienceSpec, lift_estimate
    from ._bgnbd import BGNBD
    from ._customers import SEGMENTS, CustomerModel, profile_customers
    from ._demand import DemandModel, forecast_demand, forecast_series
    from ._demand_run import run_demand, run_replenishment
    from ._faq import Answer, FaqMatcher
    from ._http import insights_router
    from ._replenishment import replenish
    from ._run import PROFILE_FIELDS, profile_records, run_ask, run_customers

_WHERE = {
    "answer_question": "._ask",
    "evaluate_faq": "._ask",
    "AudienceSpec": "._audiences",
    "Rule": "._audience_rules",
    "RuleError": "._audience_rules",
    "lift_estimate": "._audiences",
    "Answer": "._faq",
    "BGNBD": "._bgnbd",
    "CustomerModel": "._customers",
    "DemandModel": "._demand",
    "FaqMatcher": "._faq",
    "PROFILE_FIELDS": "._run",
    "SEGMENTS": "._customers",
    "insights_router": "._http",
    "forecast_demand": "._demand",
    "forecast_series": "._demand",
    "profile_customers": "._customers",
    "profile_records": "._run",
    "run_ask": "._run",
    "replenish": "._replenishment",
    "run_customers": "._run",
    "run_demand": "._demand_run",
    "run_replenishment": "._demand_run",
}

__all__ = [
    "answer_question",
    "evaluate_faq",
    "BGNBD",
    "AudienceSpec",
    "Rule",
    "RuleError",
    "lift_estimate",
    "PROFILE_FIELDS",
    "SEGMENTS",
    "Answer",
    "CustomerModel",
    "DemandModel",
    "FaqMatcher",
    "forecast_demand",
    "forecast_series",
    "insights_router",
    "profile_customers",
    "profile_records",
    "run_ask",
    "replenish",
    "run_customers",
    "run_demand",
    "run_replenishment",
]

__getattr__ = lazy_exports(__name__, _WHERE)
