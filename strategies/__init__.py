"""Continual-learning strategies: Avalanche strategies and plugins behind one registry (``make_strategy``).

Example:
    >>> from strategies import STRATEGIES, make_head, make_strategy
    >>> strategy = make_strategy("replay", make_head(input_size=384, num_classes=4), mem_size=200)
"""
from __future__ import annotations

from .ncm import NCMHead, NearestClassMean
from .plugins import EmbeddingReplayPlugin, EmbeddingShapeError, PrototypeReplayPlugin
from .slda import MinibatchStreamingLDA
from .registry import STRATEGIES, StrategySpec, describe, head_dims, make_head, make_strategy, predict_scores

__all__ = [
    "STRATEGIES", "StrategySpec", "make_strategy", "make_head", "describe", "predict_scores", "head_dims",
    "EmbeddingReplayPlugin", "PrototypeReplayPlugin", "EmbeddingShapeError", "NearestClassMean", "NCMHead", "MinibatchStreamingLDA",
]
