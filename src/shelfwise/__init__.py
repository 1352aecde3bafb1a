"""shelfwise: a governed search and recommendation engine for online shops.

`from shelfwise import Shop` opens a shop's workdir in Python (everything the CLI does); the name
is imported on first use, so `import shelfwise` stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from ._shop import Shop

__version__ = "0.1.0"
__all__ = ["Shop", "__version__"]

__getattr__ = lazy_exports(__name__, {"Shop": "._shop"})
