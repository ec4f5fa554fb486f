"""The layering rule, read from the imports (docs/architecture.md):

base modules import nothing above them; protocols/ only the base; adapters/ (and utils.py, which
re-exports them) only the base, so they run inside any WSGI server; worker/ the base, protocols/
and adapters/; supervisor/ only the base; main.py and cli.py wire everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "uvicorn"
BASE = {"uvicorn", "uvicorn.types", "uvicorn.exceptions", "uvicorn.config",
        "uvicorn.config_options", "uvicorn.config_values", "uvicorn.importer", "uvicorn.logging",
        "uvicorn.channels", "uvicorn.compiled"}  # fmt: skip
ALLOWED = {
    "protocols": BASE | {"uvicorn.protocols"},
    "adapters": BASE | {"uvicorn.adapters"},
    "worker": BASE | {"uvicorn.protocols", "uvicorn.worker", "uvicorn.adapters"},
    "supervisor": BASE | {"uvicorn.supervisor"},
}
# Modules that are pure sans-I/O cores: no event loop, sockets, processes or signals.
NO_IO = {"asyncio", "socket", "os", "signal", "selectors", "subprocess", "uvloop"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(module: str, allowed: set[str]) -> bool:
    if not module.startswith("uvicorn"):
        return True
    if module == "uvicorn":
        return True
    return any(module == a or module.startswith(a + ".") for a in allowed - {"uvicorn"})


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports(layer: str) -> None:
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in _imports(path):
            assert _allowed(module, ALLOWED[layer]), f"{path.name} imports {module}"


def test_base_modules_import_only_base() -> None:
    for name in BASE - {"uvicorn"}:
        path = PACKAGE / (name.split(".")[1] + ".py")
        for module in _imports(path):
            assert _allowed(module, BASE), f"{path.name} imports {module}"


def test_utils_imports_only_base_and_adapters() -> None:
    for module in _imports(PACKAGE / "utils.py"):
        assert _allowed(module, ALLOWED["adapters"]), f"utils.py imports {module}"


def test_protocol_cores_do_no_io() -> None:
    for path in sorted((PACKAGE / "protocols").rglob("*.py")):
        imported = {module.split(".")[0] for module in _imports(path)}
        assert not imported & NO_IO, f"{path.name} imports {imported & NO_IO}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_import_circles() -> None:
    """Not even through imports made for type checking only: each module can be understood
    (and tested) without the ones that use it."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {
        name: {module for module in _imports(path) if module in modules and module != name}
        for name, path in modules.items()
    }
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for imported in sorted(graph[name]):
            if state.get(imported) == 1:
                circles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "\n".join(" -> ".join(circle) for circle in circles)
