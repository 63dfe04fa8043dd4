"""Checks the size of every room of the house, counted with ast: no module over 400 lines, no class over 250, no
function over 80. A room that outgrows its size holds two jobs; CI runs this beside the import contracts."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMITS = {"module": 400, "class": 250, "function": 80}


def oversized(path: Path) -> list[str]:
    """Each room of ``path`` over its limit, as ``path:line kind name (N lines)``."""
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > LIMITS["module"]:
        found.append(f"{path}:1 module ({lines} lines, limit {LIMITS['module']})")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > LIMITS[kind]:
                found.append(f"{path}:{node.lineno} {kind} {node.name} ({size} lines, limit {LIMITS[kind]})")
    return found


def main(roots: list[str]) -> int:
    found = [room for root in roots for path in sorted(Path(root).rglob("*.py")) for room in oversized(path)]
    for room in found:
        print(room)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["stream"]))
