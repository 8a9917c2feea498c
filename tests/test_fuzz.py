"""Property-based: generated task files and odd DataFrames either work or fail with a TaskError, never worse."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.discovery import load_module
from bench.errors import TaskError
from bench.splits import make_split
from bench.tasks import TOP_KEYS, load_data, load_task
from tests.conftest import FUZZ_SCALARS, FUZZ_VALUES

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
scalars, values = FUZZ_SCALARS, FUZZ_VALUES


@FUZZ
@given(spec=st.dictionaries(st.sampled_from([*TOP_KEYS, "extra"]), values, max_size=8))
def test_any_yaml_mapping_is_a_task_or_a_task_error(tmp_path_factory, spec):
    path = tmp_path_factory.mktemp("yaml") / "t.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    try:
        load_task(path)
    except TaskError as err:
        assert err.file and str(path) in str(err)


@st.composite
def odd_frames(draw) -> pd.DataFrame:
    rows = draw(st.integers(0, 80))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    columns = {}
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["float", "int", "text", "unique", "bool", "empty", "nan"]))
        name = draw(st.sampled_from([f"c{i}", f"ü{i}", f"列{i}", f"c {i}"]))
        if kind == "float":
            col = rng.normal(size=rows)
            col[rng.random(rows) < 0.2] = np.nan
        elif kind == "int":
            col = rng.integers(-3, 3, size=rows)
        elif kind == "text":
            col = rng.choice(["a", "", "é", "None", "b"], size=rows)
        elif kind == "unique":
            col = np.array([f"id{j}" for j in range(rows)], dtype=object)
        elif kind == "bool":
            col = rng.random(rows) < 0.5
        elif kind == "empty":
            col = np.array([""] * rows, dtype=object)
        else:
            col = np.full(rows, np.nan)
        columns[name] = col
    target = draw(st.sampled_from(["labels", "numbers", "one_class", "with_nan"]))
    if target == "labels":
        columns["y"] = rng.choice(["yes", "no"], size=rows)
    elif target == "numbers":
        columns["y"] = rng.normal(size=rows)
    elif target == "one_class":
        columns["y"] = np.array(["yes"] * rows, dtype=object)
    else:
        y = rng.choice(["yes", "no"], size=rows).astype(object)
        y[rng.random(rows) < 0.3] = None
        columns["y"] = y
    return pd.DataFrame(columns)


@FUZZ
@given(frame=odd_frames(), kind=st.sampled_from(["binary", "regression"]), fmt=st.sampled_from(["csv", "parquet"]))
def test_odd_data_validates_and_runs_or_fails_with_a_task_error(tmp_path_factory, frame, kind, fmt):
    folder = tmp_path_factory.mktemp("data")
    data_file = folder / f"d.{fmt}"
    frame.to_csv(data_file, index=False) if fmt == "csv" else frame.to_parquet(data_file)
    label = '\npositive_label: "yes"' if kind == "binary" else ""
    (folder / "t.yaml").write_text(f"name: fuzz\nkind: {kind}\ntarget: y{label}\n"
                                   f"source: {{type: file, path: d.{fmt}}}\n")
    try:
        data = load_data(load_task(folder / "t.yaml"))
        split = make_split(data, seed=0)
    except TaskError as err:
        assert "t.yaml" in str(err)
        return
    X_train, y_train = data.X.iloc[split.train], data.y.iloc[split.train]
    for name in ("sklearn_linear", "sklearn_hgb"):
        pipe = load_module(name).Pipeline()
        pipe.fit(X_train, y_train, data.info(seed=0, threads=1, budget_s=10, deadline=time.monotonic() + 10))
        assert len(pipe.predict(data.X.iloc[split.test])) == len(split.test)


YAML_PIECES = ["name: t\n", "kind: binary\n", "target: y\n", "positive_label: a\n",
               "source: {type: file, path: d.csv}\n", "prepare:\n", "  derive:\n", "    z: x > 1\n", "    z: x\n",
               "  drop: [x]\n", "  drop: [y]\n", "&a ", "*a", "<<: ", "{", "}", "[", "]", ", ", ": ", "- ", "\n",
               "  ", "!!str ", "!!python/name:os.system ", "? ", "---\n", "'", '"', "#", "yes", "1e400", "~", "\t",
               "é", "\x00"]


@FUZZ
@given(text=st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join))
def test_any_yaml_text_is_a_task_or_a_one_line_task_error(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("text")
    pd.DataFrame({"x": range(30), "y": ["a", "b"] * 15}).to_csv(folder / "d.csv", index=False)
    path = folder / "t.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_data(load_task(path))
    except TaskError as err:
        assert err.file and str(path) in str(err) and "\n" not in str(err)


@FUZZ
@given(expr=st.text(alphabet=st.sampled_from(list("xy `'\"()[]{}.,:;_+-*/%<>=!&|~^@0123456789elogwhr\\\n")),
                    max_size=40))
def test_any_derive_text_loads_evaluates_or_is_a_task_error(tmp_path_factory, expr):
    folder = tmp_path_factory.mktemp("expr")
    pd.DataFrame({"x": np.arange(30) - 10.0, "y": ["a", "b"] * 15}).to_csv(folder / "d.csv", index=False)
    path = folder / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "kind": "binary", "target": "y", "positive_label": "a",
                                    "source": {"type": "file", "path": "d.csv"}, "prepare": {"derive": {"z": expr}}}))
    try:
        data = load_data(load_task(path))
    except TaskError as err:
        assert err.field in ("prepare.derive.z", "prepare.drop", "source"), err
        return
    assert len(data.X) == 30
