"""The embedded SQLite store: created atomically, checked before any work, refused with one line when unusable.

Two processes creating one fresh store at once crash, and a process killed while MLflow creates the tables
leaves a half-built file that every later run fails on. So the store is built in a temp file beside the target,
under a file lock, and moved onto the target only when complete; a half-built store with no runs is rebuilt.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import BenchError

#: How long start-up waits for a store another process holds locked before it says so (BENCH_STORE_WAIT_S).
STORE_WAIT_S = 20.0


def _client(uri: str):
    from bench.tracking import _client as client

    return client(uri)


def _artifact_root(uri: str) -> Path | None:
    from bench.tracking import _artifact_root as root

    return root(uri)


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
    if not db.exists():
        return "missing"
    if not os.access(db, os.R_OK | os.W_OK):
        raise _store_error(db, "the store file is not readable and writable by this user; fix its permissions "
                               "or give another --tracking-uri")
    if db.stat().st_size == 0:
        return "rebuild"
    tables, version, runs = _probe(db)
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


def _probe(db: Path) -> tuple[set[str], str | None, int]:
    """Tables, schema revision and run count, read under the write lock; SQLite's errors as one-line ones."""
    import sqlite3

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
        return tables, version, runs
    except sqlite3.OperationalError as exc:
        raise _operational_error(db, exc, wait) from None
    except sqlite3.DatabaseError as exc:
        raise _store_error(db, f"the store file is corrupt or not SQLite ({exc}); move it aside (a new store is "
                               "created in its place) or give another --tracking-uri") from None
    finally:
        con.close()


def _operational_error(db: Path, exc: Exception, wait: float) -> BenchError:
    if "locked" in str(exc) or "busy" in str(exc):
        return _store_error(db, f"the store is locked by another process (waited {wait:g} s); stop that "
                                "process or wait for it, then rerun (BENCH_STORE_WAIT_S sets the wait)")
    if "readonly" in str(exc) or "read-only" in str(exc):
        return _store_error(db, "the store is read-only; make the file and its folder writable or give "
                                "another --tracking-uri")
    return _store_error(db, f"cannot use the store ({exc}); move the file aside or give another --tracking-uri")


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
