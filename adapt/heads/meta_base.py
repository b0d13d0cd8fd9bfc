"""The shared base of the meta-learned heads (``ProtoNetHead``, ``MAMLHead``).

Two steps: ``meta_fit(X, y, speakers)`` learns, from many training speakers, *how to adapt*;
``fit(X, y)`` then adapts to one new speaker (or language) from a few shots. Episodes come from
``adapt.heads.episodes.EpisodeSampler`` (learn2learn's ``TaskDataset`` / ``NWays`` / ``KShots`` /
``LoadData``); ``mode="personal"`` draws support and query from one speaker. Inputs are
standardized with the meta-training statistics. ``learn2learn`` is the optional ``meta`` extra.

Both are scikit-learn classifiers (``__init__`` stores, ``meta_fit`` / ``fit`` validate), with one
difference that matters for ``clone``: ``fit`` *adapts* a meta-trained head, so a clone (which is
unfitted) needs ``meta_fit`` again before ``fit``; ``fit`` on a head that was never meta-trained
raises ``NotFittedError`` saying so. Randomness (initialization, episodes) comes from the head's
own seeded generators, never from the global RNGs.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from ..stats import Standardizer
from ..validation import EstimatorNotFittedError, check_X, check_Xy
from .base import HeadMixin
from .episodes import EPISODE_MODES, EpisodeSampler
from .seeding import local_generator, seeded_linear

__all__ = ["MetaHeadBase"]


def _mlp(d_in: int, hidden: tuple[int, ...], d_out: int | None, generator: torch.Generator) -> nn.Sequential:
    """ReLU MLP ``d_in -> hidden... -> d_out`` (no output layer when ``d_out`` is None), seeded init."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [seeded_linear(d_in, h, generator), nn.ReLU()]
        d_in = h
    if d_out is not None:
        layers.append(seeded_linear(d_in, d_out, generator))
    return nn.Sequential(*layers)


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    return int(v)


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


def _widths(hidden, *, allow_empty: bool) -> tuple[int, ...]:
    """``hidden`` (any sequence of ints, kept as the user gave it) as a tuple of ints."""
    try:
        widths = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must list positive widths, got {hidden!r}") from None
    if (not widths and not allow_empty) or any(
            isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in widths):
        raise ValueError(f"hidden must list positive widths, got {hidden!r}")
    return tuple(int(h) for h in widths)


class MetaHeadBase(HeadMixin, ClassifierMixin, BaseEstimator):
    """Standardization, episode sampling and the shared predict/score surface."""

    def _validate_episode_params(self) -> None:
        if self.mode not in EPISODE_MODES:
            raise ValueError(f"mode must be one of {EPISODE_MODES}, got {self.mode!r}")
        if self.ways is not None:
            _positive_int("ways", self.ways)
        for name in ("shots", "queries", "episodes"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")

    def _prepare(self, X, y, speakers):
        """Validated, standardized meta-training data, its episode sampler and the head's generator."""
        self._validate_params()
        X, y = check_Xy(X, y, owner=type(self).__name__)
        n_classes = len(np.unique(y))
        if n_classes < 2:
            raise ValueError(f"{type(self).__name__}.meta_fit needs episodes of at least 2 classes, "
                             f"got {n_classes} class")
        std = Standardizer().fit(X)
        self.mean_, self.scale_ = std.mean_, std.scale_
        self.n_features_in_ = X.shape[1]
        Z = self._z(X).numpy()
        sampler = EpisodeSampler(Z, y, speakers, ways=self.ways or len(np.unique(y)), shots=self.shots,
                                 queries=self.queries, mode=self.mode, seed=int(self.seed))
        return Z, y, sampler, local_generator(self.seed)

    def _z(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32)

    def _check_X(self, X) -> np.ndarray:
        return check_X(X, dim=self.n_features_in_, owner=type(self).__name__)

    def _require_meta(self) -> None:
        if getattr(self, "mean_", None) is None:
            raise EstimatorNotFittedError(f"{type(self).__name__} is not meta-trained: "
                                          "call meta_fit(X, y, speakers) first")
