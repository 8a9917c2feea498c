"""The Dask executor on a real cluster: same job function, failure records, resume and results as serial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow
import psutil
import pytest

from bench import tracking
from bench.errors import BenchError
from bench.execution import executors, runner
from bench.tasks import load_task
from tests.conftest import FAKE_PIPELINES, REPO

# Generous: on a 2-core machine loaded by other work (load average ~6) a tiny sklearn job with its cold-start probe
# took over 40 s with another job beside it (21 s at load 2). The hanging job costs this long: the test lasts longer.
MARGIN_S = 75


def make_config(uri: str, jobs_dir) -> runner.RunConfig:
    tracking.check_store(uri)
    return runner.RunConfig(tracking_uri=uri, budget_s=3, time_margin_s=MARGIN_S, memory_limit_mb=1500,
                            latency_n=100, latency_warmup=5, batch_rows=500, cold_start_repeats=1, suite="test",
                            job_root=jobs_dir)


def runs_by_name(uri: str):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True).set_index("tags.mlflow.runName")


@pytest.mark.slow
def test_dask_records_a_crash_and_a_timeout_the_rest_finish_as_in_a_serial_run(tmp_path, tiny_tasks,
                                                                               monkeypatch):
    monkeypatch.setenv("BENCH_PIPELINE_PATH", str(FAKE_PIPELINES))
    task = load_task(tiny_tasks["binary"])
    jobs = runner.plan([task], ["fails_hang", "fails_segfault", "sklearn_linear"], [0])
    linear = [j for j in jobs if j.pipeline == "sklearn_linear"]
    dask_uri, serial_uri = (f"sqlite:///{tmp_path / name / 'mlflow.db'}" for name in ("dask", "serial"))
    config, serial = make_config(dask_uri, tmp_path / "jobs-dask"), make_config(serial_uri, tmp_path / "jobs-serial")
    # The serial reference runs meanwhile, in a thread: the hanging job leaves a core idle for most of the test.
    with ThreadPoolExecutor(1) as pool:
        serial_outcomes = pool.submit(runner.run_all, linear, serial)
        events = []
        outcomes = executors.run_with_executor(jobs, config, lambda kind, job, _: events.append((kind, job.run_name)),
                                               executor="dask", workers=2)
        report = executors.LAST_REPORT
        assert {o.status for o in serial_outcomes.result()} == {"finished"}

    by_name = {o.job.run_name: o for o in outcomes}
    assert by_name["fails_segfault-s0"].cause == "crash" and "SIGSEGV" in by_name["fails_segfault-s0"].message
    assert by_name["fails_hang-s0"].cause == "timeout"
    assert by_name["sklearn_linear-s0"].status == "finished", by_name["sklearn_linear-s0"].message
    assert sorted(events) == sorted([("start", j.run_name) for j in jobs] + [("end", j.run_name) for j in jobs])
    assert report.executor == "dask" and report.workers == 2 and report.jobs == 3 and report.speedup > 0

    runs = runs_by_name(dask_uri)
    assert runs.loc["fails_segfault-s0", "status"] == runs.loc["fails_hang-s0", "status"] == "FAILED"
    assert runs.loc["fails_segfault-s0", "tags.failure_cause"] == "crash"
    assert runs.loc["fails_hang-s0", "tags.failure_cause"] == "timeout"
    assert (runs["tags.executor"] == "dask").all() and (runs["tags.workers"] == "2").all()
    if executors.core_plan(2, 1) is not None:  # two usable cores: each worker has its own
        finished = runs[runs["status"] == "FINISHED"]
        assert set(finished["tags.cpu_affinity"]) <= {",".join(map(str, c)) for c in executors.core_plan(2, 1)}

    # The same job run by the local (serial) executor gives the same quality on the same split.
    serial_runs = runs_by_name(serial_uri)
    assert (serial_runs["tags.executor"] == "local").all() and (serial_runs["tags.workers"] == "1").all()
    quality = [c for c in serial_runs if c.startswith("metrics.test_")] + ["metrics.primary_score", "tags.split_hash"]
    name = "sklearn_linear-s0"
    assert serial_runs.loc[name, quality].tolist() == runs.loc[name, quality].tolist()

    # Resume: finished jobs are skipped without starting a cluster.
    again = executors.run_with_executor(linear, config, executor="dask", workers=2)
    assert {o.status for o in again} == {"skipped"}


@pytest.mark.slow
def test_interrupt_kills_the_jobs_on_an_existing_cluster_and_marks_them_killed(tmp_path, tiny_tasks):
    from distributed import LocalCluster

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    tracking.check_store(uri)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address="127.0.0.1:0") as cluster:
        args = ["run", "--tasks", str(tiny_tasks["binary"]), "--pipelines", "fails_hang", "--budget", "3",
                "--time-margin", "300", "--scheduler", cluster.scheduler_address, "--tracking-uri", uri]
        env = os.environ | {"PYTHONPATH": str(REPO), "BENCH_PIPELINE_PATH": str(FAKE_PIPELINES)}
        proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            job = _wait_for_job_process(cluster, proc)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        assert not job.is_running() or job.status() == psutil.STATUS_ZOMBIE, "job process left behind"
    run = runs_by_name(uri).loc["fails_hang-s0"]
    assert run["status"] == "KILLED" and run["tags.failure_cause"] == "interrupted"
    assert run["tags.executor"] == "dask" and run["tags.workers"] == "1"


def _wait_for_job_process(cluster, proc: subprocess.Popen, timeout_s: float = 120) -> psutil.Process:
    """The job child a Dask worker of ``cluster`` started: forked by the pipeline's warm parent (the zygote)."""
    deadline = time.monotonic() + timeout_s
    workers = [psutil.Process(p.pid) for p in psutil.Process().children(recursive=True)]
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for worker in workers:
            for child in worker.children(recursive=True):
                try:
                    if "bench.execution.zygote" in child.cmdline() and child.ppid() != worker.pid:
                        return child
                except psutil.Error:
                    continue
        time.sleep(0.3)
    raise AssertionError("no job process started on the cluster")


def test_cores_are_split_between_workers_or_not_pinned_when_they_do_not_fit():
    assert executors.core_plan(2, 1, cores=[0, 1]) == [(0,), (1,)]
    assert executors.core_plan(2, 2, cores=[0, 1, 2, 3]) == [(0, 1), (2, 3)]
    assert executors.core_plan(3, 1, cores=[0, 1]) is None
    assert executors.default_workers(1) == len(executors.usable_cores()) >= executors.default_workers(2) >= 1


@pytest.mark.slow
def test_the_local_executor_refuses_parallel_options(store_uri, tmp_path):
    config = make_config(store_uri, tmp_path / "jobs")
    for kwargs in ({"workers": 2}, {"scheduler": "tcp://127.0.0.1:8786"}):
        with pytest.raises(BenchError, match="--executor dask"):
            executors.run_with_executor([], config, executor="local", **kwargs)
    with pytest.raises(BenchError, match="unknown executor"):
        executors.run_with_executor([], config, executor="ray")
