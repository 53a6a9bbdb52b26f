"""One seedable random source: nothing in the package draws from the global `random`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vsm_mcp"


def _global_draws(tree: ast.AST) -> list[int]:
    """Lines that draw from the module-level `random` (``random.random()``, ``from random import choice``)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr not in {"Random", "SystemRandom"}
        ):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "random":
            lines += [node.lineno for a in node.names if a.name not in {"Random", "SystemRandom"}]
    return lines


def test_no_module_draws_from_the_global_random() -> None:
    found = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if (lines := _global_draws(ast.parse(path.read_text())))
    }
    assert found == {}


def test_the_check_sees_a_global_draw() -> None:
    assert _global_draws(ast.parse("import random\nx = random.random()\n")) == [2]
    assert _global_draws(ast.parse("from random import choice\n")) == [1]
    assert _global_draws(ast.parse("import random\nrng = random.Random(1)\nrng.random()\n")) == []
