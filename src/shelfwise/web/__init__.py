"""The shop console: server-rendered pages at `/console` of `shelfwise serve` for the team
(overview, models, data and quarantine, search playground, shoppers, analytics, lineage, audit),
with the same permission checks and audit entries as the CLI. See `_routes` for the pages."""

from ._routes import console_router, mount_console

__all__ = ["console_router", "mount_console"]
