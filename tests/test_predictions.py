"""Kept predictions and ``bench rescore``, and the exit codes of ``bench run``.

The rescored primary metric must equal the one the job logged, on real runs of every task kind; ``bench run``
exits 0 when every job finished or was skipped as finished, 1 naming the failed jobs, 130 when interrupted.
"""

from __future__ import annotations

import signal

import mlflow
import numpy as np
import pandas as pd
import pytest

from bench import metrics, rescore
from bench.predictions import read_predictions, write_predictions
from tests.conftest import FAKE_PIPELINES, bench, write_task
from tests.test_reliability import runs, start_bench, wait_for_running

SMALL = ["--budget", "2", "--latency-n", "50", "--cold-start-repeats", "1", "--batch-rows", "200"]


@pytest.mark.parametrize("classes, positive", [(("no", "yes"), "yes"), ((0, 1, 2), None), ((False, True), True)])
def test_written_predictions_rescore_to_the_scores_the_job_computed(tmp_path, classes, positive):
    rng = np.random.default_rng(0)
    n = 50
    kind = "binary" if len(classes) == 2 else "multiclass"
    y = np.array([classes[i] for i in rng.integers(0, len(classes), size=n)], dtype=object)
    y = y if isinstance(classes[0], str) else y.astype(np.asarray(classes).dtype)
    proba = rng.dirichlet(np.ones(len(classes)), size=n)
    pred = np.array([classes[i] for i in proba.argmax(axis=1)], dtype=object)  # object labels, as FLAML gives
    expected = metrics.score_all(kind, y, pred, proba, classes, positive)
    path = tmp_path / "p.parquet"
    write_predictions(path, kind=kind, rows=np.arange(n) * 3, y_true=y, pred=pred, proba=proba, classes=classes,
                      positive_label=positive, split_hash="abc123", task="t", metric=metrics.METRIC_SETS[kind][0])
    frame, meta = read_predictions(path)
    assert meta["split_hash"] == "abc123" and tuple(meta["classes"]) == classes
    assert frame["row"].tolist() == list(np.arange(n) * 3)
    from bench.predictions import rescore as rescore_frame

    for name, value in expected.items():
        assert rescore_frame(frame, meta, name) == value, name


def test_regression_predictions_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    y, pred = rng.normal(size=40), rng.normal(size=40)
    path = tmp_path / "r.parquet"
    write_predictions(path, kind="regression", rows=np.arange(40), y_true=pd.Series(y), pred=pred, proba=None,
                      classes=(), positive_label=None, split_hash="h", task="t", metric="rmse")
    frame, meta = read_predictions(path)
    from bench.predictions import rescore as rescore_frame

    for name, value in metrics.score_all("regression", y, pred, None, (), None).items():
        assert rescore_frame(frame, meta, name) == value


@pytest.mark.slow
def test_rescore_equals_the_logged_primary_metric_and_exit_codes(tmp_path):
    tasks = [write_task(tmp_path / "tasks", kind, rows=160, name=f"pk_{kind}")
             for kind in ("binary", "multiclass", "regression")]
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    args = ["run", "--tasks", ",".join(map(str, tasks)), "--tracking-uri", uri, *SMALL]
    env = {"BENCH_PIPELINE_PATH": str(FAKE_PIPELINES)}
    ok = bench(*args, "--pipelines", "sklearn_linear,sklearn_hgb", cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr[-3000:]  # all finished

    rows = rescore.rescore_runs(uri, "accuracy", log=False)  # a metric some kinds lack: said per run
    assert {r.note for r in rows if r.value is None} == {"accuracy does not apply to a regression task"}
    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs(search_all_experiments=True)
    assert len(frame) == 6
    for _, run in frame.iterrows():
        metric = run["params.primary_metric"]
        [row] = [r for r in rescore.rescore_runs(uri, metric, tasks=[run["tags.task"]]) if r.run_id == run.run_id]
        assert row.value == run["metrics.primary_score"], (run.run_id, metric)
        assert mlflow.get_run(run.run_id).data.metrics[f"rescore_{metric}"] == row.value
        kept, meta = read_predictions(mlflow.artifacts.download_artifacts(
            run_id=run.run_id, artifact_path="predictions.parquet", dst_path=str(tmp_path / run.run_id)))
        assert meta["split_hash"] == run["tags.split_hash"]
        assert len(kept) == int(run["params.n_test"])

    out = bench("rescore", "--metric", "mae", "--tracking-uri", uri, cwd=tmp_path)
    assert out.returncode == 0 and "rescored 2 of 6 run(s)" in out.stdout, out.stdout + out.stderr

    failing = bench(*args, "--pipelines", "sklearn_linear,fails_raise", cwd=tmp_path, env=env)
    assert failing.returncode == 1, failing.stderr[-3000:]  # some failed, the rest skipped as finished
    summary = failing.stdout.replace("\n", " ")
    assert "finished 0, skipped (already measured) 3, failed 3" in summary
    last = failing.stderr.strip().splitlines()[-1]
    assert last.startswith("3 job(s) failed: ") and all(f"pk_{k}/fails_raise-s0" in last
                                                        for k in ("binary", "multiclass", "regression")), last

    skipped = bench(*args, "--pipelines", "sklearn_linear,sklearn_hgb", cwd=tmp_path, env=env)
    assert skipped.returncode == 0, skipped.stderr[-3000:]  # all skipped as already finished


@pytest.mark.slow
def test_ctrl_c_exits_130(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", name="ctrl_c")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    proc = start_bench(["run", "--tasks", str(task), "--pipelines", "slow_constant", "--tracking-uri", uri,
                        *SMALL], tmp_path)
    wait_for_running(uri, "slow_constant-s0", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert runs(uri).set_index("tags.mlflow.runName").loc["slow_constant-s0", "tags.failure_cause"] == "interrupted"
