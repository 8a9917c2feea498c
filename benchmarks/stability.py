"""Does the decision survive a rerun? The decision issue's stability benchmark.

    .venv/bin/python benchmarks/stability.py [--suite quick] [--seeds 2] [--budget 10] [--jobs N]
    .venv/bin/python benchmarks/stability.py --stores sqlite:///a/mlflow.db sqlite:///b/mlflow.db [--suite quick]

Runs the suite twice with the same seeds, each time into a fresh temp store (``bench run`` in a fresh process,
as a user would), or reads two existing stores. For every built-in profile it decides on each store and
reports whether the winner and the top three agree, the winner's margin (its score minus the runner-up's) and
the spread over seeds (the sample standard deviation of that same score difference when each seed's runs are
decided alone). A decision whose margin exceeds the spread should come out the same on a rerun; one that
does not is a close call either way. Goal: the same winner in every profile where margin > spread in both
stores. Appends one JSON line (date, git revision, machine, versions, the table) to benchmarks/stability.jsonl.
The suite runs take as long as two ``make run``; the comparison itself is seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_suffix(".jsonl")


@dataclass
class Summary:
    """One profile's decision on one store: what a rerun must reproduce."""

    winner: str | None
    top3: list[str]
    margin: float  # winner's score minus the runner-up's (nan with fewer than two feasible pipelines)
    spread: float  # sd over seeds of that difference, each seed's runs decided alone (nan with one seed)


@dataclass
class Comparison:
    """One profile over two stores."""

    profile: str
    winner_a: str | None
    winner_b: str | None
    same_winner: bool
    same_top3: bool
    margin: float  # the smaller of the two stores' margins
    spread: float  # the larger of the two stores' spreads
    clear: bool  # margin > spread in both stores: a rerun should give the same winner
    verdict: str


def summarise(runs: pd.DataFrame, profile: str) -> Summary:
    """The profile's decision on these runs, its margin, and the margin's spread over seeds."""
    from bench.analysis import build
    from bench.analysis.profiles import load_profile

    prof = load_profile(profile)
    table = build(runs, prof).decision.table
    ranked = [str(p) for p in table.index[table["rank"].notna()]]
    winner = ranked[0] if ranked else None
    margin = float(table.loc[ranked[0], "score"] - table.loc[ranked[1], "score"]) if len(ranked) > 1 else math.nan
    diffs = []
    if len(ranked) > 1 and "seed" in runs:
        for _, seed_runs in runs.groupby(runs["seed"].astype(str)):
            scores = build(seed_runs, prof).decision.table["score"]
            if ranked[0] in scores and ranked[1] in scores:
                diffs.append(float(scores[ranked[0]] - scores[ranked[1]]))
    spread = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
    return Summary(winner, ranked[:3], margin, spread)


def compare(profile: str, a: Summary, b: Summary) -> Comparison:
    """Whether two stores agree, and whether a disagreement is a close call or a real instability."""
    same_winner = a.winner == b.winner
    margin = min(a.margin, b.margin) if np.isfinite([a.margin, b.margin]).all() else math.nan
    spread = max(a.spread, b.spread) if np.isfinite([a.spread, b.spread]).all() else math.nan
    clear = bool(np.isfinite(margin) and np.isfinite(spread) and a.margin > a.spread and b.margin > b.spread)
    if same_winner:
        verdict = "same winner" + ("" if a.top3 == b.top3 else ", top three differ")
    elif clear:
        verdict = "UNSTABLE: different winners although the margin exceeds the spread over seeds"
    elif not np.isfinite(spread):
        verdict = "different winners; one seed, so no spread to judge the margin by"
    else:
        verdict = "different winners, a close call (margin within the spread over seeds)"
    return Comparison(profile, a.winner, b.winner, same_winner, a.top3 == b.top3, margin, spread, clear, verdict)


def compare_stores(runs_a: pd.DataFrame, runs_b: pd.DataFrame, profiles: list[str]) -> list[Comparison]:
    return [compare(name, summarise(runs_a, name), summarise(runs_b, name)) for name in profiles]


def run_suite(args: argparse.Namespace, uri: str) -> float:
    cmd = [sys.executable, "-m", "bench.cli", "run", "--suite", args.suite, "--seeds", str(args.seeds),
           "--budget", str(args.budget), "--tracking-uri", uri]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    t0 = time.monotonic()
    code = subprocess.run(cmd, cwd=REPO, check=False).returncode
    if code not in (0, 1):  # 1: some job failed, which the matrix counts (quality 0); anything else is an error
        raise SystemExit(f"bench run into {uri} exited {code}")
    return time.monotonic() - t0


def read(uri: str, suite: str | None) -> pd.DataFrame:
    from bench import store
    from bench.tasks import suite_tasks

    tasks = [t.name for t in suite_tasks(suite)] if suite else None  # --suite "": every task in the store
    return store.read_runs(uri, tasks=tasks)


def table_lines(rows: list[Comparison]) -> list[str]:
    lines = [f"{'profile':<16}{'winner A':<16}{'winner B':<16}{'top 3':>7}{'margin':>9}{'spread':>9}  verdict"]
    for r in rows:
        lines.append(f"{r.profile:<16}{r.winner_a or '-':<16}{r.winner_b or '-':<16}"
                     f"{'same' if r.same_top3 else 'differ':>7}{r.margin:>9.3f}{r.spread:>9.3f}  {r.verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs=2, metavar=("A", "B"), help="two tracking URIs to compare (no runs)")
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, help="concurrent jobs (default: bench run's: one per core)")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON lines file to append to")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from bench.analysis.profiles import builtin_names
    from bench.environment import git_revision, machine, versions

    load_before = os.getloadavg()
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-stability-") as tmp:
        uris = args.stores or [f"sqlite:///{tmp}/{name}/mlflow.db" for name in ("a", "b")]
        if not args.stores:
            for uri in uris:
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True)
                walls.append(run_suite(args, uri))
        rows = compare_stores(read(uris[0], args.suite), read(uris[1], args.suite), builtin_names())
    print("\n".join(table_lines(rows)))
    unstable = [r.profile for r in rows if r.clear and not r.same_winner]
    goal = "met" if not unstable else "MISSED in " + ", ".join(unstable)
    print(f"goal (same winner wherever margin > spread): {goal}")
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "benchmark": "stability",
              "command": " ".join(sys.argv), "git_revision": git_revision(), "suite": args.suite,
              "seeds": args.seeds, "budget": args.budget, "stores": args.stores or "two temp stores",
              "suite_wall_s": [round(w, 1) for w in walls], "goal_met": not unstable,
              "profiles": [{k: (round(v, 4) if math.isfinite(v) else None) if isinstance(v, float) else v
                            for k, v in asdict(r).items()} for r in rows],
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()], "machine": machine(), "versions": versions()}
    with args.out.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(f"appended to {args.out}")
    return 0 if not unstable else 1


if __name__ == "__main__":
    sys.exit(main())
