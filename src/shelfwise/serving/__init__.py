"""Serving: the bundle (the one thing serving loads), request answering, the HTTP API,
business rules, experiments and the feedback loop."""

from ._app import create_app
from ._bundle import Bundle, current_bundle, write_bundle
from ._experiments import Experiment, Variant, experiment_report, load_experiments
from ._feedback import absorb
from ._online import MemoryState, RedisState
from ._recommend import Recommendations
from ._rules import Rules, save_rules
from ._service import ServeSettings, Service

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
