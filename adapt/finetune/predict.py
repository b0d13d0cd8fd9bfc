"""Predictions of a fine-tuned audio model over an ``AudioClipDataset``.

Example:
    >>> pred = predict_audio(model, AudioClipDataset(paths=paths, labels=labels))   # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import collate_audio

__all__ = ["predict_audio"]


@torch.no_grad()
def predict_audio(model: nn.Module, dataset, *, batch_size: int = 16) -> np.ndarray:
    """Class indices ``[N]`` predicted by ``model`` for an ``AudioClipDataset`` (eval mode, restored after)."""
    from torch.utils.data import DataLoader

    was = model.training
    model.eval()
    out = []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_audio):
            out.append(model(batch.waveforms, batch.lengths).argmax(1).cpu())
    finally:
        model.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)
