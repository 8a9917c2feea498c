"""Cold-start probe, run in a fresh process: import the framework, load the saved model, predict one row.

This is what an edge device or a serverless function pays before its first answer. The parent times the
whole process (interpreter start included); the phases below are timed from inside.
"""

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> None:
    pipeline, model_dir, row_file = sys.argv[1:4]
    import pandas as pd

    from bench.pipelines import load_module

    module = load_module(pipeline)
    t_import = time.perf_counter()
    model = module.Pipeline.load(Path(model_dir))
    t_load = time.perf_counter()
    row = pd.read_parquet(row_file)
    t_row = time.perf_counter()
    model.predict(row)
    t_pred = time.perf_counter()
    print(json.dumps({"import_s": t_import - _T0, "load_s": t_load - t_import,
                      "first_predict_ms": (t_pred - t_row) * 1e3}))


if __name__ == "__main__":
    main()
