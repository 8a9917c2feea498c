"""Chaos benchmark (issue 12): kill ``bench run`` at random moments and check that nothing is lost,
duplicated, left running or left unreadable.

    .venv/bin/python benchmarks/chaos.py [--rounds 100] [--seed 0] [--check-every 5] [--race-every 10]

A black box: it drives the real CLI (``python -m bench.cli run ...``) in subprocesses, reads the store with
MLflow's public client and sqlite3, and watches processes with psutil; it imports nothing from ``bench``.

A tiny suite (a 200-row binary and a 200-row regression CSV task, fast pipelines, 2 seeds, budget 1 s, small
measurement sizes) runs into a temp store. Each round starts ``bench run``, sleeps a random delay drawn to
cover start-up, the store's creation (on a fresh store), warm parents, jobs and logging, then sends SIGKILL or
SIGTERM (50/50) to the ``bench run`` process only, as a user or the OOM killer would. Just before the kill the
process tree is recorded (children live in their own sessions and process groups, so the tree is walked, and
every process started for the round also carries a marker in its environment); a few seconds after the
``bench run`` process has exited, any of them still alive is counted. Every ``--race-every``-th round (the
first included) races two ``bench run`` on the current store (fresh or partly done), kills one of them at a
random moment and lets the other finish. After a race, every ``--check-every`` rounds otherwise, and at the
end, a clean ``bench run`` runs to completion on the store and the store is checked; then the next round starts
a fresh store, so a store sees its creation, then kills mid-job on what is left (delays are drawn within the
time the unfinished jobs should take, followed as the machine's load changes).

Counts (goal: 0 of each):

- duplicates: FINISHED runs beyond the first for one job key (tag ``job_key``)
- running_orphans: runs still RUNNING after a clean rerun completed (a run left RUNNING just after a SIGKILL is
  expected: the next run that wants the job takes it over, see the README's leases)
- processes_alive: processes of a killed ``bench run``'s tree still alive ``--grace`` seconds after it exited
- unreadable_stores: a store that MLflow's client cannot search, a half-built store in place of the store file,
  or a later ``bench run`` that fails on it (an error naming the store, or a run that never ends)
- jobs_never_finished: planned jobs (task x pipeline x seed) without a FINISHED run after a clean rerun
- job_roots_left: ``bench-jobs-*`` folders left in the runs' TMPDIR after a clean rerun ended (it sweeps those
  of killed runs at its start and removes its own at its end)

and, beside them, bench_run_errors: any other wrong end of a ``bench run`` (an exit code other than 0 when it
ends by itself, other than 130 after SIGTERM: a crash, a traceback, an exit by SIGINT); also goal 0. A SIGTERM
that lands before the process has installed its handler (the interpreter's own start-up: read from the kernel's
SigCgt mask just before the signal is sent) takes the default action (exit -15, nothing written yet): it is
counted apart, as sigterm_before_handler, not as an error.

By default the code under test is a snapshot of the working tree's ``bench/`` taken at start-up (other people
edit the tree while this runs for half an hour); ``--live`` runs the working tree itself.
Prints a line per round and a final table; appends one JSON line to benchmarks/chaos.jsonl; exits 1 if any
count is non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_suffix(".jsonl")
TASK_KINDS = ("binary", "regression")
COUNTS = ("duplicates", "running_orphans", "processes_alive", "unreadable_stores", "jobs_never_finished",
          "job_roots_left", "bench_run_errors")
STORE_WORDS = ("store", "sqlite", "database", "alembic", "tracking")
MARK = "BENCH_CHAOS_MARK"


# ---------------------------------------------------------------- the suite


def write_task(folder: Path, kind: str, rows: int = 200, seed: int = 0) -> Path:
    """A CSV task like tests/conftest.py's: signal, string labels, a categorical with gaps, NaN in a numeric."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    signal_ = 2 * x1 - x2 + np.where(colour == "red", 1.5, 0.0)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "noise": rng.normal(size=rows)})
    frame.loc[rng.random(rows) < 0.1, "x2"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "colour"] = ""
    if kind == "binary":
        frame["label"] = np.where(signal_ + rng.normal(scale=0.5, size=rows) > 0, "yes", "no")
    else:
        frame["label"] = 10 * signal_ + rng.normal(size=rows)
    name = f"chaos_{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.csv", index=False)
    lines = [f"name: {name}", f"kind: {kind}", "target: label", f"source: {{type: file, path: {name}.csv}}"]
    if kind == "binary":
        lines.append('positive_label: "yes"')
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Suite:
    root: Path  # the temp folder of this benchmark
    source: Path  # where `bench` is imported from (a snapshot of the working tree, or the tree itself)
    tasks: list[Path]
    pipelines: list[str]
    seeds: int
    extra: list[str]

    def command(self, store: Path) -> list[str]:
        return [sys.executable, "-m", "bench.cli", "run", "--tasks", ",".join(str(t) for t in self.tasks),
                "--pipelines", ",".join(self.pipelines), "--seeds", str(self.seeds), "--budget", "1",
                "--latency-n", "100", "--cold-start-repeats", "1", "--batch-rows", "500",
                "--tracking-uri", f"sqlite:///{store}", *self.extra]

    def planned(self) -> set[tuple[str, str]]:
        """(experiment = task name, run name = <pipeline>-s<seed>) of every job the suite plans."""
        return {(t.stem, f"{p}-s{s}") for t in self.tasks for p in self.pipelines for s in range(self.seeds)}


