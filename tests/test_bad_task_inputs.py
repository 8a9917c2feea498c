"""The bad task-file corpus (tests/bad_inputs/tasks/): every case is refused by ``bench run`` with exit code 2,
one ``error:`` line naming the file and the field, no traceback, and no store created.

Each case is one YAML file whose first comment lines say what is expected::

    # field: prepare.derive.z          (or "-" for an error about the whole file)
    # expect: only column names         (a fragment of the message)
    # setup: ...                        (optional: what the test builds beside it, e.g. a symlink loop)

Every case runs through the real CLI entry point (``bench.cli.main``) in this process, which is fast because
``bench run`` refuses before it imports any framework or MLflow; a representative handful also run as
``python -m bench.cli`` subprocesses, which is what a user sees (stderr, exit code, files left behind).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from tests.conftest import REPO

CORPUS = Path(__file__).resolve().parent / "bad_inputs" / "tasks"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))
SUBPROCESS_CASES = ["alias_bomb", "derive_ctypes_system", "derive_to_csv", "drop_target", "duplicate_key_nested",
                    "duplicate_csv_header", "symlink_loop", "feature_named_cache_target"]


def _expectations(path: Path) -> tuple[str | None, str]:
    head = path.read_text(encoding="utf-8")[:2000]
    field = re.search(r"^# field: (.+)$", head, re.M).group(1).strip()
    fragment = re.search(r"^# expect: (.+)$", head, re.M).group(1).strip()
    return (None if field == "-" else field), fragment


def _prepare_case(name: str, folder: Path) -> Path:
    """Copy the corpus into ``folder`` (the tests never write into the repository) and build the setups."""
    shutil.copytree(CORPUS, folder, dirs_exist_ok=True)
    if name == "symlink_loop":
        (folder / "loop.csv").symlink_to("loop2.csv")
        (folder / "loop2.csv").symlink_to("loop.csv")
    elif name == "data_path_directory":
        (folder / "folder.csv").mkdir()
    elif name == "oversize":
        path = folder / "oversize.yaml"
        path.write_text(path.read_text() + ("# padding\n" * 115_000))
    return folder / f"{name}.yaml"


def _argv(task: Path, store: Path) -> list[str]:
    return ["run", "--tasks", str(task), "--pipelines", "sklearn_linear", "--tracking-uri", f"sqlite:///{store}",
            "--budget", "1"]


def _check_message(stderr: str, task: Path, field: str | None, fragment: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    line = lines[0]
    assert line.startswith("error: ") and str(task.name) in line, line
    if field is not None:
        assert f"field '{field}'" in line, line
    assert fragment in line, line


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_the_corpus_has_every_case_of_the_issue():
    issue_cases = {"alias_bomb", "duplicate_key_nested", "reserved_name_default", "reserved_name_matrix",
                   "derive_to_csv", "derive_to_pickle", "derive_tofile", "derive_dump", "derive_ctypes_system",
                   "drop_target", "feature_named_cache_target", "duplicate_csv_header", "symlink_loop"}
    assert issue_cases <= set(CASES)
    assert len(CASES) >= 40
    assert (CORPUS / "alias_bomb.yaml").stat().st_size < 600


@pytest.mark.parametrize("name", CASES)
def test_bench_run_refuses_the_case(name, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    task = _prepare_case(name, tmp_path / "corpus")
    work.mkdir()
    monkeypatch.chdir(work)
    store = tmp_path / "store" / "m.db"
    field, fragment = _expectations(task)
    before = _files(tmp_path / "corpus")
    code = cli.main(_argv(task, store))
    out, err = capsys.readouterr()
    assert code == 2, err
    _check_message(err, task, field, fragment)
    assert out == ""
    assert not store.exists() and not store.parent.exists(), "the store was created"
    assert _files(work) == set(), f"files written to the working directory: {_files(work)}"
    assert _files(tmp_path / "corpus") == before


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bench_run_refuses_the_case_in_a_fresh_process(name, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    task = _prepare_case(name, tmp_path / "corpus")
    store = tmp_path / "store" / "m.db"
    field, fragment = _expectations(task)
    env = {**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "bench.cli", *_argv(task, store)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    _check_message(proc.stderr, task, field, fragment)
    assert not store.exists() and not store.parent.exists()
    assert not (tmp_path / "cache").exists(), "data was cached for a refused task"
    assert _files(work) == set(), "the payload wrote a file"  # out.txt, pwned.csv ...


def test_bench_list_tasks_refuses_a_bad_file_in_the_tasks_folder(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    shutil.copy(CORPUS / "alias_bomb.yaml", folder / "alias_bomb.yaml")
    env = {**os.environ, "BENCH_TASKS_DIR": str(folder), "BENCH_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "list", "tasks"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    _check_message(proc.stderr, folder / "alias_bomb.yaml", "a", "anchor &a is not allowed")


def test_a_suite_file_goes_through_the_same_reader(tmp_path, monkeypatch, capsys):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "bad.yaml").write_text("tasks: &t [x]\ndescription: a suite\n")
    (tmp_path / "suites" / "twice.yaml").write_text("tasks: [x]\ntasks: [y]\n")
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for suite, field, fragment in (("bad", "tasks", "anchor &t"), ("twice", "tasks", "duplicate key 'tasks'")):
        assert cli.main(["run", "--suite", suite, "--pipelines", "sklearn_linear", "--tracking-uri",
                         f"sqlite:///{tmp_path}/m.db"]) == 2
        _check_message(capsys.readouterr().err, tmp_path / "suites" / f"{suite}.yaml", field, fragment)
    assert not (tmp_path / "m.db").exists()
