"""The house: imports flow one way (harness <- theory <- toymodels <- llm_bridge <- elasticity),
no package imports itself in a loop, the two lower floors never import torch, no file is long."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOORS = ("harness", "theory", "toymodels", "llm_bridge", "elasticity")
TORCH_FREE = ("harness", "theory")
HEAVY = ("torch", "transformers", "peft", "accelerate")


def _modules() -> dict[str, Path]:
    return {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
            for floor in FLOORS for path in sorted((ROOT / floor).rglob("*.py"))}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at the top or inside functions, except for type checking."""
    tree = ast.parse(path.read_text())
    skip = {id(node) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
            for node in ast.walk(n)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return out


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_never_run_up_a_floor(module):
    floor = FLOORS.index(module.split(".")[0])
    for name in _imports(MODULES[module]):
        top = name.split(".")[0]
        if top in FLOORS:
            assert FLOORS.index(top) <= floor, f"{module} imports {name}, a floor above it"
        if module.split(".")[0] in TORCH_FREE:
            assert top not in HEAVY, f"{module} imports {name}"


def test_no_import_loops():
    graph = {m: {n for n in _imports(p) if n in MODULES and n != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            assert state.get(nxt) != 1, "import loop: " + " -> ".join([*path, nxt])
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_file_over_400_lines():
    files = [p for p in ROOT.glob("*/**/*.py") if p.parts[len(ROOT.parts)] in (*FLOORS, "tests")]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
