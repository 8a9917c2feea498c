"""The hand-coded answer to AutoML: a random search over HistGradientBoosting under the job's clock.

What FLAML does for us, written out in scikit-learn: seeded random candidates (learning rate, tree and
leaf size, L2, feature subsampling) scored by shuffled k-fold cross-validation with the task's primary
metric (3 folds above 10,000 rows), the best refitted on all rows. Preprocessing is ``sklearn_hgb``'s,
encoded once as it learns nothing from the target. HGB has no ``n_jobs``: its OpenMP threads are the
harness's ``TaskInfo.threads``, and folds run one at a time so that the clock is read between them.

The ``sklearn_hgb`` defaults are fitted first: a budget too small to search still returns their model,
they time a boosting iteration, and they are the first candidate; another one replaces the incumbent
only when its gain, paired by fold, beats its standard error, since on a few hundred rows the best of
dozens of means is mostly luck. A fold gets at most the iterations that a (folds+1)-th of the spare time
buys, a candidate whose remaining folds and refit no longer fit is dropped, and ``headroom`` is kept for
timing noise. The candidate order and folds are seeded, but how many candidates are evaluated (and the
iteration caps of the last ones) depends on the machine's speed: the same seed gives the same metrics
only when a rerun gets as far; ``best_config_`` records the count.
"""

import time
from functools import partial
from pathlib import Path

import numpy as np
import skops.io as sio
from scipy.stats import loguniform, uniform
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, ParameterSampler, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from bench.api import BasePipeline, TaskInfo

# skops loads no code it was not told to trust; these are the non-default types an HGB pipeline holds.
TRUSTED_TYPES = ["functools.partial", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "sklearn.utils.validation.check_array"]
# Greater is better for every scorer. Binary "roc_auc" scores classes_[1] with its own probability column,
# which is consistent whatever the label type, and AUC does not depend on which class is called positive.
SCORERS = {"roc_auc": "roc_auc", "balanced_accuracy": "balanced_accuracy", "accuracy": "accuracy",
           "log_loss": "neg_log_loss", "rmse": "neg_root_mean_squared_error",
           "mae": "neg_mean_absolute_error", "r2": "r2"}
DEFAULTS = {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0,
            "max_features": 1.0}
# No class_weight: HGB bins weighted rows with weighted quantiles, which made cells' fits 20x slower.
SPACE = {"learning_rate": loguniform(0.01, 0.3), "max_leaf_nodes": [7, 15, 31, 63, 127],
         "min_samples_leaf": [2, 5, 10, 20, 40, 80], "l2_regularization": loguniform(1e-3, 10.0),
         "max_features": uniform(0.3, 0.7)}


class Pipeline(BasePipeline):
    technology = "sklearn"

    def __init__(self, n_candidates: int = 200, cv: int = 5, max_iter: int = 1000, n_iter_no_change: int = 20,
                 headroom: float = 0.05):
        self.n_candidates = n_candidates
        self.cv = cv
        self.max_iter = max_iter
        self.n_iter_no_change = n_iter_no_change
        self.headroom = headroom

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
        Z = encode.fit_transform(X)
        booster = partial(
            HistGradientBoostingClassifier if task.is_classification else HistGradientBoostingRegressor,
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=self.n_iter_no_change,
            categorical_features=[i < len(nominal) for i in range(X.shape[1])], random_state=task.seed)
        started = time.monotonic()
        defaults = booster(**DEFAULTS, max_iter=self.max_iter).fit(Z, y)
        iteration_s = (time.monotonic() - started) / defaults.n_iter_

        # Fewer folds on big data, where each costs more and scores are already stable (FLAML: holdout).
        n_folds = self.cv if len(y) <= 10_000 else min(self.cv, 3)
        folds = list((StratifiedKFold if task.is_classification else KFold)(
            n_folds, shuffle=True, random_state=task.seed).split(Z, y))
        scorer = get_scorer(SCORERS[task.metric])
        candidates = [DEFAULTS, *ParameterSampler(SPACE, self.n_candidates, random_state=task.seed)]
        best, best_params, best_score = 0, DEFAULTS | {"max_iter": self.max_iter}, -np.inf
        reserve_s = self.headroom * task.budget_s  # for timing noise, plus the best's refit once it has one
        self.n_evaluated_ = 0
        for i, params in enumerate(candidates):
            # A fold gets the iterations that a (folds+1)-th of the spare time buys at the defaults' pace
            # (slower for bigger trees), so a first fold far slower than foreseen still leaves time to stop;
            # a candidate that cannot afford the iterations the defaults needed is skipped.
            pace_s = iteration_s * max(1.0, params["max_leaf_nodes"] / DEFAULTS["max_leaf_nodes"])
            affordable = int((task.seconds_left() - reserve_s) / (n_folds + 1) / pace_s)
            if affordable < defaults.n_iter_:
                continue
            params = params | {"max_iter": min(self.max_iter, affordable)}
            scores, started, fold_s = [], time.monotonic(), 0.0
            for train, test in folds:
                # At the measured pace, the folds left and a refit on all rows (counted as 2 folds) must fit.
                if fold_s * (n_folds - len(scores) + 2) > task.seconds_left() - reserve_s:
                    break
                model = booster(**params).fit(Z[train], y.iloc[train])
                scores.append(scorer(model, Z[test], y.iloc[test]))
                fold_s = (time.monotonic() - started) / len(scores)
            if len(scores) < n_folds:  # dropped for time: a cheaper candidate may still fit...
                if i == 0:
                    break  # ...but without the defaults' scores there is nothing to compare it with
                continue
            self.n_evaluated_ += 1
            scores = np.array(scores)
            if i == 0:
                incumbent = scores
            # A candidate replaces the incumbent (the defaults first) only for a gain, paired by fold, above
            # its standard error.
            gain = scores - incumbent
            if i == 0 or gain.mean() > gain.std(ddof=1) / np.sqrt(n_folds):
                best, best_params, best_score, incumbent = i, params, scores.mean(), scores
                reserve_s = self.headroom * task.budget_s + (0.0 if i == 0 else 2 * fold_s)

        model = defaults if best == 0 else booster(**best_params).fit(Z, y)
        self.model_ = make_pipeline(encode, model)
        self.best_config_ = {key: model.get_params()[key] for key in [*DEFAULTS, "max_iter"]} | {
            "cv_score": best_score, "candidates_evaluated": self.n_evaluated_}
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
