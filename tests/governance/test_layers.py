"""Governance sits below the lifecycle and serving: it imports neither (they import it)."""

from __future__ import annotations

import ast
from pathlib import Path

import shelfwise.governance

ROOT = Path(shelfwise.governance.__file__).parent


def _subpackage(node: ast.AST) -> list[str]:
    """The shelfwise subpackage(s) an import statement reaches outside governance."""
    if isinstance(node, ast.ImportFrom):
        parts = (node.module or "").split(".")
        if node.level >= 2:  # from ..x import y
            return [parts[0]]
        return [parts[1]] if node.level == 0 and parts[0] == "shelfwise" and len(parts) > 1 else []
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("shelfwise.")]
    return []


def test_governance_imports_neither_lifecycle_nor_serving():
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(ROOT.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if set(_subpackage(node)) & {"lifecycle", "serving"}
    ]
    assert found == []
