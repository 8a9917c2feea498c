"""Where jobs run: one after the other here (``local``), or on a Dask cluster (``dask``). One job function.

Both executors plan the same way (``runner.pending_jobs``: resume, experiments created in this process
before any worker starts, so a fresh SQLite store is never created by two processes at once) and run each
job with the same function, ``runner.run_one``: its own supervised process, the same time and memory limits,
the same failure records. Dask only decides *where* ``run_one`` runs:

- ``--workers N`` starts a ``distributed.LocalCluster`` of N worker processes with one thread each, so a
  worker runs one job at a time; ``--scheduler tcp://HOST:PORT`` uses an existing cluster instead (its workers
  need this package, the task files and the tracking URI at the same paths: a shared folder, or an
  ``http://`` tracking server rather than a SQLite file).
- Honest timings under parallelism: at most one job per core. A LocalCluster whose workers x ``--cores``
  fit in the CPUs this process may use pins worker *i* (and so its job, whose process inherits the
  affinity) to its own cores, so a job's fit time and single-row latency are measured on cores no other job
  of the suite competes for; ``cpu_affinity`` is tagged on each run. Asking for more is allowed, with a
  warning: the jobs then share cores and their timings are inflated. Every run records ``executor`` and
  ``workers``, so a comparison can keep to runs measured the same way.
- Interrupted (Ctrl-C, SIGTERM): queued jobs are cancelled, running ones are interrupted inside their workers,
  where the job function kills their processes and marks their runs KILLED (``failure_cause=interrupted``),
  as the local executor does; then the cluster is closed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bench import tracking
from bench.errors import BenchError
from bench.execution import runner
from bench.execution.cores import core_plan, default_slots, usable_cores
from bench.execution.runner import Job, Outcome, PendingJob, RunConfig

EXECUTORS = ("local", "dask")
OnEvent = Callable[[str, Job, Outcome | None], None]

#: Cores this worker process (and the jobs it starts) is pinned to; set on each worker by the client.
_WORKER_CORES: tuple[int, ...] | None = None
#: Threads of this worker running a job, for interrupting them.
_RUNNING: set[int] = set()
_INTERRUPTED: set[int] = set()


@dataclass
class ExecutionReport:
    """What a parallel run achieved: wall seconds against the sum of the jobs' own durations."""

    executor: str
    workers: int
    wall_s: float
    job_s: float
    jobs: int
    pinned: bool = False

    @property
    def speedup(self) -> float:
        """Sum of job durations over wall time: the speed-up over running the same jobs one by one."""
        return self.job_s / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        return (f"{self.executor} executor, {self.workers} worker(s){' pinned to cores' if self.pinned else ''}: "
                f"{self.jobs} job(s), {self.job_s:.1f} s of job time in {self.wall_s:.1f} s wall: speed-up "
                f"x{self.speedup:.2f} over running these jobs one after another at the same speed (jobs that "
                "slow each other down would run faster alone; python benchmarks/dask_speedup.py measures that)")


LAST_REPORT: ExecutionReport | None = None


def run_with_executor(jobs: list[Job], config: RunConfig, on_event: OnEvent = lambda *_: None,
                      executor: str = "local", workers: int = 1, scheduler: str | None = None,
                      pin: bool = True) -> list[Outcome]:
    """Run ``jobs`` with the chosen executor; outcomes in completion order, skipped ones first.

    ``pin``: pin each LocalCluster worker to its own cores when they fit (see the module docstring).

    Example:
        >>> outcomes = run_with_executor(runner.plan(tasks, ["sklearn_hgb"], [0, 1]), config,
        ...                              executor="dask", workers=2)  # doctest: +SKIP
    """
    global LAST_REPORT
    if executor not in EXECUTORS:
        raise BenchError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}",
                         field="--executor")
    if executor == "local" and (workers != 1 or scheduler):
        raise BenchError("--workers and --scheduler need --executor dask; the local executor runs --jobs "
                         "jobs at once", field="--executor")
    if workers < 1:
        raise BenchError("--workers must be at least 1", field="--workers")
    tracking.check_store(config.tracking_uri)  # the store exists before any worker opens it
    started = time.monotonic()
    if executor == "local":
        config.executor, config.workers = "local", 1
        outcomes = runner.run_all(jobs, config, on_event)
        pinned = config.jobs > 1 and core_plan(config.jobs, config.threads) is not None
    else:
        config.root()  # one folder for the job folders of every local worker, removed below
        try:
            outcomes, pinned = _run_dask(jobs, config, on_event, workers, scheduler, pin)
        finally:
            if config.job_root is not None and os.environ.get("BENCH_KEEP_JOB_DIRS") != "1":
                shutil.rmtree(config.job_root, ignore_errors=True)
    ran = [o for o in outcomes if o.status in ("finished", "failed")]
    LAST_REPORT = ExecutionReport(config.executor, config.workers, time.monotonic() - started,
                                  sum(o.seconds for o in ran), len(ran), pinned)
    return outcomes


def default_workers(threads: int) -> int:
    """As many workers as there are cores for them: usable cores // threads per job, at least one."""
    return default_slots(threads)


