"""Lazy package exports (PEP 562): a package whose names pull in heavy libraries (torch, the
HTTP app) imports each from its module on first use, so that a command needing one part does
not pay for the rest."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: `where` maps each exported name to the relative
    module defining it; a name is imported once, then kept in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
