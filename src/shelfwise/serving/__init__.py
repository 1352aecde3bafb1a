"""Serving: the bundle (the one thing serving loads), request answering, the HTTP API,
business rules, experiments and the feedback loop.

Names are imported on first use (PEP 562): a module that needs one part (the ingest job replays
`_feedback`) does not pay for the HTTP app and the models behind the bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._app import create_app
    from ._bundle import Bundle, current_bundle, write_bundle
    from ._experiments import Experiment, Variant, experiment_report, load_experiments
    from ._feedback import absorb
    from ._online import MemoryState, RedisState
    from ._recommend import Recommendations
    from ._rules import Rules, save_rules
    from ._service import ServeSettings, Service

_WHERE = {
    "Bundle": "._bundle",
    "Experiment": "._experiments",
    "MemoryState": "._online",
    "Recommendations": "._recommend",
    "RedisState": "._online",
    "Rules": "._rules",
    "ServeSettings": "._service",
    "Service": "._service",
    "Variant": "._experiments",
    "absorb": "._feedback",
    "create_app": "._app",
    "current_bundle": "._bundle",
    "experiment_report": "._experiments",
    "load_experiments": "._experiments",
    "save_rules": "._rules",
    "write_bundle": "._bundle",
}

__all__ = [
    "Bundle",
    "Experiment",
    "MemoryState",
    "Recommendations",
    "RedisState",
    "Rules",
    "ServeSettings",
    "Service",
    "Variant",
    "absorb",
    "create_app",
    "current_bundle",
    "experiment_report",
    "load_experiments",
    "save_rules",
    "write_bundle",
]


__getattr__ = lazy_exports(__name__, _WHERE)
