"""The one child protocol: every measured piece of work (suite job, stream job, scale point, cold-start probe)
is an *entry function* run in a child process of its own, with a time limit, a memory limit and the same
classification of how it ended.

- :mod:`bench.execution.child` starts and supervises children, classifies their end and owns the files of a
  child's folder (``spec.json`` in, ``result.json`` or ``error.json`` out, ``child.log``).
- :mod:`bench.execution.zygote` is a warm parent: a process that imported one pipeline's framework once,
  with the thread environment pinned before, and forks a child per job, so the import is paid once per
  pipeline per ``bench run`` instead of once per job.
- :mod:`bench.execution.pool` keeps those warm parents on the supervising side.
"""
