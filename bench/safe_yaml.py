"""YAML for task and suite files: PyYAML's safe loader minus what makes a file ambiguous or a bomb.

Refused, each with one error naming the file, the field and the fix:

- anchors and aliases (``&a`` / ``*a``): a 590-byte file of nested aliases expands past gigabytes once
  something walks it (the task hash's ``json.dumps`` did), and a task file has no need for them;
- merge keys (``<<``), which only make sense with aliases;
- duplicate keys at any depth (PyYAML keeps the last one silently), compared as Python compares dict keys,
  so ``1`` and ``1.0`` or ``true`` and ``yes`` collide too;
- more than ``MAX_BYTES`` bytes, more than one document, nesting deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from bench.errors import BenchError, TaskError

MAX_BYTES = 1 << 20
MAX_DEPTH = 50
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def _field(path: list[str]) -> str | None:
    out = ""
    for part in path:
        out += part if part.startswith("[") or not out else f".{part}"
    return out or None


class _Loader(yaml.SafeLoader):
    """Tracks the path of the node being composed so errors can name their field."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.path: list[str] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        label = None
        if isinstance(index, yaml.ScalarNode):
            label = index.value
        elif isinstance(index, int) and not isinstance(index, bool):
            label = f"[{index}]"
        if label is not None:
            self.path.append(label)
        try:
            event = self.peek_event()
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent):
                raise _Refused(f"line {line}: YAML alias *{event.anchor} is not allowed; write the value out "
                               "instead of referring to an anchor", _field(self.path))
            if getattr(event, "anchor", None):
                raise _Refused(f"line {line}: YAML anchor &{event.anchor} is not allowed; remove it and write "
                               "values out in full", _field(self.path))
            if len(self.path) > MAX_DEPTH:
                raise _Refused(f"line {line}: nested deeper than {MAX_DEPTH} levels; flatten the file",
                               _field(self.path[:2]))
            return super().compose_node(parent, index)
        finally:
            if label is not None:
                self.path.pop()


def _check_keys(loader: _Loader, node: Any, path: list[str]) -> None:
    """Duplicate and merge keys, at every depth (iterative: the tree is at most MAX_DEPTH deep anyway)."""
    stack = [(node, path)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, [*path, f"[{i}]"]) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    raise _Refused(f"line {line}: YAML merge key '<<' is not allowed; write the keys out",
                                   _field(path))
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refused(f"line {line}: a key must be a plain value, not a list or mapping",
                                   _field(path))
                key = loader.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise _Refused(f"line {line}: key {key!r} cannot be a mapping key", _field(path)) from None
                label = str(key)
                if key in seen:
                    where = f"twice on line {line}" if seen[key] == line else f"on lines {seen[key]} and {line}"
                    raise _Refused(f"duplicate key {label!r} {where}; keep one (YAML would silently use the last)",
                                   _field([*path, label]))
                seen[key] = line
                stack.append((value_node, [*path, label]))


def loads(text: str, file: Any = None, error: type[BenchError] = TaskError) -> Any:
    """Parse one YAML document from ``text`` with the rules above; ``error`` is raised on any problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise error(f"file larger than {MAX_BYTES // 1024} KiB; a task or suite file is a few lines",
                    file=file)
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        _check_keys(loader, node, [])
        return loader.construct_document(node)
    except _Refused as exc:
        raise error(exc.message, file=file, field=exc.field) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise error(f"malformed YAML{at}: {problem}; fix the syntax", file=file) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise error(f"invalid YAML value ({message}); fix the value", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()


def load(path: Path, error: type[BenchError] = TaskError) -> Any:
    """Read and parse ``path``: a regular file of at most ``MAX_BYTES`` bytes, UTF-8."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise error("not a regular file; give a path to a YAML file", file=path)
        if info.st_size > MAX_BYTES:
            raise error(f"file of {info.st_size:,} bytes, larger than {MAX_BYTES // 1024} KiB; a task or suite "
                        "file is a few lines", file=path)
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise error("file not found; give a task name from `bench list tasks` or a path", file=path) from None
    except (OSError, UnicodeDecodeError, RuntimeError) as exc:
        message = " ".join(str(exc).split())
        raise error(f"cannot read the file ({message}); check the path, its permissions and encoding (UTF-8)",
                    file=path) from None
    return loads(text, file=path, error=error)
