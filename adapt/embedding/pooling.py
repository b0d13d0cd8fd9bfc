"""Pooling frame features into utterance vectors, and combining layers.

Parameter-free poolings (``"mean"``, ``"meanstd"``) are what the embedding cache stores per layer;
``AttentiveStatsPooling`` and ``LayerWeights`` (SUPERB-style softmax-weighted layer sum) are
learnable ``nn.Module``\\ s for heads that train on frame features or on cached per-layer vectors.

Shapes: frames ``(L, B, T, D)`` with lengths ``(B,)``; ``pool`` returns ``(L, B, D')`` where
``D' = D`` (mean) or ``2D`` (meanstd).

Example:
    >>> import torch
    >>> x = torch.ones(2, 3, 5, 4); lengths = torch.tensor([5, 3, 1])
    >>> pool(x, lengths, "meanstd").shape
    torch.Size([2, 3, 8])
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["POOLINGS", "pool", "pooled_dim", "AttentiveStatsPooling", "LayerWeights", "combine_layers"]


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # x (L, B, T, D), mask (B, T) -> (L, B, D)
    m = mask.to(x.dtype)[None, :, :, None]
    return (x * m).sum(2) / m.sum(2).clamp_min(1.0)


def _mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked_mean(x, mask)


def _meanstd(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mu = _masked_mean(x, mask)
    var = _masked_mean((x - mu[:, :, None, :]) ** 2, mask)
    return torch.cat([mu, var.clamp_min(1e-10).sqrt()], dim=-1)


#: name -> (pooling fn, output dim multiplier)
POOLINGS: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], int]] = {
    "mean": (_mean, 1),
    "meanstd": (_meanstd, 2),
}


def _check_pooling(name: str) -> None:
    if name not in POOLINGS:
        raise KeyError(f"unknown pooling {name!r}; known: {sorted(POOLINGS)} (attentive pooling is the "
                       "learnable AttentiveStatsPooling module)")


def pooled_dim(name: str, dim: int) -> int:
    """Output size per layer of pooling ``name`` over ``dim``-sized frames."""
    _check_pooling(name)
    return POOLINGS[name][1] * dim


def pool(features: torch.Tensor, lengths: torch.Tensor, name: str = "mean") -> torch.Tensor:
    """Pool ``(L, B, T, D)`` frames over valid time steps -> ``(L, B, D')``."""
    _check_pooling(name)
    if features.ndim != 4:
        raise ValueError(f"features must be (L, B, T, D), got shape {tuple(features.shape)}")
    mask = torch.arange(features.shape[2], device=features.device)[None, :] < lengths.to(features.device)[:, None]
    return POOLINGS[name][0](features, mask)


class AttentiveStatsPooling(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): attention-weighted mean and std.

    Input ``(B, T, D)`` frames with lengths ``(B,)``; output ``(B, 2D)``.

    Example:
        >>> p = AttentiveStatsPooling(dim=8)
        >>> p(torch.randn(2, 10, 8), torch.tensor([10, 4])).shape
        torch.Size([2, 16])
    """

    def __init__(self, *, dim: int, hidden: int = 128) -> None:
        super().__init__()
        if dim <= 0 or hidden <= 0:
            raise ValueError(f"dim and hidden must be positive, got dim={dim}, hidden={hidden}")
        self.attention = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 3:
            raise ValueError(f"frames must be (B, T, D), got shape {tuple(frames.shape)}")
        mask = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
        scores = self.attention(frames).squeeze(-1).masked_fill(~mask, float("-inf"))
        w = torch.softmax(scores, dim=1)[..., None]
        mu = (w * frames).sum(1)
        var = (w * (frames - mu[:, None]) ** 2).sum(1)
        return torch.cat([mu, var.clamp_min(1e-10).sqrt()], dim=-1)


class LayerWeights(nn.Module):
    """SUPERB-style learnable softmax weights over layers: ``(L, ..., D)`` -> ``(..., D)``.

    Initialised uniform (an average of layers). ``weights`` gives the current softmax weights.

    Example:
        >>> lw = LayerWeights(num_layers=5)
        >>> lw(torch.ones(5, 3, 4)).shape, round(float(lw.weights.sum()), 4)
        (torch.Size([3, 4]), 1.0)
    """

    def __init__(self, *, num_layers: int, init: Sequence[float] | None = None) -> None:
        super().__init__()
        if num_layers <= 0:
            raise ValueError(f"num_layers must be positive, got {num_layers}")
        start = torch.zeros(num_layers) if init is None else torch.log(torch.as_tensor(init, dtype=torch.float32).clamp_min(1e-8))
        if start.shape != (num_layers,):
            raise ValueError(f"init must have {num_layers} weights, got {tuple(start.shape)}")
        self.logits = nn.Parameter(start)

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=0)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        if stacked.shape[0] != self.logits.shape[0]:
            raise ValueError(f"expected {self.logits.shape[0]} layers first, got shape {tuple(stacked.shape)}")
        w = self.weights.view(-1, *([1] * (stacked.ndim - 1)))
        return (w * stacked).sum(0)


def combine_layers(per_layer: np.ndarray, layers: int | Sequence[int] | str = "all",
                   weights: Sequence[float] | None = None) -> np.ndarray:
    """Select / combine cached per-layer vectors ``(N, L, D)`` -> ``(N, D_out)``.

    ``layers``: an int (one layer; negative counts from the end), a list of ints (concatenated),
    ``"all"`` (all layers concatenated, ``L*D``), ``"mean"`` (average of layers) or ``"weighted"``
    (``weights``, normalised to sum 1, e.g. from a trained ``LayerWeights``).
    """
    x = np.asarray(per_layer)
    if x.ndim != 3:
        raise ValueError(f"per-layer embeddings must be (N, L, D), got shape {x.shape}")
    n_layers = x.shape[1]

    def idx(i: object) -> int:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"layer index must be an int, got {i!r}")
        if not -n_layers <= int(i) < n_layers:
            raise ValueError(f"layer {i} out of range for {n_layers} layers (0..{n_layers - 1})")
        return int(i) % n_layers

    if isinstance(layers, str):
        if layers == "all":
            return x.reshape(x.shape[0], -1)
        if layers == "mean":
            return x.mean(axis=1)
        if layers == "weighted":
            if weights is None:
                raise ValueError("layers='weighted' needs weights=[w_0, ..., w_L-1]")
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (n_layers,) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"weights must be {n_layers} non-negative numbers with a positive sum, got {list(w)}")
            return np.tensordot(w / w.sum(), x, axes=([0], [1])).astype(x.dtype)
        raise ValueError(f"layers must be an int, a list of ints, 'all', 'mean' or 'weighted', got {layers!r}")
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        return x[:, idx(layers)]
    chosen = [idx(i) for i in layers]
    if not chosen:
        raise ValueError("layers list is empty")
    return x[:, chosen].reshape(x.shape[0], -1)
