"""The pipeline contract as named checks a team can run on its own pipeline file: ``bench check FILE``.

Each check runs in this process on tiny generated data (binary with string labels, multiclass with string
labels, regression), with missing numbers, missing categories and a category level that only appears after
training, the way the harness hands data to a pipeline. The conformance test of the built-in pipelines is a
parametrisation over the same checks.

Example::

    results = bench.testing.check_pipeline("my_pipelines/lightgbm_tuned.py")
    assert not [r for r in results if r.status == "FAIL"], [r.line() for r in results]
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.procfs import runqueue_wait_s

KINDS = ("binary", "multiclass", "regression")
BUDGET_S = 3.0  # the fit budget the checks give; a pipeline must stop by its deadline
MARGIN_S = 5.0  # seconds past the deadline still accepted (start-up of a framework, a last epoch)
FULL_BUDGET_S = 10.0  # from this budget on, learns_signal asks for most of the signal (see its docstring)
ROWS = 400
UNSEEN_LEVEL = "purple"  # a category level no training row has


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one named check: ``status`` is PASS, FAIL or SKIP, ``reason`` says why."""

    check: str
    kind: str | None
    status: str
    reason: str = ""
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.check}[{self.kind}]" if self.kind else self.check

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        return f"{self.status} {self.name}" + (f": {self.reason}" if self.reason else "")


class Skip(Exception):
    """Raised by a check that does not apply (a regression task has no probabilities)."""


@dataclass
class Case:
    """One kind's generated data, split, and what the checks learned so far about the pipeline under test."""

    kind: str
    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series
    classes: tuple
    positive_label: Any
    make_info: Callable[[], Any]
    folder: Path
    budget_s: float = BUDGET_S
    state: dict[str, Any] = field(default_factory=dict)


# --- the data ----------------------------------------------------------------------------------------------

def _frame(kind: str, rows: int, rng: np.random.Generator, unseen: bool) -> pd.DataFrame:
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows).astype(object)
    signal = 2 * x1 - x2 + np.where(colour == "red", 1.5, 0.0)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "noise": rng.normal(size=rows)})
    frame.loc[rng.random(rows) < 0.1, "x2"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "colour"] = ""
    if unseen:
        frame.loc[rng.random(rows) < 0.1, "colour"] = UNSEEN_LEVEL
    if kind == "binary":
        frame["label"] = np.where(signal + rng.normal(scale=0.5, size=rows) > 0, "yes", "no")
    elif kind == "multiclass":
        frame["label"] = np.select([signal < -1, signal < 1], ["low", "mid"], "high")
    else:
        frame["label"] = 10 * signal + rng.normal(size=rows)
    return frame


def make_case(kind: str, folder: Path, rows: int = ROWS, seed: int = 0, budget_s: float = BUDGET_S) -> Case:
    """Generated rows prepared exactly as the harness prepares a task's data; the unseen level is in test rows."""
    from bench.metrics import METRIC_SETS
    from bench.tasks.prepare import from_frame
    from bench.tasks.schema import Task

    rng = np.random.default_rng(seed)
    n_train = rows * 3 // 4
    frame = pd.concat([_frame(kind, n_train, rng, unseen=False), _frame(kind, rows - n_train, rng, unseen=True)],
                      ignore_index=True)
    task = Task(name=f"check_{kind}", path=Path(f"<bench check: generated {kind} data>"), kind=kind,
                target="label", metric=METRIC_SETS[kind][0], source={"type": "generated"}, prepare={},
                positive_label="yes" if kind == "binary" else None)
    data = from_frame(task, frame)
    train, test = slice(0, n_train), slice(n_train, rows)

    def make_info():
        return data.info(seed=seed, threads=1, budget_s=budget_s, deadline=time.monotonic() + budget_s)

    return Case(kind=kind, X_train=data.X.iloc[train], y_train=data.y.iloc[train], X_test=data.X.iloc[test],
                y_test=data.y.iloc[test], classes=data.classes, positive_label=task.positive_label,
                make_info=make_info, folder=folder, budget_s=budget_s)


# --- the checks ----------------------------------------------------------------------------------------------

def _fitted(case: Case) -> Any:
    if "pipe" not in case.state:
        raise Skip("needs a fitted pipeline (fit failed)")
    return case.state["pipe"]


def _predicted(case: Case) -> np.ndarray:
    _fitted(case)
    if "pred" not in case.state:
        raise Skip("needs predictions (predict failed)")
    return case.state["pred"]


