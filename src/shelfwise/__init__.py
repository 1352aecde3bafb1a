"""shelfwise: a governed search and recommendation engine for online shops.

`from shelfwise import Shop` opens a shop's workdir in Python (everything the CLI does); the name
is imported on first use, so `import shelfwise` stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._threads import match_threads_to_quota

# before torch, MKL or OpenBLAS load: their thread pools sized to a container's CPU quota
match_threads_to_quota()

if TYPE_CHECKING:
    from ._shop import Shop
    from .errors import (
        AccessDenied,
        ContractViolation,
        GateFailed,
        NoSearchIndex,
        NotApproved,
        PersonRevoked,
        ShelfwiseError,
        SourceError,
        UnknownModel,
        UnknownName,
        UnknownVersion,
        WarehouseBusy,
    )

__version__ = "0.1.0"
# the errors a caller catches: every refusal is a ShelfwiseError (AccessDenied: a role's; a
# SourceError names the file and line; GateFailed / NotApproved: a promotion refused for its gates
# / for want of an approval; UnknownName (UnknownVersion, UnknownModel): a name naming nothing;
# PersonRevoked: a key rotation refused for a revoked person; NoSearchIndex: a search of a bundle
# without one; ContractViolation: curated data broke its contract, a bug; WarehouseBusy: another
# process holds the warehouse, try again)
__all__ = [
    "AccessDenied",
    "ContractViolation",
    "GateFailed",
    "NoSearchIndex",
    "NotApproved",
    "PersonRevoked",
    "ShelfwiseError",
    "Shop",
    "SourceError",
    "UnknownModel",
    "UnknownName",
    "UnknownVersion",
    "WarehouseBusy",
    "__version__",
]

__getattr__ = lazy_exports(
    __name__, {"Shop": "._shop", **{n: ".errors" for n in __all__ if n not in ("Shop", "__version__")}}
)
