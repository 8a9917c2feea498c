"""The shape of the code, checked like behaviour: small modules, simple functions, data flowing one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from radon.complexity import cc_visit

from tests.conftest import REPO

PACKAGE = REPO / "bench"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "pipelines" not in p.relative_to(PACKAGE).parts)
MAX_LINES, MAX_COMPLEXITY = 400, 20
#: Layers from the bottom up: a module may import its own layer and those below, never one above.
LAYERS = {"analysis": {"bench.execution", "bench.stream", "bench.scale", "bench.deploy", "bench.cli",
                       "bench.report"},
          "report": {"bench.execution", "bench.stream", "bench.scale", "bench.deploy", "bench.cli"},
          "tasks": {"bench.execution", "bench.analysis", "bench.report", "bench.store", "bench.tracking",
                    "bench.deploy", "bench.cli"}}


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_are_small(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_name(path)} has {lines} lines (> {MAX_LINES}): split it by concern"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_functions_are_simple(path: Path):
    blocks = cc_visit(path.read_text(encoding="utf-8"))
    complex_ = [f"{b.name} ({b.complexity})" for b in blocks if b.complexity > MAX_COMPLEXITY]
    assert not complex_, f"{_name(path)}: cyclomatic complexity over {MAX_COMPLEXITY}: {', '.join(complex_)}"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_data_flows_one_way(layer: str):
    folder = PACKAGE / layer
    if not folder.is_dir():
        pytest.skip(f"bench/{layer}/ does not exist")
    offending = {_name(p): sorted(i for i in _imports(p) if any(i == f or i.startswith(f + ".") for f in
                                                                 LAYERS[layer]))
                 for p in folder.rglob("*.py")}
    assert not {k: v for k, v in offending.items() if v}, f"bench/{layer} imports a layer above it: {offending}"


def test_no_docstring_cites_a_document_the_repository_does_not_have():
    cited = re.compile(r"FACTS\.md|TASKS\.md|DESIGN(\.md)?\b|\bissue \d+|the (execution|architecture) issue")
    offending = [f"{_name(p)}:{i}" for p in [*PACKAGE.rglob("*.py"), *(REPO / "tests").glob("*.py")]
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if cited.search(line) and p.name != "test_hygiene.py"]
    assert not offending, f"cite what the repository holds, or state the fact: {offending}"
