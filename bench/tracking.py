"""Writing to MLflow: experiments, job results in batch, models, failures, and runs that are not jobs.

Who creates the store matters (two processes creating one fresh store at once crash): the harness creates
the SQLite store and each task's experiment, with an explicit artifact location under ``mlflow/artifacts/``,
once in the parent before any worker starts, so concurrent workers never race to create tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError

DEFAULT_DIR = "mlflow"


def resolve_uri(uri: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the embedded ``sqlite:///mlflow/mlflow.db``.

    A relative SQLite path (``sqlite:///mlflow.db``, MLflow's own standard form) is resolved against the working
    directory, so every process (workers, the UI server) sees the same absolute file. An empty URI and an
    in-memory SQLite store (which would vanish with each process) are refused.
    """
    field = "--tracking-uri"
    if uri is None:
        uri, field = os.environ.get("MLFLOW_TRACKING_URI") or None, "MLFLOW_TRACKING_URI"
        if uri is None:
            return f"sqlite:///{(Path.cwd() / DEFAULT_DIR / 'mlflow.db').resolve()}"
    uri = uri.strip()
    if not uri:
        raise BenchError("the tracking URI is empty; give sqlite:///PATH or http://HOST:PORT, or leave the option "
                         "out for the default sqlite:///mlflow/mlflow.db", field=field)
    if uri.startswith("sqlite:"):
        path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else ""
        if not path or path.startswith(":memory:") or "mode=memory" in path:
            raise BenchError(f"{uri} is not a file: an in-memory store vanishes with each process; give "
                             "sqlite:///PATH/TO/mlflow.db", field=field)
        return f"sqlite:///{os.path.abspath(path)}"
    return uri


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact_root(uri: str) -> Path | None:
    """Artifacts beside a SQLite store; a server (http) decides its own locations."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    return None


#: MLflow's experiment-kind tag: it says these are model-training experiments to the API and to UI versions
#: that choose the landing page by it. MLflow 3.17.2's UI does not (see TRAINING_VIEW): its links need the view.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
NOTE_TAG = "mlflow.note.content"  # the experiment's description in the UI


def experiment_id(uri: str, name: str, description: str = "") -> str:
    """The experiment's id, created if missing, tagged as a model-training experiment with ``description``.

    An experiment made before these tags existed (or by someone else) gets them the next time a run logs into
    it; a description someone wrote in the UI is never overwritten.
    """
    client = _client(uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        root = _artifact_root(uri)
        location = (root / name).as_uri() if root else None
        tags = dict([EXPERIMENT_KIND]) | ({NOTE_TAG: description} if description else {})
        try:
            return client.create_experiment(name, artifact_location=location, tags=tags)
        except Exception:  # another process created it between our read and create
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    missing = dict([EXPERIMENT_KIND]) | ({NOTE_TAG: description} if description else {})
    for key, value in missing.items():
        if key not in found.tags:
            client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def training_experiments(uri: str) -> dict[str, str]:
    """Name -> id of the experiments the harness made (those with its kind tag), for the links ``bench ui``
    prints."""
    found = _client(uri).search_experiments(filter_string=f"tags.`{EXPERIMENT_KIND[0]}` = '{EXPERIMENT_KIND[1]}'")
    return {e.name: e.experiment_id for e in found}


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


def download_artifacts(uri: str, run_id: str, artifact_path: str, dest: Path) -> Path:
    """A run's logged folder (e.g. ``native``, the pipeline's own saved model) copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(_client(uri).download_artifacts(run_id, artifact_path, str(dest)))


def finish_run(uri: str, run_id: str) -> bool:
    """Mark the run FINISHED if it is still RUNNING and (for a claimed job) still our claim; False otherwise,
    with nothing written: a late writer never turns an abandoned (KILLED) run back into FINISHED."""
    return _end_run(uri, run_id, "FINISHED")


def fail_run(uri: str, run_id: str, cause: str, message: str, trace: str, killed: bool = False) -> bool:
    """A failed job keeps its run: cause and message as tags, the full traceback as an artifact.

    Like ``finish_run``, writes nothing and returns False when the run is no longer RUNNING and ours.
    """
    def record(client: Any) -> None:
        client.set_tag(run_id, "failure_cause", cause)
        client.set_tag(run_id, "error", message[:5000])
        if trace:
            try:
                client.log_text(run_id, trace, "error.txt")
            except Exception as exc:  # an unwritable artifact store must not hide the failure itself
                client.set_tag(run_id, "error_artifact", f"not written: {exc}"[:500])

    return _end_run(uri, run_id, "KILLED" if killed else "FAILED", before=record)


def load_runs(uri: str, tasks: list[str] | None = None, pipelines: list[str] | None = None,
              include_failed: bool = True):
    """Job runs as a DataFrame (``metrics.*``, ``params.*``, ``tags.*`` columns), newest first."""
    import mlflow

    client = _client(uri)
    experiments = client.search_experiments()  # any name: runs of jobs are those with a job_key tag
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


#: MLflow 3.17's UI picks GenAI or model-training pages from one browser-wide switch (default GenAI, kept in
#: localStorage), not from the experiment's kind tag; this URL parameter selects model training for a link.
TRAINING_VIEW = "workflowType=machine_learning"


