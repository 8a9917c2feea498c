"""The export child: the pipeline writes its edge model, the native model's answers are kept beside it.

Runs as ``bench.deploy.export:export_main`` in a fresh interpreter on the child protocol (the framework
is imported there, never in ``bench deploy`` itself). What the pipeline's ``export_edge`` raises is the
converter's answer about the technology: it becomes the result's ``error``, never the child's failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: How much of a converter's message is kept: the first lines say what failed, and the cause says why.
REASON_CHARS = 600


def reason(exc: BaseException) -> str:
    """One line: the exception's type and first line, and the first line of its cause when it has one."""
    def first(e: BaseException) -> str:
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0] if lines else ''}".strip()

    text = first(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        text += f" (caused by {first(cause)})"
    return text[:REASON_CHARS]


def export_main(folder: Path) -> None:
    from bench.execution.child import read_spec, write_result

    spec = read_spec(folder)
    write_result(folder, export(spec["pipeline"], Path(spec["model_dir"]), Path(spec["task_path"]),
                                int(spec["seed"]), Path(spec["out"])))


def export(pipeline: str, model_dir: Path, task_path: Path, seed: int, out: Path) -> dict[str, Any]:
    """Load the run's saved model, answer the test rows natively, export; returns what was exported."""
    import numpy as np
    import pandas as pd

    from bench.discovery import load_module
    from bench.splits import make_split
    from bench.tasks import cached_data, load_task

    module = load_module(pipeline)
    pipe = module.Pipeline.load(model_dir)
    task = load_task(task_path)
    data = cached_data(task)
    X_test = data.X.iloc[make_split(data, seed).test]
    out.mkdir(parents=True, exist_ok=True)
    if task.kind == "regression":
        np.savez(out / "native.npz", values=np.asarray(pipe.predict(X_test), np.float64))
    else:
        labels = pd.Index(list(data.classes)).get_indexer(np.asarray(pipe.predict(X_test)))
        np.savez(out / "native.npz", labels=labels, proba=np.asarray(pipe.predict_proba(X_test), np.float64))
    from bench.api import BasePipeline

    # Like with like: a graph of the whole pipeline against the in-process end-to-end latency, a model-only
    # graph against the in-process model path where the pipeline has one.
    model_path = type(pipe).encode is not BasePipeline.encode
    result: dict[str, Any] = {"kind": task.kind, "rows": len(X_test), "exports": [],
                              "peer": "model_latency" if model_path else "latency"}
    if not hasattr(pipe, "export_edge"):
        result["error"] = f"{pipeline} has no export_edge method"
        return result
    try:
        exports = pipe.export_edge(out, X_test)
    except Exception as exc:  # noqa: BLE001 - a converter's failure is a finding about the technology
        result["error"] = reason(exc)
        return result
    for i, item in enumerate(exports):
        entry = {k: item[k] for k in ("format", "file", "graph", "output", "error") if k in item}
        if "error" not in item:
            feeds = out / f"feeds_{i}.npz"
            np.savez(feeds, *[np.asarray(f, str) if np.asarray(f).dtype == object else np.ascontiguousarray(f)
                               for f in item["feeds"]])
            entry |= {"feeds": str(feeds), "path": str(out / item["file"]),
                      "model_bytes": (out / item["file"]).stat().st_size}
        result["exports"].append(entry)
    return result


def requests_main(folder: Path) -> None:
    from bench.execution.child import read_spec, write_result

    spec = read_spec(folder)
    write_result(folder, request_bodies(spec["pipeline"], Path(spec["model_dir"]), Path(spec["task_path"]),
                                        int(spec["seed"]), Path(spec["out"]), int(spec.get("rows", 200))))


def request_bodies(pipeline: str, model_dir: Path, task_path: Path, seed: int, out: Path,
                   rows: int = 200) -> dict[str, Any]:
    """Single-row request bodies for the run's MLflow model, from its test rows, one JSON document a line.

    The flavour model is what the pipeline's ``native_model`` returns: a whole scikit-learn pipeline or FLAML's
    AutoML object takes raw columns, a network (torch, Keras) takes the rows its pipeline's ``encode`` made.
    """
    import numpy as np

    from bench.api import BasePipeline
    from bench.deploy.loadgen import dataframe_split
    from bench.discovery import load_module
    from bench.splits import make_split
    from bench.tasks import cached_data, load_task

    pipe = load_module(pipeline).Pipeline.load(model_dir)
    data = cached_data(load_task(task_path))
    X = data.X.iloc[make_split(data, seed).test].head(rows)
    if type(pipe).encode is not BasePipeline.encode:
        Z = np.asarray(pipe.encode(X), np.float64)
        bodies = dataframe_split([f"x{i}" for i in range(Z.shape[1])], Z.tolist())
        payload = f"encoded rows ({Z.shape[1]} floats; the pipeline's encoding runs in the client)"
    else:
        bodies = dataframe_split(list(X.columns), X.astype(object).to_numpy().tolist())
        payload = f"raw rows ({X.shape[1]} columns; preprocessing runs in the server)"
    out.mkdir(parents=True, exist_ok=True)
    (out / "requests.jsonl").write_bytes(b"\n".join(bodies))
    return {"payload": payload, "file": str(out / "requests.jsonl"), "rows": len(bodies)}


def run_child(entry: str, folder: Path, spec: dict[str, Any], time_limit_s: float = 600.0) -> dict[str, Any]:
    """Run an entry of this module in a fresh interpreter on the child protocol (one thread); a failed child
    becomes ``{"error": ...}``."""
    import os

    from bench.execution.child import Limits, classify, start_fresh, supervise, write_spec
    from bench.measure import thread_env

    write_spec(folder, spec)
    limits = Limits(time_s=time_limit_s, memory_mb=float("inf"))
    child = start_fresh(entry, folder, os.environ | thread_env(1))
    end = classify(child, supervise(child, limits), limits)
    if end.ok:
        return end.result
    return {"exports": [], "error": f"the {entry.rsplit(':', 1)[-1]} process failed ({end.cause}): {end.message}"[:600]}
