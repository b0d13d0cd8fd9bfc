"""Continual-learning strategies: Avalanche strategies and plugins behind one registry (``make_strategy``).

Example:
    >>> from adapt.nn import MLPClassifier
    >>> from strategies import STRATEGIES, make_strategy
    >>> strategy = make_strategy("replay", MLPClassifier(input_size=384, num_classes=4), mem_size=200)
"""
from __future__ import annotations

from adapt.errors import EmbeddingShapeError

from .config import TrainConfig
from .evaluation import UAMatrixPluginMetric, silent_evaluator
from .ncm import NCMHead, NearestClassMean
from .registry import STRATEGIES, StrategySpec, describe, make_strategy, predict_scores
from .replay import EmbeddingReplayPlugin, PrototypeReplayPlugin
from .slda import MinibatchStreamingLDA

__all__ = [
    "STRATEGIES", "StrategySpec", "TrainConfig", "make_strategy", "describe", "predict_scores",
    "silent_evaluator", "UAMatrixPluginMetric", "EmbeddingReplayPlugin", "PrototypeReplayPlugin",
    "EmbeddingShapeError", "NearestClassMean", "NCMHead", "MinibatchStreamingLDA",
]