def compare_url(ui_base: str, experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI's compare-runs view for these runs."""
    import json
    from urllib.parse import quote

    return (f"{ui_base.rstrip('/')}/#/compare-runs?runs={quote(json.dumps(run_ids))}"
            f"&experiments={quote(json.dumps([experiment_id]))}&{TRAINING_VIEW}")


def experiment_url(ui_base: str, experiment_id: str, search: str = "") -> str:
    """The experiment's runs table in the UI, in the model-training view, optionally filtered (``search``)."""
    from urllib.parse import quote

    query = f"&searchFilter={quote(search)}" if search else ""
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs?{TRAINING_VIEW}{query}"


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


def log_files(uri: str, run_id: str, paths: list[Path], folder: str | None = None) -> None:
    client = _client(uri)
    for path in paths:
        client.log_artifact(run_id, str(path), folder)


def logged_model_uri(uri: str, run_id: str) -> str | None:
    """``models:/<id>`` of the flavour model logged as the run's output, None when it has none."""
    outputs = _client(uri).get_run(run_id).outputs
    models = getattr(outputs, "model_outputs", None) or []
    return f"models:/{models[0].model_id}" if models else None


def log_metrics(uri: str, run_id: str, metrics: dict[str, float]) -> None:
    """Step-less metrics in one batch (what the supervisor adds after a job: logging time, overhead)."""
    log_steps(uri, run_id, [], metrics=metrics)


def log_datasets(uri: str, run_id: str, name: str, digest: str, source_uri: str, rows: dict[str, int],
                 schema: str | None = None, origin: str = "") -> None:
    """The job's train and test rows as MLflow dataset inputs (the run page's and runs table's Dataset column).

    Metadata only, no data copied: ``name`` is the task, the digest is the split hash with the context
    appended (``<split hash>-train``, ``-test``: the store keeps one input per name and digest and run, so the
    two halves need two digests; the same rows give the same digest on every pipeline), ``source_uri`` the
    task definition the rows come from, ``rows`` the row count per context, ``schema`` the columns as MLflow's
    ``mlflow_colspec`` JSON, ``origin`` where the task file takes its data from (``sklearn:load_wine``, a
    CSV...), kept in the dataset's profile.
    """
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = [DatasetInput(Dataset(name=name, digest=f"{digest}-{context}", source_type="local",
                                   source=json.dumps({"uri": source_uri}), schema=schema,
                                   profile=json.dumps({"num_rows": n, "origin": origin})),
                           tags=[InputTag("mlflow.data.context", context)])
              for context, n in rows.items()]
    _client(uri).log_inputs(run_id, datasets=inputs)


def log_job_models(uri: str, run_id: str, folder: Path | None, technology: str) -> str:
    """A job child's saved models: ``native/`` (the pipeline's own format) as run artifacts, and the MLflow
    flavour model the child wrote in ``mlflow_model/`` as a LoggedModel of the run.

    The child saved the flavour model (its framework was loaded there); here it becomes what
    ``mlflow.<flavour>.log_model`` would have made: a LoggedModel linked to the run as an output, with the
    run and model ids written into its MLmodel file. A failure is a tag (and the returned text) and never
    fails the run; "" when the flavour model was logged or the pipeline has none.
    """
    if folder is None:
        return ""
    client = _client(uri)
    if (folder / "model").is_dir():
        client.log_artifacts(run_id, str(folder / "model"), "native")
    if (folder / "predictions.parquet").is_file():  # the test-set predictions, for `bench rescore`
        client.log_artifact(run_id, str(folder / "predictions.parquet"))
    flavour_dir = folder / "mlflow_model"
    if not (flavour_dir / "MLmodel").is_file():
        return ""
    try:
        from mlflow.entities import LoggedModelOutput
        from mlflow.models import Model

        run = client.get_run(run_id)
        model = client.create_logged_model(run.info.experiment_id, name="model", source_run_id=run_id,
                                           tags={"technology": technology})
        mlmodel = Model.load(str(flavour_dir / "MLmodel"))
        mlmodel.run_id, mlmodel.model_id, mlmodel.model_uuid = run_id, model.model_id, model.model_id
        mlmodel.artifact_path = model.artifact_location
        mlmodel.save(str(flavour_dir / "MLmodel"))
        client.log_model_artifacts(model.model_id, str(flavour_dir))
        client.finalize_logged_model(model.model_id, "READY")
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    except Exception as exc:  # the measurements stand; say why the flavour model is missing
        error = f"{type(exc).__name__}: {exc}"[:5000]
        client.set_tag(run_id, "model_logging_error", error)
        return error
    return ""


# The store's creation and checks, and the claim protocol, live in their own modules; these names stay
# reachable here for the code above the store boundary.
from bench.claims import HEARTBEAT_S, LEASE_S, _end_run, claim_run, claims_path, owner_id, renew_claim  # noqa: E402
from bench.sqlite_store import STORE_WAIT_S, _inspect_sqlite, check_store, validate_store  # noqa: E402

__all__ = ["HEARTBEAT_S", "LEASE_S", "STORE_WAIT_S", "_end_run", "_inspect_sqlite", "check_store", "claim_run",
           "claims_path", "owner_id", "renew_claim", "validate_store"]
