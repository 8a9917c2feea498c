"""Jobs in real processes: failures of every kind are recorded with their cause, the rest finish, reruns resume."""

from __future__ import annotations

import mlflow
import pytest

from bench import tracking
from bench.execution import runner
from bench.tasks import load_task
from tests.conftest import FAKE_PIPELINES

REQUIRED_METRICS = {
    "primary_score", "primary_constant", "test_roc_auc", "test_log_loss", "test_accuracy", "test_balanced_accuracy",
    "fit_wall_s", "fit_cpu_s", "peak_rss_mb", "batch_rows_per_s", "latency_p50_ms", "latency_p90_ms",
    "latency_p99_ms", "latency_n", "model_latency_p50_ms", "cold_start_s", "model_bytes", "lloc",
    "complexity_total", "budget_used_frac",
}


@pytest.fixture
def config(store_uri, tmp_path, monkeypatch) -> runner.RunConfig:
    monkeypatch.setenv("BENCH_PIPELINE_PATH", str(FAKE_PIPELINES))
    tracking.check_store(store_uri)
    return runner.RunConfig(tracking_uri=store_uri, budget_s=3, time_margin_s=45, memory_limit_mb=1200,
                            latency_n=100, latency_warmup=5, batch_rows=500, cold_start_repeats=1, suite="test",
                            job_root=tmp_path / "jobs")


def runs_by_name(uri: str) -> dict[str, object]:
    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs(search_all_experiments=True)
    return {row["tags.mlflow.runName"]: row for _, row in frame.iterrows()}


@pytest.mark.slow
def test_failures_are_recorded_and_the_suite_goes_on(config, tiny_tasks):
    task = load_task(tiny_tasks["binary"])
    pipelines = ["fails_raise", "fails_hang", "fails_memory", "fails_segfault", "sklearn_linear"]
    outcomes = runner.run_all(runner.plan([task], pipelines, [0]), config)
    by_pipeline = {o.job.pipeline: o for o in outcomes}

    assert by_pipeline["sklearn_linear"].status == "finished"
    assert {p: by_pipeline[p].cause for p in pipelines[:4]} == {
        "fails_raise": "exception", "fails_hang": "timeout", "fails_memory": "memory", "fails_segfault": "crash"}
    assert "deliberate failure in fit" in by_pipeline["fails_raise"].message
    assert "SIGSEGV" in by_pipeline["fails_segfault"].message

    runs = runs_by_name(config.tracking_uri)
    assert runs["sklearn_linear-s0"]["status"] == "FINISHED"
    metrics = {k.removeprefix("metrics.") for k, v in runs["sklearn_linear-s0"].items()
               if k.startswith("metrics.") and v == v}
    assert metrics >= REQUIRED_METRICS
    for name, cause in [("fails_raise-s0", "exception"), ("fails_hang-s0", "timeout"),
                        ("fails_memory-s0", "memory"), ("fails_segfault-s0", "crash")]:
        assert runs[name]["status"] == "FAILED"
        assert runs[name]["tags.failure_cause"] == cause
    trace = mlflow.artifacts.load_text(f"runs:/{runs['fails_raise-s0']['run_id']}/error.txt")
    assert "ValueError: deliberate failure in fit" in trace


@pytest.mark.slow
def test_rerun_skips_finished_jobs_and_force_reruns_them(config, tiny_tasks):
    jobs = runner.plan([load_task(tiny_tasks["regression"])], ["sklearn_linear", "fails_raise"], [0, 1])
    first = runner.run_all(jobs, config)
    assert [o.status for o in first].count("finished") == 2

    second = runner.run_all(jobs, config)
    statuses = {(o.job.pipeline, o.job.seed): o.status for o in second}
    assert statuses[("sklearn_linear", 0)] == statuses[("sklearn_linear", 1)] == "skipped"
    assert statuses[("fails_raise", 0)] == "failed", "failed jobs are retried, not skipped"

    config.force = True
    third = runner.run_all(jobs[:1], config)
    assert third[0].status == "finished"


@pytest.mark.slow
def test_job_key_changes_with_what_changes_the_measurement(config, tiny_tasks):
    job = runner.Job(load_task(tiny_tasks["binary"]), "sklearn_linear", 0)
    key = runner.job_key(job, config)
    assert key == runner.job_key(runner.Job(load_task(tiny_tasks["binary"]), "sklearn_linear", 0), config)
    assert key != runner.job_key(runner.Job(job.task, "sklearn_linear", 1), config)
    assert key != runner.job_key(runner.Job(job.task, "sklearn_hgb", 0), config)
    config.budget_s = 99
    assert key != runner.job_key(job, config)


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_and_split(config, tiny_tasks):
    task = load_task(tiny_tasks["multiclass"])
    config.force = True
    runner.run_all(runner.plan([task], ["sklearn_hgb"], [0]), config)
    runner.run_all(runner.plan([task], ["sklearn_hgb"], [0]), config)
    mlflow.set_tracking_uri(config.tracking_uri)
    frame = mlflow.search_runs(search_all_experiments=True)
    assert len(frame) == 2
    assert frame["metrics.test_balanced_accuracy"].nunique() == 1
    assert frame["tags.split_hash"].nunique() == 1
    experiment = mlflow.get_experiment(frame["experiment_id"].iloc[0])
    assert experiment.name == task.name
    assert experiment.artifact_location.endswith(f"mlflow/artifacts/{task.name}")
