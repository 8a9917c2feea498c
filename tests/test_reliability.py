"""Faults around a suite: interrupts keep what was measured, concurrent runs share the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import mlflow
import psutil

from bench import tracking
from tests.conftest import FAKE_PIPELINES, REPO, write_task

SMALL = ["--budget", "5", "--latency-n", "100", "--cold-start-repeats", "1", "--batch-rows", "500"]


def start_bench(args: list[str], cwd) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO), "BENCH_PIPELINE_PATH": str(FAKE_PIPELINES)}
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def runs(uri: str):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True)


def wait_for_running(uri: str, run_name: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        frame = runs(uri)
        if len(frame) and ((frame["tags.mlflow.runName"] == run_name)
                                                 & (frame["status"] == "RUNNING")).any():
            return
        time.sleep(0.3)
    raise AssertionError(f"{run_name} never started")


def test_sigterm_keeps_finished_runs_marks_the_running_one_killed_and_a_rerun_completes(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", name="interrupted")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    args = ["run", "--tasks", str(task), "--pipelines", "sklearn_linear,slow_constant", "--tracking-uri", uri,
            *SMALL]
    tracking.check_store(uri)  # so this test's polling never races the store's creation
    proc = start_bench(args, tmp_path)
    wait_for_running(uri, "slow_constant-s0", proc)
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE], "worker left behind"

    frame = runs(uri).set_index("tags.mlflow.runName")
    assert frame.loc["sklearn_linear-s0", "status"] == "FINISHED"
    assert frame.loc["slow_constant-s0", "status"] == "KILLED"
    assert frame.loc["slow_constant-s0", "tags.failure_cause"] == "interrupted"

    rerun = start_bench(args, tmp_path)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    finished = runs(uri).query("status == 'FINISHED'")
    assert sorted(finished["tags.mlflow.runName"]) == ["sklearn_linear-s0", "slow_constant-s0"]
    assert finished["tags.job_key"].is_unique


def test_two_bench_runs_on_one_store_run_each_job_once(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", name="shared")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    args = ["run", "--tasks", str(task), "--pipelines", "slow_constant,sklearn_linear", "--seeds", "2",
            "--tracking-uri", uri, *SMALL]
    first, second = start_bench(args, tmp_path), start_bench(args, tmp_path)
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, results
    frame = runs(uri)
    finished = frame[frame["status"] == "FINISHED"]
    assert len(finished) == 4 and finished["tags.job_key"].is_unique
    assert len(frame) == 4, "losing claimants delete their run: no duplicates, no orphans"
    summaries = " ".join(out for out, _ in results).replace("\n", " ")
    assert "run by another process" in summaries
