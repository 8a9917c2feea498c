"""The bad-input corpus for stores, tracking URIs and numeric options (one line, exit code 2, store unchanged).

Every case runs the real CLI in a subprocess with its own working folder and store, and must end with exit
code 2, one line on stderr naming the option or file and saying how to fix it, no traceback, and the store
exactly as it was (same bytes) or, where there was none, still none. They all fail before any job runs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

VALID = ["--tasks", "breast_cancer", "--pipelines", "sklearn_linear", "--budget", "1", "--latency-n", "100",
         "--cold-start-repeats", "1", "--batch-rows", "500"]
STORE = "sqlite:///store/mlflow.db"  # relative: resolved against the case's working folder


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real MLflow store (created by the harness), copied by the cases that need an existing store."""
    from bench import tracking

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    tracking.check_store(f"sqlite:///{path}")
    return path


def cli(*args: str, cwd: Path, env: dict | None = None, wrap: list[str] | None = None):
    cmd = [sys.executable, "-m", "bench.cli", *args]
    base = os.environ | {"PYTHONPATH": str(REPO), "BENCH_STORE_WAIT_S": "1", "BENCH_CACHE_DIR": str(cwd / "cache")}
    base.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([*(wrap or []), *cmd], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=base | (env or {}))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


def assert_one_line(out: subprocess.CompletedProcess, *fragments: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, note TEXT)")
    con.execute("INSERT INTO runs (note) VALUES ('my own data')")
    con.commit()
    con.close()


def corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 200)


def copy_of(template: Path):
    def setup(path: Path) -> None:
        shutil.copyfile(template, path)
    return setup


# (id, command and options, setup of store/mlflow.db or None, environment, fragments of the one line)
STORE_CASES = [
    ("corrupt store", ["run", *VALID, "--tracking-uri", STORE], corrupt, {},
     ["mlflow.db", "corrupt", "move it aside"]),
    ("non-MLflow SQLite file", ["run", *VALID, "--tracking-uri", STORE], foreign_sqlite, {},
     ["mlflow.db", "not an MLflow store", "left unchanged"]),
    ("matrix on a corrupt store", ["matrix", "--no-log", "--tracking-uri", STORE], corrupt, {},
     ["mlflow.db", "--tracking-uri", "corrupt"]),
    ("matrix on a non-MLflow SQLite file", ["matrix", "--no-log", "--tracking-uri", STORE], foreign_sqlite, {},
     ["mlflow.db", "not an MLflow store"]),
    ("corrupt store via MLFLOW_TRACKING_URI", ["run", *VALID], corrupt, {"MLFLOW_TRACKING_URI": STORE},
     ["mlflow.db", "corrupt"]),
    ("empty --tracking-uri", ["run", *VALID, "--tracking-uri", ""], None, {},
     ["--tracking-uri", "empty", "sqlite:///"]),
    ("in-memory SQLite", ["run", *VALID, "--tracking-uri", "sqlite:///:memory:"], None, {},
     ["--tracking-uri", "in-memory", "sqlite:///PATH"]),
    ("in-memory SQLite via MLFLOW_TRACKING_URI", ["run", *VALID], None,
     {"MLFLOW_TRACKING_URI": "sqlite:///:memory:"}, ["MLFLOW_TRACKING_URI", "in-memory"]),
    ("sqlite:// without a path", ["stream", "--task", "drift_stream", "--tracking-uri", "sqlite://"], None, {},
     ["--tracking-uri", "in-memory"]),
    ("store path under a file", ["run", *VALID, "--tracking-uri", "sqlite:///afile/store/mlflow.db"], None, {},
     ["afile", "cannot create", "--tracking-uri"]),
    ("store path is a folder", ["run", *VALID, "--tracking-uri", "sqlite:///store"], None, {},
     ["store", "is a folder"]),
    ("artifact folder is a file", ["run", *VALID, "--tracking-uri", STORE], "artifacts-file", {},
     ["artifacts", "artifact folder", "--tracking-uri"]),
    ("unwritable data cache", ["run", *VALID, "--tracking-uri", STORE], None,
     {"BENCH_CACHE_DIR": "afile/cache"}, ["BENCH_CACHE_DIR", "data cache folder", "writable"]),
]


@pytest.mark.parametrize("name, args, setup, env, fragments", STORE_CASES, ids=[c[0] for c in STORE_CASES])
def test_a_bad_store_or_uri_is_one_line_and_leaves_the_store_unchanged(tmp_path, name, args, setup, env,
                                                                      fragments):
    (tmp_path / "afile").write_text("a file, not a folder\n")
    store = tmp_path / "store"
    if setup == "artifacts-file":
        store.mkdir()
        (store / "artifacts").write_text("a file where the artifact folder should be\n")
    elif setup is not None:
        store.mkdir()
        setup(store / "mlflow.db")
    if name == "store path is a folder":
        store.mkdir()
    before = snapshot(store)
    env = {k: v.replace("afile", str(tmp_path / "afile")) for k, v in env.items()}
    out = cli(*args, cwd=tmp_path, env=env)
    assert_one_line(out, *fragments)
    assert snapshot(store) == before, "the store folder is exactly as it was"
    if not before:
        assert not (tmp_path / "mlflow").exists() and not store.joinpath("mlflow.db").exists()


@pytest.mark.slow
def test_a_store_locked_by_another_process_is_reported_after_a_bounded_wait(tmp_path, template_store):
    (tmp_path / "store").mkdir()
    db = tmp_path / "store" / "mlflow.db"
    shutil.copyfile(template_store, db)
    before = snapshot(tmp_path / "store")
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\n"
                               f"con = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
                               "con.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        out = cli("run", *VALID, "--tracking-uri", STORE, cwd=tmp_path)
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert_one_line(out, "mlflow.db", "locked by another process", "BENCH_STORE_WAIT_S")
    assert waited < 60
    assert snapshot(tmp_path / "store") == before


