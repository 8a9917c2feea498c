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
from dataclasses import dataclass

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
    client = tracking._client(uri)
    run_id = str(run["run_id"])
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
