"""The only module that imports mlflow: the store, runs, results, models and reading runs back.

Who creates the store matters (FACTS.md): the harness creates the SQLite store and each task's
experiment, with an explicit artifact location under ``mlflow/artifacts/``, once in the parent before any
worker starts, so concurrent workers never race to create tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError

DEFAULT_DIR = "mlflow"
PIP_PACKAGES = {"sklearn": ["scikit-learn", "pandas", "numpy"], "flaml": ["flaml", "lightgbm", "xgboost",
                "scikit-learn", "pandas"], "pytorch": ["torch", "numpy", "pandas"],
                "keras": ["keras", "tensorflow-cpu", "numpy", "pandas"]}


def resolve_uri(uri: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the embedded ``sqlite:///mlflow/mlflow.db``."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(Path.cwd() / DEFAULT_DIR / 'mlflow.db').resolve()}"


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact_root(uri: str) -> Path | None:
    """Artifacts beside a SQLite store; a server (http) decides its own locations."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    return None


def check_store(uri: str) -> None:
    """Create or open the store now, so an unreachable server fails before any job starts."""
    if uri.startswith("sqlite:///"):
        _create_sqlite_store(uri)
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
        except OSError as exc:
            raise BenchError(f"cannot reach the tracking server {uri} ({exc}); start it with `bench server` "
                             "or fix the URI", field="--tracking-uri") from None
    try:
        _client(uri).search_experiments(max_results=1)
    except Exception as exc:
        raise BenchError(f"cannot open the tracking store {uri}: {str(exc).splitlines()[0]}",
                         field="--tracking-uri") from None


