"""The one child protocol: every kind of child (suite job, stream job, scale point) ends with the same causes,
warm parents fork jobs without losing isolation, and nothing outlives its supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import scale, stream, tracking
from bench.execution import child, runner
from bench.execution.pool import WarmPool
from bench.tasks import load_task
from tests.conftest import FAKE_PIPELINES, REPO, write_stream_task, write_task

FAULTS = {"fails_raise": "exception", "fails_hang": "timeout", "fails_memory": "memory", "fails_segfault": "crash"}


@pytest.fixture(autouse=True)
def fake_pipelines(monkeypatch):
    monkeypatch.setenv("BENCH_PIPELINE_PATH", str(FAKE_PIPELINES))


@pytest.mark.slow
def test_a_scale_point_fails_with_the_same_causes_as_a_suite_job(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", rows=200)
    causes = {}
    for pipeline in FAULTS:
        spec = scale.PointSpec(str(task), pipeline, None, budget_s=1, batch_rows=100)
        point = scale.run_point(spec, time_limit_s=8, root=tmp_path, memory_limit_mb=700)
        causes[pipeline] = point.cause
        assert point.status in ("failed", "timeout") and point.error
    assert causes == FAULTS
    ok = scale.run_point(scale.PointSpec(str(task), "sklearn_linear", 100, budget_s=2, batch_rows=100), 120, tmp_path)
    assert ok.status == "ok" and ok.metrics["train_rows"] >= 100
    assert not list(tmp_path.glob("*-*-*/spec.json")), "point folders are removed once read"


@pytest.mark.slow
def test_a_stream_job_fails_with_the_same_causes_and_keeps_its_run(tmp_path, store_uri):
    task = load_task(write_stream_task(tmp_path / "tasks"))
    tracking.check_store(store_uri)
    config = stream.StreamConfig(store_uri, budget_s=1, update_budget_s=1, time_margin_s=7, out=tmp_path / "out")
    config.memory_limit_mb = 700
    outcomes = stream.run_sweep(task, list(FAULTS), ["static"], config)
    assert {o.pipeline: o.cause for o in outcomes} == FAULTS
    client = tracking._client(store_uri)
    runs = {r.data.tags["pipeline"]: r for r in client.search_runs(
        [client.get_experiment_by_name("stream-hand").experiment_id], "tags.kind = 'stream'")}
    assert {p: (r.info.status, r.data.tags["failure_cause"]) for p, r in runs.items()} == {
        p: ("FAILED", c) for p, c in FAULTS.items()}


def hang(folder: Path) -> None:
    """An entry function that never ends by itself."""
    time.sleep(3600)


@pytest.mark.slow
def test_a_warm_parent_forks_isolated_children_with_their_own_limits(tmp_path):
    pool = WarmPool()
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    zygote = pool.get("sklearn_linear", 1, env, tmp_path / "zygote.log")
    try:
        assert zygote is not None and zygote.import_s > 0
        pids = []
        for i, (entry, cause) in enumerate([("os:getcwd", "exception"), ("tests.test_child_protocol:hang", "timeout")]):
            folder = tmp_path / f"c{i}"
            child.write_spec(folder, {})
            handle = zygote.fork(entry, folder)
            assert handle is not None
            pids.append(handle.pid)
            assert psutil.Process(handle.pid).ppid() == zygote.proc.pid
            limits = child.Limits(2, 10_000)
            end = child.classify(handle, child.supervise(handle, limits), limits)
            assert end.cause == cause, end
        assert pids[0] != pids[1] and zygote.alive, "one child per request; the warm parent lives on"
    finally:
        pool.close()
    assert zygote.proc.poll() is not None


@pytest.mark.slow
def test_nothing_outlives_a_sigkilled_bench_run(tmp_path):
    task = write_task(tmp_path / "tasks", "binary")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    env = os.environ | {"BENCH_PIPELINE_PATH": str(FAKE_PIPELINES)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--tasks", str(task), "--pipelines",
                             "fails_hang", "--budget", "1", "--time-margin", "600", "--jobs", "1",
                             "--cold-start-repeats", "1", "--tracking-uri", uri], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        tree: list[psutil.Process] = []
        while time.monotonic() < deadline:  # wait for the job child: bench run -> zygote -> job
            tree = psutil.Process(proc.pid).children(recursive=True)
            if any(p.ppid() != proc.pid for p in tree):
                break
            time.sleep(0.2)
        assert any(p.ppid() != proc.pid for p in tree), "the job child never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(tree, timeout=15)
        assert not alive, f"left running after their supervisor died: {[p.cmdline()[:4] for p in alive]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_the_summary_splits_the_suite_time_into_fit_measuring_and_overhead(tmp_path, store_uri, capsys):
    from bench.cli import main

    task = write_task(tmp_path / "tasks", "regression")
    code = main(["run", "--tasks", str(task), "--pipelines", "sklearn_linear", "--budget", "2", "--latency-n", "100",
                 "--cold-start-repeats", "1", "--batch-rows", "500", "--tracking-uri", store_uri])
    assert code == 0
    out = capsys.readouterr().out
    assert "fit" in out and "measuring" in out and "overhead" in out
    (run,) = tracking._client(store_uri).search_runs([tracking.experiment_id(store_uri, "tiny_regression")])
    metrics = run.data.metrics
    phases = {k for k in metrics if k.startswith("phase_")}
    assert {"phase_start_s", "phase_data_s", "phase_fit_s", "phase_scoring_s", "phase_batch_s", "phase_latency_s",
            "phase_save_s", "phase_cold_start_s", "phase_logging_s"} <= phases
    assert metrics["overhead_s"] == pytest.approx(
        metrics["job_wall_s"] - metrics["phase_fit_s"] - metrics["measuring_s"], abs=1e-6)
    assert metrics["cold_start_s"] == pytest.approx(
        metrics["cold_import_s"] + metrics["cold_load_s"] + metrics["cold_first_predict_ms"] / 1e3)
    # serving memory: the imports above a bare interpreter (pandas, scikit-learn, skops) plus load + one prediction
    serving = metrics["serving_import_rss_mb"] + metrics["serving_model_rss_mb"]
    assert metrics["serving_rss_mb"] == pytest.approx(serving)
    assert 20 < metrics["serving_import_rss_mb"] < 4000 and metrics["serving_model_rss_mb"] >= 0
    assert 5 < metrics["bare_rss_mb"] < metrics["serving_import_rss_mb"] + metrics["bare_rss_mb"]
    assert "minus a bare one's" in run.data.params["serving_memory_protocol"]
    assert run.data.params["protocol_version"] == runner.PROTOCOL_VERSION == "2"
    assert run.data.tags["concurrent_jobs"] >= "1"
    assert not list(Path(tmp_path).glob("bench-jobs-*")), "job folders are removed"
