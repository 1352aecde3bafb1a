"""Lazy package exports (PEP 562): a package whose names pull in heavy libraries (torch, the
HTTP app) imports each from its module on first use, so that a command needing one part does
not pay for the rest."""

from __future__ import annotations

import importlib
import importlib.abc
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


class _NoScikitLearnHere(importlib.abc.MetaPathFinder):
    """While this thread imports LightGBM through `lightgbm()`: `import sklearn` fails in it
    (other threads import as usual), so LightGBM leaves out its scikit-learn layer."""

    def __init__(self) -> None:
        self.active = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if getattr(self.active, "on", False) and (fullname == "sklearn" or fullname.startswith("sklearn.")):
            raise ModuleNotFoundError(f"No module named {fullname!r} (left out by shelfwise)", name=fullname)
        return None


_NO_SKLEARN = _NoScikitLearnHere()
_LIGHTGBM_LOCK = threading.Lock()


def lightgbm(*, sklearn_api: bool = False) -> Any:
    """The `lightgbm` module, imported without its scikit-learn layer where nothing imported
    scikit-learn yet: LightGBM imports all of scikit-learn at its own import (~1.5 s of a
    server's 5 s start, of a search command's, of a training's) for the estimator classes,
    and shelfwise's rankers use the booster API (`lightgbm.train`, `Booster`). Code that wants
    the estimator classes (`LGBMClassifier`, a ranker pickled by an earlier version) asks with
    `sklearn_api=True`: the layer is then imported, once."""
    with _LIGHTGBM_LOCK:
        if "lightgbm" not in sys.modules and "sklearn" not in sys.modules:
            sys.meta_path.insert(0, _NO_SKLEARN)
            _NO_SKLEARN.active.on = True
            try:
                import_module("lightgbm")
            finally:
                _NO_SKLEARN.active.on = False
                sys.meta_path.remove(_NO_SKLEARN)
        lgb = import_module("lightgbm")
        if sklearn_api and not lgb.compat.SKLEARN_INSTALLED:
            # the lean import above came first: its compatibility layer read again (scikit-learn
            # found now), then the estimator module that builds on it
            importlib.reload(lgb.compat)
            estimators = importlib.reload(lgb.sklearn)
            for name in ("LGBMModel", "LGBMClassifier", "LGBMRegressor", "LGBMRanker"):
                setattr(lgb, name, getattr(estimators, name))
        return lgb