def _check_labels(case: Case, pred: np.ndarray, n: int, what: str) -> None:
    assert pred.shape == (n,), f"{what} returned shape {pred.shape}, expected ({n},)"
    if case.kind == "regression":
        assert np.isfinite(pred.astype(float)).all(), f"{what} returned non-finite values"
    else:
        unknown = set(pred.tolist()) - set(case.classes)
        assert not unknown, f"{what} returned labels {sorted(map(repr, unknown))[:3]} not among the classes " \
                            f"{list(case.classes)} (labels come back in their original type)"


def check_fit_returns_self(cls: type, case: Case) -> None:
    """``fit`` on raw training rows returns the pipeline itself."""
    pipe = cls()
    started, waited = time.monotonic(), runqueue_wait_s()
    out = pipe.fit(case.X_train, case.y_train, case.make_info())
    case.state["fit_s"] = time.monotonic() - started
    case.state["starved_s"] = runqueue_wait_s() - waited
    case.state["pipe"] = pipe
    assert out is pipe, f"fit returned {type(out).__name__}, not the pipeline itself (return self)"


def check_fit_respects_deadline(cls: type, case: Case) -> None:
    """``fit`` returns by ``TaskInfo.deadline`` (the budget), give or take ``MARGIN_S``."""
    if "fit_s" not in case.state:
        raise Skip("fit failed")
    # Time spent ready to run but waiting for a CPU (a busy machine) is not the pipeline's overrun; sleeping
    # or blocking past the deadline still counts.
    starved = case.state.get("starved_s", 0.0)
    took, allowed = case.state["fit_s"], case.budget_s + MARGIN_S + starved
    assert took <= allowed, f"fit took {took:.1f} s with a {case.budget_s:g} s budget (allowed {allowed:.1f} s, " \
                            f"{starved:.1f} s of it waiting for a CPU): stop by task.deadline"


def check_predict(cls: type, case: Case) -> None:
    """``predict`` gives one value per row: known labels (classification) or finite numbers (regression)."""
    pred = np.asarray(_fitted(case).predict(case.X_test))
    _check_labels(case, pred, len(case.X_test), "predict")
    case.state["pred"] = pred


def check_predict_proba(cls: type, case: Case) -> None:
    """``predict_proba`` columns follow ``TaskInfo.classes``, rows sum to 1, and predict is their argmax."""
    if case.kind == "regression":
        raise Skip("a regression task has no probabilities")
    pipe, pred = _fitted(case), _predicted(case)
    proba = np.asarray(pipe.predict_proba(case.X_test), dtype=float)
    expected = (len(case.X_test), len(case.classes))
    assert proba.shape == expected, f"predict_proba returned shape {proba.shape}, expected {expected} " \
                                    f"(one column per class of TaskInfo.classes)"
    sums = proba.sum(axis=1)
    assert np.allclose(sums, 1.0, atol=1e-4), f"rows sum to {sums.min():.4g}..{sums.max():.4g}, expected 1"
    argmax = np.asarray(case.classes, dtype=object)[proba.argmax(axis=1)]
    agree = float((argmax == pred).mean())
    assert agree >= 0.97, f"predict agrees with the most probable column on {agree:.0%} of rows: the columns " \
                          f"must follow TaskInfo.classes {list(case.classes)}"
    case.state["proba"] = proba


def check_learns_signal(cls: type, case: Case) -> None:
    """The model beats the constant predictor on data with a strong signal.

    With a budget of ``FULL_BUDGET_S`` or more it must learn most of it (r2 > 0.5, balanced accuracy above 1.5x
    chance, roc_auc > 0.75); with a shorter one (a network may get one or two epochs in 3 s) it must only do
    clearly better than the constant predictor, which swapped probability columns or ignored features do not.
    """
    from bench.metrics import score_all

    pred = _predicted(case)
    full = case.budget_s >= FULL_BUDGET_S
    if case.kind == "regression":
        r2, low = score_all("regression", case.y_test, pred, None, (), None)["r2"], 0.5 if full else 0.05
        assert r2 > low, f"r2 {r2:.3f} on a strong signal (expected > {low:g} with a {case.budget_s:g} s budget)"
        return
    if "proba" not in case.state:
        raise Skip("needs probabilities (predict_proba failed)")
    scores = score_all(case.kind, case.y_test, pred, case.state["proba"], case.classes, case.positive_label)
    chance = 1.5 / len(case.classes) if full else 1 / len(case.classes) + 0.05
    assert scores["balanced_accuracy"] > chance, f"balanced accuracy {scores['balanced_accuracy']:.3f} " \
                                                 f"(expected > {chance:.2f} with a {case.budget_s:g} s budget)"
    if case.kind == "binary":
        low = 0.75 if full else 0.55
        assert scores["roc_auc"] > low, f"roc_auc {scores['roc_auc']:.3f} (expected > {low:g} with a " \
                                        f"{case.budget_s:g} s budget)"