@pytest.mark.slow
def test_a_half_built_store_that_holds_runs_is_refused_not_migrated(tmp_path, template_store):
    """A store at an unexpected schema version with runs in it may be data from another MLflow: never touched."""
    (tmp_path / "store").mkdir()
    db = tmp_path / "store" / "mlflow.db"
    shutil.copyfile(template_store, db)
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = 'not_a_revision'")
    con.execute("INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status, source_type) "
                "VALUES ('r1', 0, 'active', 'FINISHED', 'LOCAL')")
    con.commit()
    con.close()
    before = snapshot(tmp_path / "store")
    out = cli("run", *VALID, "--tracking-uri", STORE, cwd=tmp_path)
    assert_one_line(out, "mlflow.db", "not_a_revision", "mlflow db upgrade")
    assert snapshot(tmp_path / "store") == before


def _read_only_wrapper(folder: Path) -> list[str] | None:
    """Run the CLI with ``folder`` read-only: a read-only bind mount in a private mount namespace (root is not
    stopped by file modes), or plain file modes for other users. None when neither is possible here."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if not shutil.which("unshare"):
        return None
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount --bind -o ro '{folder}' '{folder}'"], capture_output=True)
    if probe.returncode != 0:
        return None
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            f"mount --bind -o ro '{folder}' '{folder}' && exec \"$@\"", "sh"]


@pytest.mark.parametrize("existing", [True, False], ids=["existing store", "no store yet"])
def test_a_read_only_store_folder_is_one_line(tmp_path, template_store, existing):
    store = tmp_path / "store"
    store.mkdir()
    if existing:
        shutil.copyfile(template_store, store / "mlflow.db")
    before = snapshot(store)
    wrap = _read_only_wrapper(store)
    if wrap is None:
        pytest.skip("cannot make a folder read-only here (root without mount namespaces)")
    try:
        out = cli("run", *VALID, "--tracking-uri", STORE, cwd=tmp_path, wrap=wrap)
    finally:
        store.chmod(0o755)
    assert_one_line(out, "store", "cannot write to the store folder", "--tracking-uri")
    assert snapshot(store) == before


NUMERIC_CASES = [
    ("run", "--budget", "nan"), ("run", "--budget", "inf"), ("run", "--budget", "-1"), ("run", "--budget", "0"),
    ("run", "--time-margin", "nan"), ("run", "--time-margin", "-5"), ("run", "--time-margin", "inf"),
    ("run", "--memory-limit-gb", "-1"), ("run", "--memory-limit-gb", "nan"), ("run", "--memory-limit-gb", "0"),
    ("run", "--seeds", "0"), ("run", "--seeds", "100000"), ("run", "--cores", "0"), ("run", "--latency-n", "0"),
    ("run", "--batch-rows", "-3"), ("run", "--cold-start-repeats", "0"), ("run", "--workers", "0"),
    ("run", "--jobs", "0"), ("run", "--latency-cap-s", "nan"), ("scale", "--memory-limit-gb", "-2"),
    ("stream", "--budget", "nan"), ("stream", "--update-budget", "inf"), ("stream", "--time-margin", "-1"),
    ("stream", "--memory-limit-gb", "0"), ("stream", "--retrain-every", "0"), ("stream", "--window", "-2"),
    ("scale", "--budget", "nan"), ("scale", "--time-limit", "inf"), ("scale", "--features", "0"),
    ("scale", "--seed", "-1"), ("matrix", "--network-rtt-ms", "nan"), ("matrix", "--network-rtt-ms", "-1"),
    ("ui", "--port", "0"), ("ui", "--port", "70000"),
]
COMMAND = {"run": ["run", *VALID], "stream": ["stream", "--task", "drift_stream"],
           "scale": ["scale", "--synthetic", "binary"], "matrix": ["matrix", "--no-log"], "ui": ["ui"]}


@pytest.mark.parametrize("command, option, value", NUMERIC_CASES,
                         ids=[f"{c} {o} {v}" for c, o, v in NUMERIC_CASES])
def test_a_numeric_option_out_of_range_is_one_line_naming_it_and_its_range(tmp_path, command, option, value):
    out = cli(*COMMAND[command], option, value, "--tracking-uri", STORE, cwd=tmp_path)
    assert_one_line(out, f"field '{option}'", "must be", "<=", "got")
    assert not (tmp_path / "store").exists(), "nothing is written for an invalid option"


def test_relative_sqlite_uris_resolve_against_the_working_folder(tmp_path, monkeypatch):
    from bench import tracking

    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow/mlflow.db")
    assert tracking.resolve_uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert tracking.resolve_uri(f"sqlite:///{tmp_path}/a.db") == f"sqlite:///{tmp_path}/a.db"
    assert tracking.resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_a_relative_sqlite_uri_works_end_to_end(tmp_path):
    """MLflow's standard relative form used to crash ("relative path can't be expressed as a file URI")."""
    out = cli("run", *VALID, "--tracking-uri", "sqlite:///rel/mlflow.db", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "finished 1" in out.stdout.replace("\n", " ")
    assert (tmp_path / "rel" / "mlflow.db").is_file() and (tmp_path / "rel" / "artifacts").is_dir()
    matrix = cli("matrix", "--no-log", "--out", "results", cwd=tmp_path,
                 env={"MLFLOW_TRACKING_URI": "sqlite:///rel/mlflow.db"})
    assert matrix.returncode == 0, matrix.stderr[-3000:]
    assert (tmp_path / "results" / "decision_matrix.csv").is_file()
