"""The only module that imports mlflow: the store, runs, results, models and reading runs back.

Who creates the store matters (two processes creating one fresh store at once crash): the harness creates
the SQLite store and each task's experiment, with an explicit artifact location under ``mlflow/artifacts/``,
once in the parent before any worker starts, so concurrent workers never race to create tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError

DEFAULT_DIR = "mlflow"


#: How often a claim's owner renews its lease, and how old a heartbeat may get before the claim is abandoned.
HEARTBEAT_S = 5.0
LEASE_S = 4 * HEARTBEAT_S
#: How long start-up waits for a store another process holds locked before it says so (BENCH_STORE_WAIT_S).
STORE_WAIT_S = 20.0
#: Over HTTP: how long a claimant waits after creating its claim before it reads its rivals (see claim_run).
SETTLE_S = 1.0
#: claim_run keeps its lease alive from a daemon thread of the claiming process until finish_run/fail_run.
KEEPALIVE = True


def resolve_uri(uri: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the embedded ``sqlite:///mlflow/mlflow.db``.

    A relative SQLite path (``sqlite:///mlflow.db``, MLflow's own standard form) is resolved against the working
    directory, so every process (workers, the UI server) sees the same absolute file. An empty URI and an
    in-memory SQLite store (which would vanish with each process) are refused.
    """
    field = "--tracking-uri"
    if uri is None:
        uri, field = os.environ.get("MLFLOW_TRACKING_URI") or None, "MLFLOW_TRACKING_URI"
        if uri is None:
            return f"sqlite:///{(Path.cwd() / DEFAULT_DIR / 'mlflow.db').resolve()}"
    uri = uri.strip()
    if not uri:
        raise BenchError("the tracking URI is empty; give sqlite:///PATH or http://HOST:PORT, or leave the option "
                         "out for the default sqlite:///mlflow/mlflow.db", field=field)
    if uri.startswith("sqlite:"):
        path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else ""
        if not path or path.startswith(":memory:") or "mode=memory" in path:
            raise BenchError(f"{uri} is not a file: an in-memory store vanishes with each process; give "
                             "sqlite:///PATH/TO/mlflow.db", field=field)
        return f"sqlite:///{os.path.abspath(path)}"
    return uri


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact_root(uri: str) -> Path | None:
    """Artifacts beside a SQLite store; a server (http) decides its own locations."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    return None


def _store_wait_s() -> float:
    try:
        return max(0.1, float(os.environ.get("BENCH_STORE_WAIT_S", STORE_WAIT_S)))
    except ValueError:
        return STORE_WAIT_S


def check_store(uri: str) -> None:
    """Create or open the store now, so an unreachable, locked, corrupt or foreign store fails before any job
    starts, with one line saying how to fix it."""
    if uri.startswith("sqlite:///"):
        _create_sqlite_store(uri)
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
        except OSError as exc:
            raise BenchError(f"cannot reach the tracking server {uri} ({exc}); start it with `bench server` "
                             "or fix the URI", field="--tracking-uri") from None
    try:
        _client(uri).search_experiments(max_results=1)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot open the tracking store {uri}: {first}", field="--tracking-uri") from None


def validate_store(uri: str) -> str:
    """Check a SQLite store before any work, writing nothing: its folder can be created and written (and the
    artifact folder beside it), and an existing file is a usable MLflow store, not locked by another process.
    ``check_store`` then creates it. Returns ``uri``; other stores are checked by ``check_store``."""
    if not uri.startswith("sqlite:///"):
        return uri
    db = Path(uri.removeprefix("sqlite:///"))
    if db.is_dir():
        raise _store_error(db, "is a folder, not a store file; give --tracking-uri sqlite:///PATH/mlflow.db")
    for folder, what in [(db.parent, "store folder"), (db.parent / "artifacts", "artifact folder")]:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise _store_error(db, f"cannot create the {what} {folder}: {existing} is a file; give "
                                   "--tracking-uri sqlite:///A/WRITABLE/PATH/mlflow.db")
        _probe_writable(existing, what, db)
    _inspect_sqlite(db)
    return uri


def _store_error(db: Path, message: str) -> BenchError:
    return BenchError(message, file=db, field="--tracking-uri")


def _probe_writable(folder: Path, what: str, db: Path) -> None:
    """Create and remove a file in ``folder`` (``os.access`` says yes to root even on a read-only mount)."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise NotADirectoryError(20, "not a folder")
        fd, probe = tempfile.mkstemp(prefix=".bench-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _store_error(db, f"cannot write to the {what} {folder} ({exc.strerror or exc}); make it writable "
                               "or give --tracking-uri sqlite:///A/WRITABLE/PATH/mlflow.db") from None


