"""Jobs (task x pipeline x seed): planning, keys for resume, and running them on the child protocol.

Each job runs in a child of its own (:mod:`bench.execution`): forked from its pipeline's warm parent, with
its own time and memory limits and failure record. A crash, a hang past the time limit or a memory blow-up
ends that job only: it is recorded as a failed MLflow run with its cause and traceback, and the suite goes
on. With ``jobs`` slots (default: one per usable core at ``threads`` threads each) that many jobs run at
once, each pinned to cores of its own, so no two measurements share a core.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import environment, tracking
from bench.discovery import source_hash, technology_of
from bench.execution import child, cores, scratch
from bench.execution import job as suite_job
from bench.execution.pool import POOL
from bench.measure import thread_env
from bench.tasks import Task

#: Bump when a change to the measurement protocol makes old figures incomparable: it is part of the job key.
#: 2: latency loops capped in time (never below 662 calls), cold start = import probe + model probe.
PROTOCOL_VERSION = "2"
_ROOT_LOCK = threading.Lock()


def new_invocation_id() -> str:
    """One ``bench run``'s id, on every run it logs (tag ``invocation``): sortable by time, unique by chance."""
    return time.strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()


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
    latency_cap_s: float = 5.0
    executor: str = "local"
    workers: int = 1
    jobs: int = 1
    job_root: Path | None = None
    invocation: str = field(default_factory=new_invocation_id)

    def root(self) -> Path:
        """The folder of this run's job folders, created on first use and removed by :func:`run_all`."""
        with _ROOT_LOCK:  # slots ask at once: two roots would be made and one of them never removed
            if self.job_root is None:
                self.job_root = scratch.make_root()
            self.job_root.mkdir(parents=True, exist_ok=True)
            return self.job_root

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
    fit_s: float = 0.0
    measuring_s: float = 0.0
    overhead_s: float = 0.0
    model_error: str = ""  # why the run has no MLflow flavour model ("" when it has one)


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
            "git_revision": machine["git_revision"], "invocation": config.invocation,
            "mlflow.runName": job.run_name}


def run_params(job: Job, config: RunConfig) -> dict[str, str]:
    machine = environment.machine()
    params = {"primary_metric": job.task.metric, "task_kind": job.task.kind,
              "budget_s": config.budget_s, "threads": config.threads, "time_limit_s": config.time_limit_s,
              "memory_limit_mb": round(config.memory_limit_mb), "protocol_version": PROTOCOL_VERSION,
              "cpu_count": machine["cpu_count"], "memory_gb": machine["memory_gb"],
              "platform": machine["platform"]}
    params |= {f"version.{k}": v for k, v in environment.versions().items()}
    return {k: str(v) for k, v in params.items()}


@dataclass(frozen=True)
class PendingJob:
    """A job still to run, with what its process needs: its key and the experiment it logs to."""

    job: Job
    key: str
    experiment_id: str


def pending_jobs(jobs: list[Job], config: RunConfig) -> tuple[list[PendingJob], list[Outcome]]:
    """Split jobs into those to run and those already finished in the store (unless ``force``).

    Creates each task's experiment here, in the parent, before any worker starts (concurrent
    creation of a fresh SQLite store fails).
    """
    names = {j.task.name: j.task.description for j in jobs}
    experiments = {name: tracking.experiment_id(config.tracking_uri, name, text) for name, text in names.items()}
    done = set() if config.force else tracking.finished_job_keys(config.tracking_uri, list(experiments.values()))
    pending, skipped = [], []
    for job in jobs:
        key = job_key(job, config)
        if key in done:
            skipped.append(Outcome(job, "skipped"))
        else:
            pending.append(PendingJob(job, key, experiments[job.task.name]))
    return pending, skipped


def job_request(item: PendingJob, config: RunConfig, slot_cores: list[int] | None) -> suite_job.JobRequest:
    """The child's spec and limits; the thread environment is pinned before any framework loads."""
    spec = {"task_path": str(item.job.task.path), "pipeline": item.job.pipeline, "seed": item.job.seed,
            "budget_s": config.budget_s, "threads": config.threads, "latency_n": config.latency_n,
            "latency_warmup": config.latency_warmup, "latency_cap_s": config.latency_cap_s,
            "batch_rows": config.batch_rows}
    env = os.environ | thread_env(config.threads)
    return suite_job.JobRequest(item.job.pipeline, spec, env, child.Limits(config.time_limit_s, config.memory_limit_mb),
                          config.root(), config.cold_start_repeats, slot_cores,
                          f"{item.job.task.name}-{item.job.run_name}")


