"""Offline versus online learning on a stream: the prequential (test-then-train) protocol.

``bench stream --task drift_stream --pipelines sklearn_sgd,torch_mlp --strategies static,periodic,incremental``

- A stream task (``stream:`` in its YAML) cuts its rows into periods, by a period column (flights by month,
  the column is then no feature) or by row counts, optionally sorted by an ``order`` column and sampled per
  period (seeded). The first ``initial_periods`` train the initial model.
- Prequential by construction: for each later period ``t`` the current model scores period ``t`` first; only
  then may the strategy learn from it. A model that scores period ``t`` has seen periods ``< t`` only.
- Strategies: ``static`` fits once on the initial periods; ``periodic`` (the offline schedule) refits from
  scratch every ``retrain_every`` periods on all data so far or on the last ``window`` periods; ``incremental``
  (online learning) calls ``pipeline.update(X_t, y_t)`` after scoring each period. A pipeline without
  ``supports_online_learning`` gets a "no incremental path" row instead. Nothing is learned after the last
  period: no period is left to score with it.
- Per period (MLflow step = the period): ``quality`` (the task's primary metric), ``constant_quality`` (the
  training prior's score), ``update_wall_s``, ``update_cpu_s``, ``update_rows`` (rows given to fit/update),
  ``model_bytes`` (saved size after the update). Overall: ``mean_quality``; ``pre_drift_quality`` (mean over
  the scored periods before the first known drift: the quality on a concept the model was trained on); per
  known drift ``d`` the mean quality over periods ``d .. d+drift_window-1`` (``post_drift_quality``), the
  recovery (periods from ``d`` to the first period, before the next drift, within 5 % of the pre-drift
  quality; tag ``recovery`` lists them, "never" where it did not recover, and metric ``recovery_periods`` is
  the largest when every drift recovered); ``drift_quality``: the share of its pre-drift edge over the constant
  predictor a pipeline keeps after the drift, ``(post - constant) / (pre - constant)`` clipped to [0, 1], so
  it is comparable across tasks and metrics; ``total_update_s`` and ``update_ms`` (update wall time per new
  row absorbed: a periodic refit on 30k rows to take in 3k new ones costs 10x per row what it costs per row
  trained).
- Each (pipeline, strategy, seed) runs in its own process with pinned threads, a time limit and an RSS
  limit (the runner's supervisor). A failure is a FAILED run with its cause; the periods measured before it
  are logged all the same. Runs go to experiment ``stream-<task>`` tagged ``kind=stream`` and ``strategy``;
  ``bench matrix`` reads ``update_ms`` and ``drift_quality`` from the ``incremental`` runs (the online
  strategy, :data:`FEED_STRATEGY`). A ``stream-summary`` run holds the table and the plot.

Each job is the entry function ``bench.stream.job:job_main`` run by the execution protocol (``bench.execution``).
"""

from bench.stream.job import StreamSpec, job_main, run_job
from bench.stream.outputs import parse_strategies, plot, print_job, print_table, table_rows, write_outputs
from bench.stream.protocol import (
    FEED_STRATEGY,
    POINT_METRICS,
    PROTOCOL_VERSION,
    RECOVERY_TOLERANCE,
    STRATEGIES,
    PeriodResult,
    Stream,
    load_stream,
    prequential,
    summarise,
)
from bench.stream.sweep import (
    StreamConfig,
    StreamOutcome,
    job_key,
    recovery_text,
    run_stream_job,
    run_sweep,
    supports_online_learning,
    time_limit,
)

__all__ = ["FEED_STRATEGY", "POINT_METRICS", "PROTOCOL_VERSION", "RECOVERY_TOLERANCE", "STRATEGIES", "PeriodResult",
           "Stream", "StreamConfig", "StreamOutcome", "StreamSpec", "job_key", "job_main", "load_stream",
           "parse_strategies", "plot", "prequential", "print_job", "print_table", "recovery_text", "run_job",
           "run_stream_job", "run_sweep", "summarise", "supports_online_learning", "table_rows", "time_limit",
           "write_outputs"]