def _create_sqlite_store(uri: str) -> None:
    """Create the tables under a file lock: two processes creating one fresh store at once crash (FACTS.md)."""
    import fcntl

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _client(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def experiment_id(uri: str, name: str) -> str:
    client = _client(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = _artifact_root(uri)
    location = (root / name).as_uri() if root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it between our read and create
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def finished_job_keys(uri: str, experiment_ids: list[str]) -> set[str]:
    """Job keys of finished runs: the resume set. Failed runs are not in it, so a rerun retries them."""
    if not experiment_ids:
        return set()
    client = _client(uri)
    keys: set[str] = set()
    token = None
    while True:
        page = client.search_runs(experiment_ids, "attributes.status = 'FINISHED'", max_results=5000,
                                  page_token=token)
        keys |= {r.data.tags["job_key"] for r in page if "job_key" in r.data.tags}
        token = page.token
        if not token:
            return keys


def owner_id() -> str:
    """Who holds a claim: host and pid, so a claim of a dead local process can be recognised as stale."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _claim_is_live(run: Any) -> bool:
    """A RUNNING run blocks its job unless its owner was a process on this host that no longer exists."""
    import socket

    import psutil

    host, _, pid = run.data.tags.get("owner", "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return psutil.pid_exists(int(pid))


def claim_run(uri: str, exp_id: str, run_name: str, tags: dict[str, str], params: dict[str, Any],
              rerun_finished: bool = False) -> str | None:
    """Open the job's run unless another process has the job; returns None when someone else does.

    Two ``bench run`` on one store must run each job once. Optimistic claim: create our RUNNING run, then
    look at every run with the same job key; the earliest live RUNNING or FINISHED one wins, ties broken by
    run id, so exactly one claimant proceeds and the others delete their run. Stale claims (a local owner
    that died without cleaning up, e.g. SIGKILL) are marked KILLED and ignored.
    """
    client = _client(uri)
    run = client.create_run(exp_id, run_name=run_name, tags=tags | {"owner": owner_id()})
    mine = run.info.run_id
    try:
        return _settle_claim(client, exp_id, mine, tags, params, rerun_finished)
    except BaseException:  # interrupted while claiming: leave no RUNNING run behind
        client.set_tag(mine, "failure_cause", "interrupted")
        client.set_terminated(mine, "KILLED")
        raise


def _settle_claim(client: Any, exp_id: str, mine: str, tags: dict[str, str], params: dict[str, Any],
                  rerun_finished: bool) -> str | None:
    from mlflow.entities import Param

    rivals = client.search_runs([exp_id], f"tags.job_key = '{tags['job_key']}'", max_results=1000)
    contenders = []
    for other in rivals:
        status = other.info.status
        if other.info.run_id != mine and status == "RUNNING" and not _claim_is_live(other):
            client.set_tag(other.info.run_id, "failure_cause", "abandoned")
            client.set_terminated(other.info.run_id, "KILLED")
        elif status == "RUNNING" or (status == "FINISHED" and not rerun_finished):
            contenders.append((status != "FINISHED", other.info.start_time, other.info.run_id))
    if min(contenders, default=(True, 0, mine))[2] != mine:
        client.delete_run(mine)
        return None
    client.log_batch(mine, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    return mine


def log_job_result(uri: str | None, run_id: str, result: dict[str, Any]) -> None:
    """Metrics, params and tags of a measured job, in one batch (fast over HTTP too)."""
    import math
    import time

    from mlflow.entities import Metric, Param, RunTag

    client = _client(resolve_uri(uri))
    now = int(time.time() * 1000)
    existing = client.get_run(run_id).data.params
    metrics = [Metric(k, float(v), now, 0) for k, v in result["metrics"].items() if math.isfinite(float(v))]
    params = [Param(k, str(v)) for k, v in result["params"].items() if k not in existing]
    tags = [RunTag(k, str(v)) for k, v in result["tags"].items()]
    for i in range(0, max(len(metrics), 1), 900):  # log_batch takes at most 1000 metrics a call
        client.log_batch(run_id, metrics=metrics[i:i + 900], params=params if i == 0 else [],
                         tags=tags if i == 0 else [])


def log_job_model(uri: str | None, run_id: str, pipe: Any, technology: str, model_dir: Path) -> None:
    """The model in its framework's MLflow flavour, plus the pipeline's own saved folder.

    Pip requirements are given explicitly: inferring them costs 5-7 s a model (FACTS.md). A failure here is
    recorded as a tag and never fails the run: the measurements are already logged.
    """
    import mlflow

    from bench.environment import versions

    uri = resolve_uri(uri)
    client = _client(uri)
    client.log_artifacts(run_id, str(model_dir), "native")
    native = pipe.native_model()
    pins = versions()
    reqs = [f"{p}=={pins[p]}" for p in PIP_PACKAGES.get(technology, []) if pins.get(p, "absent") != "absent"]
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(run_id=run_id):
            if native is None:
                return
            if technology in ("sklearn", "flaml"):
                import mlflow.sklearn

                mlflow.sklearn.log_model(native, name="model", serialization_format="cloudpickle",
                                         pip_requirements=reqs)
            elif technology == "pytorch":
                import mlflow.pytorch

                mlflow.pytorch.log_model(native, name="model", pip_requirements=reqs)
            elif technology == "keras":
                import mlflow.keras

                mlflow.keras.log_model(native, name="model", pip_requirements=reqs)
    except Exception as exc:  # the measurements stand; say why the flavour model is missing
        client.set_tag(run_id, "model_logging_error", f"{type(exc).__name__}: {exc}"[:5000])


def download_artifacts(uri: str, run_id: str, artifact_path: str, dest: Path) -> Path:
    """A run's logged folder (e.g. ``native``, the pipeline's own saved model) copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(_client(uri).download_artifacts(run_id, artifact_path, str(dest)))


def finish_run(uri: str, run_id: str) -> None:
    _client(uri).set_terminated(run_id, "FINISHED")


def fail_run(uri: str, run_id: str, cause: str, message: str, trace: str, killed: bool = False) -> None:
    """A failed job keeps its run: cause and message as tags, the full traceback as an artifact."""
    client = _client(uri)
    client.set_tag(run_id, "failure_cause", cause)
    client.set_tag(run_id, "error", message[:5000])
    if trace:
        try:
            client.log_text(run_id, trace, "error.txt")
        except Exception as exc:  # an unwritable artifact store must not hide the failure itself
            client.set_tag(run_id, "error_artifact", f"not written: {exc}"[:500])
    client.set_terminated(run_id, "KILLED" if killed else "FAILED")


def load_runs(uri: str, tasks: list[str] | None = None, pipelines: list[str] | None = None,
              include_failed: bool = True):
    """Job runs as a DataFrame (``metrics.*``, ``params.*``, ``tags.*`` columns), newest first."""
    import mlflow

    client = _client(uri)
    experiments = [e for e in client.search_experiments() if e.name != "Default" and e.name != "matrix"]
    if tasks:
        experiments = [e for e in experiments if e.name in set(tasks)]
    if not experiments:
        import pandas as pd

        return pd.DataFrame()
    mlflow.set_tracking_uri(uri)
    flt = "tags.job_key != ''" if include_failed else "tags.job_key != '' AND attributes.status = 'FINISHED'"
    runs = mlflow.search_runs([e.experiment_id for e in experiments], filter_string=flt,
                              output_format="pandas", max_results=100_000)
    if pipelines and len(runs):
        runs = runs[runs["tags.pipeline"].isin(pipelines)]
    return runs


def compare_url(ui_base: str, experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI's compare-runs view for these runs."""
    import json
    from urllib.parse import quote

    return (f"{ui_base.rstrip('/')}/#/compare-runs?runs={quote(json.dumps(run_ids))}"
            f"&experiments={quote(json.dumps([experiment_id]))}")


def create_run(uri: str, exp_id: str, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
    """A RUNNING run with its tags and params (sweeps that are not suite jobs: stream, summaries)."""
    from mlflow.entities import Param

    client = _client(uri)
    run_id = client.create_run(exp_id, run_name=run_name, tags=tags | {"mlflow.runName": run_name}).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    return run_id


def log_steps(uri: str, run_id: str, steps: list[tuple[int, dict[str, float]]],
              metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
    """Metrics per step (the UI draws them as curves against the step), plus step-less metrics and tags."""
    import math
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, int(step)) for step, values in steps for k, v in values.items()
             if v is not None and math.isfinite(float(v))]
    batch += [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if math.isfinite(float(v))]
    run_tags = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
    client = _client(uri)
    for i in range(0, max(len(batch), 1), 900):  # log_batch takes at most 1000 metrics a call
        client.log_batch(run_id, metrics=batch[i:i + 900], tags=run_tags if i == 0 else [])


def log_files(uri: str, run_id: str, paths: list[Path]) -> None:
    client = _client(uri)
    for path in paths:
        client.log_artifact(run_id, str(path))
