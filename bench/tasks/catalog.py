"""Task files on disk: the tasks folder, one file by name or path, suites, and the definition hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from bench import safe_yaml
from bench.errors import TaskError
from bench.tasks.schema import Task, resolve_data_path, validate

# Keys of a task file that describe it without changing what is measured: left out of the definition hash, so
# adding reference scores to a task does not make every finished job of it run again.
UNHASHED_KEYS = ("reference",)


def tasks_dir() -> Path:
    """``$BENCH_TASKS_DIR``, else ``./tasks``, else the ``tasks/`` folder beside the package."""
    if env := os.environ.get("BENCH_TASKS_DIR"):
        return Path(env)
    here = Path.cwd() / "tasks"
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "tasks"


def _read_yaml(path: Path) -> Any:
    """A task or suite file through the safe reader: no aliases, no duplicate keys, at most 1 MiB."""
    return safe_yaml.load(path, error=TaskError)


def load_task(path: Path) -> Task:
    """Read and validate one task file; raises ``TaskError`` naming the file and field."""
    path = Path(path)
    spec = validate(_read_yaml(path), path)
    hashed = {k: v for k, v in spec.items() if k not in UNHASHED_KEYS}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode())
    if spec["source"]["type"] == "file":
        data_path = resolve_data_path(path, spec["source"]["path"])
        try:
            with data_path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise TaskError(f"cannot read {data_path} ({exc.strerror or exc}); check its permissions", file=path,
                            field="source.path") from None
    return Task(
        name=spec["name"], path=path.resolve(), kind=spec["kind"], target=spec["target"],
        metric=spec["metric"], source=spec["source"], prepare=spec["prepare"],
        positive_label=spec.get("positive_label"), test_size=spec["test_size"],
        description=spec.get("description", ""), stream=spec.get("stream", {}),
        reference=dict(spec.get("reference", {})),
        definition_hash=digest.hexdigest()[:16], raw=spec,
    )


def resolve_task(ref: str, base: Path | None = None) -> Task:
    """A task by name (``tasks/<name>.yaml``) or by path to a YAML file."""
    base = base or tasks_dir()
    if ref.endswith((".yaml", ".yml")) or os.sep in ref or "/" in ref:
        return load_task(Path(ref))
    candidate = base / f"{ref}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in base.glob("*.yaml")))
        raise TaskError(f"unknown task {ref!r}; known tasks: {known}; or give a path to a .yaml file",
                        field="--tasks")
    return load_task(candidate)


def suite_tasks(suite: str, base: Path | None = None) -> list[Task]:
    """The tasks a suite file (``tasks/suites/<suite>.yaml``: ``tasks: [...]``) lists."""
    base = base or tasks_dir()
    path = base / "suites" / f"{suite}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (base / "suites").glob("*.yaml")))
        raise TaskError(f"unknown suite {suite!r}; known suites: {known}", field="--suite")
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or set(raw) - {"tasks", "description"} or not isinstance(raw.get("tasks"), list):
        raise TaskError("expected a mapping with 'tasks: [name, ...]' (and an optional description)",
                        file=path, field="tasks")
    return [resolve_task(str(ref), base) for ref in raw["tasks"]]


def all_tasks(base: Path | None = None) -> list[Task]:
    base = base or tasks_dir()
    return [load_task(p) for p in sorted(base.glob("*.yaml"))]
