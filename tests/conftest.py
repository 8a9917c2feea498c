"""Shared fixtures: small real task files (CSV on disk, validated like any user's) and a temp MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Pin native thread pools before numpy loads, as the harness does for its workers: on a busy 2-core
# machine oversubscribed OpenMP makes HistGradientBoosting several times slower.
os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE_PIPELINES = Path(__file__).resolve().parent / "fake_pipelines"


def write_task(folder: Path, kind: str, rows: int = 240, seed: int = 0, name: str | None = None) -> Path:
    """A CSV task with signal, string labels, a categorical with missing cells and a numeric with NaN."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    signal = 2 * x1 - x2 + np.where(colour == "red", 1.5, 0.0)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "noise": rng.normal(size=rows)})
    frame.loc[rng.random(rows) < 0.1, "x2"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "colour"] = ""
    if kind == "binary":
        frame["label"] = np.where(signal + rng.normal(scale=0.5, size=rows) > 0, "yes", "no")
    elif kind == "multiclass":
        frame["label"] = np.select([signal < -1, signal < 1], [0, 1], 2)  # integer labels, as digits has
    else:
        frame["label"] = 10 * signal + rng.normal(size=rows)
    name = name or f"tiny_{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.csv", index=False)
    lines = [f"name: {name}", f"kind: {kind}", "target: label", f"source: {{type: file, path: {name}.csv}}"]
    if kind == "binary":
        lines.append('positive_label: "yes"')
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_stream_task(folder: Path, periods: int = 6, rows: int = 12, extra: str = "") -> Path:
    """A hand-made stream: row ids, one signal column, a period column, labels that follow the signal."""
    rng = np.random.default_rng(0)
    n = periods * rows
    x = rng.normal(size=n)
    frame = pd.DataFrame({"row_id": np.arange(n, dtype=float), "x": x, "period": np.repeat(np.arange(periods), rows),
                          "label": np.where(x + rng.normal(scale=0.3, size=n) > 0, "yes", "no")})
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "hand.csv", index=False)
    path = folder / "hand.yaml"
    path.write_text("name: hand\nkind: binary\ntarget: label\npositive_label: 'yes'\n"
                    "source: {type: file, path: hand.csv}\n"
                    f"stream: {{period: period, initial_periods: 2{extra}}}\n")
    return path


BENCH = [sys.executable, "-m", "bench.cli"]


def bench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=os.environ | {"PYTHONPATH": str(REPO)} | (env or {}))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own data cache, so no test sees another's prepared data."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    (tmp_path / "mlflow").mkdir()
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


@pytest.fixture
def tiny_tasks(tmp_path: Path) -> dict[str, Path]:
    return {kind: write_task(tmp_path / "tasks", kind) for kind in ("binary", "multiclass", "regression")}
