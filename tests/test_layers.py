"""Dependencies point one way (ARCHITECTURE.md, "Who may import whom"): a package imports only
from its own layer or below, apart from the exceptions listed here, each with its reason. A new
edge upward fails this test: move the shared piece down, or argue for it here."""

from __future__ import annotations

import ast
from pathlib import Path

import shelfwise

ROOT = Path(shelfwise.__file__).parent

LAYERS = [
    {"errors", "_lazy", "_process", "_threads"},
    {"storage"},
    {"features", "datasets", "demo"},
    {"models", "evaluation", "reporting", "governance"},
    {"search"},
    {"lifecycle", "serving"},
    {"insights", "web"},
    {"_shop", "cli", "__init__", "__main__"},
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

# (importing module, imported package): why it may reach up
EXCEPTIONS = {
    ("serving/_app.py", "insights"): "create_app composes the HTTP surface: POST /v1/ask",
    ("serving/_app.py", "web"): "create_app composes the HTTP surface: the console at /console",
    ("search/_analytics.py", "serving"): "reads where bundles live (BUNDLES_DIR, CURRENT)",
    ("lifecycle/_train.py", "insights"): "train builds the shop's FAQ index into the bundle (issue 18)",
}


def _targets(path: Path) -> set[str]:
    """The shelfwise top-level packages/modules an imported module reaches."""
    rel = path.relative_to(ROOT).parts
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0:
                if parts[0] == "shelfwise" and len(parts) > 1:
                    out.add(parts[1])
            elif node.level == len(rel):  # relative to the shelfwise package itself
                out.add(parts[0] if parts[0] else node.names[0].name)
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("shelfwise.")}
    return out


def test_every_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in ROOT.glob("*.py")}
    assert (packages | modules) - {"py"} <= set(LAYER) | {"errors"}, sorted((packages | modules) - set(LAYER))


def test_dependencies_point_down():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        source = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for target in _targets(path):
            if target == source or target not in LAYER:
                continue
            if LAYER[target] > LAYER[source] and (rel.as_posix(), target) not in EXCEPTIONS:
                upward.append(
                    f"{rel.as_posix()} ({source}, layer {LAYER[source]}) imports {target} (layer {LAYER[target]})"
                )
    assert upward == [], "\n".join(upward)


def test_the_exceptions_are_still_needed():
    """An exception nobody uses any more is taken off the list."""
    for module, target in EXCEPTIONS:
        assert target in _targets(ROOT / module), (module, target)
