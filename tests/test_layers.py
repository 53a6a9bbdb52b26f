"""The layer rule of ARCHITECTURE.md, checked by walking every import with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vsm_mcp"

# package -> the vsm_mcp packages it may import (ARCHITECTURE.md, "Allowed imports")
ALLOWED: dict[str, set[str]] = {
    "core": {"core", "errors"},
    "vsm": {"core", "vsm", "errors"},
    "store": {"core", "store", "errors"},
    "discovery": {"core", "discovery", "errors"},
    "sandbox": {"core", "sandbox", "errors"},
    "fleet": {"core", "vsm", "sandbox", "fleet", "errors"},
    "acquisition": {"core", "vsm", "sandbox", "fleet", "discovery", "acquisition", "errors"},
    "gateway": {"core", "vsm", "fleet", "discovery", "gateway", "errors"},
    "errors": set(),
}
# Everything else (runtime, settings, report, doctor, cli, bench, ...) sits on top and may import all.


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        layer = rel.parts[0].removesuffix(".py")
        allowed = ALLOWED.get(layer)
        if allowed is None:
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "vsm_mcp" or len(parts) < 2:
                continue
            if parts[1] not in allowed:
                bad.append(f"{rel}:{line} imports {module} ({layer} may import only {sorted(allowed)})")
    return bad


def test_layers_point_one_way() -> None:
    assert _violations() == []


def test_core_is_pure() -> None:
    """The core reads no clock it was not handed and touches no process, socket or file."""
    forbidden = {"subprocess", "socket", "sqlite3", "os", "asyncio", "anyio", "httpx", "mcp", "random"}
    bad = [
        f"{path.name}:{line} imports {module}"
        for path in sorted((SRC / "core").rglob("*.py"))
        for line, module in _imports(path)
        if module.split(".")[0] in forbidden
    ]
    assert bad == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from vsm_mcp.store.sqlite import SqliteStore\n")
    assert _imports(bad) == [(1, "vsm_mcp.store.sqlite")]
