"""One contract run over every pipeline and every task kind (the scikit-learn estimator-check idea), as the
named checks of ``bench.testing`` that ``bench check`` runs on a team's own pipeline file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import testing
from bench.discovery import available, source_file
from tests.conftest import FAKE_PIPELINES, REPO

BUDGET_S = testing.FULL_BUDGET_S  # the built-in pipelines must learn most of the signal
SLOW = {"flaml_automl", "keras_mlp", "sklearn_hgb_tuned"}  # over ~20 s for the three kinds on 2 busy cores
_RESULTS: dict[tuple[str, str], dict[str, testing.CheckResult]] = {}


def _pipelines():
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in available()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("conformance")


def _results(name: str, kind: str, folder) -> dict[str, testing.CheckResult]:
    """Every check of one pipeline on one kind, run once (they share the fitted pipeline)."""
    if (name, kind) not in _RESULTS:
        cls = testing.load_pipeline_class(name)
        if not any(n == name for n, _ in _RESULTS):
            # One throw-away pass first: a process's first fit of a framework pays one-time set-up (seen in fresh
            # clones: torch_mlp's first fit took 35 s in a full test run, 5 s alone), not the pipeline's deadline.
            testing.check_kind(cls, kind, folder / f"{name}-warm-up", budget_s=1.0)
        _RESULTS[name, kind] = {r.check: r for r in testing.check_kind(cls, kind, folder / name,
                                                                          budget_s=BUDGET_S)}
    return _RESULTS[name, kind]


@pytest.mark.parametrize("name", _pipelines())
def test_pipeline_class(name):
    result = testing.check_class(testing.load_pipeline_class(name))
    assert result.status == "PASS", result.line()


@pytest.mark.parametrize("check", [name for name, _ in testing.CHECKS])
@pytest.mark.parametrize("kind", testing.KINDS)
@pytest.mark.parametrize("name", _pipelines())
def test_pipeline_contract(name, kind, check, folder):
    result = _results(name, kind, folder)[check]
    assert not result.failed, f"{name}: {result.line()}"
    if result.status == "SKIP":
        assert check in ("predict_proba", "update_unseen_levels"), f"{name}: {result.line()}"
        pytest.skip(result.reason)


def test_check_pipeline_names_the_failing_check():
    run = subprocess.run([sys.executable, "-m", "bench.cli", "check", str(FAKE_PIPELINES / "fails_raise.py")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "FAIL fit_returns_self[binary]: ValueError at fails_raise.py:10: deliberate failure in fit" in lines
    assert "SKIP save_load[binary]: needs a fitted pipeline (fit failed)" in lines
    assert lines[-1].startswith("1 passed, 3 failed, 24 skipped: fit_returns_self[binary]")


def test_check_builtin_pipeline_passes():
    run = subprocess.run([sys.executable, "-m", "bench.cli", "check", "bench/pipelines/sklearn_linear.py"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1 + 3 * len(testing.CHECKS) + 1
    assert all(line.startswith(("PASS ", "SKIP ")) for line in lines[:-1])


def test_check_loads_a_file_outside_the_search_path(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_PIPELINE_PATH", raising=False)
    own = tmp_path / "team" / "my_linear.py"
    own.parent.mkdir()
    own.write_text(source_file("sklearn_linear").read_text())
    results = testing.check_pipeline(own, kinds=("binary",))
    assert [r.status for r in results if r.failed] == []
    assert results[0].name == "pipeline_class" and len(results) == 1 + len(testing.CHECKS)


@pytest.mark.parametrize("ref", ["no/such/file.py", str(REPO / "README.md"), "no_such_pipeline"])
def test_check_of_a_bad_path_is_a_usage_error(ref):
    from bench.cli import main

    assert main(["check", ref]) == 2


def test_a_file_without_pipeline_class_fails_the_class_check(tmp_path):
    empty = tmp_path / "nothing.py"
    empty.write_text("X = 1\n")
    results = testing.check_pipeline(empty, kinds=("regression",))
    assert results[0].failed and "defines no class named Pipeline" in results[0].reason
    assert all(r.status == "SKIP" for r in results[1:])
