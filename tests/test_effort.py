"""Effort counted fairly: a pipeline file's LLOC split into its batch path, its online path and its edge export."""

from __future__ import annotations

import textwrap

from radon.raw import analyze

from bench import measure
from bench.effort import path_lloc

HEADER = '''
import numpy as np
from bench.api import BasePipeline

SCALE = 2.0
'''
SHARED = '''
def _features(X):
    return np.asarray(X) * SCALE
'''
BATCH_ONLY = '''
class _Callback:
    def on_epoch_end(self):
        return None
'''
ONLINE_ONLY = '''
def _decay(rate):
    if rate > 1:
        rate = 1
    return rate * 0.5
'''
UNUSED = '''
def _never_called():
    x = 1
    return x
'''
CLASS_HEAD = '''
class Pipeline(BasePipeline):
    """Doc."""

    technology = "sklearn"
    supports_online_learning = True
'''
FIT = '''
    def fit(self, X, y, task):
        self.cb_ = _Callback()
        self.w_ = self._solve(_features(X), y)
        return self

    def _solve(self, Z, y):
        return Z.mean()
'''
PREDICT = '''
    def predict(self, X):
        return _features(X) * self.w_
'''
UPDATE = '''
    def update(self, X, y, task):
        self.w_ = self._blend(self._solve(_features(X), y))
        return self

    def _blend(self, w):
        return w * _decay(0.1)
'''


def lloc(*parts: str) -> int:
    return analyze(textwrap.dedent("".join(parts))).lloc


def test_batch_and_online_paths_count_what_each_reaches(tmp_path):
    source = HEADER + SHARED + BATCH_ONLY + ONLINE_ONLY + UNUSED + CLASS_HEAD + FIT + PREDICT + UPDATE
    result = path_lloc(source)
    # batch: module code, the helpers fit/predict reach (one shared with update), the class and its batch methods
    assert result["lloc_batch"] == lloc(HEADER, SHARED, BATCH_ONLY, CLASS_HEAD, FIT, PREDICT)
    # online: update, the method only it calls, and the module function only that method calls; _solve and
    # _features are already counted in the batch path, _never_called in neither
    assert result["lloc_online"] == lloc(ONLINE_ONLY) + lloc("class A:\n", UPDATE) - lloc("class A:\n")
    assert result["lloc_online"] == 9  # _decay 4 (def, if, assignment, return), update 3, _blend 2
    total = analyze(source).lloc
    assert result["lloc_batch"] + result["lloc_online"] + lloc(UNUSED) == total
    file = tmp_path / "pipe.py"
    file.write_text(source)
    effort = measure.code_effort(file)
    assert effort["lloc"] == total and effort["lloc_batch"] == result["lloc_batch"]


def test_a_batch_only_pipeline_has_no_online_lines():
    result = path_lloc(HEADER + SHARED + CLASS_HEAD + FIT + PREDICT)
    assert result == {"lloc_batch": float(lloc(HEADER, SHARED, CLASS_HEAD, FIT, PREDICT)), "lloc_online": 0.0,
                      "lloc_edge": 0.0}


EXPORT = '''
    def export_edge(self, folder, X):
        import onnx
        return [{"format": "onnx", "feeds": [self._edge_rows(X)], "graph": str(onnx)}]

    def _edge_rows(self, X):
        return _features(X)
'''


def test_the_edge_export_counts_apart_from_the_batch_path():
    result = path_lloc(HEADER + SHARED + CLASS_HEAD + FIT + PREDICT + EXPORT)
    # the batch path is what it was without the export; the export's own lines (its import included, its
    # helper method, not the shared _features already on the batch path) are lloc_edge
    assert result["lloc_batch"] == lloc(HEADER, SHARED, CLASS_HEAD, FIT, PREDICT)
    assert result["lloc_edge"] == lloc("class A:\n", EXPORT) - lloc("class A:\n") == 6


def test_builtin_pipelines_split_their_whole_file(tmp_path):
    from bench.discovery import available, source_file

    for name in available():
        effort = measure.code_effort(source_file(name))
        assert effort["lloc_batch"] + effort["lloc_online"] + effort["lloc_edge"] <= effort["lloc"], name
        assert effort["lloc_edge"] > 0, f"{name} has no edge export"
        assert effort["lloc_batch"] > 0.5 * effort["lloc"], name
    assert measure.code_effort(source_file("sklearn_linear"))["lloc_online"] == 0
    assert measure.code_effort(source_file("torch_mlp"))["lloc_online"] > 0
