"""A scikit-learn pipeline whose edge export fails in the converter itself: skl2onnx converts no
FunctionTransformer with a Python function in it. For the test that such a failure is recorded, not raised."""

from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from bench.api import BasePipeline


class Pipeline(BasePipeline):
    technology = "sklearn"

    def fit(self, X, y, task):
        self.columns_ = list(task.numeric)
        self.model_ = make_pipeline(FunctionTransformer(np.nan_to_num), LogisticRegression()).fit(X[self.columns_], y)
        return self

    def predict(self, X):
        return self.model_.predict(X[self.columns_])

    def predict_proba(self, X):
        return self.model_.predict_proba(X[self.columns_])

    def export_edge(self, folder: Path, X) -> list[dict]:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        onx = convert_sklearn(self.model_, initial_types=[("X", FloatTensorType([None, len(self.columns_)]))])
        (folder / "model.onnx").write_bytes(onx.SerializeToString())
        return [{"format": "onnx", "file": "model.onnx", "output": 1, "graph": "model",
                 "feeds": [X[self.columns_].to_numpy(np.float32)]}]

    def save(self, path: Path) -> None:
        joblib.dump((self.columns_, self.model_), path / "model.joblib")

    @classmethod
    def load(cls, path: Path):
        pipeline = cls()
        pipeline.columns_, pipeline.model_ = joblib.load(path / "model.joblib")
        return pipeline
