"""The package's layers: imports point down only (see docs/architecture.md).

surfaces -> runtime -> store -> definitions; errors and ids sit below them all. Every module's imports
are read with ast, so a module that imports upwards fails here, whoever wrote it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "batchrun"
LAYERS = ("base", "definitions", "store", "runtime", "surfaces", "face")
BASE = {"batchrun.errors", "batchrun.ids"}
FACE = {"batchrun", "batchrun.__main__"}

pytestmark = pytest.mark.timeout(30)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module in BASE:
        return "base"
    if module in FACE:
        return "face"
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        raise AssertionError(f"{module} belongs to no layer: put it in one of {LAYERS[1:-1]}")
    return parts[1]


def imports_of(path: Path) -> set[str]:
    """Absolute names of the batchrun modules a file imports, relative imports resolved.
    `from batchrun.store import keys` names batchrun.store.keys, not the package."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "batchrun"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == "batchrun":
                found |= {_submodule(base, alias.name) for alias in node.names}
    return found


def _submodule(base: str, name: str) -> str:
    candidate = PACKAGE.parent.joinpath(*f"{base}.{name}".split("."))
    return f"{base}.{name}" if candidate.is_dir() or candidate.with_suffix(".py").exists() else base


def upward(here: str, imported: set[str]) -> list[str]:
    rank = LAYERS.index(layer_of(here))
    return sorted(m for m in imported if LAYERS.index(layer_of(m)) > rank)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    here = module_name(path)
    assert not upward(here, imports_of(path)), f"{here} imports from a higher layer"


def test_the_check_catches_an_upward_import():
    """Guard against a check that cannot fail."""
    assert upward("batchrun.store.keys", {"batchrun.runtime.supervisor"}) == ["batchrun.runtime.supervisor"]
    assert upward("batchrun.definitions.config", {"batchrun.store.keys", "batchrun.errors"}) == ["batchrun.store.keys"]
    assert upward("batchrun.runtime.worker", {"batchrun.store.broker", "batchrun.definitions.registry"}) == []
    assert "batchrun.store.broker" in imports_of(PACKAGE / "runtime" / "worker.py")
