"""A scikit-learn pipeline that fits and predicts well but whose native model cannot be pickled (it holds a
lock): its MLflow flavour model fails to save. For the test that such a failure reaches the summary."""

import threading
from pathlib import Path

import joblib
from sklearn.linear_model import LogisticRegression

from bench.api import BasePipeline


class Locked:
    """An estimator wrapper with a lock in it, as a model with an open handle or a thread would have."""

    def __init__(self, model: LogisticRegression, columns: list[str]) -> None:
        self.model, self.columns, self.lock = model, columns, threading.Lock()

    def predict(self, X):
        return self.model.predict(X[self.columns].fillna(0))


class Pipeline(BasePipeline):
    technology = "sklearn"

    def fit(self, X, y, task):
        self.columns_ = list(task.numeric)
        self.fitted_ = LogisticRegression().fit(X[self.columns_].fillna(0), y)
        return self

    def predict(self, X):
        return self.fitted_.predict(X[self.columns_].fillna(0))

    def predict_proba(self, X):
        return self.fitted_.predict_proba(X[self.columns_].fillna(0))

    def native_model(self):
        return Locked(self.fitted_, self.columns_)

    def save(self, path: Path) -> None:
        joblib.dump((self.columns_, self.fitted_), path / "model.joblib")

    @classmethod
    def load(cls, path: Path) -> "Pipeline":
        pipe = cls()
        pipe.columns_, pipe.fitted_ = joblib.load(path / "model.joblib")
        return pipe