def _special_rows(case: Case) -> dict[str, pd.DataFrame]:
    X = case.X_test
    masks = {"a missing number": X["x2"].isna(), "a missing category": X["colour"].isna(),
             f"the unseen level {UNSEEN_LEVEL!r}": X["colour"] == UNSEEN_LEVEL}
    return {what: X[mask.fillna(False).to_numpy(bool)] for what, mask in masks.items()}


def check_missing_and_unseen(cls: type, case: Case) -> None:
    """Rows with a missing number, a missing category or an unseen level predict, in a batch and one at a time."""
    pipe = _fitted(case)
    for what, rows in _special_rows(case).items():
        assert len(rows), f"the generated data has no row with {what}"
        _check_labels(case, np.asarray(pipe.predict(rows)), len(rows), f"predict on rows with {what}")
        _check_labels(case, np.asarray(pipe.predict(rows.iloc[[0]])), 1, f"predict on one row with {what}")


def check_save_load(cls: type, case: Case) -> None:
    """What ``save`` writes, ``load`` reads back into a pipeline that predicts the same."""
    pipe, pred = _fitted(case), _predicted(case)
    folder = case.folder / f"model_{case.kind}"
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save(folder)
    loaded = cls.load(folder)
    again = np.asarray(loaded.predict(case.X_test))
    if case.kind == "regression":
        np.testing.assert_allclose(again.astype(float), pred.astype(float), rtol=1e-6,
                                   err_msg="the loaded model predicts differently")
    else:
        differ = int((again != pred).sum())
        assert differ == 0, f"the loaded model predicts differently on {differ} of {len(pred)} rows"


def check_model_path(cls: type, case: Case) -> None:
    """The timed model path, ``predict_encoded(encode(row))``, answers what ``predict`` does, one row at a time."""
    pipe, pred = _fitted(case), _predicted(case)
    unseen = np.flatnonzero((case.X_test["colour"] == UNSEEN_LEVEL).fillna(False).to_numpy(bool))
    for i in [0, *unseen[:1]]:
        served = np.asarray(pipe.predict_encoded(pipe.encode(case.X_test.iloc[[i]])))
        assert served.shape[:1] == (1,), f"predict_encoded on one encoded row returned shape {served.shape}"
        if case.kind == "regression":  # one row and a batch may round differently in BLAS
            ok = bool(np.isclose(float(served[0]), float(pred[i]), rtol=1e-5, atol=1e-6))
        else:
            ok = served[0] == pred[i]
        assert ok, f"row {i}: predict_encoded(encode(row)) gave {served[0]!r}, predict gave {pred[i]!r}"


def check_update_unseen_levels(cls: type, case: Case) -> None:
    """``update`` on a batch with the unseen level returns self and changes the model (online pipelines only)."""
    if not getattr(cls, "supports_online_learning", False):
        raise Skip("supports_online_learning is False")
    pipe = _fitted(case)
    before = np.asarray(pipe.predict_proba(case.X_test) if case.kind != "regression" else pipe.predict(case.X_test),
                        dtype=float)
    out = pipe.update(case.X_test, case.y_test, case.make_info())
    assert out is pipe, f"update returned {type(out).__name__}, not the pipeline itself (return self)"
    pred = np.asarray(pipe.predict(case.X_test))
    _check_labels(case, pred, len(case.X_test), "predict after update")
    after = np.asarray(pipe.predict_proba(case.X_test) if case.kind != "regression" else pred, dtype=float)
    assert after.shape == before.shape and np.isfinite(after).all(), "predictions after update are not finite"
    assert not np.allclose(after, before), "the update changed nothing"


CHECKS: tuple[tuple[str, Callable[[type, Case], None]], ...] = (
    ("fit_returns_self", check_fit_returns_self),
    ("fit_respects_deadline", check_fit_respects_deadline),
    ("predict", check_predict),
    ("predict_proba", check_predict_proba),
    ("learns_signal", check_learns_signal),
    ("missing_and_unseen", check_missing_and_unseen),
    ("save_load", check_save_load),
    ("model_path", check_model_path),
    ("update_unseen_levels", check_update_unseen_levels),
)
CHECK_NAMES = ("pipeline_class", *(name for name, _ in CHECKS))


