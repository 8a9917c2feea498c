"""Metric registry: each metric declares its direction once, and scoring always names the positive label."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    greater_is_better: bool
    needs_proba: bool
    fn: Callable[..., float]


def _roc_auc(y, pred, proba, classes, positive):
    from sklearn.metrics import roc_auc_score

    # Explicit positive column: with string labels sklearn would otherwise pick the alphabetically last class.
    return roc_auc_score(np.asarray(y) == positive, proba[:, list(classes).index(positive)])


def _log_loss(y, pred, proba, classes, positive):
    from sklearn.metrics import log_loss

    return log_loss(y, np.clip(proba, 1e-15, 1), labels=list(classes))


def _accuracy(y, pred, proba, classes, positive):
    from sklearn.metrics import accuracy_score

    return accuracy_score(y, pred)


def _balanced_accuracy(y, pred, proba, classes, positive):
    from sklearn.metrics import balanced_accuracy_score

    return balanced_accuracy_score(y, pred)


def _f1(y, pred, proba, classes, positive):
    from sklearn.metrics import f1_score

    return f1_score(np.asarray(y) == positive, np.asarray(pred) == positive)


def _brier(y, pred, proba, classes, positive):
    from sklearn.metrics import brier_score_loss

    return brier_score_loss(np.asarray(y) == positive, proba[:, list(classes).index(positive)])


def _mape(y, pred, proba, classes, positive):
    from sklearn.metrics import mean_absolute_percentage_error

    return mean_absolute_percentage_error(y, pred)


def _rmse(y, pred, proba, classes, positive):
    from sklearn.metrics import root_mean_squared_error

    return root_mean_squared_error(y, pred)


def _mae(y, pred, proba, classes, positive):
    from sklearn.metrics import mean_absolute_error

    return mean_absolute_error(y, pred)


def _r2(y, pred, proba, classes, positive):
    from sklearn.metrics import r2_score

    return r2_score(y, pred)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", True, True, _roc_auc),
        Metric("log_loss", False, True, _log_loss),
        Metric("accuracy", True, False, _accuracy),
        Metric("balanced_accuracy", True, False, _balanced_accuracy),
        Metric("rmse", False, False, _rmse),
        Metric("mae", False, False, _mae),
        Metric("r2", True, False, _r2),
        # Not in any task's standard set: for `bench rescore` over kept predictions.
        Metric("f1", True, False, _f1),
        Metric("brier", False, True, _brier),
        Metric("mape", False, False, _mape),
    )
}
METRIC_SETS = {
    "binary": ("roc_auc", "log_loss", "accuracy", "balanced_accuracy"),
    "multiclass": ("balanced_accuracy", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}


#: The task kinds each metric can score (what `bench rescore` accepts per run).
METRIC_KINDS = {"roc_auc": ("binary",), "f1": ("binary",), "brier": ("binary",),
                "log_loss": ("binary", "multiclass"), "accuracy": ("binary", "multiclass"),
                "balanced_accuracy": ("binary", "multiclass"), "rmse": ("regression",), "mae": ("regression",),
                "r2": ("regression",), "mape": ("regression",)}


def as_labels(pred: Any, classes: tuple) -> np.ndarray:
    """Predicted labels in the classes' dtype: a framework that hands integer labels back in an object array
    (FLAML does) would otherwise make scikit-learn see an "unknown" target type."""
    labels = np.asarray(classes)
    return np.asarray(pred).astype(labels.dtype) if labels.dtype != object else np.asarray(pred)


def score_one(name: str, kind: str, y: Any, pred: Any, proba: np.ndarray | None, classes: tuple,
              positive: Any) -> float:
    """One metric, scored exactly as :func:`score_all` scores it."""
    if kind != "regression":
        pred = as_labels(pred, classes)
    return float(METRICS[name].fn(y, pred, proba, classes, positive))


def score_all(kind: str, y: Any, pred: np.ndarray, proba: np.ndarray | None, classes: tuple,
              positive: Any) -> dict[str, float]:
    """The task kind's standard metric set; proba columns follow ``classes``, labels cast by :func:`as_labels`."""
    out = {}
    for name in METRIC_SETS[kind]:
        if METRICS[name].needs_proba and proba is None:
            continue
        out[name] = score_one(name, kind, y, pred, proba, classes, positive)
    return out


def constant_predictions(kind: str, y_train: Any, n: int, classes: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """The constant predictor that anchors normalised quality at 0: training prior or mean."""
    y_train = np.asarray(y_train)
    if kind == "regression":
        return np.full(n, float(np.mean(y_train))), None
    prior = np.array([np.mean(y_train == c) for c in classes])
    majority = np.array([classes[int(np.argmax(prior))]] * n, dtype=object)
    return majority, np.tile(prior, (n, 1))
