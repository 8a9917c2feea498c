"""The MLflow ``matrix`` run of an export, logged by a detached process (``python -m bench.report.logger``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.analysis.matrix import Matrix
from bench.errors import BenchError


def run_payload(m: Matrix, meta: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
    """What the MLflow ``matrix`` run records: profile and selection as params, the files as artifacts."""
    p, d = m.decision.profile, m.decision
    params = {"profile": p.name, "profile_source": p.source, "weights": json.dumps(p.weights),
              "constraints": json.dumps([vars(c) for c in p.constraints]), "network_rtt_ms": p.network_rtt_ms,
              "selection": json.dumps(meta["selection"]), "tasks": ",".join(meta["tasks"]),
              "pipelines": ",".join(meta["pipelines"]), "runs_used": meta["runs"]["used"]}
    metrics = {"winner_score": float(d.table.loc[d.winner, "score"])} if d.winner else {}
    return {"run_name": f"matrix-{p.name}", "tags": {"profile": p.name, "winner": d.winner or "none"},
            "params": {k: str(v)[:6000] for k, v in params.items()}, "metrics": metrics,
            "paths": [str(path.resolve()) for path in paths]}


def _log_payload(uri: str, payload: dict[str, Any]) -> str:
    from bench import store

    return store.log_run(uri, store.MATRIX_EXPERIMENT, payload["run_name"], tags=payload["tags"],
                         params=payload["params"], metrics=payload["metrics"], paths=payload["paths"], kind="matrix")


def log_run(uri: str, m: Matrix, meta: dict[str, Any], paths: list[Path]) -> str:
    """The exports as artifacts of a run in the ``matrix`` experiment (kind ``matrix``: not a job run)."""
    return _log_payload(uri, run_payload(m, meta, paths))


OUTCOME_FILE = "matrix_run.json"


class MatrixRunLogger:
    """Logs the exports as a run of the MLflow ``matrix`` experiment from a detached process.

    Importing mlflow and opening its SQL store costs 2.5-3 CPU-seconds here (its SQLAlchemy store imports
    MLflow's GenAI modules): more than everything else ``bench matrix`` does over 1,000 runs, and the files,
    which are what the user asked for, are ready before it. So the command writes them, hands a private
    copy to a detached process and returns; that process records its outcome (run id or error) in
    ``<out>/matrix_run.json``, which the next ``bench matrix`` reports if it failed. ``wait=True`` (``--wait``)
    blocks until the run is logged and turns a failure into an error.
    """

    def __init__(self, uri: str, out: Path, enabled: bool = True, wait: bool = False) -> None:
        self.uri, self.outcome, self.enabled, self.wait = uri, out / OUTCOME_FILE, enabled, wait

    def previous_failure(self) -> str | None:
        """The error of the last background logging into this folder, if it failed."""
        try:
            outcome = json.loads(self.outcome.read_text())
        except (OSError, ValueError):
            return None
        return outcome.get("error") if outcome.get("status") == "failed" else None

    def log(self, m: Matrix, meta: dict[str, Any], paths: list[Path]) -> str:
        """Start the logging; returns what to tell the user (the run id when waiting)."""
        import os
        import shutil
        import subprocess
        import sys
        import tempfile

        if not self.enabled:
            return ""
        staging = Path(tempfile.mkdtemp(prefix="bench-matrix-run-"))
        copies = [Path(shutil.copy2(path, staging / path.name)) for path in paths]  # later runs may overwrite
        (staging / "payload.json").write_text(json.dumps(run_payload(m, meta, copies) | {"uri": self.uri}))
        self.outcome.unlink(missing_ok=True)
        root = str(Path(__file__).resolve().parents[2])
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        with open(staging / "stderr.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "bench.report.logger", str(staging), str(self.outcome)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                    start_new_session=True)  # outlives the command, and its Ctrl-C
        if not self.wait:
            return (f"logging the files as a run of MLflow experiment 'matrix' in the background (pid {proc.pid};"
                    f" outcome in {self.outcome})")
        proc.wait(timeout=600)
        outcome = json.loads(self.outcome.read_text()) if self.outcome.is_file() else {"status": "failed",
                                                                                          "error": "no outcome"}
        if outcome["status"] != "logged":
            raise BenchError(f"the files are written, but logging them to MLflow failed: {outcome['error']}",
                             field="--tracking-uri")
        return f"logged as MLflow run {outcome['run_id']} in experiment 'matrix'"


def _logger_main(staging: Path, outcome_file: Path) -> int:
    """The detached process: log the staged files, write the outcome atomically, remove the staging folder."""
    import shutil
    import traceback

    payload = json.loads((staging / "payload.json").read_text())
    try:
        outcome = {"status": "logged", "run_id": _log_payload(payload.pop("uri"), payload)}
    except Exception as exc:  # noqa: BLE001 - the outcome file is the only place left to report it
        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                   "traceback": traceback.format_exc()}
    outcome["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    partial = outcome_file.with_suffix(".partial")
    partial.write_text(json.dumps(outcome, indent=1))
    partial.replace(outcome_file)
    shutil.rmtree(staging, ignore_errors=True)
    return 0 if outcome["status"] == "logged" else 1


if __name__ == "__main__":
    import sys

    sys.exit(_logger_main(Path(sys.argv[1]), Path(sys.argv[2])))
