"""The shared base of the meta-learned heads (``ProtoNetHead``, ``MAMLHead``).

Two steps: ``meta_fit(X, y, speakers)`` learns, from many training speakers, *how to adapt*;
``fit(X, y)`` then adapts to one new speaker (or language) from a few shots. Episodes come from
``adapt.heads.episodes.EpisodeSampler`` (learn2learn's ``TaskDataset`` / ``NWays`` / ``KShots`` /
``LoadData``); ``mode="personal"`` draws support and query from one speaker. Inputs are
standardized with the meta-training statistics. ``learn2learn`` is the optional ``meta`` extra.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import NotFittedError
from ..stats import Standardizer
from ..validation import check_Xy
from .base import HeadMixin
from .episodes import EPISODE_MODES, EpisodeSampler

__all__ = ["MetaHeadBase"]


def _mlp(d_in: int, hidden: tuple[int, ...], d_out: int | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.ReLU()]
        d_in = h
    if d_out is not None:
        layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    return int(v)


def _positive(name: str, v) -> float:
    if not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


class MetaHeadBase(HeadMixin):
    """Standardization, episode sampling and the shared predict/score surface."""

    def _check_episode_args(self, ways, shots, queries, episodes, mode, seed):
        if mode not in EPISODE_MODES:
            raise ValueError(f"mode must be one of {EPISODE_MODES}, got {mode!r}")
        self.ways = None if ways is None else _positive_int("ways", ways)
        self.shots, self.queries = _positive_int("shots", shots), _positive_int("queries", queries)
        self.episodes, self.mode, self.seed = _positive_int("episodes", episodes), mode, int(seed)

    def _prepare(self, X, y, speakers):
        X, y = check_Xy(X, y)
        std = Standardizer().fit(X)
        self.mean_, self.scale_ = std.mean_, std.scale_
        self.n_features_in_ = X.shape[1]
        Z = self._z(X).numpy()
        sampler = EpisodeSampler(Z, y, speakers, ways=self.ways or len(set(y.tolist())), shots=self.shots,
                                 queries=self.queries, mode=self.mode, seed=self.seed)
        torch.manual_seed(self.seed)
        return Z, y, sampler

    def _z(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32)

    def _require_meta(self) -> None:
        if getattr(self, "mean_", None) is None:
            raise NotFittedError(f"{type(self).__name__} is not meta-trained: call meta_fit(X, y, speakers) first")
