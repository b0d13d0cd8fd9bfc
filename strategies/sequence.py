"""Continual strategies on frame sequences: an Avalanche model over padded frame batches.

Avalanche batches are ``(x, y, task)`` tensors of one shape, so variable-length clips travel as
one padded tensor whose **last channel is the validity mask**: ``pack_frames(seqs)`` turns ``N``
``(T_i, F)`` arrays into ``(N, T, F + 1)`` (zeros past each clip, mask 1.0 on valid frames), and
``SequenceModel`` (an ``nn.Module``: packed ``(B, T, F + 1)`` -> logits ``(B, C)``) reads the lengths
back from that channel, so the mask is passed along through every strategy, buffer and
collate without touching Avalanche. Replay buffers (``replay``, ``replay-balanced``, ``gdumb``,
``gem``...) then store these frame tensors, never audio. ``frames_benchmark`` builds the Avalanche
benchmark (``tensors_benchmark``) from per-experience frame lists.

The model is ``adapt.heads.sequence.SequenceNet`` (any ``arch``: ``cnn``, ``bigru``, ``attentive``,
``transformer``...) behind a fixed input standardization (``mean`` / ``scale``, e.g. of the first
experience's frames). ``make_strategy(name, SequenceModel(...))`` works for the gradient-based
strategies; ``ncm`` / ``slda`` classify fixed embedding vectors and do not apply.

Example:
    >>> import numpy as np
    >>> seqs = [np.ones((3, 4), np.float32), np.ones((5, 4), np.float32)]
    >>> x = pack_frames(seqs); x.shape, x[0, :, -1].tolist()
    (torch.Size([2, 5, 5]), [1.0, 1.0, 1.0, 0.0, 0.0])
    >>> SequenceModel(arch="cnn", input_size=4, num_classes=3, hidden=8)(x).shape
    torch.Size([2, 3])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from adapt.frames import pad_sequences
from adapt.heads.sequence import SequenceNet

__all__ = ["pack_frames", "unpack_frames", "SequenceModel", "frames_benchmark"]


def pack_frames(seqs: Sequence[np.ndarray], *, max_len: int | None = None) -> torch.Tensor:
    """``N`` arrays ``(T_i, F)`` -> float32 ``(N, T, F + 1)``: zero-padded frames plus a mask channel.

    ``max_len``: pad to this many frames (the longest clip of the whole stream, so experiences and
    replay buffers stack); a longer clip raises ``ValueError`` (never truncated).
    """
    X, lengths = pad_sequences(seqs, max_len=max_len)
    mask = (np.arange(X.shape[1])[None, :] < lengths[:, None]).astype(np.float32)[..., None]
    return torch.from_numpy(np.concatenate([X, mask], axis=2))


def unpack_frames(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed ``(B, T, F + 1)`` -> frames ``(B, T', F)`` trimmed to the longest clip, lengths ``(B,)``."""
    if x.ndim != 3 or x.shape[2] < 2:
        raise ValueError(f"packed frames must be (B, T, F + 1) with a mask channel, got shape {tuple(x.shape)}")
    lengths = x[..., -1].sum(1).round().long().clamp_min(1)
    return x[:, : int(lengths.max()), :-1], lengths


class SequenceModel(nn.Module):
    """A sequence net on packed frames (see ``pack_frames``) for Avalanche strategies.

    Arguments:
        arch, hidden, num_layers, dropout, pooling: of ``adapt.heads.sequence.SequenceNet``.
        input_size: ``F`` (frame features, without the mask channel); num_classes: outputs.
        mean / scale: ``(F,)`` input standardization (``None``: 0 / 1).
    """

    def __init__(self, *, arch: str = "cnn", input_size: int, num_classes: int, hidden: int = 64,
                 num_layers: int | None = None, dropout: float = 0.1, pooling: str = "attentive",
                 mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        super().__init__()
        self.net = SequenceNet(arch=arch, in_dim=input_size, num_classes=num_classes, hidden=hidden,
                               num_layers=num_layers, dropout=dropout, pooling=pooling)
        self.register_buffer("mean", torch.zeros(input_size) if mean is None else torch.as_tensor(mean).float())
        self.register_buffer("scale", torch.ones(input_size) if scale is None else torch.as_tensor(scale).float())
        self.input_size, self.num_classes = int(input_size), int(num_classes)

    def get_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled representation ``(B, E)`` of packed frames."""
        frames, lengths = unpack_frames(x)
        if frames.shape[2] != self.input_size:
            raise ValueError(f"expected {self.input_size} features per frame (+ mask), got {frames.shape[2]}")
        valid = (torch.arange(frames.shape[1], device=x.device)[None, :] < lengths[:, None])[..., None]
        z = torch.where(valid, (frames - self.mean) / self.scale, torch.zeros_like(frames))
        return self.net.embed(z, lengths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classifier(self.get_features(x))


def frames_benchmark(train: Sequence[tuple[Sequence[np.ndarray], np.ndarray]],
                     test: Sequence[tuple[Sequence[np.ndarray], np.ndarray]], *, max_len: int | None = None):
    """An Avalanche benchmark (one task label) of packed frame tensors.

    ``train`` / ``test``: per experience, ``(sequences, integer labels)``. ``max_len`` defaults to
    the longest clip of all experiences, so every tensor has the same shape.
    """
    from avalanche.benchmarks import tensors_benchmark

    if len(train) != len(test) or not train:
        raise ValueError(f"need as many train as test experiences (>= 1), got {len(train)} and {len(test)}")
    longest = max(s.shape[0] for part in (*train, *test) for s in part[0])
    t = longest if max_len is None else int(max_len)

    def tensors(part):
        seqs, y = part
        return pack_frames(list(seqs), max_len=t), torch.as_tensor(np.asarray(y), dtype=torch.long)

    return tensors_benchmark(train_tensors=[tensors(p) for p in train], test_tensors=[tensors(p) for p in test],
                             task_labels=[0] * len(train))
