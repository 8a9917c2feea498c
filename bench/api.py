"""The pipeline contract: the only ``bench`` module a pipeline may import.

The harness measures, the pipeline predicts. A pipeline receives raw DataFrames (mixed dtypes, missing
values, string labels) and does all of its own preprocessing, because the lines of its file are the
effort metric. It never times, scores or logs itself.

Example, a complete pipeline file ``bench/pipelines/sklearn_tree.py``::

    from pathlib import Path
    import joblib
    from sklearn.tree import DecisionTreeClassifier
    from bench.api import BasePipeline, TaskInfo

    class Pipeline(BasePipeline):
        technology = "sklearn"

        def __init__(self, max_depth: int = 5):
            self.max_depth = max_depth

        def fit(self, X, y, task: TaskInfo):
            self.model_ = DecisionTreeClassifier(max_depth=self.max_depth, random_state=task.seed)
            self.model_.fit(X.select_dtypes("number").fillna(0), y)
            return self
        ...

The harness finds the class named ``Pipeline`` in each file under ``bench/pipelines/``; the file name is
its id everywhere (MLflow tags, matrix columns).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd

TaskKind = Literal["binary", "multiclass", "regression"]
Technology = Literal["sklearn", "pytorch", "keras", "flaml"]


@dataclass(frozen=True)
class TaskInfo:
    """What a pipeline may know about the task besides the training data.

    ``classes`` is sorted and ``positive_label`` is explicit for binary tasks: ``predict_proba`` columns
    follow ``classes``, so the harness can score with the right positive column whatever the label type.
    ``deadline`` is the ``time.monotonic()`` by which ``fit`` must return (the job's budget); pipelines
    that search or train iteratively must stop before it.
    """

    name: str
    kind: TaskKind
    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ordinal: dict[str, tuple[str, ...]] = field(default_factory=dict)
    classes: tuple[Any, ...] = ()
    positive_label: Any = None
    metric: str = "roc_auc"
    seed: int = 0
    threads: int = 1
    budget_s: float = 60.0
    deadline: float = float("inf")

    @property
    def is_classification(self) -> bool:
        return self.kind != "regression"

    def seconds_left(self) -> float:
        """Wall-clock seconds left before ``deadline``; pipelines use it to cap searches and epochs."""
        return self.deadline - time.monotonic()


class BasePipeline:
    """Base class with the contract's optional parts.

    Required: ``technology``, ``fit``, ``predict``, ``predict_proba`` (classification), ``save``, ``load``.

    Optional, for pipelines whose preprocessing and model are separate steps (torch, Keras):
    ``encode`` turns raw rows into the model's input and ``predict_encoded`` runs the model alone. The
    harness times the single-row serving path both ways: end to end from a raw one-row DataFrame, and
    the model path on pre-encoded rows (what a feature service in front of the model would deliver).
    """

    technology: ClassVar[Technology]
    #: True when the pipeline can update a fitted model on new data (``update``).
    supports_online_learning: ClassVar[bool] = False

    def fit(self, X: pd.DataFrame, y: pd.Series, task: TaskInfo) -> Self:
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """Write the fitted model into the directory ``path`` in the framework's own format."""
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read back what ``save`` wrote; used in a fresh process for the cold-start measurement."""
        raise NotImplementedError

    def update(self, X: pd.DataFrame, y: pd.Series, task: TaskInfo) -> Self:
        """Learn from a new batch without refitting from scratch: the online-learning path.

        Pipelines that have one (``partial_fit``, a few epochs of fine-tuning, a warm-started search) set
        ``supports_online_learning = True``; the stream benchmark marks the others as retrain-only.
        """
        raise NotImplementedError(f"{type(self).__name__} has no incremental update; it can only be refitted")

    def encode(self, X: pd.DataFrame) -> Any:
        return X

    def predict_encoded(self, Z: Any) -> np.ndarray:
        return self.predict(Z)

    def native_model(self) -> Any:
        """The fitted framework object that MLflow logs in its own flavour (sklearn estimator, nn.Module...)."""
        return getattr(self, "model_", None)

    def n_parameters(self) -> int | None:
        """Learned parameter count where the framework defines one (weights of a network)."""
        return None

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``; logged as MLflow params."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}
