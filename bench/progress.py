"""Terminal output of ``bench run``: a progress bar with ETA while jobs run, a summary table after."""

from __future__ import annotations

from collections import defaultdict
from statistics import mean, stdev

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bench.execution.runner import Job, Outcome


class SuiteProgress:
    """One bar over all jobs; skipped jobs advance it at once, so the ETA reflects only real work."""

    def __init__(self, total: int) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console)
        self.bar = self.progress.add_task("jobs", total=total)

    def __enter__(self) -> SuiteProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, kind: str, job: Job, outcome: Outcome | None) -> None:
        if kind == "start":
            self.progress.update(self.bar, description=f"running {job.label}")
            return
        self.progress.advance(self.bar)
        if outcome and outcome.status == "failed":
            self.console.print(f"[red]failed[/red] {job.label}: {outcome.cause}: {outcome.message[:200]}")


def time_split(outcomes: list[Outcome], wall_s: float, slots: int = 1, probe_s: float = 0.0) -> str:
    """Where the suite's time went: fit, measuring (with the once-per-pipeline import probes) and the harness's
    own overhead, and the wall time of the suite's slots against fit + measuring (1.00: no idle slot)."""
    ran = [o for o in outcomes if o.status == "finished"]
    if not ran:
        return ""
    fit, measuring, overhead = (sum(getattr(o, k) for o in ran) for k in ("fit_s", "measuring_s", "overhead_s"))
    measuring += probe_s
    total = fit + measuring + overhead
    if total <= 0:
        return ""

    def part(name: str, seconds: float) -> str:
        return f"{name} {seconds:.1f} s ({100 * seconds / total:.0f} %)"

    return (f"time of {len(ran)} finished job(s): {part('fit', fit)}, {part('measuring', measuring)} (import "
            f"probes {probe_s:.1f} s), {part('overhead', overhead)}; suite wall {wall_s:.1f} s x {slots} slot(s) "
            f"= {wall_s * slots / (fit + measuring):.2f} x (fit + measuring)")


#: The width the end-of-run summary fits when the output is not a terminal (a CI log, a file).
SUMMARY_WIDTH = 100


def _number(value: float, digits: int) -> str:
    """Significant digits without an exponent: 0.9731, 41.3, 25,012 (an rmse in dollars stays readable)."""
    return f"{value:,.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    return _number(mean(values), 4) + (f"±{_number(stdev(values), 2)}" if len(values) > 1 else "")


def score_tables(outcomes: list[Outcome], width: int = SUMMARY_WIDTH) -> list[Table]:
    """The primary metric per pipeline (rows, full names) and task (columns, with the metric under the name),
    mean ± sd over seeds; tasks split over as many tables as it takes for each to fit ``width`` columns, so a
    CI log or a 100-column terminal never cuts a pipeline's name or a score."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for o in outcomes:
        if o.primary_score is not None:
            scores[(o.job.task.name, o.job.pipeline)].append(o.primary_score)
    if not scores:
        return []
    tasks = list(dict.fromkeys(o.job.task.name for o in outcomes))  # plan order: suite order of tasks
    pipes = list(dict.fromkeys(o.job.pipeline for o in outcomes))
    metric = {o.job.task.name: o.job.task.metric for o in outcomes}
    cells = {(t, p): _cell(scores.get((t, p), [])) for t in tasks for p in pipes}
    first = max(len("pipeline"), *map(len, pipes))
    groups: list[list[str]] = [[]]
    used = first + 1
    for t in tasks:
        need = max(len(t), len(metric[t]), *(len(cells[(t, p)]) for p in pipes)) + 2
        if groups[-1] and used + need > width:
            groups.append([])
            used = first + 1
        groups[-1].append(t)
        used += need
    tables = []
    for group in groups:
        table = Table(box=None, pad_edge=False)
        table.add_column("pipeline", no_wrap=True)
        for t in group:
            table.add_column(f"{t}\n{metric[t]}", justify="right", no_wrap=True)
        for p in pipes:
            table.add_row(p, *(cells[(t, p)] for t in group))
        tables.append(table)
    return tables


def print_summary(outcomes: list[Outcome], uri: str, wall_s: float | None = None, slots: int = 1,
                  probe_s: float = 0.0) -> None:
    console = Console()
    width = min(console.width, SUMMARY_WIDTH) if console.is_terminal else SUMMARY_WIDTH
    console = Console(width=width)
    counts = defaultdict(int)
    for o in outcomes:
        counts[o.status] += 1
    for i, table in enumerate(score_tables(outcomes, width)):
        console.print("primary metric of this invocation's jobs, mean±sd over seeds" if i == 0 else "")
        console.print(table)
    console.print(f"finished {counts['finished']}, skipped (already measured) {counts['skipped']}, "
                  f"failed {counts['failed']}"
                  + (f", run by another process {counts['claimed']}" if counts["claimed"] else "") + f"; store: {uri}")
    if wall_s is not None and (line := time_split(outcomes, wall_s, slots, probe_s)):
        console.print(line)
    for o in outcomes:
        if o.status == "failed":
            console.print(f"  [red]FAILED[/red] {o.job.label} ({o.cause}): {o.message[:300]}")
    for o in outcomes:
        if o.model_error:
            console.print(f"  [yellow]MODEL NOT LOGGED[/yellow] {o.job.label}: no MLflow model to serve or "
                          f"register ({o.model_error[:300]})")