def _run_dask(jobs: list[Job], config: RunConfig, on_event: OnEvent, workers: int,
              scheduler: str | None, pin: bool) -> tuple[list[Outcome], bool]:
    from distributed import Client, LocalCluster

    pending, outcomes = runner.pending_jobs(jobs, config)
    for outcome in outcomes:
        on_event("skipped", outcome.job, outcome)
    config.executor, config.workers = "dask", workers
    if not pending:  # everything already measured: no cluster to start
        return outcomes, False
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout=30))
            except (OSError, TimeoutError) as exc:
                raise BenchError(f"cannot reach the Dask scheduler {scheduler} ({exc}); start one with `dask "
                                 "scheduler` and `dask worker`, or use --workers N", field="--scheduler") from None
            pinned = False
        else:
            # One thread per worker process: one job at a time per worker. No Dask memory limit: the runner
            # supervises each job's own process tree, which Dask's nanny cannot see.
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       memory_limit=0, dashboard_address="127.0.0.1:0"))
            client = stack.enter_context(Client(cluster))
            pinned = _pin_workers(client, workers, config.threads, pin)
        config.workers = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) or workers
        futures: dict = {}
        try:
            outcomes += _gather(client, pending, config, on_event, futures)
        except BaseException:
            _stop_jobs(client, futures)
            raise
    return outcomes, pinned


def _gather(client, pending: list[PendingJob], config: RunConfig, on_event: OnEvent, futures: dict) -> list[Outcome]:
    """Keep as many jobs in flight as the cluster has worker threads, so a job is submitted when it can start
    (the progress shows what runs, and a shared cluster is not flooded); collect outcomes as they complete."""
    from distributed import as_completed

    env = {k: v for k, v in os.environ.items() if k.startswith("BENCH_")}
    queue = list(pending)

    def submit():
        item = queue.pop(0)
        on_event("start", item.job, None)
        # A key of its own: Dask would merge equal keys submitted by two `bench run` on one shared cluster.
        future = client.submit(_run_on_worker, item, config, env, pure=False,
                               key=f"{item.job.task.name}-{item.job.run_name}-{uuid.uuid4().hex[:12]}")
        futures[future] = item
        return future

    running = as_completed([submit() for _ in range(min(len(queue), max(config.workers, 1)))])
    done = []
    for future in running:
        item = futures[future]
        try:
            outcome = future.result()
        except Exception as exc:  # the worker process itself died (e.g. killed): the job is still accounted for
            outcome = Outcome(item.job, "failed", cause="executor",
                              message=f"the Dask worker running it failed: {type(exc).__name__}: {exc}"[:2000])
        done.append(outcome)
        on_event("end", item.job, outcome)
        if queue:
            running.add(submit())
    return done


def _stop_jobs(client, futures: dict) -> None:
    """On interrupt: start no further job, interrupt the running ones so that each records its run as
    killed (as the local executor does), wait for that, then let the cluster close."""
    with contextlib.suppress(Exception):
        client.cancel(list(futures))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(client.run(_interrupt_jobs).values()):
            time.sleep(0.3)


def _pin_workers(client, workers: int, threads: int, pin: bool) -> bool:
    plan = core_plan(workers, threads)
    if plan is None:
        print(f"warning: {workers} workers x {threads} threads exceed the {len(usable_cores())} usable cores: "
              "jobs share cores, so their timings (fit, latency, throughput) are inflated", file=sys.stderr)
        return False
    if not pin:
        return False
    addresses = sorted(client.scheduler_info()["workers"])
    for address, cores in zip(addresses, plan, strict=False):
        client.run(_set_worker_cores, cores, workers=[address])
    return True


def _set_worker_cores(cores: tuple[int, ...]) -> None:
    global _WORKER_CORES
    _WORKER_CORES = tuple(cores)


def _run_on_worker(item: PendingJob, config: RunConfig, env: dict[str, str]) -> Outcome:
    """The Dask task: ``runner.run_one`` in this worker, its job process pinned to this worker's cores."""
    import threading

    os.environ.update(env)  # BENCH_* of the submitting process (pipeline path, cache dir, tasks dir)
    _RUNNING.add(threading.get_ident())
    try:
        # The job's child pins itself (and its probes) to this worker's cores.
        outcome = runner.run_one(item, config, list(_WORKER_CORES) if _WORKER_CORES else None)
    except KeyboardInterrupt:  # raised by _interrupt_jobs: run_one has killed the job and recorded its run
        return Outcome(item.job, "failed", cause="interrupted", message="the suite was interrupted")
    finally:
        _RUNNING.discard(threading.get_ident())
        _INTERRUPTED.discard(threading.get_ident())
    return outcome


def _interrupt_jobs() -> int:
    """Raise KeyboardInterrupt in this worker's job threads; returns how many jobs are still running.

    ``runner.run_one`` handles it as it handles Ctrl-C in the local executor: it kills the job's process
    tree and marks the run KILLED with ``failure_cause=interrupted``.
    """
    import ctypes

    for ident in list(_RUNNING - _INTERRUPTED):  # once each: a second one would cut the recording short
        _INTERRUPTED.add(ident)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))
    return len(_RUNNING)
