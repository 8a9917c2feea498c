"""PyTorch multilayer perceptron with its preprocessing written out in numpy.

A network needs dense, scaled, complete input, so everything a tree model gets for free is explicit here:
medians plus missing-value flags (missingness can carry signal), standardised numerics, ordered levels as
scaled ranks, and one-hot blocks in which rare and unseen levels share one "other" column (a 4,000-level
column would otherwise become 4,000 weights fitted on a handful of rows each). Targets are standardised so
one learning rate suits dollars and log units alike.

The encoding state is plain lists, so the saved model is a ``state_dict`` plus JSON and
nothing is unpickled at load time. ``encode`` and ``predict_encoded`` are split so serving can time the
network alone: one row through a small MLP under ``inference_mode`` takes tens of microseconds, while
pulling that row out of a DataFrame costs more than the network does.
"""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from bench.api import BasePipeline, TaskInfo


class Pipeline(BasePipeline):
    technology = "pytorch"
    supports_online_learning = True
    # Learned encoding state, saved as JSON beside the network's weights.
    _STATE = ("numeric_", "categorical_", "ordered_", "levels_", "flagged_", "classes_", "label_dtype_",
              "y_mean_", "y_std_")
    _ARRAYS = ("median_", "mean_", "scale_")

    def __init__(self, hidden_sizes: tuple[int, ...] = (256, 256), dropout: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 256,
                 max_epochs: int = 500, patience: int = 20, validation_fraction: float = 0.15,
                 min_frequency: int = 5, max_levels: int = 50, margin_s: float = 2.0, update_epochs: int = 3,
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

    def encode(self, X) -> torch.Tensor:
        raw, one_hot = self._columns(X)
        missing = np.isnan(raw)
        scaled = (np.where(missing, self.median_, raw) - self.mean_) / self.scale_
        return torch.from_numpy(np.hstack([scaled, missing[:, self.flagged_], *one_hot]).astype(np.float32))

    def _build(self, n_inputs: int) -> nn.Module:
        layers, width = [], n_inputs
        for size in self.hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(self.dropout)]
            width = size
        return nn.Sequential(*layers, nn.Linear(width, max(len(self.classes_), 1)))

    def fit(self, X, y, task: TaskInfo):
        torch.set_num_threads(task.threads)
        torch.manual_seed(task.seed)
        self._fit_encoding(X, y, task)
        features = self.encode(X)
        if task.is_classification:
            codes = pd.Index(self.classes_).get_indexer(y)
            target, loss_fn = torch.from_numpy(codes), nn.CrossEntropyLoss()
        else:
            codes = (y.to_numpy(np.float64) - self.y_mean_) / self.y_std_
            target, loss_fn = torch.from_numpy(codes.astype(np.float32))[:, None], nn.MSELoss()
        # Shuffle, sort by target, take every k-th row: a split stratified by class or by target range.
        order = np.random.default_rng(task.seed).permutation(len(X))
        order = order[np.argsort(codes[order], kind="stable")]
        step = max(2, round(1 / self.validation_fraction))
        is_val = np.zeros(len(X), bool)
        is_val[order[step // 2::step]] = True
        self.model_ = self._build(features.shape[1])
        self._train(features[~is_val], target[~is_val], features[is_val], target[is_val], loss_fn, task)
        return self._ready()

    def _train(self, X, y, X_val, y_val, loss_fn, task: TaskInfo) -> None:
        """AdamW on shuffled mini-batches; stop on patience or the deadline; keep the best epoch's weights."""
        model, generator = self.model_, torch.Generator().manual_seed(task.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        batch_size = max(16, min(self.batch_size, len(X) // 8))  # small sets: still >= 8 steps an epoch
        best, best_state, waited, validation_s = float("inf"), None, 0, 0.0
        for epoch in range(1, self.max_epochs + 1):
            model.train()
            for batch in torch.randperm(len(X), generator=generator).split(batch_size):
                optimizer.zero_grad()
                loss_fn(model(X[batch]), y[batch]).backward()
                optimizer.step()
                if task.seconds_left() < self.margin_s + validation_s:  # leave time to validate once more
                    break
            started = time.monotonic()
            model.eval()
            with torch.inference_mode():
                loss = loss_fn(model(X_val), y_val).item()
            validation_s = time.monotonic() - started
            if loss < best - 1e-4:
                best, waited, self.best_epoch_ = loss, 0, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
            if waited >= self.patience or task.seconds_left() < self.margin_s + validation_s:
                break
        if best_state is not None:
            model.load_state_dict(best_state)

    def update(self, X, y, task: TaskInfo):
        """Fine-tune a few epochs on the new batch; the encoding stays frozen (unseen levels go to "other").

        Its own AdamW (the fit's learning rate by default), whose moments carry over from one update to the
        next. No early stopping (a batch is too small to split); an epoch starts only if one fits before the
        deadline.
        """
        torch.manual_seed(task.seed)
        features = self.encode(X)
        if self.classes_:
            target, loss_fn = torch.from_numpy(pd.Index(self.classes_).get_indexer(y)), nn.CrossEntropyLoss()
        else:
            scaled = (y.to_numpy(np.float64) - self.y_mean_) / self.y_std_
            target, loss_fn = torch.from_numpy(scaled.astype(np.float32))[:, None], nn.MSELoss()
        if getattr(self, "update_optimizer_", None) is None:
            self.update_optimizer_ = torch.optim.AdamW(self.model_.parameters(), lr=self.update_learning_rate,
                                                       weight_decay=self.weight_decay)
        batch_size = max(16, min(self.batch_size, len(X) // 8))
        self.model_.train()
        for _ in range(self.update_epochs):
            started = time.monotonic()
            for batch in torch.randperm(len(X)).split(batch_size):
                self.update_optimizer_.zero_grad()
                loss_fn(self.model_(features[batch]), target[batch]).backward()
                self.update_optimizer_.step()
            if task.seconds_left() < time.monotonic() - started:  # no time for another epoch
                break
        return self._ready()

    def _ready(self):
        """Serving state: labels in their original dtype, and the network in eval mode."""
        self.labels_ = pd.Series(self.classes_, dtype=self.label_dtype_).to_numpy()
        self.model_.eval()
        return self

    def predict_encoded(self, Z: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            out = self.model_(Z)
        if self.classes_:
            return self.labels_[out.argmax(dim=1).numpy()]
        return out[:, 0].double().numpy() * self.y_std_ + self.y_mean_

    def predict(self, X) -> np.ndarray:
        return self.predict_encoded(self.encode(X))

    def predict_proba(self, X) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(self.model_(self.encode(X)).double(), dim=1).numpy()

    def native_model(self) -> nn.Module:
        return self.model_

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model_.parameters())

    def export_edge(self, folder: Path, X) -> list[dict]:
        """The network as ONNX through ``torch.onnx``, with the softmax (or the target's scaling) folded in;
        the numpy encoding of raw rows stays with the app (the graph takes encoded rows)."""
        classes, y_mean, y_std = self.classes_, self.y_mean_, self.y_std_

        class Serve(nn.Module):
            def __init__(self, net: nn.Module):
                super().__init__()
                self.net = net

            def forward(self, x):
                out = self.net(x)
                return torch.softmax(out, dim=1) if classes else out[:, 0] * y_std + y_mean

        Z = self.encode(X)
        torch.onnx.export(Serve(self.model_).eval(), (Z[:1],), str(folder / "model.onnx"), input_names=["x"],
                          output_names=["out"], dynamic_axes={"x": {0: "rows"}}, dynamo=False)
        return [{"format": "onnx", "file": "model.onnx", "output": 0, "feeds": [Z.numpy()],
                 "graph": "network only on encoded rows (softmax or target scaling included); the encoding "
                          "stays with the app"}]

    def save(self, path: Path) -> None:
        torch.save(self.model_.state_dict(), path / "model.pt")
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
        weights = torch.load(path / "model.pt", weights_only=True)
        pipeline.model_ = pipeline._build(weights["0.weight"].shape[1])
        pipeline.model_.load_state_dict(weights)
        return pipeline._ready()
