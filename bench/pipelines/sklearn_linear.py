"""The linear baseline: logistic regression or ridge over imputed, scaled, one-hot features.

Missing numerics are median-imputed with indicator columns (missingness can carry signal, as Income does
in credit_data); rare levels are grouped so a 4,000-level column does not become 4,000 noisy weights.
"""

from pathlib import Path

import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bench.api import BasePipeline, TaskInfo

# skops loads no code it was not told to trust; this is the one non-default type the pipeline holds.
TRUSTED_TYPES = ["numpy.dtype"]


class Pipeline(BasePipeline):
    technology = "sklearn"

    def __init__(self, C: float = 1.0, alpha: float = 1.0, min_frequency: int = 5):
        self.C = C
        self.alpha = alpha
        self.min_frequency = min_frequency

    def fit(self, X, y, task: TaskInfo):
        # Ordered factors are one-hot too: a linear model cannot assume equal steps between "Good" and
        # "Very Good" (diamonds' RMSE is ~10% worse with numeric ranks).
        numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
        one_hot = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency)
        features = ColumnTransformer([("numeric", numeric, list(task.numeric)),
                                      ("categorical", one_hot, list(task.categorical))])
        if task.is_classification:
            model = LogisticRegression(C=self.C, max_iter=2000, random_state=task.seed)
        else:
            model = Ridge(alpha=self.alpha)
        self.model_ = make_pipeline(features, model).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def export_edge(self, folder: Path, X) -> list[dict]:
        """The whole pipeline, preprocessing included, as ONNX through skl2onnx: one graph input per column
        (numbers as float32, text as strings, a missing level as ""), probabilities or values out."""
        import numpy as np
        import pandas as pd
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType

        text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        inputs = [(c, StringTensorType([None, 1]) if c in text else FloatTensorType([None, 1])) for c in X.columns]
        classifier = hasattr(self.model_, "predict_proba")
        onx = convert_sklearn(self.model_, initial_types=inputs, options={"zipmap": False} if classifier else None,
                              target_opset={"": 18, "ai.onnx.ml": 3})
        (folder / "model.onnx").write_bytes(onx.SerializeToString())
        feeds = [X[c].astype(object).where(X[c].notna(), "").astype(str).to_numpy() if c in text
                 else X[c].to_numpy(np.float32) for c in X.columns]
        return [{"format": "onnx", "file": "model.onnx", "output": 1 if classifier else 0,
                 "graph": "whole pipeline: raw columns in (imputation, encoding, model), " +
                          ("probabilities" if classifier else "values") + " out",
                 "feeds": [f.reshape(-1, 1) for f in feeds]}]

    def save(self, path: Path) -> None:
        sio.dump(self.model_, path / "model.skops")

    @classmethod
    def load(cls, path: Path):
        pipeline = cls()
        pipeline.model_ = sio.load(path / "model.skops", trusted=TRUSTED_TYPES)
        return pipeline
