"""Pipeline discovery by file name: ``bench/pipelines/<id>.py`` defines a class named ``Pipeline``.

No registry to edit, as in automlbenchmark. ``$BENCH_PIPELINE_PATH`` (directories separated by ``:``)
adds folders searched first, for a team's own pipelines and for the tests' deliberately broken ones.
This module lives outside ``bench/pipelines/`` so that folder holds only pipelines, whose lines are measured.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.errors import BenchError

BUILTIN_DIR = Path(__file__).resolve().parent / "pipelines"
#: CPython 3.11 keeps ast.parse's recursion depth per interpreter, not per call: two threads parsing at once
#: (the slots of `bench run` claiming their first jobs) can raise "SystemError: AST constructor recursion depth
#: mismatch" (CPython gh-106905), which ends the whole run. Every parse of a pipeline file takes this lock.
PARSE_LOCK = threading.Lock()


def search_path() -> list[Path]:
    """``$BENCH_PIPELINE_PATH``'s folders, then the built-in pipelines."""
    extra = [Path(p) for p in os.environ.get("BENCH_PIPELINE_PATH", "").split(os.pathsep) if p]
    return [*extra, BUILTIN_DIR]


def available() -> list[str]:
    """Pipeline ids on the search path, first folder first; files starting with ``_`` are not pipelines."""
    names: dict[str, None] = {}
    for folder in search_path():
        for file in sorted(folder.glob("*.py")):
            if not file.stem.startswith("_"):
                names.setdefault(file.stem, None)
    return list(names)


def source_file(name: str) -> Path:
    """The file of pipeline ``name``: the first folder of the search path that has ``<name>.py``."""
    for folder in search_path():
        candidate = folder / f"{name}.py"
        if candidate.is_file():
            return candidate
    raise BenchError(f"unknown pipeline {name!r}; available: {', '.join(available())}", field="--pipelines")


def source_hash(name: str) -> str:
    return hashlib.sha256(source_file(name).read_bytes()).hexdigest()[:16]


def load_module(name: str) -> ModuleType:
    """Import the pipeline file (and so its framework); only workers and the cold-start probe call this."""
    return load_file(source_file(name), name)


def load_file(path: Path, name: str | None = None) -> ModuleType:
    """Import a pipeline file by path, on the search path or not (``bench check`` of a team's own file)."""
    path = Path(path)
    name = name or path.stem
    module_name = f"bench_pipeline_{name}"
    if module_name in sys.modules and Path(getattr(sys.modules[module_name], "__file__", "")) == path:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    if not hasattr(module, "Pipeline"):
        raise BenchError(f"{path} defines no class named Pipeline", field="Pipeline")
    return module


def class_attribute(name: str, attribute: str, default: Any = None) -> Any:
    """A constant class attribute of the pipeline's ``Pipeline``, read from its source: no framework import."""
    code = source_file(name).read_text(encoding="utf-8")
    with PARSE_LOCK:
        tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Pipeline":
            for stmt in node.body:
                target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
                    stmt.targets[0] if isinstance(stmt, ast.Assign) else None)
                if isinstance(target, ast.Name) and target.id == attribute and isinstance(
                        stmt.value, ast.Constant):
                    return stmt.value.value
    return default


def technology_of(name: str) -> str:
    """The ``technology`` class attribute, so the parent never imports a framework."""
    return str(class_attribute(name, "technology", "unknown"))
