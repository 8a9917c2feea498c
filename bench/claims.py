"""Claims: each job runs once, however many ``bench run`` share a store, and a vanished owner's job is taken over.

The store decides, not client clocks: beside a SQLite store a claims table holds at most one live claim per job
key (taken in a ``BEGIN IMMEDIATE`` transaction); over HTTP the earliest established claim wins, else the
smallest server-drawn run id. The owner renews a heartbeat; a claim whose heartbeat is older than the lease,
or whose owner was a local process that no longer exists, is abandoned (its run KILLED, ``failure_cause``
``abandoned``) and a late owner can no longer end that run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.sqlite_store import _store_wait_s

#: How often a claim's owner renews its lease, and how old a heartbeat may get before the claim is abandoned.
HEARTBEAT_S = 5.0
LEASE_S = 4 * HEARTBEAT_S
#: Over HTTP: how long a claimant waits after creating its claim before it reads its rivals (see claim_run).
SETTLE_S = 1.0
#: claim_run keeps its lease alive from a daemon thread of the claiming process until finish_run/fail_run.
KEEPALIVE = True


def _client(uri: str):
    from bench.tracking import _client as client

    return client(uri)


def owner_id() -> str:
    """Who holds a claim: host, pid namespace, pid and the process's start time, so that a claim of a local
    process that has died can be recognised at once (a reused pid has another start time)."""
    import socket

    import psutil

    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "-"
    started = int(psutil.Process().create_time() * 1000)
    return f"{socket.gethostname()}|{namespace}|{os.getpid()}|{started}"


def _owner_is_dead(owner: str) -> bool:
    """True only when the owner was a process of this host and pid namespace that no longer exists."""

    import psutil

    host, namespace, pid, started = ([*owner.split("|"), "", "", ""])[:4]
    mine = owner_id().split("|")
    if host != mine[0] or namespace != mine[1] or not pid.isdigit() or not started.isdigit():
        return False
    try:
        return int(psutil.Process(int(pid)).create_time() * 1000) != int(started)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


# ---------------------------------------------------------------- claims

_CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    token TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    run_id TEXT,
    owner TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('live', 'done', 'abandoned', 'released')),
    heartbeat REAL NOT NULL,
    claimed REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_claim_per_job ON claims (experiment_id, job_key) WHERE state = 'live';
CREATE INDEX IF NOT EXISTS claims_by_run ON claims (run_id);
"""
_KEEPALIVE: dict[str, Any] = {}


def claims_path(uri: str) -> Path:
    """The claims table of a SQLite store: a small SQLite file beside it (``.mlflow.db.claims``)."""
    db = Path(uri.removeprefix("sqlite:///"))
    return db.parent / f".{db.name}.claims"


def _claims_db(uri: str, create: bool = True):
    import sqlite3

    path = claims_path(uri)
    if not create and not path.exists():
        return None
    con = sqlite3.connect(path, timeout=max(_store_wait_s(), 30.0), isolation_level=None)
    con.executescript(_CLAIMS_SCHEMA)
    return con


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception): one writer at a time."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def __enter__(self) -> Any:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.con.execute("ROLLBACK" if kind else "COMMIT")


def claim_run(uri: str, exp_id: str, run_name: str, tags: dict[str, str], params: dict[str, Any],
              rerun_finished: bool = False) -> str | None:
    """Open the job's run unless another process has the job; returns None when someone else does (or, unless
    ``rerun_finished``, when the job already has a FINISHED run).

    Two ``bench run`` on one store must run each job once; the store decides who, never client clocks.

    - **SQLite store**: a claims table in a SQLite file beside the store (``claims_path``) with a UNIQUE index
      on (experiment, job key) among *live* claims. A claimant inserts its claim in a ``BEGIN IMMEDIATE``
      transaction: exactly one insert per job can succeed, whatever the timing. Only then is the MLflow run
      created, and it is tied to the claim in a second transaction that fails if the claim was lost meanwhile.
    - **Leases**: the owner renews the claim's heartbeat every ``HEARTBEAT_S`` (``renew_claim``; ``claim_run``
      also starts a daemon thread that does it while the claiming process lives, see ``KEEPALIVE``). A claim
      whose heartbeat is older than ``LEASE_S`` (4 beats), or whose owner was a process of this host that no
      longer exists, is abandoned by the next claimant: the claim is marked ``abandoned`` in the same
      transaction, then its run is marked KILLED with ``failure_cause=abandoned``. A pid or host name is never
      a reason to keep a claim whose heartbeat has stopped.
    - **HTTP tracking server**: the REST API has no transaction or compare-and-set on runs, so the rule is as
      safe as it allows, and uses no client clock for the order: create the RUNNING run tagged
      ``claim_state=pending``, wait ``SETTLE_S`` (so every rival created before ours is visible), then read the
      job's RUNNING runs with a fresh heartbeat. An *established* claim (``claim_state=won``) always wins;
      otherwise the smallest run id wins (ids are random UUIDs drawn by the server). The winner tags itself
      ``won``; losers delete their run. Two winners need a rival whose creation is not visible for SETTLE_S
      after it returned, or a winner that takes longer than SETTLE_S between its read and its ``won`` tag.
      Lease expiry there compares heartbeat tags with this machine's clock, so clients' clocks must agree to
      within ``LEASE_S``.
    """
    if uri.startswith("sqlite:///"):
        return _claim_sqlite(uri, exp_id, run_name, tags, params, rerun_finished)
    return _claim_http(uri, exp_id, run_name, tags, params, rerun_finished)


