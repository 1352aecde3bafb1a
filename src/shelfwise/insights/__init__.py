"""Insights for the business on the governed, pseudonymized data (issue 18): customer profiles
with churn risk and expected purchases, point in time, in the shop's own ids."""

from ._bgnbd import BGNBD
from ._customers import SEGMENTS, CustomerModel, profile_customers
from ._run import PROFILE_FIELDS, profile_records, run_customers

__all__ = [
    "BGNBD",
    "PROFILE_FIELDS",
    "SEGMENTS",
    "CustomerModel",
    "profile_customers",
    "profile_records",
    "run_customers",
]
