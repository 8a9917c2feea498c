"""A job's test-set predictions kept as a compact Parquet artifact, and metrics recomputed from it.

Keeping predictions (as TabArena and TabRepo do) lets a study be scored with another metric, or a surprising
number be checked, without refitting anything. The job child writes the file beside its other outputs; the
supervisor logs it as the run's ``predictions.parquet``. One row per test row: its position in the task's
prepared data (``row``), the true value, the prediction and, for classification, one probability column per
class. The split hash, the classes in column order, the positive label, the kind and the primary metric
travel in the file's schema metadata, so the file alone is enough to rescore it and to check it is the split
the run says it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PREDICTIONS_FILE = "predictions.parquet"
FORMAT = 1
_META_KEY = b"bench"


def _proba_column(label: Any) -> str:
    return f"proba_{label}"


def write_predictions(path: Path, *, kind: str, rows: np.ndarray, y_true: Any, pred: Any, proba: Any,
                      classes: tuple, positive_label: Any, split_hash: str, task: str, metric: str) -> None:
    """Write the file; labels as the task's classes hold them, probabilities as float64 (rescoring gives the
    logged value exactly), compressed with zstd."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.metrics import as_labels

    frame = pd.DataFrame({"row": np.asarray(rows, dtype="int64")})
    if kind == "regression":
        frame["y_true"] = np.asarray(y_true, dtype="float64")
        frame["y_pred"] = np.asarray(pred, dtype="float64")
    else:
        frame["y_true"] = _label_column(np.asarray(y_true), classes)
        frame["y_pred"] = _label_column(as_labels(pred, classes), classes)
        for i, label in enumerate(classes):
            frame[_proba_column(label)] = np.asarray(proba, dtype="float64")[:, i]
    meta = {"format": FORMAT, "kind": kind, "classes": [_plain(c) for c in classes],
            "positive_label": _plain(positive_label), "split_hash": split_hash, "task": task, "metric": metric}
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    pq.write_table(table, path, compression="zstd")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _label_column(values: np.ndarray, classes: tuple) -> np.ndarray:
    if classes and isinstance(classes[0], str):
        return values.astype(str).astype(object)
    return values.astype(np.asarray(classes).dtype)


def read_predictions(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows and the metadata; labels back in the dtype the job scored them in."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a predictions file of format {FORMAT}")
    frame = table.to_pandas()
    if meta["kind"] != "regression" and meta["classes"] and isinstance(meta["classes"][0], str):
        for col in ("y_true", "y_pred"):
            frame[col] = frame[col].astype(object)
    return frame, meta


def rescore(frame: pd.DataFrame, meta: dict[str, Any], metric: str) -> float:
    """``metric`` recomputed from kept predictions, through the same registry the job scored with."""
    from bench.metrics import score_one

    classes = tuple(meta["classes"])
    proba = None
    if meta["kind"] != "regression":
        proba = frame[[_proba_column(c) for c in classes]].to_numpy(dtype="float64")
    y = frame["y_true"].to_numpy()
    return score_one(metric, meta["kind"], y, frame["y_pred"].to_numpy(), proba, classes, meta["positive_label"])
