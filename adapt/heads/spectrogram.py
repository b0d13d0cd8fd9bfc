"""The "no pretrained encoder" baseline: a small 2-D CNN on log-mel spectrograms, trained from scratch.

``SpectrogramCNNHead`` takes log-mel frames ``(T, n_mels)`` per clip (the ``logmel`` backbone
through ``adapt.frames.extract_frames``, e.g. at 50 Hz with ``FrameOptions(rate_factor=2)``) and
runs three blocks of ``3x3 conv -> ReLU -> 2x2 max-pool`` over (time, frequency), then masked mean +
std pooling over time and a linear classifier, like the CNN baselines of the SER literature. Same
interface as the sequence heads (``adapt.heads.sequence``: ``fit(X, y, lengths=...)``, ``predict``,
``embed``, ``get_state``, objectives).

Masking: before every convolution the frames past each clip's (pooled) length are zeroed, and
max-pooling uses floor mode, so a padded batch gives the clip's one-by-one result. No batch
normalization (its batch statistics would see the padding).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(int(rng.integers(16, 30)), 16)) + (i % 2) for i in range(20)]
    >>> head = SpectrogramCNNHead(channels=4, max_iter=2).fit(X, np.array(["a", "b"] * 10))
    >>> head.predict_proba(X[:3]).shape
    (3, 2)
"""
from __future__ import annotations

import torch
from torch import nn

from .sequence import FrameHeadBase, _check_num, masked_mean_std

__all__ = ["SpectrogramCNNHead", "SpectrogramCNN"]


class SpectrogramCNN(nn.Module):
    """``(B, T, n_mels)`` -> ``(B, 2 * 4c)`` pooled representation -> logits; ``c`` = first block's channels."""

    def __init__(self, *, n_mels: int, num_classes: int, channels: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        if n_mels < 8:
            raise ValueError(f"SpectrogramCNN needs at least 8 frequency bands (3 poolings), got {n_mels}")
        widths = [channels, 2 * channels, 4 * channels]
        self.convs = nn.ModuleList()
        c_in = 1
        for c in widths:
            self.convs.append(nn.Conv2d(c_in, c, 3, padding=1))
            c_in = c
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)
        self.freq = n_mels // 8
        self.proj = nn.Linear(widths[-1] * self.freq, widths[-1])
        self.rep_dim = 2 * widths[-1]
        self.classifier = nn.Linear(self.rep_dim, num_classes)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.shape[1] < 8:   # three 2x poolings need 8 frames; the mask keeps the padding out
            x = nn.functional.pad(x, (0, 0, 0, 8 - x.shape[1]))
        h = x.transpose(1, 2)[:, None]            # (B, 1, F, T)
        lens = lengths.to(x.device)
        for conv in self.convs:
            t = h.shape[-1]
            m = (torch.arange(t, device=x.device)[None, :] < lens[:, None]).to(h.dtype)[:, None, None, :]
            h = self.pool(torch.relu(conv(h * m)))
            lens = torch.clamp(lens // 2, min=1)
        h = self.drop(h)
        b, c, f, t = h.shape
        frames = torch.relu(self.proj(h.permute(0, 3, 1, 2).reshape(b, t, c * f)))
        mask = torch.arange(t, device=x.device)[None, :] < lens[:, None]
        return masked_mean_std(frames, mask)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x, lengths))


class SpectrogramCNNHead(FrameHeadBase):
    """A from-scratch 2-D CNN on log-mel frames (see the module docstring).

    Args:
        channels: channels of the first conv block (doubled in each of the next two).
        dropout, lr, batch_size, max_iter, weight_decay, class_weight, objective, aux_weight, seed,
            num_threads: as in ``adapt.heads.sequence.SequenceHead``.

    Clips shorter than 8 frames are zero-padded (masked) to 8 so the three poolings apply; their
    pooled length is kept >= 1 frame.
    """

    def __init__(self, *, channels: int = 16, dropout: float = 0.2, lr: float = 2e-3, batch_size: int = 32,
                 max_iter: int = 15, weight_decay: float = 1e-2, class_weight: str | None = "balanced",
                 objective: str | None = None, aux_weight: float = 0.5, seed: int = 0,
                 num_threads: int | None = 1) -> None:
        self.channels = channels
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.objective = objective
        self.aux_weight = aux_weight
        self.seed = seed
        self.num_threads = num_threads

    @property
    def hidden(self) -> int:   # FrameHeadBase checks "hidden"; here it is the last block's width
        return 4 * self.channels if isinstance(self.channels, int) else self.channels

    def _validate_params(self) -> None:
        _check_num("channels", self.channels, low=1, integer=True)
        super()._validate_params()

    def _make_net(self, in_dim, num_classes):
        return SpectrogramCNN(n_mels=in_dim, num_classes=num_classes, channels=int(self.channels),
                              dropout=float(self.dropout))

    def _config(self):
        return {"channels": int(self.channels), "dropout": float(self.dropout), "lr": float(self.lr),
                "batch_size": int(self.batch_size), "max_iter": int(self.max_iter),
                "weight_decay": float(self.weight_decay), "class_weight": self.class_weight,
                "objective": self.objective, "aux_weight": float(self.aux_weight), "seed": int(self.seed),
                "num_threads": self.num_threads}