def run_one(item: PendingJob, config: RunConfig, slot_cores: list[int] | None = None,
            stop: threading.Event | None = None) -> Outcome:
    """Claim the job's MLflow run, run it on the child protocol, record it. Any executor calls this."""
    uri = config.tracking_uri
    run_id = tracking.claim_run(uri, item.experiment_id, item.job.run_name, run_tags(item.job, config, item.key),
                                run_params(item.job, config), rerun_finished=config.force)
    if run_id is None:
        return Outcome(item.job, "claimed", message="another bench process has run or is running this job")
    started = time.monotonic()
    try:
        ended = suite_job.run(job_request(item, config, slot_cores), stop, lambda: tracking.renew_claim(uri, run_id))
        return record(item.job, config, run_id, ended, started, slot_cores)
    except BaseException:  # interrupted anywhere after the claim: the run must not stay RUNNING
        tracking.fail_run(uri, run_id, "interrupted", "the suite was interrupted", "", killed=True)
        raise


def record(job: Job, config: RunConfig, run_id: str, ended: suite_job.JobEnd, started: float,
           slot_cores: list[int] | None) -> Outcome:
    """Log what the child measured, in batch, and end the run; the job's folder goes afterwards."""
    uri, end = config.tracking_uri, ended.end
    model_error = ""
    try:
        if end.cause == "abandoned":  # another process owns the job now: write nothing more
            return Outcome(job, "failed", run_id, end.cause, end.message, time.monotonic() - started)
        tags = {"concurrent_jobs": str(config.jobs if config.executor == "local" else config.workers)}
        if slot_cores:
            tags["cpu_affinity"] = ",".join(map(str, slot_cores))
        if end.result is not None:
            t0 = time.perf_counter()
            metrics = end.result["metrics"] | ended.metrics
            tracking.log_job_result(uri, run_id, {"metrics": metrics, "params": end.result["params"],
                                                  "tags": end.result["tags"] | tags})
            if end.ok:
                model_error = log_lineage(job, uri, run_id, end)
            metrics["phase_logging_s"] = time.perf_counter() - t0
            times = suite_job.overhead(metrics, time.monotonic() - started)
            tracking.log_metrics(uri, run_id, {"phase_logging_s": metrics["phase_logging_s"]} | times)
        if end.ok:
            tracking.finish_run(uri, run_id)
            return Outcome(job, "finished", run_id, seconds=times["job_wall_s"],
                           primary_score=metrics["primary_score"], fit_s=metrics.get("phase_fit_s", 0.0),
                           measuring_s=times["measuring_s"], overhead_s=times["overhead_s"],
                           model_error=model_error)
        message = end.message
        if end.cause == "timeout":
            message = f"killed after the time limit of {config.time_limit_s:.0f} s (budget {config.budget_s:g} s " \
                      f"+ margin {config.time_margin_s:g} s)"
        tracking.fail_run(uri, run_id, end.cause, message, end.trace, killed=end.cause == "interrupted")
        return Outcome(job, "failed", run_id, end.cause, message, time.monotonic() - started)
    finally:
        suite_job.cleanup(end.folder)


def log_lineage(job: Job, uri: str, run_id: str, end: child.End) -> str:
    """The run's dataset inputs and models; returns why its flavour model is missing ("" when logged)."""
    result = end.result or {}
    if split_hash := result.get("tags", {}).get("split_hash"):
        rows = {"train": int(result["params"]["n_train"]), "test": int(result["params"]["n_test"])}
        tracking.log_datasets(uri, run_id, job.task.name, split_hash, job.task.path.resolve().as_uri(), rows,
                              result.get("dataset_schema"), job.task.source_label)
    logged = tracking.log_job_models(uri, run_id, end.folder, result.get("technology", ""))
    return result.get("tags", {}).get("model_logging_error", "") or logged


