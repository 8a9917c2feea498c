"""The Python API behind ``bench.load_runs``, ``bench.decide``, ``bench.figures`` and ``bench.run``.

The same steps as ``bench run`` and ``bench matrix``, as functions returning DataFrames and objects, for a
notebook. ``bench.decide(runs, profile).table`` holds the numbers of ``decision_matrix.csv``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from bench.analysis.matrix import Matrix
    from bench.analysis.profiles import Profile


def load_runs(tracking_uri: str | None = None, *, suite: str | None = None, tasks: list[str] | None = None,
              pipelines: list[str] | None = None) -> pd.DataFrame:
    """The job runs of a store (default: ``$MLFLOW_TRACKING_URI`` or ``mlflow/mlflow.db``), newest first.

    Columns are plain names (``pipeline``, ``task``, ``seed``, ``status``, ``fit_wall_s``, ...) and ``kind``
    (job or stream). ``suite`` or ``tasks`` select tasks, ``pipelines`` pipelines, as ``bench matrix`` does.
    """
    from bench import store, tracking

    if suite is not None:
        from bench.tasks import suite_tasks

        tasks = [t.name for t in suite_tasks(suite)]
    return store.read_runs(tracking.resolve_uri(tracking_uri), tasks=tasks, pipelines=pipelines)


@dataclass
class Decision:
    """A profile's decision over some runs: ``table`` (one row per pipeline, ranked, with every number of the
    CSV export), ``winner``, ``reasons`` (pipeline -> why it won, trails or was excluded), ``summary`` and
    ``matrix`` (everything: aggregate, decision, AutoML verdict, rank test)."""

    matrix: Matrix

    @property
    def table(self) -> pd.DataFrame:
        from bench.report.tables import csv_table

        return csv_table(self.matrix)

    @property
    def winner(self) -> str | None:
        return self.matrix.decision.winner

    @property
    def reasons(self) -> dict[str, str]:
        return {str(p): str(r) for p, r in self.matrix.decision.table["reason"].items()}

    @property
    def summary(self) -> str:
        return self.matrix.decision.winner_reason

    @property
    def profile(self) -> Profile:
        return self.matrix.decision.profile

    def ranking(self) -> pd.DataFrame:
        """The formatted ranking of the exports (rank, scores, the profile's criteria, reason)."""
        from bench.report.tables import ranking_table

        return ranking_table(self.matrix)

    def _repr_html_(self) -> str:
        from bench.report.html import _html_table

        excluded = ["" if f else "excluded" for f in self.matrix.decision.table["feasible"]]
        return (f"<p><b>profile {html.escape(self.profile.name)}</b>: {html.escape(self.summary)}</p>"
                f"<style>tr.excluded td{{color:#888}}</style>{_html_table(self.ranking(), excluded)}")

    def __repr__(self) -> str:
        return f"Decision(profile={self.profile.name!r}, winner={self.winner!r}, pipelines={len(self.reasons)})"


def decide(runs: pd.DataFrame, profile: str | Path | Profile = "balanced", *,
           network_rtt_ms: float | None = None, price_cpu_hour: float | None = None,
           price_gb_hour: float | None = None) -> Decision:
    """Rank the pipelines in ``runs`` (from :func:`load_runs`) for a profile: a built-in name, a YAML path or
    a :class:`~bench.analysis.profiles.Profile`; money at the default prices unless given (dollars per vCPU-hour
    and per GB-hour, as ``bench matrix --price-cpu-hour/--price-gb-hour``)."""
    from bench.analysis import build, cost
    from bench.analysis.profiles import Profile, load_profile, with_network_rtt

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    price = cost.prices(price_cpu_hour, price_gb_hour)
    return Decision(build(runs, with_network_rtt(prof, network_rtt_ms), price))


def figures(decision: Decision) -> dict[str, Any]:
    """The plots of the HTML export as matplotlib Figures, by caption."""
    from bench.report.plots import figures as draw

    return draw(decision.matrix)


def run(tasks: list[str], pipelines: list[str] | None = None, *, seeds: int = 1, budget_s: float = 10.0,
        tracking_uri: str | None = None, **config: Any) -> pd.DataFrame:
    """Measure tasks (names or task files) x pipelines x seeds as ``bench run`` does, one job after another;
    returns one row per job (status, run id, cause). Other keywords go to the runner's ``RunConfig``
    (``threads``, ``latency_n``, ``force``, ...). The runs land in the store: read them with :func:`load_runs`."""
    try:
        from bench.execution import runner
    except ImportError:  # before the execution package existed
        from bench import runner  # type: ignore[no-redef]
    from bench import tracking
    from bench.discovery import available
    from bench.tasks import resolve_task

    uri = tracking.resolve_uri(tracking_uri)
    tracking.check_store(uri)
    cfg = runner.RunConfig(tracking_uri=uri, budget_s=budget_s, suite="notebook", **config)
    jobs = runner.plan([resolve_task(t) for t in tasks], pipelines or available(), list(range(seeds)))
    outcomes = runner.run_all(jobs, cfg)
    return pd.DataFrame([{"task": o.job.task.name, "pipeline": o.job.pipeline, "seed": o.job.seed,
                          "status": o.status, "run_id": o.run_id, "cause": o.cause, "seconds": o.seconds}
                         for o in outcomes])
