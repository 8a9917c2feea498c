"""Reading runs back from the store, with plain column names and an explicit run kind.

Everything above this module (analysis, report, notebooks) sees runs as a DataFrame whose columns are the
run's attributes (``run_id``, ``experiment_id``, ``status``, ``start_time``, ...), its metrics, params and
tags by their own names (``fit_wall_s``, ``primary_metric``, ``version.scikit-learn``, ``pipeline``,
``task``, ``seed``, ...) and ``kind``: what produced the run (:data:`RUN_KINDS`). A name used by more than one
of metrics, params and tags keeps the metric plain and becomes ``param_<name>`` / ``tag_<name>`` for the
others. Only this module (reading) and :mod:`bench.tracking` (writing) know how MLflow stores a run.

A local SQLite store is read directly, read-only, one query per table, when its schema revision is one
this reader was checked against (:data:`KNOWN_SCHEMA_REVISIONS`): over 1,000 runs that is ~0.1 s against
several seconds for ``mlflow.search_runs`` plus ~1.5 s to import mlflow. Any other store or revision goes
through ``mlflow.search_runs``; a test checks both give the same frame.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError

#: What produced a run: a suite job (``bench run``), a stream job, a scaling sweep, a decision-matrix export,
#: or the summary run of a stream benchmark. Anything else (a run logged by hand) is ``other``.
RUN_KINDS = ("job", "stream", "stream-summary", "scale", "matrix", "other")
#: The stream strategy whose runs feed the decision matrix's stream criteria (update cost, quality after
#: drift): the online one. ``bench.stream`` names its strategy with it.
FEED_STRATEGY = "incremental"
#: MLflow schema revisions (alembic ``version_num``) whose tables the direct SQLite reader was checked against.
KNOWN_SCHEMA_REVISIONS = frozenset({"dc11669786a5"})  # mlflow 3.17
#: The experiment the decision-matrix exports are logged to.
MATRIX_EXPERIMENT = "matrix"

_NAMESPACES = ("metrics", "params", "tags")
_TAG_KINDS = {"stream": "stream", "stream-summary": "stream-summary", "scale": "scale", "decision_matrix": "matrix"}


class _UnknownSchema(Exception):
    """The SQLite store is MLflow's, at a revision this reader does not know: let MLflow read it."""


def read_runs(uri: str, tasks: list[str] | None = None, pipelines: list[str] | None = None,
              reader: str = "auto") -> pd.DataFrame:
    """The runs of suite and stream jobs (those with a ``job_key``, in any experiment), newest first.

    ``tasks`` selects experiments by name, ``pipelines`` runs by their ``pipeline`` tag. ``reader`` is
    ``auto`` (direct SQLite read where possible), or ``mlflow`` (always ``mlflow.search_runs``).
    A store that cannot be read (corrupt, locked, not an MLflow store) is a one-line BenchError, and a SQLite
    file without MLflow's tables is never handed to MLflow (which would add its tables to it).
    """
    if reader == "auto" and uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        try:
            return plain(_read_sqlite(path, tasks, pipelines))
        except _UnknownSchema:
            pass
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            cause = exc.__cause__ or exc  # pandas wraps sqlite3's error with the whole SQL text
            reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            if "no such table" in reason:
                raise BenchError(f"not an MLflow store ({reason}); give the store of `bench run` as --tracking-uri",
                                 file=path, field="--tracking-uri") from None
            if "no such column" not in reason:  # a schema this reader does not know: MLflow reads it below
                raise BenchError(f"cannot read the store ({reason}); if it is corrupt, move it aside and rerun "
                                 "`bench run`; if another process locks it, retry when it is done",
                                 file=path, field="--tracking-uri") from None
    from bench import tracking

    try:
        raw = tracking.load_runs(uri, tasks=tasks, pipelines=pipelines)
    except BenchError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot read the runs of {uri}: {reason}", field="--tracking-uri") from None
    return plain(raw)


