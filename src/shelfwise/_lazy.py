"""Lazy package exports (PEP 562): a package whose names pull in heavy libraries (torch, the
HTTP app) imports each from its module on first use, so that a command needing one part does
not pay for the rest."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any

_PRELOADS: list[threading.Thread] = []


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


def preload(names: tuple[str, ...]) -> threading.Thread:
    """Import the modules `names` in a thread, in order, while this one works (DuckDB releases
    the GIL): what a command needs only at its end. A module that fails to import is left to
    the code that uses it, to fail there with its own error. Code about to use one calls
    `preloaded()` first."""

    def run() -> None:
        for name in names:
            try:
                import_module(name)
            except Exception:  # noqa: BLE001 - imported again where needed, failing there
                return

    thread = threading.Thread(target=run, name="shelfwise-preload", daemon=True)
    _PRELOADS.append(thread)
    thread.start()
    return thread


def preloading() -> bool:
    """Whether a `preload` was started and not yet waited for."""
    return bool(_PRELOADS)


def preloaded() -> None:
    """Wait for the modules `preload` is importing: a package imported from two threads at once
    can deadlock on Python's per-module import locks (each thread holding a submodule the other
    waits for), so what the preload imports is used only once it is done."""
    for thread in list(_PRELOADS):
        thread.join()
        if thread in _PRELOADS:  # (another thread may have waited for it too)
            _PRELOADS.remove(thread)
