"""Evaluation plumbing for the strategies: a silent evaluator and a UA metric as an Avalanche plugin.

* ``silent_evaluator()`` — an Avalanche ``EvaluationPlugin`` with no loggers (the runner records
  what it needs; Avalanche otherwise prints to stdout). One definition for every strategy.
* ``UAMatrixPluginMetric`` — UA (unweighted average recall, the field's first metric) of the
  model on every evaluation experience, gathered through Avalanche's evaluation hooks like its own
  ``AccuracyMatrixPluginMetric`` but with UA instead of accuracy.

Example:
    >>> evaluator = silent_evaluator(UAMatrixPluginMetric())
    >>> type(evaluator).__name__
    'EvaluationPlugin'
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.training.plugins import EvaluationPlugin

from adapt.metrics import unweighted_average_recall

__all__ = ["silent_evaluator", "UAMatrixPluginMetric"]


def silent_evaluator(*metrics) -> EvaluationPlugin:
    """An ``EvaluationPlugin`` computing ``metrics`` (none by default) with no loggers."""
    with warnings.catch_warnings():  # "No loggers specified": silence is what we ask for
        warnings.simplefilter("ignore")
        return EvaluationPlugin(*metrics, loggers=[])


class UAMatrixPluginMetric(PluginMetric[list]):
    """UA of the model on each evaluation experience, one row per ``eval`` call.

    After ``strategy.eval(test_stream)``, ``result()`` is the row just computed (UA per experience,
    in stream order) and ``matrix`` holds every row so far: row ``i`` after training experience ``i``
    is the accuracy matrix of the continual-learning literature, with UA as its entry.
    """

    def __init__(self) -> None:
        super().__init__()
        self.matrix: list[list[float]] = []
        self._row: dict[int, float] = {}
        self._true: list[torch.Tensor] = []
        self._pred: list[torch.Tensor] = []

    def reset(self) -> None:
        self._row = {}

    def result(self) -> list[float]:
        return [self._row[k] for k in sorted(self._row)]

    def before_eval(self, strategy) -> None:
        self.reset()

    def before_eval_exp(self, strategy) -> None:
        self._true, self._pred = [], []

    def after_eval_iteration(self, strategy) -> None:
        scores = strategy.mb_output
        if hasattr(strategy, "predict") and scores.shape[1] != getattr(strategy, "num_classes", scores.shape[1]):
            scores = strategy.predict(scores)
        self._pred.append(scores.argmax(1).detach().cpu())
        self._true.append(strategy.mb_y.detach().cpu())

    def after_eval_exp(self, strategy) -> None:
        y = torch.cat(self._true).numpy() if self._true else np.zeros(0, dtype=np.int64)
        p = torch.cat(self._pred).numpy() if self._pred else np.zeros(0, dtype=np.int64)
        self._row[int(strategy.experience.current_experience)] = unweighted_average_recall(y, p) if len(y) else float("nan")

    def after_eval(self, strategy):
        row = self.result()
        self.matrix.append(row)
        return [MetricValue(self, "UA_Matrix/eval_phase/eval_stream", row, strategy.clock.train_iterations)]

    def __str__(self) -> str:
        return "UA_Matrix"
