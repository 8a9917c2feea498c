"""Jobs (task x pipeline x seed): planning, keys for resume, and one supervised process per job.

A crash, a hang past the time limit or a memory blow-up ends that job only: it is recorded as a failed
MLflow run with its cause and traceback, and the suite goes on. The supervisor watches the worker's real
memory (RSS of its process tree), not its address space: TensorFlow and torch map far more virtual memory
than they use, so ``RLIMIT_AS`` would kill healthy jobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import environment, tracking
from bench.measure import thread_env
from bench.pipelines import source_hash, technology_of
from bench.tasks import Task
from bench.worker import JobSpec

#: Bump when a change to the measurement protocol makes old figures incomparable: it is part of the job key.
PROTOCOL_VERSION = "1"
POLL_S = 0.1


@dataclass(frozen=True)
class Job:
    task: Task
    pipeline: str
    seed: int

    @property
    def run_name(self) -> str:
        return f"{self.pipeline}-s{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.task.name}/{self.run_name}"


@dataclass
class RunConfig:
    """Settings shared by every job of one ``bench run``; all of them are logged with each run."""

    tracking_uri: str
    budget_s: float = 60.0
    threads: int = 1
    time_margin_s: float = 180.0
    memory_limit_mb: float = 0.6 * psutil.virtual_memory().total / 2**20
    suite: str = "custom"
    force: bool = False
    latency_n: int = 1000
    latency_warmup: int = 50
    batch_rows: int = 10_000
    cold_start_repeats: int = 3
    executor: str = "local"
    workers: int = 1
    job_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-jobs-")))

    @property
    def time_limit_s(self) -> float:
        """Hard limit: the fit budget plus a margin for start-up, measurement, cold start and logging."""
        return self.budget_s + self.time_margin_s


@dataclass
class Outcome:
    job: Job
    status: str  # finished | failed | skipped | claimed (another process runs it)
    run_id: str | None = None
    cause: str = ""
    message: str = ""
    seconds: float = 0.0
    primary_score: float | None = None


def job_key(job: Job, config: RunConfig) -> str:
    """Same key = same measurement: task definition, pipeline source, seed, budget, threads, versions."""
    parts = {"task": job.task.definition_hash, "pipeline": job.pipeline, "source": source_hash(job.pipeline),
             "seed": job.seed, "budget": config.budget_s, "threads": config.threads,
             "versions": environment.versions(), "protocol": PROTOCOL_VERSION}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def plan(tasks: list[Task], pipelines: list[str], seeds: list[int]) -> list[Job]:
    return [Job(t, p, s) for t in tasks for s in seeds for p in pipelines]


def run_tags(job: Job, config: RunConfig, key: str) -> dict[str, str]:
    machine = environment.machine()
    return {"task": job.task.name, "pipeline": job.pipeline, "technology": technology_of(job.pipeline),
            "seed": str(job.seed), "suite": config.suite, "job_key": key, "task_hash": job.task.definition_hash,
            "pipeline_hash": source_hash(job.pipeline), "executor": config.executor,
            "workers": str(config.workers), "cpu_model": machine["cpu_model"],
            "git_revision": machine["git_revision"], "mlflow.runName": job.run_name}


def run_params(job: Job, config: RunConfig) -> dict[str, str]:
    machine = environment.machine()
    params = {"primary_metric": job.task.metric, "task_kind": job.task.kind,
              "budget_s": config.budget_s, "threads": config.threads, "time_limit_s": config.time_limit_s,
              "memory_limit_mb": round(config.memory_limit_mb), "protocol_version": PROTOCOL_VERSION,
              "cpu_count": machine["cpu_count"], "memory_gb": machine["memory_gb"],
              "platform": machine["platform"]}
    params |= {f"version.{k}": v for k, v in environment.versions().items()}
    return {k: str(v) for k, v in params.items()}


def execute(job: Job, config: RunConfig, run_id: str | None) -> Outcome:
    """Run one job in a supervised process; record failures on ``run_id``. Never raises for a job's fault."""
    config.job_root.mkdir(parents=True, exist_ok=True)
    job_dir = Path(tempfile.mkdtemp(prefix=f"{job.task.name}-{job.run_name}-", dir=config.job_root))
    JobSpec(task_path=str(job.task.path), pipeline=job.pipeline, seed=job.seed, budget_s=config.budget_s,
            threads=config.threads, run_id=run_id, tracking_uri=config.tracking_uri, latency_n=config.latency_n,
            latency_warmup=config.latency_warmup, batch_rows=config.batch_rows,
            cold_start_repeats=config.cold_start_repeats).write(job_dir)
    env = os.environ | thread_env(config.threads) | {"MLFLOW_TRACKING_URI": config.tracking_uri}
    started = time.monotonic()
    with (job_dir / "worker.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.worker", str(job_dir)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            cause = _supervise(proc, config)
        except BaseException:  # interrupted (SIGINT/SIGTERM): the job dies with us; run_one marks it killed
            _kill_tree(proc)
            raise
    seconds = time.monotonic() - started
    return _record(job, config, run_id, job_dir, proc.returncode, cause, seconds)


def _supervise(proc: subprocess.Popen, config: RunConfig) -> str:
    """Wait for the worker; kill it on time-out or memory excess and say which."""
    deadline = time.monotonic() + config.time_limit_s
    limit_bytes = config.memory_limit_mb * 2**20
    while proc.poll() is None:
        if time.monotonic() > deadline:
            _kill_tree(proc)
            return "timeout"
        if _tree_rss(proc.pid) > limit_bytes:
            _kill_tree(proc)
            return "memory"
        time.sleep(POLL_S)
    return ""


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _kill_tree(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _record(job: Job, config: RunConfig, run_id: str | None, job_dir: Path, returncode: int, cause: str,
            seconds: float) -> Outcome:
    result_file, error_file = job_dir / "result.json", job_dir / "error.json"
    log_tail = _tail(job_dir / "worker.log")
    if not cause and returncode == 0 and result_file.exists():
        if run_id:
            tracking.finish_run(config.tracking_uri, run_id)
        score = json.loads(result_file.read_text())["metrics"]["primary_score"]
        return Outcome(job, "finished", run_id, seconds=seconds, primary_score=score)
    if result_file.exists() and not cause:
        # Measured, then failed while logging: keep every figure, say what went wrong.
        result = json.loads(result_file.read_text())
        if run_id:
            tracking.log_job_result(config.tracking_uri, run_id, result)
            tracking.finish_run(config.tracking_uri, run_id)
        return Outcome(job, "finished", run_id, "logging", f"logging failed: {log_tail[-300:]}", seconds,
                       result["metrics"]["primary_score"])
    if cause == "timeout":
        message = f"killed after the time limit of {config.time_limit_s:.0f} s (budget {config.budget_s:g} s " \
                  f"+ margin {config.time_margin_s:g} s)"
        trace = log_tail
    elif cause == "memory":
        message = f"killed when its memory (RSS) passed the limit of {config.memory_limit_mb:.0f} MB"
        trace = log_tail
    elif error_file.exists():
        error = json.loads(error_file.read_text())
        cause, message, trace = "exception", f"{error['type']}: {error['message']}", error["traceback"]
    elif returncode < 0:
        name = signal.Signals(-returncode).name
        cause = "crash" if name in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL") else "killed"
        message, trace = f"the worker died of {name}", log_tail
    else:
        cause, message, trace = "crash", f"the worker exited with code {returncode}", log_tail
    if run_id:
        tracking.fail_run(config.tracking_uri, run_id, cause, message, trace)
    return Outcome(job, "failed", run_id, cause, message, seconds)


def _tail(path: Path, limit: int = 20_000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class PendingJob:
    """A job still to run, with what its process needs: its key and the experiment it logs to."""

    job: Job
    key: str
    experiment_id: str


def pending_jobs(jobs: list[Job], config: RunConfig) -> tuple[list[PendingJob], list[Outcome]]:
    """Split jobs into those to run and those already finished in the store (unless ``force``).

    Creates each task's experiment here, in the parent, before any worker starts (FACTS.md: concurrent
    creation of a fresh SQLite store fails).
    """
    names = {j.task.name for j in jobs}
    experiments = {name: tracking.experiment_id(config.tracking_uri, name) for name in names}
    done = set() if config.force else tracking.finished_job_keys(config.tracking_uri, list(experiments.values()))
    pending, skipped = [], []
    for job in jobs:
        key = job_key(job, config)
        if key in done:
            skipped.append(Outcome(job, "skipped"))
        else:
            pending.append(PendingJob(job, key, experiments[job.task.name]))
    return pending, skipped


def run_one(item: PendingJob, config: RunConfig) -> Outcome:
    """Open the job's MLflow run, then execute it in its own supervised process. Any executor calls this."""
    job = item.job
    run_id = tracking.claim_run(config.tracking_uri, item.experiment_id, job.run_name,
                                run_tags(job, config, item.key), run_params(job, config),
                                rerun_finished=config.force)
    if run_id is None:
        return Outcome(job, "claimed", message="another bench process has run or is running this job")
    try:
        return execute(job, config, run_id)
    except BaseException:  # interrupted anywhere after the claim: the run must not stay RUNNING
        tracking.fail_run(config.tracking_uri, run_id, "interrupted", "the suite was interrupted", "", killed=True)
        raise


def run_all(jobs: list[Job], config: RunConfig,
            on_event: Callable[[str, Job, Outcome | None], None] = lambda *_: None) -> list[Outcome]:
    """Run jobs one after the other (the local executor), skipping those already finished in the store."""
    pending, outcomes = pending_jobs(jobs, config)
    for outcome in outcomes:
        on_event("skipped", outcome.job, outcome)
    for item in pending:
        on_event("start", item.job, None)
        outcome = run_one(item, config)
        outcomes.append(outcome)
        on_event("end", item.job, outcome)
    return in_plan_order(outcomes, jobs)


def in_plan_order(outcomes: list[Outcome], jobs: list[Job]) -> list[Outcome]:
    """Outcomes sorted as the jobs were planned (skipped ones are known first, finished ones in any order)."""
    position = {id(job): i for i, job in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: position.get(id(o.job), len(jobs)))
