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
from hypothesis import strategies as st

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


BASE = {"fit_wall_s": 1.0, "fit_cpu_s": 1.0, "batch_rows_per_s": 1e5, "latency_p50_ms": 1.0,
        "latency_p99_ms": 2.0, "model_latency_p50_ms": 0.5, "model_bytes": 1e6, "peak_rss_mb": 50.0,
        "cold_start_s": 2.0, "lloc": 50.0, "complexity_total": 10.0, "online_learning": 0.0, "latency_n": 1000.0}


def fake_runs(spec: dict[str, dict], tasks: tuple[str, ...] = ("auc_task", "rmse_task"), seeds: int = 3,
              failed: tuple[tuple[str, str, int], ...] = ()) -> pd.DataFrame:
    """Runs as ``store.read_runs`` returns them (plain column names, ``kind``): see :func:`fake_mlflow_runs`."""
    from bench import store

    return store.plain(fake_mlflow_runs(spec, tasks, seeds, failed))


def fake_mlflow_runs(spec: dict[str, dict], tasks: tuple[str, ...] = ("auc_task", "rmse_task"), seeds: int = 3,
                     failed: tuple[tuple[str, str, int], ...] = ()) -> pd.DataFrame:
    """Runs as mlflow.search_runs returns them. ``skill`` in a pipeline's spec is the fraction of the way
    from the constant predictor to a perfect score (+0.01 per seed); other keys override BASE metrics."""
    rows = []
    t0 = pd.Timestamp("2026-11-01", tz="UTC")
    for t_i, task in enumerate(tasks):
        rmse = "rmse" in task
        const = 80.0 if rmse else 0.5
        for pipeline, overrides in spec.items():
            for seed in range(seeds):
                values = BASE | {k: v for k, v in overrides.items() if k not in ("skill", "technology")}
                skill = overrides.get("skill", 0.5) + 0.01 * seed
                score = const * (1 - 0.5 * skill) if rmse else const + (1 - const) * skill
                bad = (task, pipeline, seed) in failed
                row = {"run_id": f"{task}-{pipeline}-{seed}", "experiment_id": str(t_i + 1),
                       "status": "FAILED" if bad else "FINISHED", "start_time": t0 + pd.Timedelta(minutes=len(rows)),
                       "tags.task": task, "tags.pipeline": pipeline, "tags.seed": str(seed),
                       "tags.technology": overrides.get("technology", "sklearn"),
                       "tags.job_key": f"{task}-{pipeline}-{seed}",
                       "params.primary_metric": "rmse" if rmse else "roc_auc",
                       "params.version.scikit-learn": "1.9.1", "tags.cpu_model": "test CPU"}
                if bad:
                    row["tags.failure_cause"] = "exception"
                else:
                    row |= {"metrics.primary_score": score, "metrics.primary_constant": const}
                    row |= {f"metrics.{k}": float(v) for k, v in values.items()}
                rows.append(row)
    return pd.DataFrame(rows)


#: Hypothesis values for YAML-like fields: scalars, lists and mappings nested a few levels.
FUZZ_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                         st.text(max_size=8))
FUZZ_VALUES = st.recursive(FUZZ_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)


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
