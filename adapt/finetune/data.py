"""Audio batches and datasets for fine-tuning the encoder (torch only).

- ``PaddedAudio``: right-padded waveforms ``(batch, samples)`` with their valid lengths, the input
  of ``EncoderClassifier``; ``.to(device)`` moves both.
- ``AudioBatch``: a named batch (``waveforms``, ``lengths``, ``labels``).
- ``collate_audio``: pads ``[(waveform, label), ...]`` into an ``AudioBatch``.
- ``AudioClipDataset``: a torch ``Dataset`` over clip paths and label indices; clips load lazily
  with ``adapt.load_audio`` (optionally cropped to ``max_seconds`` for speed); ``targets`` is the
  label list (the attribute Avalanche reads, see ``scenarios.continual.audio``).

Example:
    >>> b = collate_audio([(torch.ones(3), 1), (torch.ones(5), 0)])
    >>> tuple(b.waveforms.shape), b.lengths.tolist(), b.labels.tolist()
    ((2, 5), [3, 5], [1, 0])
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import load_audio
from ..backbones import pad_batch

__all__ = ["PaddedAudio", "AudioBatch", "collate_audio", "AudioClipDataset"]


@dataclass(frozen=True)
class PaddedAudio:
    """Right-padded waveforms ``(batch, samples)`` float32 and valid lengths ``(batch,)`` int64.

    The model input inside Avalanche minibatches; ``to(device)`` moves both tensors.
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "PaddedAudio":
        return PaddedAudio(self.waveforms.to(device, non_blocking=non_blocking),
                           self.lengths.to(device, non_blocking=non_blocking))

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])

    @property
    def shape(self) -> torch.Size:  # some Avalanche code sizes a minibatch with mb_x.shape[0]
        return self.waveforms.shape


@dataclass(frozen=True)
class AudioBatch:
    """A named batch: ``waveforms`` ``(B, T)``, ``lengths`` ``(B,)`` samples, ``labels`` ``(B,)`` int64."""

    waveforms: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    @property
    def audio(self) -> PaddedAudio:
        return PaddedAudio(self.waveforms, self.lengths)

    def to(self, device) -> "AudioBatch":
        return AudioBatch(self.waveforms.to(device), self.lengths.to(device), self.labels.to(device))


def collate_audio(items: Sequence[tuple]) -> AudioBatch:
    """Pad ``[(waveform (T_i,), label int), ...]`` into an ``AudioBatch`` (zeros after each clip).

    Example:
        >>> b = collate_audio([(torch.ones(3), 1), (torch.ones(5), 0)])
        >>> tuple(b.waveforms.shape), b.lengths.tolist(), b.labels.tolist()
        ((2, 5), [3, 5], [1, 0])
    """
    if len(items) == 0:
        raise ValueError("collate_audio needs at least one item, got 0")
    waves, lengths = pad_batch([it[0] for it in items])
    labels = torch.as_tensor([int(it[1]) for it in items], dtype=torch.long)
    return AudioBatch(waves, lengths, labels)


# ----------------------------------------------------------------------------- dataset


class AudioClipDataset(Dataset):
    """Clips by path with integer labels; each item is ``(waveform float32 (T,), label int)``.

    Arguments:
        paths: ``N`` audio files (anything ``adapt.load_audio`` reads).
        labels: ``N`` class indices (ints >= 0).
        max_seconds: crop each clip to its first ``max_seconds`` (``None``: whole clip); crops keep
            fine-tuning affordable on a CPU and bound GPU memory.

    Clips load on access (nothing is held in memory); ``targets`` is the label list Avalanche
    reads to build its class timeline.

    Example:
        >>> ds = AudioClipDataset(paths=["a.flac"], labels=[0], max_seconds=1.0)   # doctest: +SKIP
        >>> wave, label = ds[0]                                                 # doctest: +SKIP
    """

    def __init__(self, *, paths: Sequence[str | Path], labels: Sequence[int], max_seconds: float | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        labels = np.asarray(labels)
        if labels.shape != (len(self.paths),):
            raise ValueError(f"labels must have shape ({len(self.paths)},) like paths, got {labels.shape}")
        if len(labels) and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
            raise TypeError(f"labels must be class indices (ints >= 0), got dtype {labels.dtype} "
                            f"with values {labels[:5].tolist()}")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds!r}")
        self.targets = [int(v) for v in labels]
        self.max_seconds = max_seconds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        wave = load_audio(self.paths[index], max_seconds=None)
        samples = wave.samples
        if self.max_seconds is not None:
            samples = samples[: int(round(self.max_seconds * wave.sample_rate))]
        return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), self.targets[index]
