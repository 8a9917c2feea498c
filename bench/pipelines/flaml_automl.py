"""FLAML AutoML under the job's wall-clock budget, optimising the task's own primary metric.

FLAML handles raw pandas frames (category columns, missing values, string labels) itself: that is its
promise, so this file does no preprocessing. ``mlflow_logging=False`` because the harness logs the model;
FLAML's own MLflow logging fails inside an active run (it calls mlflow.sklearn.log_model with skops).
"""

from pathlib import Path

import pandas as pd
from flaml import AutoML
from sklearn.metrics import balanced_accuracy_score

from bench.api import BasePipeline, TaskInfo

FLAML_METRICS = {"roc_auc": "roc_auc", "log_loss": "log_loss", "accuracy": "accuracy", "rmse": "rmse",
                 "mae": "mae", "r2": "r2"}


def balanced_accuracy_loss(X_val, y_val, estimator, labels, X_train, y_train, *args, **kwargs):
    """FLAML has no balanced accuracy: a custom metric returns (loss to minimise, metrics to log)."""
    score = balanced_accuracy_score(y_val, estimator.predict(X_val))
    return 1.0 - score, {"balanced_accuracy": score}


class Pipeline(BasePipeline):
    technology = "flaml"
    supports_online_learning = True

    def __init__(self, estimator_list: str = "auto", budget_fraction: float = 0.85, recent_batches: int = 3):
        self.estimator_list = estimator_list
        self.budget_fraction = budget_fraction
        self.recent_batches = recent_batches

    def fit(self, X, y, task: TaskInfo):
        metric = FLAML_METRICS.get(task.metric, balanced_accuracy_loss)
        # The final refit on all data runs after the search: keep headroom for it inside the budget.
        time_budget = max(1.0, task.seconds_left() * self.budget_fraction)
        self.model_ = AutoML()
        self.model_.fit(X, y, task="classification" if task.is_classification else "regression",
                        metric=metric, time_budget=time_budget, estimator_list=self.estimator_list,
                        n_jobs=task.threads, seed=task.seed, verbose=0, mlflow_logging=False,
                        log_file_name="")
        self.best_config_ = {"estimator": self.model_.best_estimator, **(self.model_.best_config or {})}
        self.recent_ = [(X, y)]  # the batches an update searches on: the training data first
        return self

    def update(self, X, y, task: TaskInfo):
        """A short search warm-started from the previous best configurations, on the most recent batches.

        FLAML's documented warm start: ``starting_points=automl.best_config_per_estimator``. The search sees
        the last ``recent_batches`` batches (the new one and those just before it), so it follows a drift
        instead of averaging over the whole past.
        """
        self.recent_ = [*self.recent_, (X, y)][-self.recent_batches:]
        previous = self.model_.best_config_per_estimator
        self.model_ = AutoML()
        self.model_.fit(pd.concat([x for x, _ in self.recent_]), pd.concat([t for _, t in self.recent_]),
                        task="classification" if task.is_classification else "regression",
                        metric=FLAML_METRICS.get(task.metric, balanced_accuracy_loss),
                        time_budget=max(1.0, task.seconds_left() * self.budget_fraction),
                        estimator_list=self.estimator_list, starting_points=previous, n_jobs=task.threads,
                        seed=task.seed, verbose=0, mlflow_logging=False, log_file_name="")
        self.best_config_ = {"estimator": self.model_.best_estimator, **(self.model_.best_config or {})}
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def export_edge(self, folder: Path, X) -> list[dict]:
        """The model FLAML chose, as ONNX through its library's converter (onnxmltools for LightGBM and XGBoost,
        skl2onnx for scikit-learn's), on rows FLAML has preprocessed: FLAML's own encoding (category codes)
        stays with the app in Python, the graph holds the model alone."""
        import numpy as np
        estimator = self.model_.model.estimator
        rows = self.model_.model._preprocess(self.model_.preprocess(X))
        if isinstance(rows, pd.DataFrame):
            rows = rows.assign(**{c: rows[c].cat.codes.where(rows[c].notna()) for c in rows.columns
                                  if isinstance(rows[c].dtype, pd.CategoricalDtype)})
        Z = np.asarray(rows, np.float32)
        library, classifier = type(estimator).__module__.split(".")[0], hasattr(estimator, "predict_proba")
        if library in ("lightgbm", "xgboost"):
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType

            if library == "xgboost":  # onnxmltools reads XGBoost features only by the names f0, f1, ...
                from copy import deepcopy

                estimator = deepcopy(estimator)
                estimator.get_booster().feature_names = [f"f{i}" for i in range(Z.shape[1])]

            convert = onnxmltools.convert_lightgbm if library == "lightgbm" else onnxmltools.convert_xgboost
            extra = {"zipmap": False} if library == "lightgbm" and classifier else {}
            onx = convert(estimator, initial_types=[("X", FloatTensorType([None, Z.shape[1]]))], target_opset=15,
                          **extra)
        else:
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType

            onx = convert_sklearn(estimator, initial_types=[("X", FloatTensorType([None, Z.shape[1]]))],
                                  options={"zipmap": False} if classifier else None, target_opset=15)
        (folder / "model.onnx").write_bytes(onx.SerializeToString())
        return [{"format": "onnx", "file": "model.onnx", "output": 1 if classifier else 0, "feeds": [Z],
                 "graph": f"model only ({type(estimator).__name__}) on FLAML-preprocessed rows (category codes); "
                          "the encoding stays with the app"}]

    def save(self, path: Path) -> None:
        self.model_.pickle(str(path / "automl.pkl"))

    @classmethod
    def load(cls, path: Path):
        pipeline = cls()
        pipeline.model_ = AutoML.load_pickle(str(path / "automl.pkl"))
        return pipeline
