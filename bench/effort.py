"""Effort counted fairly: the logical lines of a pipeline file's batch path and of its online path apart.

A pipeline that can learn online carries an ``update`` method and the helpers only it uses; counting those
lines against a pipeline used in batch would penalise it for a capability the batch user does not need. So
the file's LLOC (radon: statements, so formatting cannot change it) is split by what each path reaches:

- **batch**: the module-level code (imports, constants, class attributes) and the contract methods the batch
  job calls (``BATCH_ROOTS``), with every function, class and method of the file they reach, transitively;
- **online**: ``update`` and what it reaches that the batch path does not;
- **edge**: ``export_edge`` (the model converted for an edge runtime, and its inputs) and what it reaches that
  the batch path does not: deployment effort, apart from the batch path so exporting is not charged to it.

Reaching is by name within the file: a module-level function or class named anywhere in reached code, and a
method named as ``self.<m>``, ``cls.<m>`` or ``Pipeline.<m>``. A class reached is counted whole (a framework
calls its methods: ``forward``, callbacks). Code neither path reaches is in neither figure, only in ``lloc``.
"""

from __future__ import annotations

import ast
import textwrap

BATCH_ROOTS = ("__init__", "fit", "predict", "predict_proba", "save", "load", "encode", "predict_encoded",
               "native_model", "n_parameters", "get_params")
ONLINE_ROOTS = ("update",)
EDGE_ROOTS = ("export_edge",)
PIPELINE_CLASS = "Pipeline"

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _lloc(code: str, node: ast.AST) -> int:
    """Radon LLOC of one definition, decorators included."""
    from radon.raw import analyze

    lines = code.splitlines()
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return analyze(textwrap.dedent("\n".join(lines[start - 1:node.end_lineno])) + "\n").lloc


def _references(nodes: list[ast.AST]) -> tuple[set[str], set[str]]:
    """Names used, and attributes taken of ``self``/``cls``/``Pipeline``, anywhere inside ``nodes``."""
    names, methods = set(), set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and \
                    sub.value.id in ("self", "cls", PIPELINE_CLASS):
                methods.add(sub.attr)
    return names, methods


class _File:
    """The units of a pipeline file: module-level definitions, and the methods of ``Pipeline``."""

    def __init__(self, code: str) -> None:
        self.code = code
        tree = ast.parse(code)
        self.top = {n.name: n for n in tree.body if isinstance(n, _DEFS) and n.name != PIPELINE_CLASS}
        pipeline = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == PIPELINE_CLASS), None)
        body = pipeline.body if pipeline else []
        self.methods = {n.name: n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        # Module-level statements, the Pipeline class's own statements and its bases: always on the batch path.
        self.always = [n for n in tree.body if not isinstance(n, _DEFS)]
        self.always += [n for n in body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        self.always += [*pipeline.bases, *pipeline.decorator_list] if pipeline else []

    def reach(self, roots: tuple[str, ...], seeds: list[ast.AST]) -> set[tuple[str, str]]:
        """Units (``("top", name)`` or ``("method", name)``) reached from the root methods and seed code."""
        reached: set[tuple[str, str]] = set()
        todo = [("method", r) for r in roots if r in self.methods]
        names, methods = _references(seeds)
        todo += [("top", n) for n in names if n in self.top] + [("method", m) for m in methods if m in self.methods]
        while todo:
            unit = todo.pop()
            if unit in reached:
                continue
            reached.add(unit)
            names, methods = _references([self.node(unit)])
            todo += [("top", n) for n in names if n in self.top]
            todo += [("method", m) for m in methods if m in self.methods]
        return reached

    def node(self, unit: tuple[str, str]) -> ast.AST:
        return self.top[unit[1]] if unit[0] == "top" else self.methods[unit[1]]

    def lloc(self, units: set[tuple[str, str]]) -> int:
        return sum(_lloc(self.code, self.node(u)) for u in units)


def path_lloc(code: str) -> dict[str, float]:
    """``lloc_batch``, ``lloc_online`` and ``lloc_edge`` of a pipeline file's source (see the module docstring)."""
    from radon.raw import analyze

    file = _File(code)
    units = {("top", n) for n in file.top} | {("method", m) for m in file.methods}
    batch = file.reach(BATCH_ROOTS, file.always)
    online = file.reach(ONLINE_ROOTS, []) - batch
    edge = file.reach(EDGE_ROOTS, []) - batch
    batch_lloc = analyze(code).lloc - file.lloc(units - batch)
    return {"lloc_batch": float(batch_lloc), "lloc_online": float(file.lloc(online)),
            "lloc_edge": float(file.lloc(edge))}
