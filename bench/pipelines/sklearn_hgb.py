"""scikit-learn HistGradientBoosting: native categorical splits, early stopping on a validation split.

Categoricals are ordinal-encoded and declared categorical (not one-hot): gradient boosting then splits on
level groups. HGB takes at most 255 levels, so rarer levels are grouped (flights' tailnum has 4,037).
Ordered factors (diamonds' cut) keep their order as numbers. Missing values go to HGB as NaN.
"""

from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from bench.api import BasePipeline, TaskInfo

# skops loads no code it was not told to trust; these are the non-default types an HGB pipeline holds.
TRUSTED_TYPES = ["functools.partial", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "sklearn.utils.validation.check_array"]


class Pipeline(BasePipeline):
    technology = "sklearn"

    def __init__(self, learning_rate: float = 0.1, max_iter: int = 1000, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 20, l2_regularization: float = 0.0, n_iter_no_change: int = 20):
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.n_iter_no_change = n_iter_no_change

    def fit(self, X, y, task: TaskInfo):
        nominal = [c for c in task.categorical if c not in task.ordinal]
        ordered = list(task.ordinal)
        encode = ColumnTransformer(
            [("nominal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                        encoded_missing_value=np.nan, max_categories=255), nominal),
             ("ordered", OrdinalEncoder(categories=[list(task.ordinal[c]) for c in ordered],
                                        handle_unknown="use_encoded_value", unknown_value=np.nan,
                                        encoded_missing_value=np.nan), ordered)],
            remainder="passthrough", verbose_feature_names_out=False)
        booster = HistGradientBoostingClassifier if task.is_classification else HistGradientBoostingRegressor
        # A 10% validation split of a tiny training set cannot hold every class: below 200 rows, no early
        # stopping and scikit-learn's default 100 iterations.
        early = len(X) >= 200
        model = booster(learning_rate=self.learning_rate, max_iter=self.max_iter if early else 100,
                        max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                        l2_regularization=self.l2_regularization, early_stopping=early,
                        validation_fraction=0.1, n_iter_no_change=self.n_iter_no_change,
                        categorical_features=[i < len(nominal) for i in range(X.shape[1])],
                        random_state=task.seed)
        self.model_ = make_pipeline(encode, model).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def export_edge(self, folder: Path, X) -> list[dict]:
        """The whole pipeline, preprocessing included, as ONNX through skl2onnx: one graph input per column
        (numbers as float32, text as strings, a missing level as ""), probabilities or values out."""
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