def snapshot_source(root: Path) -> Path:
    """A copy of the working tree's bench/ package, so edits made meanwhile do not change the code under test."""
    dest = root / "src"
    shutil.copytree(REPO / "bench", dest / "bench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


# ---------------------------------------------------------------- processes


@dataclass
class Launched:
    proc: subprocess.Popen
    mark: str
    log: Path
    started: float
    tree: dict[int, tuple[float, str]] = field(default_factory=dict)  # pid -> (create_time, short cmdline)
    term_caught: bool = True  # whether the process had a SIGTERM handler when it was signalled


def catches_sigterm(pid: int) -> bool:
    """From the kernel's view of the process: is SIGTERM caught (SigCgt bit 15)? False before the interpreter
    has run the handler's line (its own start-up, or the imports above that line), and after it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(mask >> (signal.SIGTERM - 1) & 1)


def launch(suite: Suite, store: Path, mark: str) -> Launched:
    mark = f"{suite.root.name}-{mark}"  # unique across chaos runs on one machine
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    (suite.root / "tmp").mkdir(exist_ok=True)
    env.update({"BENCH_CACHE_DIR": str(suite.root / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2", MARK: mark,
                "TMPDIR": str(suite.root / "tmp"),
                "PYTHONPATH": str(suite.source), "PYTHONUNBUFFERED": "1", "COLUMNS": "120"})
    log = suite.root / "logs" / f"{mark}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(suite.command(store), cwd=suite.source, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Launched(proc, mark, log, time.monotonic())


def _short(p: psutil.Process) -> str:
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "?"
    for i, part in enumerate(cmd):
        if part == "-m" and i + 1 < len(cmd):
            return " ".join(cmd[i + 1:i + 3])
    return " ".join(cmd[:2])[-60:]


def record_tree(run: Launched) -> None:
    """The bench run process and every descendant, walked by parent links (not by process group or session)."""
    try:
        root = psutil.Process(run.proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            run.tree[p.pid] = (p.create_time(), _short(p))


def marked_processes(mark: str) -> list[psutil.Process]:
    """Every live process whose environment carries this launch's marker (descendants inherit it, even those
    reparented to init after their parent died)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(MARK) == mark and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            continue
    return found


def survivors(run: Launched) -> list[psutil.Process]:
    """Processes of the launch still alive (zombies excepted: they run nothing): the recorded tree (same pid
    and start time) plus any process carrying the launch's marker."""
    alive = {p.pid: p for p in marked_processes(run.mark)}
    for pid, (created, _) in run.tree.items():
        if pid in alive:
            continue
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                alive[pid] = p
        except psutil.Error:
            continue
    return list(alive.values())