def _lease_expired(heartbeat: float, owner: str, now: float) -> bool:
    return now - heartbeat > LEASE_S or _owner_is_dead(owner)


def _claim_sqlite(uri: str, exp_id: str, run_name: str, tags: dict[str, str], params: dict[str, Any],
                  rerun_finished: bool) -> str | None:
    import sqlite3
    import time
    import uuid

    from mlflow.entities import Param

    key, token, me = tags["job_key"], uuid.uuid4().hex, owner_id()
    con = _claims_db(uri)
    mine = None
    try:
        try:
            with _Transaction(con):
                now = time.time()
                live = con.execute("SELECT token, owner, heartbeat FROM claims WHERE experiment_id = ? AND "
                                   "job_key = ? AND state = 'live'", (exp_id, key)).fetchone()
                if live is not None:
                    if not _lease_expired(live[2], live[1], now):
                        return None
                    con.execute("UPDATE claims SET state = 'abandoned' WHERE token = ?", (live[0],))
                con.execute("INSERT INTO claims (token, experiment_id, job_key, run_id, owner, state, heartbeat, "
                            "claimed) VALUES (?, ?, ?, NULL, ?, 'live', ?, ?)", (token, exp_id, key, me, now, now))
        except sqlite3.IntegrityError:  # the unique index: another live claim (cannot happen under IMMEDIATE)
            return None
        client = _client(uri)
        # We hold the job's only live claim: any RUNNING run of it belongs to a claim that was abandoned (or to
        # a version of bench without claims) and is marked so; then the job may already be done.
        for other in client.search_runs([exp_id], f"tags.job_key = '{key}' AND attributes.status = 'RUNNING'",
                                        max_results=1000):
            _mark_abandoned(client, other.info.run_id)
        if not rerun_finished and client.search_runs(
                [exp_id], f"tags.job_key = '{key}' AND attributes.status = 'FINISHED'", max_results=1):
            _release(con, token)
            return None
        mine = client.create_run(exp_id, run_name=run_name, tags=tags | {"owner": me, "claim": token}).info.run_id
        client.log_batch(mine, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        with _Transaction(con):
            tied = con.execute("UPDATE claims SET run_id = ?, heartbeat = ? WHERE token = ? AND state = 'live'",
                               (mine, time.time(), token)).rowcount
        if not tied:  # our lease expired while we created the run (a very slow store): someone else has it
            _mark_abandoned(client, mine)
            return None
        _start_keepalive(uri, mine)
        return mine
    except BaseException:  # interrupted while claiming: leave no live claim and no RUNNING run behind
        import contextlib

        with contextlib.suppress(Exception):
            _release(con, token)
        if mine is not None:
            with contextlib.suppress(Exception):
                client = _client(uri)
                client.set_tag(mine, "failure_cause", "interrupted")
                client.set_terminated(mine, "KILLED")
        raise
    finally:
        con.close()


def _release(con: Any, token: str) -> None:
    with _Transaction(con):
        con.execute("UPDATE claims SET state = 'released' WHERE token = ? AND state = 'live'", (token,))


def _mark_abandoned(client: Any, run_id: str) -> None:
    """An abandoned claim's run: KILLED, ``failure_cause=abandoned`` (only if it is still RUNNING)."""
    if client.get_run(run_id).info.status != "RUNNING":
        return
    client.set_tag(run_id, "failure_cause", "abandoned")
    client.set_tag(run_id, "error", "its claim was abandoned: the owner stopped renewing its lease (killed or "
                   f"hung for more than {LEASE_S:g} s)")
    client.set_terminated(run_id, "KILLED")


def _claim_http(uri: str, exp_id: str, run_name: str, tags: dict[str, str], params: dict[str, Any],
                rerun_finished: bool) -> str | None:
    import time

    from mlflow.entities import Param

    key = tags["job_key"]
    client = _client(uri)
    rivals = f"tags.job_key = '{key}' AND attributes.status = 'RUNNING'"
    if not rerun_finished and client.search_runs(
            [exp_id], f"tags.job_key = '{key}' AND attributes.status = 'FINISHED'", max_results=1):
        return None
    if any(not _http_expired(r) for r in client.search_runs([exp_id], rivals, max_results=1000)):
        return None
    mine = client.create_run(exp_id, run_name=run_name, tags=tags | {
        "owner": owner_id(), "claim_state": "pending", "claim_heartbeat": f"{time.time():.3f}"}).info.run_id
    try:
        time.sleep(SETTLE_S)
        live = [r for r in client.search_runs([exp_id], rivals, max_results=1000)
                if r.info.run_id == mine or not _http_expired(r)]
        won = [r.info.run_id for r in live if r.data.tags.get("claim_state") == "won"]
        winner = won[0] if won else min(r.info.run_id for r in live)
        if winner != mine:
            client.delete_run(mine)
            return None
        client.set_tag(mine, "claim_state", "won")
        for other in client.search_runs([exp_id], rivals, max_results=1000):
            if other.info.run_id != mine and _http_expired(other):
                _mark_abandoned(client, other.info.run_id)
        if not rerun_finished and client.search_runs(
                [exp_id], f"tags.job_key = '{key}' AND attributes.status = 'FINISHED'", max_results=1):
            client.delete_run(mine)
            return None
        client.log_batch(mine, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    except BaseException:
        import contextlib

        with contextlib.suppress(Exception):
            client.set_tag(mine, "failure_cause", "interrupted")
            client.set_terminated(mine, "KILLED")
        raise
    _start_keepalive(uri, mine)
    return mine


def _http_expired(run: Any) -> bool:
    import time

    try:
        beat = float(run.data.tags.get("claim_heartbeat", "0"))
    except ValueError:
        beat = 0.0
    if not beat:  # a claim without a heartbeat (an older bench): judged by its start time
        beat = run.info.start_time / 1000
    return time.time() - beat > LEASE_S or _owner_is_dead(run.data.tags.get("owner", ""))


def renew_claim(uri: str, run_id: str) -> bool:
    """Renew the lease of the claim behind ``run_id``; False when the claim is no longer ours (abandoned and
    taken over, released, finished) or ``run_id`` was never a claimed run. Call it every ``HEARTBEAT_S``."""
    import time

    if uri.startswith("sqlite:///"):
        con = _claims_db(uri, create=False)
        if con is None:
            return False
        try:
            with _Transaction(con):
                return con.execute("UPDATE claims SET heartbeat = ? WHERE run_id = ? AND state = 'live'",
                                   (time.time(), run_id)).rowcount == 1
        finally:
            con.close()
    client = _client(uri)
    run = client.get_run(run_id)
    if run.info.status != "RUNNING" or run.data.tags.get("claim_state") != "won":
        return False
    client.set_tag(run_id, "claim_heartbeat", f"{time.time():.3f}")
    return True


def _start_keepalive(uri: str, run_id: str) -> None:
    import threading

    if not KEEPALIVE:
        return
    stop = threading.Event()
    _KEEPALIVE[run_id] = stop

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                if not renew_claim(uri, run_id):
                    return
            except Exception:  # a busy store: try again at the next beat; the lease has 4 of them
                continue

    threading.Thread(target=beat, name=f"bench-claim-{run_id[:8]}", daemon=True).start()


def _stop_keepalive(run_id: str) -> None:
    stop = _KEEPALIVE.pop(run_id, None)
    if stop is not None:
        stop.set()


def _end_run(uri: str, run_id: str, status: str, before: Any = None) -> bool:
    """Set the end state of a RUNNING run that is still ours; False (nothing written) otherwise.

    On a SQLite store the claim is checked and closed in one claims transaction with the status change, and an
    abandoner marks the claim before it touches the run, so a late writer can never turn an abandoned (KILLED)
    run into FINISHED or FAILED. Runs without a claim (stream, matrix) only need to be RUNNING.
    """
    _stop_keepalive(run_id)
    client = _client(uri)
    con = _claims_db(uri, create=False) if uri.startswith("sqlite:///") else None
    try:
        if con is not None:
            row = con.execute("SELECT state FROM claims WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and row[0] != "live":
                return False
        run = client.get_run(run_id)
        if run.info.status != "RUNNING":
            return False
        if not uri.startswith("sqlite:///") and run.data.tags.get("claim_state") not in (None, "won"):
            return False
        if before is not None:
            before(client)
        if con is None:
            client.set_terminated(run_id, status)
            return True
        with _Transaction(con):
            row = con.execute("SELECT state FROM claims WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and row[0] != "live":
                return False
            if client.get_run(run_id).info.status != "RUNNING":
                return False
            client.set_terminated(run_id, status)
            con.execute("UPDATE claims SET state = 'done' WHERE run_id = ? AND state = 'live'", (run_id,))
        return True
    finally:
        if con is not None:
            con.close()
