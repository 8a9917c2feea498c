"""scikit-learn SGD linear model: the scikit-learn way to learn online, with ``partial_fit``.

Logistic regression (classification) or squared-loss regression trained by stochastic gradient descent, so a
fitted model can take each new batch with one ``partial_fit`` pass instead of a refit. The preprocessing is
fitted once, on the first batch, and then frozen: median imputation with missing-value indicators,
standardisation, and one-hot blocks whose rare and unseen levels share one "infrequent" column, so a level
first seen in a later batch does not crash the update. Regression targets are standardised with the first
batch's mean and spread (SGD needs unit-scale targets). Early stopping does not apply to a stream: the
initial fit runs a fixed number of shuffled epochs, stopping earlier at the deadline.
"""

from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bench.api import BasePipeline, TaskInfo

# skops loads no code it was not told to trust; this is the one non-default type the pipeline holds.
TRUSTED_TYPES = ["numpy.dtype"]


class Pipeline(BasePipeline):
    technology = "sklearn"
    supports_online_learning = True

    def __init__(self, alpha: float = 1e-4, epochs: int = 20, update_epochs: int = 1, min_frequency: int = 5,
                 margin_s: float = 1.0):
        self.alpha = alpha
        self.epochs = epochs
        self.update_epochs = update_epochs
        self.min_frequency = min_frequency
        self.margin_s = margin_s

    def fit(self, X, y, task: TaskInfo):
        numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                                StandardScaler())
        one_hot = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency)
        self.features_ = ColumnTransformer([("numeric", numeric, list(task.numeric)),
                                            ("categorical", one_hot, list(task.categorical))]).fit(X)
        if task.is_classification:
            self.classes_ = np.asarray(task.classes)
            self.model_ = SGDClassifier(loss="log_loss", alpha=self.alpha, random_state=task.seed)
            self.y_mean_, self.y_std_ = 0.0, 1.0
        else:
            self.model_ = SGDRegressor(alpha=self.alpha, random_state=task.seed)
            self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        return self._learn(X, y, task, self.epochs)

    def update(self, X, y, task: TaskInfo):
        """One ``partial_fit`` pass over the new batch through the frozen preprocessing."""
        return self._learn(X, y, task, self.update_epochs)

    def _learn(self, X, y, task: TaskInfo, epochs: int):
        Z, target = self.features_.transform(X), self._target(y)
        rng = np.random.default_rng(task.seed)
        for _ in range(epochs):
            order = rng.permutation(len(target))
            if task.is_classification:
                self.model_.partial_fit(Z[order], target[order], classes=self.classes_)
            else:
                self.model_.partial_fit(Z[order], target[order])
            if task.seconds_left() < self.margin_s:
                break
        return self

    def _target(self, y) -> np.ndarray:
        if hasattr(self, "classes_"):
            return np.asarray(y)
        return (np.asarray(y, dtype=np.float64) - self.y_mean_) / self.y_std_

    def predict(self, X):
        out = self.model_.predict(self.features_.transform(X))
        return out if hasattr(self, "classes_") else out * self.y_std_ + self.y_mean_

    def predict_proba(self, X):
        return self.model_.predict_proba(self.features_.transform(X))

    def native_model(self):
        return make_pipeline(self.features_, self.model_)

    def export_edge(self, folder: Path, X) -> list[dict]:
        """The whole pipeline, preprocessing included, as ONNX through skl2onnx: one graph input per column
        (numbers as float32, text as strings, a missing level as ""). A regressor's target scaling is folded
        into a copy of its weights, so the graph returns values in the target's units."""
        from copy import deepcopy

        import pandas as pd
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType

        model, classifier = deepcopy(self.model_), hasattr(self, "classes_")
        if not classifier:
            model.coef_, model.intercept_ = model.coef_ * self.y_std_, model.intercept_ * self.y_std_ + self.y_mean_
        text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        inputs = [(c, StringTensorType([None, 1]) if c in text else FloatTensorType([None, 1])) for c in X.columns]
        onx = convert_sklearn(make_pipeline(self.features_, model), initial_types=inputs,
                              options={"zipmap": False} if classifier else None, target_opset={"": 18, "ai.onnx.ml": 3})
        (folder / "model.onnx").write_bytes(onx.SerializeToString())
        feeds = [X[c].astype(object).where(X[c].notna(), "").astype(str).to_numpy() if c in text
                 else X[c].to_numpy(np.float32) for c in X.columns]
        return [{"format": "onnx", "file": "model.onnx", "output": 1 if classifier else 0,
                 "graph": "whole pipeline: raw columns in (imputation, encoding, model), " +
                          ("probabilities" if classifier else "values") + " out",
                 "feeds": [f.reshape(-1, 1) for f in feeds]}]

    def save(self, path: Path) -> None:
        sio.dump({"features": self.features_, "model": self.model_, "target": [self.y_mean_, self.y_std_]},
                 path / "model.skops")

    @classmethod
    def load(cls, path: Path):
        saved = sio.load(path / "model.skops", trusted=TRUSTED_TYPES)
        pipeline = cls()
        pipeline.features_, pipeline.model_ = saved["features"], saved["model"]
        pipeline.y_mean_, pipeline.y_std_ = saved["target"]
        if hasattr(pipeline.model_, "classes_"):
            pipeline.classes_ = pipeline.model_.classes_
        return pipeline
