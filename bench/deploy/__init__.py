"""Each technology measured the way it would be deployed: an edge runtime and a prediction service.

- :mod:`export` (child entry, framework loaded): the pipeline's own ``export_edge`` writes the portable model
  and the graph's inputs for the test rows; the native model's answers are kept to check fidelity against.
- :mod:`probe` (a fresh interpreter that imports the runtime only): cold start, single-row latency, serving
  memory and the answers on every test row, one thread.
- :mod:`edge` joins the two into the ``edge_*`` figures of one run; a conversion that fails or answers
  differently is "no edge export" with its reason.
- :mod:`server` (MLflow's model server over the run's logged model, always stopped) and :mod:`loadgen` (open
  loop, Poisson arrivals) give :mod:`service` the ``service_*`` figures of one run.
- :mod:`driver` is ``bench deploy``: which finished runs to measure, resumable, logged onto those runs.
"""
