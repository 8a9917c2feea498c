"""The prepared-data cache: parquet plus a JSON of the feature roles, keyed by the task's definition hash."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from bench.tasks.prepare import TaskData, load_data
from bench.tasks.schema import TARGET_COLUMN, Task


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.cwd() / ".bench_cache"))


def cached_data(task: Task) -> TaskData:
    """``load_data`` through a parquet cache keyed by the definition hash (flights parses in seconds)."""
    base = cache_dir() / f"{task.name}-{task.definition_hash}"
    data_file, meta_file = base.with_suffix(".parquet"), base.with_suffix(".json")
    if data_file.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        frame = pd.read_parquet(data_file)
        for col in meta["categorical"]:  # parquet hands back pandas 3 ``str`` categories; keep one dtype
            frame[col] = frame[col].cat.set_categories(frame[col].cat.categories.astype(object),
                                                       ordered=frame[col].cat.ordered)
        y = frame.pop(TARGET_COLUMN).rename(task.target)
        if task.kind != "regression" and meta["label_type"] == "str":
            y = y.astype(object)
        return TaskData(task=task, X=frame, y=y, numeric=tuple(meta["numeric"]),
                        categorical=tuple(meta["categorical"]),
                        ordinal={k: tuple(v) for k, v in meta["ordinal"].items()},
                        classes=tuple(meta["classes"]))
    data = load_data(task)
    base.parent.mkdir(parents=True, exist_ok=True)
    frame = data.X.copy()
    frame[TARGET_COLUMN] = data.y.to_numpy()
    tmp = data_file.with_suffix(f".{os.getpid()}.tmp")
    frame.to_parquet(tmp)
    os.replace(tmp, data_file)
    label_type = "str" if data.classes and isinstance(data.classes[0], str) else "native"
    meta = {"numeric": data.numeric, "categorical": data.categorical, "ordinal": data.ordinal,
            "classes": list(data.classes), "label_type": label_type, "rows": len(data.X),
            "features": data.X.shape[1]}
    meta_file.write_text(json.dumps(meta, default=_json_default))
    return data


def _json_default(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def cached_shape(task: Task) -> tuple[int, int] | None:
    """Rows and features from the cache, without loading the data; None before the first load."""
    meta_file = cache_dir() / f"{task.name}-{task.definition_hash}.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    return meta["rows"], meta["features"]
