"""The decision in MLflow's model registry: each task's model of the profile's winning pipeline, by alias.

Names (documented in the README): the registered model is named after the task (``breast_cancer``); its alias
``<profile>-winner`` (``edge-winner``, ``balanced-winner``) points at the version made from the winning
pipeline's flavour model on that task. Of the winner's finished runs on the task (one per seed) the one with
the median primary score is registered (the lower middle one for an even count, ties by seed): the typical
model of that pipeline, not the luckiest seed. A rerun that picks the same run adds no version; one that
picks another run adds a version and moves the alias to it.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import tracking


@dataclass
class Registration:
    task: str
    name: str
    alias: str
    version: str | None
    run_id: str | None
    new: bool = False
    reason: str = ""  # why nothing was registered for this task

    def line(self) -> str:
        if self.version is None:
            return f"not registered: {self.task}: {self.reason}"
        state = "registered" if self.new else "already registered"
        return f"{state}: model '{self.name}' version {self.version} (run {self.run_id}) alias '{self.alias}'"


def alias_for(profile: str) -> str:
    """``<profile>-winner`` in the characters MLflow allows in an alias (a profile file's name may have others)."""
    return re.sub(r"[^\w-]", "-", profile) + "-winner"


def pick_run(runs: pd.DataFrame) -> pd.Series:
    """The median-score run among one pipeline's seeds on one task (lower middle one, ties by seed)."""
    ordered = runs.assign(_seed=pd.to_numeric(runs.get("seed"), errors="coerce")).sort_values(
        ["primary_score", "_seed"], kind="stable")
    return ordered.iloc[(len(ordered) - 1) // 2]


def register_winner(uri: str, runs: pd.DataFrame, profile: str, winner: str) -> list[Registration]:
    """Register ``winner``'s model on each task of ``runs`` (a :func:`bench.store.read_runs` frame)."""
    alias = alias_for(profile)
    mine = runs[(runs["pipeline"] == winner) & (runs["status"] == "FINISHED")]
    mine = mine[mine["primary_score"].notna()] if "primary_score" in mine else mine.iloc[0:0]
    out = []
    for task in sorted(runs["task"].dropna().unique()):
        on_task = mine[mine["task"] == task]
        if on_task.empty:
            out.append(Registration(task, task, alias, None, None, reason=f"{winner} has no finished run on it"))
            continue
        out.append(_register(uri, task, alias, pick_run(on_task), winner))
    return out


def _register(uri: str, task: str, alias: str, run: pd.Series, winner: str) -> Registration:
    run_id = str(run["run_id"])
    known = _known_from_sqlite(uri, task, alias, run_id, winner)
    if known is not None:
        return known
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    # create_model_version looks the logged model up through the *global* tracking URI (MLflow 3.17), not the
    # client's: without this, a store other than ./mlflow.db fails with "Logged model with ID ... not found".
    with _use_tracking_uri(uri):
        return _register_with_mlflow(uri, task, alias, run, run_id, winner)


def _known_from_sqlite(uri: str, task: str, alias: str, run_id: str, winner: str) -> Registration | None:
    """The two common answers read straight from a SQLite store, without importing MLflow (which costs more
    than the whole matrix): the run has no model, or the alias already points at this run's model. None when
    MLflow must act (or the store is not SQLite, or its schema is not the one expected)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            model = db.execute("SELECT destination_id FROM inputs WHERE source_type = 'RUN_OUTPUT' AND "
                               "source_id = ? AND destination_type = 'MODEL_OUTPUT' LIMIT 1", (run_id,)).fetchone()
            if model is None:
                return Registration(task, task, alias, None, run_id, reason=f"the {winner} run {run_id} has no "
                                    "MLflow model (see its model_logging_error tag)")
            version = db.execute(
                "SELECT a.version FROM registered_model_aliases a JOIN model_versions v ON v.name = a.name AND "
                "v.version = a.version WHERE a.name = ? AND a.alias = ? AND v.run_id = ? AND v.source = ?",
                (task, alias, run_id, f"models:/{model[0]}")).fetchone()
    except sqlite3.Error:
        return None
    return Registration(task, task, alias, str(version[0]), run_id) if version else None


def _register_with_mlflow(uri: str, task: str, alias: str, run: pd.Series, run_id: str,
                          winner: str) -> Registration:
    client = tracking._client(uri)
    model_uri = tracking.logged_model_uri(uri, run_id)
    if model_uri is None:
        return Registration(task, task, alias, None, run_id,
                            reason=f"the {winner} run {run_id} has no MLflow model (see its model_logging_error tag)")
    if not client.search_registered_models(f"name = '{task}'"):
        client.create_registered_model(task, tags={"task": task}, description=(
            f"Models of the task {task} chosen by `bench matrix`: the alias `<profile>-winner` points at the "
            "profile's winning pipeline's model (its median-score seed)."))
    existing = [v for v in client.search_model_versions(f"name = '{task}' and run_id = '{run_id}'")
                if v.source == model_uri]
    version = existing[0] if existing else client.create_model_version(
        task, model_uri, run_id=run_id, model_id=model_uri.removeprefix("models:/"),
        tags={"pipeline": winner, "seed": str(run.get("seed", ""))})
    current = client.get_registered_model(task).aliases.get(alias)
    if str(current) != str(version.version):
        client.set_registered_model_alias(task, alias, version.version)
    return Registration(task, task, alias, str(version.version), run_id, new=not existing)