def _create_sqlite_store(uri: str) -> None:
    """Check the store file and create it atomically, under a file lock.

    Two processes creating one fresh store at once crash, and a process killed while MLflow creates
    the tables and runs its migrations leaves a half-built file that every later run fails on. So the store is
    built in a temp file beside the target, under the lock, and moved onto the target only when complete
    (``os.link``, which never replaces a file, then the temp name is removed). A half-built store left by an
    older version (migration leftovers or an unfinished schema, and no runs) is rebuilt the same way; a file
    that is not SQLite, a SQLite file without MLflow's tables, or a store at another schema version that holds
    runs is refused and left as it is.
    """
    import fcntl

    db = Path(uri.removeprefix("sqlite:///"))
    if db.is_dir():
        raise _store_error(db, "is a folder, not a store file; give --tracking-uri sqlite:///PATH/mlflow.db")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _store_error(db, f"cannot create the store folder {db.parent} ({exc.strerror or exc}); give "
                               "--tracking-uri sqlite:///A/WRITABLE/PATH/mlflow.db") from None
    _probe_writable(db.parent, "store folder", db)
    root = _artifact_root(uri)
    if root is not None:
        _probe_writable(root, "artifact folder", db)
    with open(db.parent / f".{db.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = _inspect_sqlite(db)
            if state != "ok":
                _build_store(uri, db, replace=state != "missing")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _inspect_sqlite(db: Path) -> str:
    """``missing``, ``ok`` or ``rebuild`` (empty or half-built, no runs); raises BenchError for the rest.

    Takes the write lock for a moment (``BEGIN IMMEDIATE``, waiting at most BENCH_STORE_WAIT_S), so a store
    another process keeps locked is reported now rather than as a crash in the middle of the suite.
    """
    import sqlite3

    if not db.exists():
        return "missing"
    if not os.access(db, os.R_OK | os.W_OK):
        raise _store_error(db, "the store file is not readable and writable by this user; fix its permissions "
                               "or give another --tracking-uri")
    if db.stat().st_size == 0:
        return "rebuild"
    wait = _store_wait_s()
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=rw", uri=True, timeout=wait, isolation_level=None)
    except sqlite3.Error as exc:
        raise _store_error(db, f"cannot open the store ({exc}); check the file and its folder") from None
    try:
        con.execute("BEGIN IMMEDIATE")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if db.stat().st_size < 50_000_000:  # cheap on any bench store; a huge one is left to SQLite's own checks
            check = con.execute("PRAGMA quick_check(1)").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({check})")
        version = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            version = row[0] if row else None
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        con.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _store_error(db, f"the store is locked by another process (waited {wait:g} s); stop that "
                                   "process or wait for it, then rerun (BENCH_STORE_WAIT_S sets the wait)") from None
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise _store_error(db, "the store is read-only; make the file and its folder writable or give "
                                   "another --tracking-uri") from None
        raise _store_error(db, f"cannot use the store ({exc}); move the file aside or give another "
                               "--tracking-uri") from None
    except sqlite3.DatabaseError as exc:
        raise _store_error(db, f"the store file is corrupt or not SQLite ({exc}); move it aside (a new store is "
                               "created in its place) or give another --tracking-uri") from None
    finally:
        con.close()
    tables = {t for t in tables if not t.startswith("sqlite_")}
    if not tables:
        return "rebuild"
    if "experiments" not in tables:
        raise _store_error(db, f"is a SQLite database but not an MLflow store (tables: {', '.join(sorted(tables)[:5])}"
                               "); it is left unchanged: give the path of an MLflow store or of a new file as "
                               "--tracking-uri")
    half_built = any(t.startswith("_alembic_tmp_") for t in tables) or version != _schema_head()
    if not half_built:
        return "ok"
    if runs == 0 and tables <= _mlflow_tables():
        return "rebuild"  # only MLflow's tables and nothing in them to lose: a store whose creation was killed
    raise _store_error(db, f"the store's schema is at version {version}, not {_schema_head()} as this MLflow "
                           f"expects; back it up, then run `mlflow db upgrade sqlite:///{db}`")


def _mlflow_tables() -> set[str]:
    """Tables MLflow itself creates (initial schema, current schema, alembic's own)."""
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
    from mlflow.store.tracking.dbmodels.models import Base

    return set(Base.metadata.tables) | set(InitialBase.metadata.tables) | {"alembic_version"} | {
        f"_alembic_tmp_{t}" for t in set(Base.metadata.tables) | set(InitialBase.metadata.tables)}


def _schema_head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _build_store(uri: str, db: Path, replace: bool) -> None:
    """MLflow creates every table and runs every migration in a temp file, which then becomes the store."""
    for stale in db.parent.glob(f".{db.name}.creating-*"):  # left by a creator that was killed (we hold the lock)
        stale.unlink(missing_ok=True)
    tmp = db.parent / f".{db.name}.creating-{os.getpid()}"
    tmp_uri = f"sqlite:///{tmp}"
    try:
        _client(tmp_uri).search_experiments(max_results=1)
        _dispose_engine(tmp_uri)
        if replace:
            for leftover in (f"{db}-journal", f"{db}-wal", f"{db}-shm"):  # a stale journal would "recover" into it
                Path(leftover).unlink(missing_ok=True)
            os.replace(tmp, db)
        else:
            try:
                os.link(tmp, db)  # never replaces: a store that appeared meanwhile is kept
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not db.exists():
                    os.rename(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}-journal").unlink(missing_ok=True)


def _dispose_engine(uri: str) -> None:
    """Close MLflow's cached connections to a store file (before it is renamed or removed)."""
    import contextlib

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with contextlib.suppress(Exception):
        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()


def experiment_id(uri: str, name: str) -> str:
    client = _client(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = _artifact_root(uri)
    location = (root / name).as_uri() if root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it between our read and create
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def finished_job_keys(uri: str, experiment_ids: list[str]) -> set[str]:
    """Job keys of finished runs: the resume set. Failed runs are not in it, so a rerun retries them."""
    if not experiment_ids:
        return set()
    client = _client(uri)
    keys: set[str] = set()
    token = None
    while True:
        page = client.search_runs(experiment_ids, "attributes.status = 'FINISHED'", max_results=5000,
                                  page_token=token)
        keys |= {r.data.tags["job_key"] for r in page if "job_key" in r.data.tags}
        token = page.token
        if not token:
            return keys


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


def log_job_result(uri: str | None, run_id: str, result: dict[str, Any]) -> None:
    """Metrics, params and tags of a measured job, in one batch (fast over HTTP too)."""
    import math
    import time

    from mlflow.entities import Metric, Param, RunTag

    client = _client(resolve_uri(uri))
    now = int(time.time() * 1000)
    existing = client.get_run(run_id).data.params
    metrics = [Metric(k, float(v), now, 0) for k, v in result["metrics"].items() if math.isfinite(float(v))]
    params = [Param(k, str(v)) for k, v in result["params"].items() if k not in existing]
    tags = [RunTag(k, str(v)) for k, v in result["tags"].items()]
    for i in range(0, max(len(metrics), 1), 900):  # log_batch takes at most 1000 metrics a call
        client.log_batch(run_id, metrics=metrics[i:i + 900], params=params if i == 0 else [],
                         tags=tags if i == 0 else [])


def download_artifacts(uri: str, run_id: str, artifact_path: str, dest: Path) -> Path:
    """A run's logged folder (e.g. ``native``, the pipeline's own saved model) copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(_client(uri).download_artifacts(run_id, artifact_path, str(dest)))


def finish_run(uri: str, run_id: str) -> bool:
    """Mark the run FINISHED if it is still RUNNING and (for a claimed job) still our claim; False otherwise,
    with nothing written: a late writer never turns an abandoned (KILLED) run back into FINISHED."""
    return _end_run(uri, run_id, "FINISHED")


def fail_run(uri: str, run_id: str, cause: str, message: str, trace: str, killed: bool = False) -> bool:
    """A failed job keeps its run: cause and message as tags, the full traceback as an artifact.

    Like ``finish_run``, writes nothing and returns False when the run is no longer RUNNING and ours.
    """
    def record(client: Any) -> None:
        client.set_tag(run_id, "failure_cause", cause)
        client.set_tag(run_id, "error", message[:5000])
        if trace:
            try:
                client.log_text(run_id, trace, "error.txt")
            except Exception as exc:  # an unwritable artifact store must not hide the failure itself
                client.set_tag(run_id, "error_artifact", f"not written: {exc}"[:500])

    return _end_run(uri, run_id, "KILLED" if killed else "FAILED", before=record)


def load_runs(uri: str, tasks: list[str] | None = None, pipelines: list[str] | None = None,
              include_failed: bool = True):
    """Job runs as a DataFrame (``metrics.*``, ``params.*``, ``tags.*`` columns), newest first."""
    import mlflow

    client = _client(uri)
    experiments = client.search_experiments()  # any name: runs of jobs are those with a job_key tag
    if tasks:
        experiments = [e for e in experiments if e.name in set(tasks)]
    if not experiments:
        import pandas as pd

        return pd.DataFrame()
    mlflow.set_tracking_uri(uri)
    flt = "tags.job_key != ''" if include_failed else "tags.job_key != '' AND attributes.status = 'FINISHED'"
    runs = mlflow.search_runs([e.experiment_id for e in experiments], filter_string=flt,
                              output_format="pandas", max_results=100_000)
    if pipelines and len(runs):
        runs = runs[runs["tags.pipeline"].isin(pipelines)]
    return runs


def compare_url(ui_base: str, experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI's compare-runs view for these runs."""
    import json
    from urllib.parse import quote

    return (f"{ui_base.rstrip('/')}/#/compare-runs?runs={quote(json.dumps(run_ids))}"
            f"&experiments={quote(json.dumps([experiment_id]))}")


def create_run(uri: str, exp_id: str, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
    """A RUNNING run with its tags and params (sweeps that are not suite jobs: stream, summaries)."""
    from mlflow.entities import Param

    client = _client(uri)
    run_id = client.create_run(exp_id, run_name=run_name, tags=tags | {"mlflow.runName": run_name}).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    return run_id


def log_steps(uri: str, run_id: str, steps: list[tuple[int, dict[str, float]]],
              metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
    """Metrics per step (the UI draws them as curves against the step), plus step-less metrics and tags."""
    import math
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, int(step)) for step, values in steps for k, v in values.items()
             if v is not None and math.isfinite(float(v))]
    batch += [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if math.isfinite(float(v))]
    run_tags = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
    client = _client(uri)
    for i in range(0, max(len(batch), 1), 900):  # log_batch takes at most 1000 metrics a call
        client.log_batch(run_id, metrics=batch[i:i + 900], tags=run_tags if i == 0 else [])


def log_files(uri: str, run_id: str, paths: list[Path]) -> None:
    client = _client(uri)
    for path in paths:
        client.log_artifact(run_id, str(path))


def log_metrics(uri: str, run_id: str, metrics: dict[str, float]) -> None:
    """Step-less metrics in one batch (what the supervisor adds after a job: logging time, overhead)."""
    log_steps(uri, run_id, [], metrics=metrics)


def log_job_models(uri: str, run_id: str, folder: Path | None, technology: str) -> None:
    """A job child's saved models: ``native/`` (the pipeline's own format) as run artifacts, and the MLflow
    flavour model the child wrote in ``mlflow_model/`` as a LoggedModel of the run.

    The child saved the flavour model (its framework was loaded there); here it becomes what
    ``mlflow.<flavour>.log_model`` would have made: a LoggedModel linked to the run as an output, with the
    run and model ids written into its MLmodel file. A failure is a tag and never fails the run.
    """
    if folder is None:
        return
    client = _client(uri)
    if (folder / "model").is_dir():
        client.log_artifacts(run_id, str(folder / "model"), "native")
    flavour_dir = folder / "mlflow_model"
    if not (flavour_dir / "MLmodel").is_file():
        return
    try:
        from mlflow.entities import LoggedModelOutput
        from mlflow.models import Model

        run = client.get_run(run_id)
        model = client.create_logged_model(run.info.experiment_id, name="model", source_run_id=run_id,
                                           tags={"technology": technology})
        mlmodel = Model.load(str(flavour_dir / "MLmodel"))
        mlmodel.run_id, mlmodel.model_id, mlmodel.model_uuid = run_id, model.model_id, model.model_id
        mlmodel.artifact_path = model.artifact_location
        mlmodel.save(str(flavour_dir / "MLmodel"))
        client.log_model_artifacts(model.model_id, str(flavour_dir))
        client.finalize_logged_model(model.model_id, "READY")
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    except Exception as exc:  # the measurements stand; say why the flavour model is missing
        client.set_tag(run_id, "model_logging_error", f"{type(exc).__name__}: {exc}"[:5000])
