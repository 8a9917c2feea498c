"""Cold start, split by what it depends on: the technology and the model.

What an edge device or a serverless function pays before its first answer is a fresh interpreter importing
the serving code (pandas, the framework, the model loader: it depends on the technology only) plus loading
this model and predicting one row (it depends on the model). The harness measures the two apart:

- :func:`import_probe` runs in truly fresh interpreters, median of N, once per pipeline per ``bench run``;
  the supervisor times the whole process (interpreter start included).
- :func:`model_probe` runs per job in a child forked from the pipeline's warm parent, whose imports are
  done and which has run nothing: load the saved model, predict one row.

``cold_start_s`` is their sum. :func:`full_probe` does the whole thing in one fresh process, the reference
the split is checked against (``benchmarks/cold_start_split.py``).

The same probes measure serving memory, the resident memory a process that only serves the model needs (what
an edge device or a serving container must hold; training memory is another process's concern):
``serving_import_rss_mb`` is the import probe's RSS after the imports minus the RSS of a bare interpreter
started the same way (:func:`bare_probe`: the child protocol and nothing else), and ``serving_model_rss_mb``
the RSS the model probe's child gains across loading the model and one prediction; ``serving_rss_mb`` is
their sum.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def rss_mb() -> float:
    """This process's resident memory now, in MB (``/proc/self/statm``: a read, no sampling thread)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bare_probe(folder: Path) -> None:
    """Fresh interpreter running the child protocol and nothing else: the RSS serving memory is counted above."""
    from bench.execution.child import write_result

    write_result(folder, {"rss_mb": rss_mb()})


def import_probe(folder: Path) -> None:
    """Fresh interpreter: import the serving code of the pipeline named in the spec."""
    import pandas  # noqa: F401

    from bench.discovery import load_module
    from bench.execution.child import read_spec, write_result

    load_module(read_spec(folder)["pipeline"])
    write_result(folder, {"import_s": time.perf_counter() - _T0, "rss_mb": rss_mb()})


def model_probe(folder: Path) -> None:
    """Warm child: load the saved model and predict one row."""
    import pandas as pd

    from bench.discovery import load_module
    from bench.execution.child import read_spec, write_result

    spec = read_spec(folder)
    module = load_module(spec["pipeline"])
    row = pd.read_parquet(spec["row_file"])
    before = rss_mb()
    t0 = time.perf_counter()
    model = module.Pipeline.load(Path(spec["model_dir"]))
    t1 = time.perf_counter()
    model.predict(row)
    t2 = time.perf_counter()
    write_result(folder, {"load_s": t1 - t0, "first_predict_ms": (t2 - t1) * 1e3,
                          "rss_growth_mb": max(0.0, rss_mb() - before)})


def full_probe(pipeline: str, model_dir: str, row_file: str) -> dict[str, float]:
    """One fresh process doing all of it (the reference measurement); the caller times the process."""
    import pandas as pd

    from bench.discovery import load_module

    module = load_module(pipeline)
    t_import = time.perf_counter()
    model = module.Pipeline.load(Path(model_dir))
    t_load = time.perf_counter()
    row = pd.read_parquet(row_file)
    t_row = time.perf_counter()
    model.predict(row)
    t_pred = time.perf_counter()
    return {"import_s": t_import - _T0, "load_s": t_load - t_import, "first_predict_ms": (t_pred - t_row) * 1e3}


if __name__ == "__main__":
    print(json.dumps(full_probe(*sys.argv[1:4])))
