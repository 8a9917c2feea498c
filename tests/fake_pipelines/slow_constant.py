"""A pipeline that takes a few seconds to fit, then predicts the training prior: for interrupt tests."""

import json
import time
from pathlib import Path

import numpy as np

from bench.api import BasePipeline


class Pipeline(BasePipeline):
    technology = "sklearn"

    def __init__(self, seconds: float = 4.0):
        self.seconds = seconds

    def fit(self, X, y, task):
        time.sleep(self.seconds)
        self.classes_ = list(task.classes)
        self.prior_ = [float(np.mean(y == c)) for c in self.classes_]
        return self

    def predict(self, X):
        return np.array([self.classes_[int(np.argmax(self.prior_))]] * len(X), dtype=object)

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))

    def save(self, path: Path) -> None:
        (path / "prior.json").write_text(json.dumps({"classes": self.classes_, "prior": self.prior_}))

    @classmethod
    def load(cls, path: Path):
        state = json.loads((path / "prior.json").read_text())
        pipeline = cls()
        pipeline.classes_, pipeline.prior_ = state["classes"], state["prior"]
        return pipeline
