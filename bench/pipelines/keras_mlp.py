"""Keras 3 multilayer perceptron (TensorFlow backend) with its preprocessing written out in numpy.

The network needs dense, scaled, complete input, so everything a tree model gets for free is explicit here:
medians plus missing-value flags (missingness can carry signal), standardised numerics, ordered levels as
scaled ranks, and one-hot blocks in which rare and unseen levels share one "other" column (a 4,000-level
column would otherwise become 4,000 weights fitted on a handful of rows each). Targets are standardised so
one learning rate suits dollars and log units alike. The encoding is numpy rather than Keras preprocessing
layers, so serving can time the network alone and the state saved beside the ``.keras`` file is plain JSON.

Training is Keras' own loop: ``EarlyStopping(restore_best_weights=True)`` on a stratified validation split
and a callback that stops before the job's deadline. Serving never calls ``model.predict`` per row (tens of
milliseconds of per-call setup): rows go through the concrete function of a ``tf.function`` with a fixed
input signature, about 0.1 ms, and batches through it in large chunks. XLA (``jit_compile``) saves some
20 us a row here but compiles once per distinct batch shape, 0.2-0.5 s each, so it is off by default.
"""

import json
import os
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.api import BasePipeline, TaskInfo  # noqa: E402


class _Deadline(keras.callbacks.Callback):
    """Stops training, mid-epoch if need be, while there is still time to validate once more and return."""

    def __init__(self, task: TaskInfo, margin_s: float):
        super().__init__()
        self.task, self.margin_s, self.validation_s = task, margin_s, 0.0

    def on_test_begin(self, logs=None):
        self.started = time.monotonic()

    def on_test_end(self, logs=None):
        self.validation_s = time.monotonic() - self.started

    def on_train_batch_end(self, batch, logs=None):
        if self.task.seconds_left() < self.margin_s + self.validation_s:
            self.model.stop_training = True


