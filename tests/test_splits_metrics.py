"""Splits are seeded, stratified and hashed; metrics name the positive label explicitly."""

from __future__ import annotations

import numpy as np

from bench.metrics import METRICS, constant_predictions, score_all
from bench.splits import make_split
from bench.tasks import load_data, load_task
from tests.conftest import write_task


def test_split_is_seeded_stratified_and_hashed(tmp_path):
    data = load_data(load_task(write_task(tmp_path, "multiclass", rows=300)))
    a, b, c = make_split(data, 0), make_split(data, 0), make_split(data, 1)
    assert a.hash == b.hash and np.array_equal(a.test, b.test)
    assert a.hash != c.hash
    assert not set(a.train) & set(a.test) and len(a.train) + len(a.test) == 300
    full = data.y.value_counts(normalize=True)
    test = data.y.iloc[a.test].value_counts(normalize=True)
    assert (abs(full - test) < 0.03).all(), "class shares are kept in the test set"


def test_roc_auc_uses_the_positive_label_not_the_alphabet():
    # A known pitfall: on cells the positive class "PS" sorts first; sklearn's default picks "WS".
    y = np.array(["PS", "WS", "PS", "WS", "PS"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.6, 0.4]])
    pred = np.array(["PS", "WS", "PS", "WS", "PS"])
    scores = score_all("binary", y, pred, proba, ("PS", "WS"), "PS")
    assert scores["roc_auc"] == 1.0
    assert METRICS["rmse"].greater_is_better is False and METRICS["roc_auc"].greater_is_better


def test_constant_predictor_anchors_zero_quality():
    y_train = np.array(["a"] * 30 + ["b"] * 10)
    pred, proba = constant_predictions("binary", y_train, 5, ("a", "b"))
    assert (pred == "a").all() and np.allclose(proba, [0.75, 0.25])
    scores = score_all("binary", np.array(["a", "b", "a", "b", "a"]), pred, proba, ("a", "b"), "b")
    assert scores["roc_auc"] == 0.5 and scores["balanced_accuracy"] == 0.5
    values, _ = constant_predictions("regression", np.array([1.0, 3.0]), 3, ())
    assert np.allclose(values, 2.0)


def test_constant_predictor_scores_integer_and_boolean_labels():
    for classes, y in [((0, 1), np.array([0, 1, 0, 0])), ((False, True), np.array([False, True, True, True]))]:
        pred, proba = constant_predictions("binary", y, len(y), classes)
        scores = score_all("binary", y, pred, proba, classes, classes[1])
        assert scores["roc_auc"] == 0.5 and scores["balanced_accuracy"] == 0.5