def _read_sqlite(path: Path, tasks: list[str] | None, pipelines: list[str] | None) -> pd.DataFrame:
    """The job runs in ``mlflow.search_runs``'s layout (``metrics.*``, ``params.*``, ``tags.*``)."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        revision = con.execute("SELECT version_num FROM alembic_version").fetchone()
        if not revision or revision[0] not in KNOWN_SCHEMA_REVISIONS:
            raise _UnknownSchema(revision)
        exps = pd.read_sql_query("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'",
                                 con)
        if tasks:
            exps = exps[exps["name"].isin(tasks)]
        if exps.empty:
            return pd.DataFrame()
        ids = ", ".join(str(int(i)) for i in exps["experiment_id"])
        selected = (f"SELECT r.run_uuid FROM runs r JOIN tags j ON j.run_uuid = r.run_uuid AND j.key = 'job_key' "
                    f"AND j.value != '' WHERE r.lifecycle_stage = 'active' AND r.experiment_id IN ({ids})")
        runs = pd.read_sql_query(
            "SELECT run_uuid AS run_id, experiment_id, status, artifact_uri, start_time, end_time FROM runs "
            f"WHERE run_uuid IN ({selected})", con)
        long = {kind: pd.read_sql_query(f"SELECT run_uuid, key, {value} AS value FROM {table} WHERE run_uuid IN "
                                        f"({selected})", con)
                for kind, table, value in [("metrics", "latest_metrics", "CASE WHEN is_nan THEN NULL ELSE value END"),
                                           ("params", "params", "value"), ("tags", "tags", "value")]}
    finally:
        con.close()
    runs["experiment_id"] = runs["experiment_id"].astype(str)
    for col in ("start_time", "end_time"):
        runs[col] = pd.to_datetime(runs[col], unit="ms", utc=True)
    runs = runs.set_index("run_id")
    wide = [frame.pivot(index="run_uuid", columns="key", values="value").add_prefix(f"{kind}.")
            for kind, frame in long.items() if len(frame)]
    runs = runs.join(wide).reset_index() if wide else runs.reset_index()
    metric_cols = [c for c in runs.columns if c.startswith("metrics.")]
    runs[metric_cols] = runs[metric_cols].astype(float)
    runs = runs.sort_values(["start_time", "run_id"], ascending=[False, True]).reset_index(drop=True)
    if pipelines and len(runs):
        runs = runs[runs["tags.pipeline"].isin(pipelines)]
    return runs


def plain(raw: pd.DataFrame) -> pd.DataFrame:
    """``mlflow.search_runs``'s columns as plain names, plus ``kind`` (the ``kind`` tag is read into it)."""
    if raw.empty and not len(raw.columns):
        return pd.DataFrame(columns=["kind"])
    names: dict[str, str] = {}
    taken = {c for c in raw.columns if c.split(".", 1)[0] not in _NAMESPACES}
    for namespace in _NAMESPACES:
        prefix = f"{namespace}."
        for column in raw.columns:
            if column.startswith(prefix):
                name = column.removeprefix(prefix)
                if name in taken or (namespace == "tags" and name == "kind"):
                    name = f"{namespace[:-1]}_{name}"
                names[column] = name
                taken.add(name)
    out = raw.rename(columns=names)
    out["kind"] = kinds(out)
    return out.drop(columns="tag_kind", errors="ignore")


def kinds(runs: pd.DataFrame) -> pd.Series:
    """Each run's kind from its ``kind`` tag, else ``job`` for a run with a job key, else ``other``."""
    tag = runs["tag_kind"] if "tag_kind" in runs else pd.Series(pd.NA, index=runs.index, dtype=object)
    keyed = runs["job_key"].fillna("").astype(str) != "" if "job_key" in runs else pd.Series(False, index=runs.index)
    default = keyed.map({True: "job", False: "other"})
    return tag.map(_TAG_KINDS).fillna(default).astype(object)


def log_run(uri: str, experiment: str, run_name: str, *, tags: dict[str, str] | None = None,
            params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
            paths: list[str | Path] = (), kind: str | None = None) -> str:
    """A finished run that is not a suite job (a matrix export, a summary): its tags, params, metrics and
    files as artifacts, in the experiment of that name (created if needed). Returns the run id.

    ``kind`` (one of :data:`RUN_KINDS`) is written as the ``kind`` tag that :func:`kinds` reads back.
    """
    from bench import tracking

    tags = dict(tags or {})
    if kind is not None:
        tags["kind"] = {v: k for k, v in _TAG_KINDS.items()}.get(kind, kind)
    exp = tracking.experiment_id(uri, experiment)
    run_id = tracking.create_run(uri, exp, run_name, tags, params or {})
    if metrics:
        tracking.log_metrics(uri, run_id, metrics)
    tracking.log_files(uri, run_id, [Path(p) for p in paths])
    tracking.finish_run(uri, run_id)
    return run_id


def compare_url(ui_base: str, experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI's compare-runs view for these runs."""
    from bench import tracking

    return tracking.compare_url(ui_base, experiment_id, run_ids)
