"""One contract test run over every pipeline and every task kind (the scikit-learn estimator-check idea)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.api import BasePipeline
from bench.discovery import available, load_module
from bench.metrics import score_all
from bench.splits import make_split
from bench.tasks import load_data, load_task
from tests.conftest import write_task

BUDGET_S = 10.0
TECHNOLOGIES = {"sklearn", "pytorch", "keras", "flaml"}


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformance")
    return {kind: write_task(folder, kind, rows=400) for kind in ("binary", "multiclass", "regression")}


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("name", available())
def test_pipeline_contract(name: str, kind: str, task_files, tmp_path):
    data = load_data(load_task(task_files[kind]))
    split = make_split(data, seed=0)
    X_train, X_test = data.X.iloc[split.train], data.X.iloc[split.test]
    y_train, y_test = data.y.iloc[split.train], data.y.iloc[split.test]
    cls = load_module(name).Pipeline
    assert cls.technology in TECHNOLOGIES
    assert issubclass(cls, BasePipeline)

    pipe = cls()
    info = data.info(seed=0, threads=1, budget_s=BUDGET_S, deadline=time.monotonic() + BUDGET_S)
    started = time.monotonic()
    assert pipe.fit(X_train, y_train, info) is pipe
    assert time.monotonic() - started < BUDGET_S + 5, "fit must respect the budget"
    assert isinstance(pipe.get_params(), dict)

    pred = np.asarray(pipe.predict(X_test))
    assert pred.shape == (len(X_test),)
    if kind == "regression":
        assert np.isfinite(pred.astype(float)).all()
        scores = score_all(kind, y_test, pred, None, (), None)
        assert scores["r2"] > 0.5, f"{name} learned no signal: {scores}"
    else:
        proba = np.asarray(pipe.predict_proba(X_test))
        assert proba.shape == (len(X_test), len(data.classes))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-4)
        assert set(pred.tolist()) <= set(data.classes), "labels come back in their original type"
        # predict agrees with the most probable column: proba columns follow TaskInfo.classes.
        argmax = np.asarray(data.classes, dtype=object)[proba.argmax(axis=1)]
        assert (argmax == pred).mean() >= 0.97
        scores = score_all(kind, y_test, pred, proba, data.classes, data.task.positive_label)
        assert scores["balanced_accuracy"] > 1.5 / len(data.classes), f"{name} learned no signal: {scores}"
        if kind == "binary":
            assert scores["roc_auc"] > 0.75

    # The saved model predicts exactly what the fitted one does, after a load in the framework's format.
    pipe.save(tmp_path)
    loaded = cls.load(tmp_path)
    np.testing.assert_allclose(np.asarray(loaded.predict(X_test), dtype=float), pred.astype(float), rtol=1e-6) \
        if kind == "regression" else np.testing.assert_array_equal(np.asarray(loaded.predict(X_test)), pred)

    # The timed model path (encode outside, predict_encoded inside) gives the same answer as predict.
    row = X_test.iloc[[0]]
    served = np.asarray(pipe.predict_encoded(pipe.encode(row)))[0]
    if kind == "regression":  # one row and a batch may round differently in BLAS
        assert served == pytest.approx(float(pred[0]), rel=1e-5, abs=1e-6)
    else:
        assert served == pred[0]
