"""The edge runtime in a fresh interpreter: what a device pays and answers, one thread.

Run as ``python -m bench.deploy.probe SPEC_JSON``. It imports the standard library, numpy and the runtime
only (no framework, no pandas, no MLflow), so its cold start is the deployed form's: interpreter start,
runtime import, model load, first single-row answer. With ``"full": true`` it goes on to the single-row
latency loop (the suite's protocol: warm-up, then timed calls with the collector off until ``n`` calls or
``cap_s``, never below ``min_n``), reads its own RSS (what serving the model adds to a bare interpreter, as the
suite's ``serving_rss_mb`` counts it; and the whole process's) and answers
every test row in one batch for the fidelity check. Results go to ``result.json`` beside the spec.
"""

import time

_T0 = time.perf_counter()
_WALL0 = time.time()

import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _onnx(path: str, output: int, n_inputs: int):
    import onnxruntime as ort

    imported = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out_name = [session.get_outputs()[output].name]
    if len(names) != n_inputs:
        raise ValueError(f"the graph has {len(names)} inputs, the export gave {n_inputs} feeds")

    def run(feeds):
        return session.run(out_name, dict(zip(names, feeds, strict=True)))[0]

    return imported, run


def _litert(path: str, output: int, n_inputs: int):
    from ai_edge_litert.interpreter import Interpreter

    imported = time.perf_counter()
    interpreter = Interpreter(model_path=path, num_threads=1)
    inputs = interpreter.get_input_details()
    out_index = interpreter.get_output_details()[output]["index"]
    shape = {"rows": None}

    def run(feeds):
        rows = feeds[0].shape[0]
        if shape["rows"] != rows:  # resized only when the batch size changes (single rows: once)
            for detail, feed in zip(inputs, feeds, strict=True):
                interpreter.resize_tensor_input(detail["index"], list(feed.shape))
            interpreter.allocate_tensors()
            shape["rows"] = rows
        for detail, feed in zip(inputs, feeds, strict=True):
            interpreter.set_tensor(detail["index"], feed)
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    return imported, run


RUNTIMES = {"onnx": _onnx, "litert": _litert}


def _latency(run, rows: list, n: int, warmup: int, cap_s: float, min_n: int) -> list[float]:
    for i in range(warmup):
        run(rows[i % len(rows)])
    times: list[float] = []
    gc.disable()
    try:
        stop = time.perf_counter() + cap_s
        while len(times) < n and (len(times) < min_n or time.perf_counter() < stop):
            row = rows[len(times) % len(rows)]
            t = time.perf_counter_ns()
            run(row)
            times.append((time.perf_counter_ns() - t) / 1e6)
    finally:
        gc.enable()
    return times


def main(spec_file: str) -> dict:
    bare_rss = _rss_mb()  # a bare interpreter: what any process pays, left out as in the suite's serving memory
    spec = json.loads(Path(spec_file).read_text())
    import numpy as np

    with np.load(spec["feeds"]) as saved:
        feeds = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    feeds = [f.astype(object) if f.dtype.kind == "U" else f for f in feeds]  # runtimes take strings as objects
    started = time.perf_counter()
    imported, run = RUNTIMES[spec["format"]](spec["path"], int(spec["output"]), len(feeds))
    loaded = time.perf_counter()
    run([f[:1] for f in feeds])
    answered, answered_wall = time.perf_counter(), time.time()
    result = {"import_s": imported - started, "load_s": loaded - imported,
              "first_predict_ms": (answered - loaded) * 1e3, "in_process_s": answered - _T0,
              "first_answer_wall": answered_wall, "process_wall0": _WALL0}
    if spec.get("full"):
        rows = [[f[i:i + 1] for f in feeds] for i in range(min(spec["n"], len(feeds[0])))]
        times = _latency(run, rows, spec["n"], spec["warmup"], spec["cap_s"], spec["min_n"])
        result |= {"latency_ms": times, "rss_mb": _rss_mb() - bare_rss, "process_rss_mb": _rss_mb()}
        outputs = np.asarray(run(feeds), np.float64)
        np.save(Path(spec_file).with_name("outputs.npy"), outputs)
    return result


if __name__ == "__main__":
    out = main(sys.argv[1])
    tmp = Path(sys.argv[1]).with_name("result.json.tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(tmp.with_name("result.json"))
