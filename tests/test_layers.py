"""The layer rule of ARCHITECTURE.md and the absence of import cycles, checked by walking every import.

Every module of the package belongs to a layer (a package, or one of the
top-level modules); each layer may import only the layers listed for it. An
import is read in every form: ``import vsm_mcp.a.b``, ``from vsm_mcp.a import
b``, ``from vsm_mcp import a``, relative imports, and imports inside
functions or ``if TYPE_CHECKING:`` blocks (a type-only import is still a
dependency of the design). The module graph has no cycle; importing a
module's own package (which Python does first anyway) is not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vsm_mcp"

#: The lower layers (ARCHITECTURE.md, "Allowed imports").
_LOWER: dict[str, set[str]] = {
    "errors": set(),
    "paths": {"errors"},
    "report": {"core", "errors"},
    "core": {"core", "errors"},
    "vsm": {"core", "vsm", "errors"},
    "store": {"core", "store", "errors"},
    "discovery": {"core", "discovery", "errors"},
    "sandbox": {"core", "sandbox", "errors"},
    "fleet": {"core", "vsm", "sandbox", "fleet", "errors"},
    "acquisition": {"core", "vsm", "sandbox", "fleet", "discovery", "acquisition", "errors"},
    "gateway": {"core", "vsm", "fleet", "discovery", "gateway", "errors"},
}
_BELOW_TOP = set(_LOWER)
#: Between the operational layers and the VSM systems: all of the lower layers, nothing above.
_LOWER_AND_BRIDGE = {**_LOWER, "bridge": set(_LOWER) | {"bridge"}}
#: The composition root and its helpers: every lower layer and each other, never the user interfaces.
_TOP = {"runtime", "settings", "doctor", "telemetry", "__init__"}
ALLOWED: dict[str, set[str]] = {
    **_LOWER_AND_BRIDGE,
    **{name: _BELOW_TOP | {"bridge"} | _TOP for name in _TOP},
    "cli": _BELOW_TOP | {"bridge"} | _TOP | {"cli", "bench", "web"},
    "web": _BELOW_TOP | {"bridge"} | _TOP | {"web"},
    "bench": _BELOW_TOP | {"bridge"} | _TOP | {"cli", "bench"},
}


def _modules(src: Path) -> dict[str, Path]:
    """Dotted module names of the package under ``src`` (``vsm_mcp.fleet`` for its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """Each package module that ``name`` (at ``path``) imports, with the line, in every form."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from a import b`` imports the module a.b when there is one, else a name of a.
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                for alias in node.names
            ]
        for imported in targets:
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                yield node.lineno, target


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def violations(src: Path = SRC) -> list[str]:
    modules = _modules(src)
    bad = []
    for name, path in sorted(modules.items()):
        layer = _layer(name)
        allowed = ALLOWED.get(layer)
        if allowed is None:
            bad.append(f"{name} is in no layer: add {layer!r} to ARCHITECTURE.md and this test")
            continue
        for line, target in _imported(name, path, modules):
            if _layer(target) not in allowed:
                bad.append(f"{name}:{line} imports {target} ({layer} may import only {sorted(allowed)})")
    return bad


def cycles(src: Path = SRC) -> list[list[str]]:
    """The module graph's strongly connected components of more than one module (Tarjan)."""
    modules = _modules(src)
    graph = {name: sorted({t for _, t in _imported(name, path, modules)}) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_layers_point_one_way() -> None:
    assert violations() == []


def test_no_module_imports_itself_back() -> None:
    assert cycles() == []


def test_every_module_is_checked() -> None:
    layers = {_layer(name) for name in _modules(SRC)}
    assert layers <= set(ALLOWED)
    assert {"runtime", "settings", "cli", "gateway", "fleet"} <= layers


def test_core_is_pure() -> None:
    """The core reads no clock it was not handed and touches no process, socket or file."""
    forbidden = {"subprocess", "socket", "sqlite3", "os", "asyncio", "anyio", "httpx", "mcp", "random"}
    bad = []
    for path in sorted((SRC / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            bad += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in forbidden]
    assert bad == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "vsm_mcp"
    for rel, text in {"__init__.py": "", **files}.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


@pytest.mark.parametrize(
    "text",
    [
        "from vsm_mcp.store.sqlite import SqliteStore\n",
        "import vsm_mcp.store.sqlite\n",
        "from vsm_mcp import store\n",
        "from ..store import sqlite\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vsm_mcp.store import sqlite\n",
        "def f():\n    from vsm_mcp.store.sqlite import SqliteStore\n",
    ],
)
def test_the_checker_fails_on_a_real_violation_in_every_form(tmp_path: Path, text: str) -> None:
    src = _package(
        tmp_path,
        {
            "store/__init__.py": "",
            "store/sqlite.py": "class SqliteStore: ...\n",
            "core/__init__.py": "",
            "core/bad.py": text,
        },
    )
    [found] = violations(src)
    assert found.startswith("vsm_mcp.core.bad:") and "imports vsm_mcp.store" in found


def test_the_checker_finds_a_cycle_and_a_module_in_no_layer(tmp_path: Path) -> None:
    src = _package(
        tmp_path,
        {
            "fleet/__init__.py": "",
            "fleet/a.py": "from vsm_mcp.fleet import b\n",
            "fleet/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vsm_mcp.fleet.a import A\n",
            "fleet/c.py": "from vsm_mcp.fleet import a\n",  # c -> a, no cycle
            "newthing.py": "",
        },
    )
    assert cycles(src) == [["vsm_mcp.fleet.a", "vsm_mcp.fleet.b"]]
    assert violations(src) == [
        "vsm_mcp.newthing is in no layer: add 'newthing' to ARCHITECTURE.md and this test"
    ]
