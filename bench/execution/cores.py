"""Which cores a process may use, and how to give concurrent jobs cores of their own."""

from __future__ import annotations

import os


def usable_cores() -> list[int]:
    """CPUs this process may run on (its affinity), which a container or ``taskset`` may restrict."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def default_slots(threads: int) -> int:
    """As many concurrent jobs as there are cores for them: usable cores // threads per job, at least one."""
    return max(1, len(usable_cores()) // max(threads, 1))


def core_plan(slots: int, threads: int, cores: list[int] | None = None) -> list[tuple[int, ...]] | None:
    """Disjoint cores for each slot (``threads`` each), or None when they do not fit."""
    cores = usable_cores() if cores is None else cores
    if slots * threads > len(cores):
        return None
    return [tuple(cores[i * threads:(i + 1) * threads]) for i in range(slots)]