# --- running them ----------------------------------------------------------------------------------------------

def _reason(exc: BaseException) -> str:
    if isinstance(exc, AssertionError) and str(exc):
        return str(exc).splitlines()[0]
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}{where}" + (f": {text}" if text else "")


def _run(name: str, kind: str | None, fn: Callable[[], None]) -> CheckResult:
    started = time.monotonic()
    try:
        fn()
    except Skip as skip:
        return CheckResult(name, kind, "SKIP", str(skip), time.monotonic() - started)
    except Exception as exc:  # any error of the pipeline is the check's failure, named
        return CheckResult(name, kind, "FAIL", _reason(exc), time.monotonic() - started)
    return CheckResult(name, kind, "PASS", "", time.monotonic() - started)


def check_class(cls: Any) -> CheckResult:
    """The ``Pipeline`` class: a ``BasePipeline`` with a known technology, built with default arguments."""
    from bench.api import BasePipeline, Technology

    def run() -> None:
        assert isinstance(cls, type) and issubclass(cls, BasePipeline), "Pipeline must subclass bench.api.BasePipeline"
        tech = getattr(cls, "technology", None)
        assert tech in get_args(Technology), f"technology {tech!r} is not one of {', '.join(get_args(Technology))}"
        params = cls().get_params()
        assert isinstance(params, dict), f"get_params returned {type(params).__name__}, not a dict"

    return _run("pipeline_class", None, run)


def check_kind(cls: type, kind: str, folder: Path, on_result: Callable[[CheckResult], None] | None = None,
               budget_s: float = BUDGET_S) -> list[CheckResult]:
    """Every named check on one kind of data, in order; later checks reuse the fitted pipeline."""
    case = make_case(kind, folder, budget_s=budget_s)
    results = []
    for name, fn in CHECKS:
        result = _run(name, kind, lambda fn=fn: fn(cls, case))
        results.append(result)
        if on_result:
            on_result(result)
    return results


def resolve(path_or_id: str | os.PathLike) -> tuple[Path, str]:
    """The file and id of a pipeline given by path (any folder) or by id on the search path.

    Raises ``BenchError`` for a path that is not a Python file or an id that is not on the search path.
    """
    from bench import discovery

    ref = str(path_or_id)
    if isinstance(path_or_id, os.PathLike) or ref.endswith(".py") or os.sep in ref or "/" in ref:
        path = Path(ref)
        if not path.is_file() or path.suffix != ".py":
            raise BenchError(f"no pipeline file {ref}; give a .py file defining a class Pipeline, or a pipeline "
                             "id of `bench list pipelines`", field="PIPELINE_FILE")
        return path.resolve(), path.stem
    return discovery.source_file(ref).resolve(), ref  # raises BenchError naming the known pipelines


def load_pipeline_class(path_or_id: str | os.PathLike) -> type:
    """The ``Pipeline`` class of a pipeline file or id (``resolve``); import errors propagate."""
    from bench import discovery

    path, name = resolve(path_or_id)
    return discovery.load_file(path, name).Pipeline


def check_pipeline(path_or_id: str | os.PathLike, kinds: tuple[str, ...] = KINDS,
                   on_result: Callable[[CheckResult], None] | None = None,
                   budget_s: float = BUDGET_S) -> list[CheckResult]:
    """Run every named check on a pipeline file or id; ``on_result`` sees each result as it comes.

    Raises ``BenchError`` for a path that is not a pipeline file or an unknown id (see ``resolve``); a file
    that fails to import or has no ``Pipeline`` class is a failed ``pipeline_class`` check.
    """
    resolve(path_or_id)  # a bad path or id is a usage error, raised before any check
    holder: dict[str, Any] = {}
    first = _run("pipeline_class", None, lambda: holder.setdefault("cls", load_pipeline_class(path_or_id)))
    if first.status == "PASS":
        first = check_class(holder["cls"])
    results = [first]
    if first.failed:
        results += [CheckResult(check, kind, "SKIP", "pipeline_class failed") for kind in kinds for check, _ in CHECKS]
        for result in results if on_result else []:
            on_result(result)
        return results
    if on_result:
        on_result(first)
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        for kind in kinds:
            results += check_kind(holder["cls"], kind, Path(tmp), on_result, budget_s)
    return results
