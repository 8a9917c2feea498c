"""The expression allow-list property of tests/test_expressions.py at benchmark size (issue 12, item 1).

    .venv/bin/python benchmarks/expression_fuzz.py [--examples 10000] [--allowed 3000] [--typed 2000] [--seed 0]

Generates expression trees that mix allowed and forbidden nodes (attribute chains, method calls, calls of
other names, subscripts, dunder names, lambdas, comprehensions, keyword arguments...), and trees of allowed
nodes only, and checks each with ``tests.test_expressions.check_mixed``: a forbidden one must be refused
with a TaskError before anything runs (no column read, no allow-listed function called, no audit event such
as open/os.system/ctypes.dlopen), an allowed one evaluates or fails with a TaskError. Then well-typed allowed
trees are compared with the same computation written directly in pandas/numpy (``check_typed``). Prints the
counts and appends one JSON line (date, git revision, counts, seconds, versions) to
benchmarks/expression_fuzz.jsonl. Exit code 1 on any escape or mismatch.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hypothesis  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.test_expressions import allowed_only_trees, check_mixed, check_typed, forbidden_mixed_trees, typed_trees  # noqa: E402

OUT = Path(__file__).with_suffix(".jsonl")


def _run(strategy, check, examples: int, seed: int) -> tuple[Counter, list[str]]:
    counts: Counter = Counter()
    failures: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hypothesis.seed(seed)
    @given(case=strategy)
    def prop(case):
        counts["generated"] += 1
        try:
            counts[check(case)] += 1
        except AssertionError as exc:
            counts["escapes"] += 1
            failures.append(" ".join(str(exc).split())[:300])

    prop()
    return counts, failures


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bench/tasks/expressions.py",
                                "tests/test_expressions.py"], cwd=REPO, capture_output=True, text=True).stdout
        return rev + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="trees with forbidden nodes mixed in "
                        "(default 10,000)")
    parser.add_argument("--allowed", type=int, default=3_000, help="trees of allowed nodes only (default 3,000)")
    parser.add_argument("--typed", type=int, default=2_000, help="typed allowed trees checked against the "
                        "direct computation (default 2,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {OUT.name}")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    mixed, mixed_failures = _run(forbidden_mixed_trees, check_mixed, args.examples, args.seed)
    allowed, allowed_failures = _run(allowed_only_trees, check_mixed, args.allowed, args.seed)
    mixed.update(allowed)
    t1 = time.perf_counter()
    typed, typed_failures = _run(typed_trees, check_typed, args.typed, args.seed)
    t2 = time.perf_counter()
    mixed_failures += allowed_failures

    counts = {
        "generated": mixed["generated"],
        "accepted": mixed["accepted"],  # allowed and evaluated
        "refused_at_evaluation": mixed["refused"],  # allowed syntax, TaskError on the data (unknown column, types)
        "rejected": mixed["rejected"],  # forbidden: TaskError before anything ran
        "unprintable": mixed["unprintable"],
        "escapes": mixed["escapes"],
        "typed_generated": typed["generated"],
        "typed_matched": typed["matched"],
        "typed_both_failed": typed["both_failed"],
        "typed_mismatches": typed["escapes"],
    }
    print(f"mixed trees: generated {counts['generated']:,}, accepted {counts['accepted']:,}, refused at "
          f"evaluation {counts['refused_at_evaluation']:,}, rejected {counts['rejected']:,}, escapes "
          f"{counts['escapes']} ({t1 - t0:.1f} s)")
    print(f"typed trees: generated {counts['typed_generated']:,}, equal to the direct computation "
          f"{counts['typed_matched']:,}, both failed {counts['typed_both_failed']:,}, mismatches "
          f"{counts['typed_mismatches']} ({t2 - t1:.1f} s)")
    for line in (mixed_failures + typed_failures)[:10]:
        print("  FAILURE:", line)
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_revision": _git_revision(),
        "seed": args.seed,
        "counts": counts,
        "seconds": {"mixed": round(t1 - t0, 1), "typed": round(t2 - t1, 1), "total": round(t2 - t0, 1)},
        "versions": {"python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__,
                     "hypothesis": hypothesis.__version__},
    }
    if not args.no_record:
        with OUT.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
        print(f"appended to {OUT.relative_to(REPO)}")
    return 1 if counts["escapes"] or counts["typed_mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
