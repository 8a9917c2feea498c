"""Faults around a suite: interrupts keep what was measured, concurrent runs share the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import mlflow
import psutil
import pytest

from bench import claims, tracking
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


@pytest.mark.slow
def test_sigterm_keeps_finished_runs_marks_the_running_one_killed_and_a_rerun_completes(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", name="interrupted")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    args = ["run", "--tasks", str(task), "--pipelines", "sklearn_linear,slow_constant", "--tracking-uri", uri,
            "--jobs", "1", *SMALL]  # one job at a time: sklearn_linear has finished when slow_constant runs
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


@pytest.mark.slow
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


# ---------------------------------------------------------------- claims and the store (kills, leases)

CLAIMER = """
import json, sys, time
from bench import claims, tracking
uri, start_at = sys.argv[1], float(sys.argv[2])
tracking.check_store(uri)  # the store is fresh: the three processes also race to create it
exp = tracking.experiment_id(uri, "claims")
while time.time() < start_at:
    time.sleep(0.001)
won = [i for i in range(40) if tracking.claim_run(uri, exp, f"job{i}", {"job_key": f"key{i}"}, {"n": i})]
print(json.dumps(won), flush=True)
sys.stdin.read()  # stay alive (a dead owner's claims are taken over at once) until every process has claimed
"""


@pytest.mark.slow
def test_three_processes_claiming_the_same_40_jobs_on_a_fresh_store_give_one_winner_each(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    start_at = time.time() + 12  # after every process has imported mlflow and opened the store
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, uri, str(start_at)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    lines = [p.stdout.readline() for p in procs]
    results = [p.communicate(input="", timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    import json

    won = [json.loads(line) for line in lines]
    counts = {i: sum(i in w for w in won) for i in range(40)}
    assert all(c == 1 for c in counts.values()), {i: c for i, c in counts.items() if c != 1}
    frame = runs(uri)
    assert len(frame) == 40 and frame["tags.job_key"].is_unique, "losers create no run"
    assert (frame["status"] == "RUNNING").all()


def _age_claims(uri: str, seconds: float, owner: str | None = None) -> None:
    import sqlite3

    con = sqlite3.connect(tracking.claims_path(uri))
    con.execute("UPDATE claims SET heartbeat = heartbeat - ?", (seconds,))
    if owner:
        con.execute("UPDATE claims SET owner = ?", (owner,))
    con.commit()
    con.close()


@pytest.mark.slow
def test_a_live_lease_is_respected_and_an_expired_one_is_taken_over(store_uri, monkeypatch):
    monkeypatch.setattr(claims, "KEEPALIVE", False)  # this test plays the owner that stops renewing
    tracking.check_store(store_uri)
    exp = tracking.experiment_id(store_uri, "lease")
    tags = {"job_key": "k", "mlflow.runName": "p-s0"}
    first = tracking.claim_run(store_uri, exp, "p-s0", tags, {})
    assert first and tracking.renew_claim(store_uri, first)
    assert tracking.claim_run(store_uri, exp, "p-s0", tags, {}) is None, "a live lease is respected"

    # Another host's claim (or a pid that looks alive) is respected while its heartbeat is fresh...
    _age_claims(store_uri, tracking.LEASE_S / 2, owner="elsewhere|pid:[1]|1|1")
    assert tracking.claim_run(store_uri, exp, "p-s0", tags, {}) is None
    # ... and abandoned once the heartbeat is older than the lease, whatever the owner says.
    _age_claims(store_uri, tracking.LEASE_S)
    second = tracking.claim_run(store_uri, exp, "p-s0", tags, {})
    assert second and second != first
    client = tracking._client(store_uri)
    old = client.get_run(first)
    assert old.info.status == "KILLED" and old.data.tags["failure_cause"] == "abandoned"
    # The late owner learns it lost the job and can never finish (or fail) the abandoned run.
    assert tracking.renew_claim(store_uri, first) is False
    assert tracking.finish_run(store_uri, first) is False
    assert tracking.fail_run(store_uri, first, "exception", "late", "trace") is False
    assert client.get_run(first).info.status == "KILLED"
    assert tracking.finish_run(store_uri, second) is True
    assert client.get_run(second).info.status == "FINISHED"
    assert tracking.finish_run(store_uri, second) is False, "an ended run is not ended twice"
    assert tracking.claim_run(store_uri, exp, "p-s0", tags, {}) is None, "the job is done"
    rerun = tracking.claim_run(store_uri, exp, "p-s0", tags, {}, rerun_finished=True)
    assert rerun and tracking.fail_run(store_uri, rerun, "exception", "boom", "")


@pytest.mark.slow
def test_the_claim_of_a_dead_local_process_is_taken_over_at_once(store_uri):
    tracking.check_store(store_uri)
    exp = tracking.experiment_id(store_uri, "dead")
    code = ("import os, sys\nfrom bench import tracking\n"
            f"print(tracking.claim_run({store_uri!r}, {exp!r}, 'p-s0', {{'job_key': 'k'}}, {{}}), flush=True)\n"
            "os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=os.environ | {"PYTHONPATH": str(REPO)})
    dead = out.stdout.strip().splitlines()[-1]
    taken = tracking.claim_run(store_uri, exp, "p-s0", {"job_key": "k"}, {})
    assert taken and taken != dead
    assert tracking._client(store_uri).get_run(dead).data.tags["failure_cause"] == "abandoned"
    tracking.finish_run(store_uri, taken)


def test_a_half_built_store_without_runs_is_rebuilt(tmp_path):
    import sqlite3

    import sqlalchemy
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    db = tmp_path / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)  # what a creation killed during the migrations leaves
    engine.dispose()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE _alembic_tmp_datasets (x INTEGER)")
    con.commit()
    con.close()
    uri = f"sqlite:///{db}"
    tracking.check_store(uri)
    assert tracking.experiment_id(uri, "after") and not list(db.parent.glob(".mlflow.db.creating-*"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_kill_while_the_store_is_created_leaves_no_half_built_store(tmp_path, sig):
    """Killed while MLflow builds the tables (the temp file exists): no store, or a whole one; a rerun works."""
    task = write_task(tmp_path / "tasks", "binary", name="created")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    proc = start_bench(["run", "--tasks", str(task), "--pipelines", "sklearn_linear", "--tracking-uri", uri,
                        *SMALL], tmp_path)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "mlflow").glob(".mlflow.db.creating-*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "Traceback" not in err, err
    db = tmp_path / "mlflow" / "mlflow.db"
    assert not db.exists() or tracking._inspect_sqlite(db) == "ok"
    tracking.check_store(uri)  # what the rerun does first: no "table _alembic_tmp_datasets already exists"
    assert tracking.experiment_id(uri, "next")


@pytest.mark.parametrize("finished_first", [True, False])
def test_a_sigterm_after_the_command_returned_does_not_kill_the_process(finished_first):
    """bench.cli.entry blocks SIGTERM once the command returned: interpreter finalisation restores default
    handlers, so a late SIGTERM used to end a clean run with status -15 (seen in the chaos benchmark)."""
    finish = "code = _finish(0)" if finished_first else "code = 0"
    script = ("import os, signal, sys, time\nfrom bench.cli import _finish, main\n"
              f"signal.signal(signal.SIGTERM, signal.SIG_DFL)\n{finish}\n"
              "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(0.5)\nsys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == (0 if finished_first else -signal.SIGTERM)
