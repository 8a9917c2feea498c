"""The deployed-form tables of a study, from the runs `bench deploy` measured: edge runtime and service.

    bench deploy --suite quick                       # first: logs edge_* and service_* onto the finished runs
    python benchmarks/deploy_table.py --suite quick  # then: both tables (markdown) on stdout
    python benchmarks/deploy_table.py --tasks breast_cancer,credit_data --table service --out results/service.md

Edge table, per pipeline (median over the selected tasks and seeds of the newest run per task, pipeline and
seed): in-process single-row p50/p99 of the form the edge graph matches (``edge_compare_with``: end to end,
or the model path for a network on encoded rows) beside the edge runtime's, the native and exported model
bytes, serving memory (edge probe process; in-process ``serving_rss_mb`` where the run has it), cold start
(in-process ``cold_start_s`` beside the edge runtime's), fidelity (worst agreement, largest difference), how
many runs exported, and every distinct reason a run could not be exported. Service table, per task and
pipeline: p50/p99 at each load level and the highest rate under the objective. Appends both tables as one
JSON line to benchmarks/deploy_table.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

OUT = Path(__file__).with_suffix(".jsonl")


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if pd.isna(value) else f"{value:.{digits}g}"


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(float("nan"), index=frame.index)


def edge_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for pipeline, group in runs.groupby("pipeline"):
        done = group[group.get("edge_exported", pd.Series(dtype=float)).notna()] if "edge_exported" in group else \
            group.iloc[0:0]
        ok = done[done["edge_exported"] == 1.0] if len(done) else done
        peer = ok["edge_compare_with"].mode().iat[0] if len(ok) and "edge_compare_with" in ok else "latency"
        med = ok.median(numeric_only=True) if len(ok) else pd.Series(dtype=float)
        failed = done[done["edge_exported"] == 0.0] if len(done) else done
        reasons = sorted(set(failed["edge_error"].dropna())) if "edge_error" in failed else []
        rows.append({
            "pipeline": pipeline, "exported": f"{len(ok)}/{len(done)}", "graph": ok["edge_graph"].iat[0] if len(ok)
            else "-", "format": ok["edge_format"].iat[0] if len(ok) else "-",
            "in-process figure": peer,
            "in-process p50/p99 ms": f"{_fmt(med.get(f'{peer}_p50_ms'))} / {_fmt(med.get(f'{peer}_p99_ms'))}",
            "edge p50/p99 ms": f"{_fmt(med.get('edge_latency_p50_ms'))} / {_fmt(med.get('edge_latency_p99_ms'))}",
            "model bytes native/edge": f"{_fmt(med.get('model_bytes'))} / {_fmt(med.get('edge_model_bytes'))}",
            "serving MB in-process/edge": f"{_fmt(med.get('serving_rss_mb'))} / {_fmt(med.get('edge_serving_rss_mb'))}",
            "cold start s in-process/edge": f"{_fmt(med.get('cold_start_s'))} / {_fmt(med.get('edge_cold_start_s'))}",
            "runtime MB": _fmt(med.get("edge_runtime_mb")),
            "fidelity (worst agreement, max diff)": f"{_fmt(_col(ok, 'edge_agreement').min(), 4)}, "
                                                    f"{_fmt(_col(ok, 'edge_max_abs_diff').max())}" if len(ok) else "-",
            "LiteRT p50/p99 ms": f"{_fmt(med.get('edge_litert_latency_p50_ms'))} / "
                                 f"{_fmt(med.get('edge_litert_latency_p99_ms'))}",
            "no edge export because": " | ".join(r[:200] for r in reasons) or "-"})
    return pd.DataFrame(rows)


def service_table(runs: pd.DataFrame) -> pd.DataFrame:
    if "service_ok" not in runs:
        return pd.DataFrame()
    rows = []
    for (task, pipeline), group in runs[runs["service_ok"].notna()].groupby(["task", "pipeline"]):
        row = {"task": task, "pipeline": pipeline, "ok": f"{int(group['service_ok'].sum())}/{len(group)}"}
        rates = sorted({float(r) for v in group["service_rates"].dropna() for r in str(v).split(",") if r})
        med = group[group["service_ok"] == 1.0].median(numeric_only=True)
        for rate in rates:
            name = f"r{rate:g}".replace(".", "_")
            row[f"{rate:g} rps p50/p99 ms"] = (f"{_fmt(med.get(f'service_p50_ms_{name}'))} / "
                                               f"{_fmt(med.get(f'service_p99_ms_{name}'))}")
        objective = group["service_objective_ms"].dropna()
        row[f"max rps, p99 < {objective.iat[0] if len(objective) else '?'} ms"] = _fmt(med.get("service_max_rps"))
        row["start s"] = _fmt(med.get("service_start_s"))
        row["server RSS MB"] = _fmt(med.get("service_rss_mb"))
        row["payload"] = group["service_payload"].dropna().iat[0] if group["service_payload"].notna().any() else "-"
        errors = sorted(set(group.get("service_error", pd.Series(dtype=object)).dropna()))
        row["failed because"] = " | ".join(e[:200] for e in errors) or "-"
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    from bench.store import read_runs
    from bench.tasks import suite_tasks
    from bench.tracking import resolve_uri

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite")
    parser.add_argument("--tasks")
    parser.add_argument("--pipelines")
    parser.add_argument("--table", choices=["edge", "service", "both"], default="both")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    tasks = args.tasks.split(",") if args.tasks else [t.name for t in suite_tasks(args.suite or "quick")]
    uri = resolve_uri(args.tracking_uri)
    runs = read_runs(uri, tasks=tasks, pipelines=args.pipelines.split(",") if args.pipelines else None)
    runs = runs[(runs["kind"] == "job") & (runs["status"] == "FINISHED")].drop_duplicates(["task", "pipeline", "seed"])
    parts, record = [], {"when": datetime.now(UTC).isoformat(timespec="seconds"), "store": uri, "tasks": tasks}
    if args.table in ("edge", "both"):
        table = edge_table(runs)
        parts.append("## Edge runtime (1 thread, fresh process)\n\n" + table.to_markdown(index=False))
        record["edge"] = table.to_dict("records")
    if args.table in ("service", "both"):
        table = service_table(runs)
        parts.append("## Prediction service (open-loop Poisson load)\n\n" + table.to_markdown(index=False))
        record["service"] = table.to_dict("records")
    text = "\n\n".join(parts) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    with OUT.open("a") as out:
        out.write(json.dumps(record, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