class JobQueue:
    """Pending jobs for the slots, grouped by pipeline so each warm parent serves a run of jobs and is closed
    when its pipeline has none left. A slot takes a job of a pipeline already warm, else one of a pipeline
    nobody is warming up (it warms it itself), else waits."""

    def __init__(self, items: list[PendingJob]) -> None:
        order = {p: i for i, p in enumerate(dict.fromkeys(it.job.pipeline for it in items))}
        self.items = sorted(items, key=lambda it: order[it.job.pipeline])
        self.left = {p: sum(it.job.pipeline == p for it in items) for p in order}
        self.warm: set[str] = set()
        self.warming: set[str] = set()
        self.cond = threading.Condition()

    def take(self, stop: threading.Event) -> PendingJob | None:
        with self.cond:
            while self.items and not stop.is_set():
                item = next((it for it in self.items if it.job.pipeline in self.warm), None) or next(
                    (it for it in self.items if it.job.pipeline not in self.warming), None)
                if item is not None:
                    self.items.remove(item)
                    self.warming.add(item.job.pipeline)
                    return item
                self.cond.wait(0.5)
            return None

    def warmed(self, pipeline: str) -> None:
        with self.cond:
            self.warm.add(pipeline)
            self.cond.notify_all()

    def done(self, pipeline: str) -> bool:
        """True when this was the pipeline's last job (its warm parent can go)."""
        with self.cond:
            self.left[pipeline] -= 1
            return self.left[pipeline] == 0


def run_all(jobs: list[Job], config: RunConfig,
            on_event: Callable[[str, Job, Outcome | None], None] = lambda *_: None) -> list[Outcome]:
    """Run jobs in ``config.jobs`` slots (each pinned to its own cores when they fit), skipping those already
    finished in the store. Ctrl-C or SIGTERM stops every slot: running jobs are killed and marked KILLED."""
    scratch.sweep()  # every run, even one with nothing left to do, clears what killed runs left behind
    pending, outcomes = pending_jobs(jobs, config)
    for outcome in outcomes:
        on_event("skipped", outcome.job, outcome)
    plan_ = cores.core_plan(config.jobs, config.threads) if config.jobs > 1 else None
    slots = [list(c) for c in plan_] if plan_ else [None] * max(1, config.jobs)
    queue, stop, lock = JobQueue(pending), threading.Event(), threading.Lock()
    errors: list[BaseException] = []

    finished = [threading.Event() for _ in slots]

    def slot(slot_cores: list[int] | None, done: threading.Event) -> None:
        try:
            while (item := queue.take(stop)) is not None:
                on_event("start", item.job, None)
                suite_job.warm_up(job_request(item, config, slot_cores))
                queue.warmed(item.job.pipeline)
                outcome = run_one(item, config, slot_cores, stop)
                if queue.done(item.job.pipeline):
                    POOL.release(item.job.pipeline)
                with lock:
                    outcomes.append(outcome)
                on_event("end", item.job, outcome)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            stop.set()
        finally:
            done.set()

    # Wait on events, not Thread.join: a KeyboardInterrupt inside join() can leave the thread marked as
    # stopped (CPython 3.11), and the process would exit while a slot is still recording its killed run.
    try:
        for i, slot_cores in enumerate(slots):
            threading.Thread(target=slot, args=(slot_cores, finished[i]), name=f"slot-{i}", daemon=True).start()
        for done in finished:
            while not done.wait(0.2):
                pass
    except BaseException:
        stop.set()
        for done in finished:
            done.wait()
        raise
    finally:
        POOL.close()
        if config.job_root is not None and os.environ.get("BENCH_KEEP_JOB_DIRS") != "1":
            shutil.rmtree(config.job_root, ignore_errors=True)
            config.job_root = None
    if errors and not isinstance(errors[0], KeyboardInterrupt):
        raise errors[0]
    return in_plan_order(outcomes, jobs)


def in_plan_order(outcomes: list[Outcome], jobs: list[Job]) -> list[Outcome]:
    """Outcomes sorted as the jobs were planned (skipped ones are known first, finished ones in any order)."""
    position = {id(job): i for i, job in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: position.get(id(o.job), len(jobs)))