def phase_at(run: Launched, store: Path) -> str:
    """Where the kill landed, from the outside: the store's creation, the warm parents or job children."""
    names = [v[1] for v in run.tree.values()]
    workers = sum("zygote" in n or "execution.child" in n for n in names)
    creating = any(store.parent.glob(f".{store.name}.creating-*"))
    if creating:
        return "creating-store"
    if not store.exists():
        return "start-up"
    if workers:
        return f"jobs({len(names)} procs)"
    return f"store-ready({len(names)} procs)"


def artifact_entries(artifacts: Path) -> int:
    """Run and model folders in the artifact store: one more appears when the supervisor logs a job."""
    return len(list(artifacts.glob("*/*"))) + len(list(artifacts.glob("*/models/*")))


def failure_kind(log: Path) -> str:
    """A failed bench run counts against the store when its last lines speak of the store, else as an error."""
    last = tail(log, 3).lower()
    return "unreadable_stores" if any(w in last for w in STORE_WORDS) else "bench_run_errors"


def kill_tree_leftovers(procs: list[psutil.Process]) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=5)


def tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


# ---------------------------------------------------------------- the store


def store_problem(store: Path) -> str | None:
    """Why the store cannot be read, or None. A missing store is fine (the kill came before it existed).

    The file is checked with sqlite3 first (MLflow's client would create missing tables in a half-built store,
    changing what is checked), then searched with MLflow's client. The sqlite3 connection may write: a write
    killed mid-transaction leaves a hot journal that the next connection rolls back (SQLite's own recovery,
    which every MLflow client does; a read-only connection cannot and reports "attempt to write a readonly
    database"). Nothing else is written.
    """
    if not store.exists():
        return None
    try:
        con = sqlite3.connect(f"{store.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            check = con.execute("PRAGMA quick_check(1)").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"sqlite3: {exc}"
    if check != "ok":
        return f"quick_check: {check}"
    if "alembic_version" not in tables or "runs" not in tables or any(t.startswith("_alembic_tmp_") for t in tables):
        return f"half-built store in place ({len(tables)} tables)"
    try:
        search_runs(store)
    except Exception as exc:  # noqa: BLE001 - any failure to read is what is counted
        return f"mlflow search: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return None


def search_runs(store: Path) -> list:
    """Every run of the store through MLflow's public client: (experiment name, run name, status, job_key)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    rows = []
    for exp in client.search_experiments():
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            rows += [(exp.name, r.info.run_name, r.info.status, r.data.tags.get("job_key"),
                      r.data.tags.get("failure_cause", "")) for r in page]
            token = page.token
            if not token:
                break
    return rows


def check_store(store: Path, suite: Suite) -> tuple[dict[str, int], list[str]]:
    """After a clean rerun: duplicates among FINISHED job keys, RUNNING runs, planned jobs not FINISHED."""
    notes = []
    rows = search_runs(store)
    finished: dict[str, int] = {}
    done = set()
    for exp, name, status, key, _ in rows:
        if status == "FINISHED" and key:
            finished[key] = finished.get(key, 0) + 1
            done.add((exp, name))
    dups = sum(n - 1 for n in finished.values() if n > 1)
    running = [(e, n) for e, n, s, k, _ in rows if s == "RUNNING"]
    missing = suite.planned() - done
    if dups:
        notes.append("duplicates: " + ", ".join(f"{k} x{n}" for k, n in finished.items() if n > 1))
    if running:
        notes.append(f"RUNNING: {running}")
    if missing:
        causes = {(e, n): c for e, n, s, _, c in rows if (e, n) in missing}
        notes.append(f"not finished: {sorted((m, causes.get(m, 'no run')) for m in missing)}")
    return {"duplicates": dups, "running_orphans": len(running), "jobs_never_finished": len(missing)}, notes


# ---------------------------------------------------------------- the benchmark


@dataclass
class Timeline:
    """Seconds from the start of a `bench run` on a fresh store: store creation begins/ends, the run ends."""
    create_start: float = 1.5
    create_end: float = 3.0
    total: float = 30.0


class Chaos:
    def __init__(self, args: argparse.Namespace, suite: Suite) -> None:
        self.args, self.suite = args, suite
        self.rng = random.Random(args.seed)
        self.counts = dict.fromkeys(COUNTS, 0)
        self.kills = {"SIGKILL": 0, "SIGTERM": 0}
        self.before_handler = 0
        self.rounds_done = 0
        self.anomalies: list[str] = []
        self.timeline = Timeline()
        self.store_no = 0
        self.store = self.new_store()
        self.phases: dict[str, int] = {}
        self.seconds = 0.0
        self.remaining = len(suite.planned())

    def new_store(self) -> Path:
        self.store_no += 1
        folder = self.suite.root / "stores" / f"s{self.store_no:03d}"
        folder.mkdir(parents=True)
        self.fresh = True
        return folder / "mlflow.db"

    def count(self, what: str, n: int, why: str) -> None:
        if n:
            self.counts[what] += n
            self.anomalies.append(f"{what} +{n}: {why}")
            print(f"  ! {what} +{n}: {why}", flush=True)

    # ------------------------------------------------ clean reruns

    def clean_run(self, label: str, calibrate: bool = False) -> bool:
        """A `bench run` to completion, then the store's checks. True when it ran and exited 0."""
        t0 = time.monotonic()
        run = launch(self.suite, self.store, f"{label}-clean")
        create_start = create_end = None
        while run.proc.poll() is None:
            if calibrate:
                now = time.monotonic() - t0
                if create_start is None and any(self.store.parent.glob(f".{self.store.name}.creating-*")):
                    create_start = now
                if create_end is None and self.store.exists():
                    create_end = now
                    create_start = create_start if create_start is not None else now
            if time.monotonic() - t0 > self.args.clean_timeout:
                record_tree(run)
                run.proc.kill()
                run.proc.wait()
                kill_tree_leftovers(survivors(run))
                self.count("unreadable_stores", 1, f"{label}: clean bench run still running after "
                                                   f"{self.args.clean_timeout} s ({tail(run.log)})")
                return False
            time.sleep(0.02 if calibrate else 0.2)
        wall = time.monotonic() - t0
        rc = run.proc.returncode
        ok = rc == 0
        if not ok:
            self.count(failure_kind(run.log), 1, f"{label}: clean bench run exit {rc}: {tail(run.log)}")
        problem = store_problem(self.store)
        if problem:
            self.count("unreadable_stores", 1, f"{label}: {problem}")
            print(f"  check {label}: store unreadable: {problem}", flush=True)
            return False
        found, notes = check_store(self.store, self.suite)
        if ok:  # a clean run sweeps the job roots of killed runs at its start and removes its own at its end
            left = sorted(p.name for p in (self.suite.root / "tmp").glob("bench-jobs-*"))
            found["job_roots_left"] = len(left)
            notes += [f"job roots left in TMPDIR: {', '.join(left)}"] if left else []
        for what, n in found.items():
            self.count(what, n, f"{label}: {'; '.join(notes)}")
        print(f"  check {label}: clean run {wall:.1f} s exit {rc}; duplicates {found['duplicates']}, RUNNING "
              f"{found['running_orphans']}, not finished {found['jobs_never_finished']}"
              + (f" [{'; '.join(notes)}]" if notes else ""), flush=True)
        self.observe(wall, self.remaining)
        if calibrate and ok and create_end is not None:
            self.timeline = Timeline(create_start, create_end, wall)
            print(f"  timeline of a fresh store: creation {create_start:.2f}-{create_end:.2f} s, "
                  f"run {wall:.1f} s", flush=True)
        return ok

    def observe(self, wall: float, remaining: int) -> None:
        """Follow the suite's pace (the machine's load changes): a run that ended by itself after ``wall``
        seconds with ``remaining`` jobs to do tells how long all of them would take."""
        tl, planned = self.timeline, len(self.suite.planned())
        if remaining and wall > tl.create_end:
            estimate = tl.create_end + (wall - tl.create_end) * planned / remaining
            tl.total = 0.5 * tl.total + 0.5 * estimate

    # ------------------------------------------------ kill rounds

    def draw_delay(self, fresh: bool) -> tuple[float, str]:
        tl = self.timeline
        if fresh and self.rng.random() < 0.5:  # during the store's first creation: after the temp file appears
            return self.rng.uniform(0.0, tl.create_end - tl.create_start + 0.2), "creation"
        if self.rng.random() < 0.15:  # start-up: imports, validation, data
            return self.rng.uniform(0.05, max(0.1, tl.create_start)), "start-up"
        planned = len(self.suite.planned())
        if self.remaining and self.rng.random() < 0.25:  # mid-logging: once the supervisor writes artifacts
            return self.rng.uniform(0.0, 0.4), "logging"
        if not fresh and self.remaining == 0:  # nothing left to run: start-up, claims and skips of a done store
            return self.rng.uniform(0.2, tl.create_end + 2.0), "done"
        # A rerun only runs what is left: aim within the time the unfinished jobs should take.
        left = 1.0 if fresh else self.remaining / planned
        return self.rng.uniform(0.2, (tl.create_end + left * (tl.total - tl.create_end)) * 0.85), "anywhere"

    def kill(self, run: Launched, sig: signal.Signals) -> int | None:
        """Record the tree, send the signal to the bench run process, wait for it; then count survivors."""
        record_tree(run)
        run.term_caught = catches_sigterm(run.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            run.proc.send_signal(sig)
        self.kills[sig.name] += 1
        try:
            rc = run.proc.wait(timeout=self.args.term_timeout)
        except subprocess.TimeoutExpired:
            self.count("bench_run_errors", 1, f"{run.mark}: still running {self.args.term_timeout} s after "
                                              f"{sig.name}")
            record_tree(run)
            run.proc.kill()
            rc = run.proc.wait()
        time.sleep(self.args.grace)
        alive = survivors(run)
        if alive:
            what = ", ".join(f"{p.pid}:{run.tree.get(p.pid, (0, _short(p)))[1]}" for p in alive)
            self.count("processes_alive", len(alive), f"{run.mark}: alive {self.args.grace} s after {sig.name} "
                                                      f"exit: {what}")
            kill_tree_leftovers(alive)
        self.alive_last = len(alive)
        return rc

    def after_exit(self, run: Launched, rc: int | None, sig: signal.Signals | None) -> str:
        """A bench run that ended by itself must exit 0; after SIGTERM 130; after SIGKILL -9."""
        expected = {None: (0,), signal.SIGTERM: (130, 0), signal.SIGKILL: (-9, 0)}[sig]
        if rc in expected:
            return ""
        if sig is signal.SIGTERM and rc == -signal.SIGTERM and not run.term_caught:
            self.before_handler += 1  # the interpreter had not reached bench's first line: it wrote nothing
            return "  [SIGTERM before the handler was installed: default action, exit -15]"
        why = f"{run.mark}: exit {rc} ({'no signal' if sig is None else sig.name}): {tail(run.log)}"
        self.count("bench_run_errors" if sig is signal.SIGTERM else failure_kind(run.log), 1, why)
        return f"  [exit {rc}: {tail(run.log, 1)[:120]}]"

    def kill_round(self, n: int) -> str:
        fresh = self.fresh
        delay, aim = self.draw_delay(fresh)
        sig = self.rng.choice([signal.SIGKILL, signal.SIGTERM])
        # Start-up time swings with the machine's load, so the creation and logging aims wait for their moment
        # (the store's temp file, or a new artifact folder: the supervisor logging a job) and add the delay.
        artifacts = self.store.parent / "artifacts"
        logged = artifact_entries(artifacts)
        run = launch(self.suite, self.store, f"r{n:03d}")
        if aim == "creation":
            while (run.proc.poll() is None and not self.store.exists()
                   and not any(self.store.parent.glob(f".{self.store.name}.creating-*"))):
                time.sleep(0.005)
            delay += time.monotonic() - run.started
        elif aim == "logging":
            while run.proc.poll() is None and artifact_entries(artifacts) <= logged:
                time.sleep(0.01)
            delay += time.monotonic() - run.started
        try:
            rc = run.proc.wait(timeout=max(0.0, delay - (time.monotonic() - run.started)))
            record_tree(run)
            note = self.after_exit(run, rc, None)
            self.alive_last = len(survivors(run))
            self.observe(time.monotonic() - run.started, self.remaining)
            return f"exited by itself after {time.monotonic() - run.started:.1f} s (delay {delay:.1f}){note}"
        except subprocess.TimeoutExpired:
            pass
        record_tree(run)
        phase = phase_at(run, self.store)
        self.phases[phase.split("(")[0]] = self.phases.get(phase.split("(")[0], 0) + 1
        rc = self.kill(run, sig)
        note = self.after_exit(run, rc, sig)
        return (f"{'fresh' if fresh else 'reused'} {aim:<8} {sig.name:<7} at {delay:5.2f} s in {phase:<22} "
                f"exit {rc}, tree {len(run.tree)}, alive after {self.args.grace:g} s: {self.alive_last}{note}")

    def race_round(self, n: int) -> str:
        """Two bench run on one store; one is killed at a random moment, the other must finish cleanly."""
        fresh = self.fresh
        offset = self.rng.uniform(0.0, 2.0)
        delay = self.rng.uniform(0.3, self.timeline.total * 0.7)
        sig = self.rng.choice([signal.SIGKILL, signal.SIGTERM])
        victim_first = self.rng.random() < 0.5
        a = launch(self.suite, self.store, f"r{n:03d}a")
        time.sleep(offset)
        b = launch(self.suite, self.store, f"r{n:03d}b")
        victim, other = (a, b) if victim_first else (b, a)
        note = ""
        try:
            rc = victim.proc.wait(timeout=delay)
            record_tree(victim)
            note += self.after_exit(victim, rc, None)
            killed = f"victim exited by itself (exit {rc}) before {delay:.1f} s"
        except subprocess.TimeoutExpired:
            record_tree(victim)
            phase = phase_at(victim, self.store)
            rc = self.kill(victim, sig)
            note += self.after_exit(victim, rc, sig)
            killed = f"{sig.name} to {'first' if victim_first else 'second'} at {delay:.2f} s in {phase}, exit {rc}"
            self.phases["race"] = self.phases.get("race", 0) + 1
        try:
            rc_other = other.proc.wait(timeout=self.args.clean_timeout)
        except subprocess.TimeoutExpired:
            record_tree(other)
            other.proc.kill()
            rc_other = other.proc.wait()
            self.count("unreadable_stores", 1, f"{other.mark}: racing bench run still running after "
                                               f"{self.args.clean_timeout} s")
        record_tree(other)
        note += self.after_exit(other, rc_other, None)
        time.sleep(self.args.grace)
        left = survivors(other)
        if left:
            self.count("processes_alive", len(left), f"{other.mark}: alive after it exited by itself")
            kill_tree_leftovers(left)
        return (f"{'fresh' if fresh else 'reused'} race (+{offset:.1f} s): {killed}; other exit {rc_other}, "
                f"alive after {self.args.grace:g} s: {self.alive_last}{note}")

    def run(self) -> None:
        t0 = time.monotonic()
        try:
            self.rounds()
        finally:
            self.seconds = time.monotonic() - t0

    def rounds(self) -> None:
        print(f"calibrating: a clean run on a fresh store ({len(self.suite.planned())} jobs)", flush=True)
        self.clean_run("calibration", calibrate=True)
        self.store = self.new_store()
        since_check = 0
        for n in range(1, self.args.rounds + 1):
            started = time.monotonic()
            before = dict(self.counts)
            self.alive_last = 0
            # Races start a store's cycle (two processes create the store and claim every job), and are
            # checked at once: the survivor runs all that is left, so later rounds would find nothing to do.
            race = bool(self.args.race_every) and (n - 1) % self.args.race_every == 0
            line = self.race_round(n) if race else self.kill_round(n)
            since_check += 1
            self.fresh = not self.store.exists()  # a kill before the store existed leaves it fresh
            problem = store_problem(self.store)
            if problem:
                self.count("unreadable_stores", 1, f"r{n:03d}: {problem}")
                line += f"  [store unreadable: {problem}]"
            elif self.store.exists():
                done = {(e, r) for e, r, status, _, _ in search_runs(self.store) if status == "FINISHED"}
                self.remaining = len(self.suite.planned() - done)
            self.rounds_done = n
            new = {k: self.counts[k] - before[k] for k in COUNTS if self.counts[k] != before[k]}
            print(f"round {n:3d}/{self.args.rounds} store s{self.store_no:03d} left {self.remaining:2d} "
                  f"{time.monotonic() - started:5.1f} s: {line}{'  NEW: ' + str(new) if new else ''}", flush=True)
            if race or since_check >= self.args.check_every or n == self.args.rounds:
                self.clean_run(f"r{n:03d}")
                since_check = 0
                if n != self.args.rounds:
                    self.store = self.new_store()
                    self.remaining = len(self.suite.planned())


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("mlflow", "scikit-learn", "torch", "psutil", "pandas", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bench"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("+dirty(bench)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-every", type=int, default=5, help="a clean rerun and checks every K rounds")
    parser.add_argument("--race-every", type=int, default=10,
                        help="every K-th round (from the first) races two bench run (0: none)")
    parser.add_argument("--pipelines", default="sklearn_linear,sklearn_sgd,torch_mlp")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--jobs", type=int, help="bench run --jobs (default: bench run's)")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds after exit before survivors count")
    parser.add_argument("--term-timeout", type=float, default=60.0, help="wait for exit after a signal")
    parser.add_argument("--clean-timeout", type=float, default=300.0)
    parser.add_argument("--live", action="store_true", help="run the working tree, not a snapshot of bench/")
    parser.add_argument("--patch", type=Path, help="apply this diff (patch -p1) to the snapshot: tries a fix of "
                                                   "code that may not be edited in the tree")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (stores and logs)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/chaos.jsonl")
    args = parser.parse_args()

    load_before = os.getloadavg()
    revision = git_revision()  # of the code the snapshot is taken from, not of the tree at the end
    root = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    try:
        source = REPO if args.live else snapshot_source(root)
        if args.patch and not args.live:
            subprocess.run(["patch", "-p1", "-s", "-i", str(args.patch.resolve())], cwd=source, check=True)
        tasks = [write_task(root / "tasks", kind, seed=i) for i, kind in enumerate(TASK_KINDS)]
        suite = Suite(root, source, tasks, args.pipelines.split(","), args.seeds,
                      ["--jobs", str(args.jobs)] if args.jobs else [])
        print(f"chaos: {args.rounds} rounds, seed {args.seed}, temp folder {root}, code from {source}", flush=True)
        chaos = Chaos(args, suite)
        chaos.run()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()

    print(f"\n{'count':<22}{'value':>7}   (goal 0)")
    for what in COUNTS:
        print(f"{what:<22}{chaos.counts[what]:>7}")
    races = len(range(0, chaos.rounds_done, args.race_every)) if args.race_every else 0
    print(f"rounds {chaos.rounds_done} ({races} races), kills: "
          f"SIGKILL {chaos.kills['SIGKILL']}, SIGTERM {chaos.kills['SIGTERM']}; stores {chaos.store_no}; "
          f"kills landed in: {', '.join(f'{k} {v}' for k, v in sorted(chaos.phases.items()))}; "
          f"{chaos.seconds:.0f} s; load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"SIGTERMs that landed before bench's handler was installed (interpreter start-up; default action, "
          f"exit -15, nothing written): {chaos.before_handler}")
    for line in chaos.anomalies:
        print(f"  {line}")
    if not args.no_record:
        code = "working tree" if args.live else "snapshot of bench/" + (f" + {args.patch}" if args.patch else "")
        record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "benchmark": "chaos",
                  "git_revision": revision, "code": code,
                  "command": " ".join(sys.argv), "seed": args.seed, "rounds": chaos.rounds_done,
                  "check_every": args.check_every, "race_every": args.race_every, "pipelines": suite.pipelines,
                  "planned_jobs": len(suite.planned()), "counts": chaos.counts, "kills": chaos.kills,
                  "sigterm_before_handler": chaos.before_handler,
                  "kill_phases": chaos.phases, "stores": chaos.store_no, "seconds": round(chaos.seconds, 1),
                  "anomalies": chaos.anomalies[:50], "load_avg_before": [round(x, 2) for x in load_before],
                  "load_avg_after": [round(x, 2) for x in load_after], "cpus": os.cpu_count(),
                  "versions": versions()}
        with OUT.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(f"appended to {OUT.relative_to(REPO)}")
    return 1 if any(chaos.counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