class Pipeline(BasePipeline):
    technology = "keras"
    supports_online_learning = True
    # Learned encoding state, saved as JSON beside the network's weights.
    _STATE = ("numeric_", "categorical_", "ordered_", "levels_", "flagged_", "classes_", "label_dtype_",
              "y_mean_", "y_std_")
    _ARRAYS = ("median_", "mean_", "scale_")

    def __init__(self, hidden_sizes: tuple[int, ...] = (256, 256), dropout: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 256,
                 max_epochs: int = 500, patience: int = 20, validation_fraction: float = 0.15,
                 min_frequency: int = 5, max_levels: int = 50, margin_s: float = 2.0,
                 serving_chunk: int = 8192, jit_compile: bool = False, update_epochs: int = 3,
                 update_learning_rate: float = 1e-3):
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.min_frequency = min_frequency
        self.max_levels = max_levels
        self.margin_s = margin_s
        self.serving_chunk = serving_chunk
        self.jit_compile = jit_compile
        self.update_epochs = update_epochs
        self.update_learning_rate = update_learning_rate

    def _fit_encoding(self, X, y, task: TaskInfo) -> None:
        self.numeric_, self.categorical_ = list(task.numeric), list(task.categorical)
        self.ordered_ = [col in task.ordinal for col in self.categorical_]
        self.levels_ = []  # per categorical: its levels in rank order (ordered) or one-hot order (nominal)
        for col in self.categorical_:
            if col in task.ordinal:
                self.levels_.append(list(task.ordinal[col]))
            else:
                counts = X[col].value_counts()
                self.levels_.append(counts[counts >= self.min_frequency].index[:self.max_levels].tolist())
        self._index_levels()
        raw, _ = self._columns(X)
        self.median_ = np.nan_to_num(np.nanmedian(raw, axis=0))
        self.flagged_ = np.flatnonzero(np.isnan(raw).any(axis=0)).tolist()
        filled = np.where(np.isnan(raw), self.median_, raw)
        self.mean_, std = filled.mean(axis=0), filled.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        self.classes_ = [c.item() if isinstance(c, np.generic) else c for c in task.classes]
        self.label_dtype_ = str(y.dtype)
        regression = not task.is_classification
        self.y_mean_, self.y_std_ = (float(y.mean()), float(y.std()) or 1.0) if regression else (0.0, 1.0)

    def _index_levels(self) -> None:
        self.lookups_ = [{level: i for i, level in enumerate(levels)} for levels in self.levels_]

    def _columns(self, X) -> tuple[np.ndarray, list[np.ndarray]]:
        """Numerics and ordinal ranks (NaN where missing or unknown), and one one-hot block per nominal."""
        ranks, one_hot = [], []
        columns = X[self.categorical_].to_numpy().T
        for lookup, ordered, values in zip(self.lookups_, self.ordered_, columns, strict=True):
            if ordered:
                ranks.append([lookup.get(v, np.nan) for v in values])
            else:  # the block's last column is "other": rare, unseen and missing levels
                one_hot.append(np.eye(len(lookup) + 1)[[lookup.get(v, -1) for v in values]])
        return np.column_stack([X[self.numeric_].to_numpy(np.float64), *ranks]), one_hot

    def encode(self, X) -> tf.Tensor:
        raw, one_hot = self._columns(X)
        missing = np.isnan(raw)
        scaled = (np.where(missing, self.median_, raw) - self.mean_) / self.scale_
        return tf.constant(np.hstack([scaled, missing[:, self.flagged_], *one_hot]), tf.float32)

    def _build(self, n_inputs: int) -> keras.Model:
        layers = [keras.Input((n_inputs,))]
        for size in self.hidden_sizes:
            layers += [keras.layers.Dense(size, activation="relu"), keras.layers.Dropout(self.dropout)]
        if self.classes_:
            return keras.Sequential([*layers, keras.layers.Dense(len(self.classes_), activation="softmax")])
        return keras.Sequential([*layers, keras.layers.Dense(1)])

    def fit(self, X, y, task: TaskInfo):
        keras.utils.set_random_seed(task.seed)
        try:
            tf.config.threading.set_intra_op_parallelism_threads(task.threads)
            tf.config.threading.set_inter_op_parallelism_threads(task.threads)
        except RuntimeError:  # TensorFlow already started: its pools were sized from TF_NUM_*_THREADS
            pass
        self._fit_encoding(X, y, task)
        features = self.encode(X).numpy()
        if task.is_classification:
            target = pd.Index(self.classes_).get_indexer(y)
        else:
            target = (y.to_numpy(np.float64) - self.y_mean_) / self.y_std_
        # Shuffle, sort by target, take every k-th row: a split stratified by class or by target range.
        order = np.random.default_rng(task.seed).permutation(len(X))
        order = order[np.argsort(target[order], kind="stable")]
        step = max(2, round(1 / self.validation_fraction))
        is_val = np.zeros(len(X), bool)
        is_val[order[step // 2::step]] = True
        self.model_ = self._build(features.shape[1])
        self.model_.compile(
            optimizer=keras.optimizers.AdamW(self.learning_rate, weight_decay=self.weight_decay),
            loss="sparse_categorical_crossentropy" if task.is_classification else "mean_squared_error")
        stop = keras.callbacks.EarlyStopping(patience=self.patience, min_delta=1e-4, restore_best_weights=True)
        history = self.model_.fit(
            features[~is_val], target[~is_val], validation_data=(features[is_val], target[is_val]),
            batch_size=max(16, min(self.batch_size, len(X) // 8)), validation_batch_size=self.serving_chunk,
            epochs=self.max_epochs, callbacks=[stop, _Deadline(task, self.margin_s)], verbose=0)
        self.epochs_, self.best_epoch_ = len(history.epoch), stop.best_epoch + 1
        return self._ready()

    def update(self, X, y, task: TaskInfo):
        """Fine-tune a few epochs on the new batch; the encoding stays frozen (unseen levels go to "other").

        Recompiled once with its own AdamW (the fit's learning rate by default), whose moments then carry
        over from one update to the next; no early stopping (a batch is too small to split), the deadline
        callback still ends it.
        """
        features = self.encode(X).numpy()
        if self.classes_:
            target = pd.Index(self.classes_).get_indexer(y)
        else:
            target = (y.to_numpy(np.float64) - self.y_mean_) / self.y_std_
        if not getattr(self, "fine_tuning_", False):
            self.model_.compile(
                optimizer=keras.optimizers.AdamW(self.update_learning_rate, weight_decay=self.weight_decay),
                loss="sparse_categorical_crossentropy" if self.classes_ else "mean_squared_error")
            self.fine_tuning_ = True
        self.model_.fit(features, target, batch_size=max(16, min(self.batch_size, len(X) // 8)),
                        epochs=self.update_epochs, callbacks=[_Deadline(task, 0.0)], verbose=0)
        return self

    def _ready(self):
        """Serving state: labels in their original dtype and one traced graph for any number of rows."""
        self.labels_ = pd.Series(self.classes_, dtype=self.label_dtype_).to_numpy()
        spec = tf.TensorSpec([None, self.model_.input_shape[1]], tf.float32)
        serve = tf.function(self._forward, input_signature=[spec], jit_compile=self.jit_compile,
                            autograph=False)
        self.serve_ = serve.get_concrete_function()  # skips the per-call signature dispatch
        return self

    def _forward(self, x):
        return self.model_(x, training=False)

    def _outputs(self, Z: tf.Tensor) -> np.ndarray:
        if Z.shape[0] <= self.serving_chunk:
            return self.serve_(Z).numpy()
        chunks = range(0, Z.shape[0], self.serving_chunk)
        return np.concatenate([self.serve_(Z[i:i + self.serving_chunk]).numpy() for i in chunks])

    def predict_encoded(self, Z: tf.Tensor) -> np.ndarray:
        out = self._outputs(Z)
        if self.classes_:
            return self.labels_[out.argmax(axis=1)]
        return out[:, 0].astype(np.float64) * self.y_std_ + self.y_mean_

    def predict(self, X) -> np.ndarray:
        return self.predict_encoded(self.encode(X))

    def predict_proba(self, X) -> np.ndarray:
        proba = self._outputs(self.encode(X)).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def native_model(self) -> keras.Model:
        return self.model_

    def n_parameters(self) -> int:
        return self.model_.count_params()

    def export_edge(self, folder: Path, X) -> list[dict]:
        """The network through Keras' own ``Model.export``: ONNX (run by onnxruntime) and LiteRT, with the
        target's scaling folded in for regression; the numpy encoding of raw rows stays with the app."""
        model = self.model_
        Z = self.encode(X).numpy()
        if not self.classes_:
            model = keras.Sequential([keras.Input((model.input_shape[1],)), model,
                                      keras.layers.Rescaling(self.y_std_, self.y_mean_)])
            model(Z[:1])  # export traces a model that has been called
        graph = "network only on encoded rows (softmax or target scaling included); the encoding stays with the app"
        model.export(str(folder / "model.onnx"), format="onnx", verbose=False)
        exports = [{"format": "onnx", "file": "model.onnx", "output": 0, "feeds": [Z], "graph": graph}]
        try:  # LiteRT's converter is the younger path: its failure is a finding, and the ONNX export stands
            model.export(str(folder / "model.tflite"), format="litert", verbose=False)
        except Exception as exc:  # noqa: BLE001
            return exports + [{"format": "litert", "error": f"{type(exc).__name__}: {exc}"[:600]}]
        return exports + [{"format": "litert", "file": "model.tflite", "output": 0, "feeds": [Z], "graph": graph}]

    def save(self, path: Path) -> None:
        self.model_.save(path / "model.keras")
        state = {name: getattr(self, name) for name in self._STATE}
        state |= {name: getattr(self, name).tolist() for name in self._ARRAYS}
        (path / "encoding.json").write_text(json.dumps({"params": self.get_params(), "state": state}))

    @classmethod
    def load(cls, path: Path):
        saved = json.loads((path / "encoding.json").read_text())
        pipeline = cls(**saved["params"])
        for name, value in saved["state"].items():
            setattr(pipeline, name, np.asarray(value) if name in cls._ARRAYS else value)
        pipeline._index_levels()
        pipeline.model_ = keras.models.load_model(path / "model.keras", compile=False)
        return pipeline._ready()
