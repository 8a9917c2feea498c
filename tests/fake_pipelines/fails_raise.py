"""Deliberately broken pipeline: raises in fit."""

from bench.api import BasePipeline


class Pipeline(BasePipeline):
    technology = "sklearn"

    def fit(self, X, y, task):
        raise ValueError("deliberate failure in fit")
