"""The Python API: ``import bench`` stays cheap, and the example notebook runs headless (nbclient) with its
decision table equal to ``bench matrix``'s on the same store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "decide.ipynb"


def test_import_bench_loads_no_framework_and_names_the_api():
    probe = ("import sys, bench; print(sorted(m for m in ('mlflow', 'torch', 'tensorflow', 'pandas', 'matplotlib') "
             "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    import bench

    assert {"load_runs", "decide", "figures", "run"} <= set(dir(bench))
    with pytest.raises(AttributeError):
        bench.no_such_thing  # noqa: B018


@pytest.mark.slow
def test_example_notebook_runs_and_its_table_is_bench_matrix_s(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    from bench.cli import main

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('decision.table.to_csv("notebook_table.csv", index=False)'))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("excluded: online p99 latency 41 ms &gt; 10 ms" in h and "sklearn_hgb" in h for h in html)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # a Figure shows as a picture
    assert any("sklearn_hgb" in o.get("text", "") for o in outputs if o.output_type == "stream")  # the winner

    uri = f"sqlite:///{tmp_path / 'example_store' / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    assert main(["matrix", "--tracking-uri", uri, "--profile", "edge", "--out", str(tmp_path / "cli"),
                 "--no-log"]) == 0
    cli = pd.read_csv(tmp_path / "cli" / "decision_matrix_edge.csv", comment="#")
    notebook = pd.read_csv(tmp_path / "notebook_table.csv")
    pd.testing.assert_frame_equal(notebook, cli)
