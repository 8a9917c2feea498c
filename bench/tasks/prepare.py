"""A task's data made ready for every pipeline: preparation steps, one dtype per feature role, checked target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.api import TaskInfo
from bench.errors import TaskError
from bench.tasks import expressions
from bench.tasks.schema import TARGET_COLUMN, Task
from bench.tasks.sources import load_source


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
    return from_frame(task, load_source(task))


def from_frame(task: Task, frame: pd.DataFrame) -> TaskData:
    """A task's data from rows already in memory, prepared exactly as ``load_data`` prepares a source's rows."""
    df = _prepare(frame, task)
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
