"""The ``Backbone`` contract: a frozen encoder that returns every layer's frame features.

A backbone takes a padded batch of 16 kHz mono waveforms ``wavs`` ``(batch, samples)`` with their
valid lengths ``(batch,)`` and returns a ``LayerStack``: ``features`` ``(layers, batch, frames, dim)``
and the valid frame count of each item. Layer 0 is the encoder's input representation (the CNN /
feature-extractor output, plus positions where the model adds them); layer ``L-1`` is the last
transformer layer. Padded frames beyond ``lengths[b]`` hold arbitrary values: pool with the lengths.

Every backbone guarantees that a padded batch gives the same per-utterance features (over the valid
frames) as one-by-one calls, within float tolerance; each implementation documents how.

Example:
    >>> import torch
    >>> bb = get_backbone("logmel")                              # doctest: +SKIP
    >>> out = bb(torch.zeros(2, 16000), torch.tensor([16000, 8000]))  # doctest: +SKIP
    >>> out.features.shape[:2], out.lengths.tolist()             # doctest: +SKIP
    (torch.Size([1, 2]), [100, 50])
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["BackboneSpec", "LayerStack", "Backbone", "fingerprint_of", "pad_batch", "pad_frames", "per_clip"]


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is: its registry ``name``, input ``sample_rate``, ``num_layers`` (including
    layer 0), frame feature ``dim``, and a ``fingerprint`` that changes whenever weights or config
    change (the embedding cache keys on it). ``max_samples``: the longest input one forward call
    accepts (``None``: unbounded); longer clips are chunked by ``adapt.embed``.
    """

    name: str
    sample_rate: int
    num_layers: int
    dim: int
    fingerprint: str
    max_samples: int | None = None
    frame_rate: float | None = None


@dataclass(frozen=True)
class LayerStack:
    """Per-layer frame features ``features`` ``(L, B, T, D)`` and valid frame counts ``lengths`` ``(B,)``."""

    features: torch.Tensor
    lengths: torch.Tensor

    def __post_init__(self) -> None:
        if self.features.ndim != 4:
            raise ValueError(f"LayerStack.features must be (L, B, T, D), got shape {tuple(self.features.shape)}")
        if self.lengths.shape != (self.features.shape[1],):
            raise ValueError(
                f"LayerStack.lengths must be (B,)={self.features.shape[1]}, got shape {tuple(self.lengths.shape)}"
            )

    @property
    def mask(self) -> torch.Tensor:
        """Boolean ``(B, T)``: True on valid frames."""
        t = self.features.shape[2]
        return torch.arange(t, device=self.lengths.device)[None, :] < self.lengths[:, None]

    def item(self, index: int) -> torch.Tensor:
        """The valid frames of one utterance: ``(L, T_i, D)``."""
        return self.features[:, index, : int(self.lengths[index])]


def fingerprint_of(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (config, weight hashes, code version)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def pad_batch(waves: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D waveforms with zeros: ``(B, max_len)`` float32 and lengths ``(B,)`` int64."""
    if len(waves) == 0:
        raise ValueError("pad_batch needs at least one waveform, got 0")
    tensors = [torch.as_tensor(np.asarray(w, dtype=np.float32)) if not torch.is_tensor(w) else w.float() for w in waves]
    for i, t in enumerate(tensors):
        if t.ndim != 1:
            raise ValueError(f"waveform {i} must be 1-D (samples,), got shape {tuple(t.shape)}")
    return pad_frames(tensors)


def pad_frames(parts: Sequence[torch.Tensor], *, time_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad per-clip tensors along ``time_dim`` and stack them: ``(B, ...)`` plus lengths ``(B,)``.

    ``parts``: ``B`` tensors of equal shape except along ``time_dim`` (``0`` for ``(T_i, D)`` frames,
    ``-1`` for ``(C, T_i)`` spectrograms). The shared scaffolding of backbones that run part of
    their model clip by clip (so a padded batch equals one-by-one calls).
    """
    if len(parts) == 0:
        raise ValueError("pad_frames needs at least one tensor, got 0")
    lengths = torch.tensor([int(p.shape[time_dim]) for p in parts], dtype=torch.long)
    shape = list(parts[0].shape)
    shape[time_dim] = int(lengths.max())
    out = parts[0].new_zeros((len(parts), *shape))
    for b, p in enumerate(parts):
        out[b].narrow(time_dim, 0, p.shape[time_dim]).copy_(p)
    return out, lengths


def per_clip(wavs: torch.Tensor, lengths: torch.Tensor, fn) -> torch.Tensor:
    """``fn`` applied to each clip's valid samples ``wavs[b, :lengths[b]]``; zeros after each clip.

    For per-utterance waveform normalization, whose statistics must never see the padding.
    """
    out = torch.zeros_like(wavs)
    for b in range(wavs.shape[0]):
        n = int(lengths[b])
        out[b, :n] = fn(wavs[b, :n])
    return out


class Backbone(torch.nn.Module):
    """Base class: subclasses set ``self.spec`` and implement ``forward(wavs, lengths) -> LayerStack``.

    Backbones are frozen (``requires_grad_(False)``, ``eval()``) when built; unfreezing is the
    caller's explicit choice. ``device`` moves the module and is where inputs are sent.
    """

    spec: BackboneSpec

    def check_inputs(self, wavs: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate ``(B, S)`` float waves and ``(B,)`` lengths; fill lengths when ``None``."""
        if not torch.is_tensor(wavs):
            raise TypeError(f"wavs must be a torch.Tensor (batch, samples), got {type(wavs).__name__}")
        if wavs.ndim == 1:
            wavs = wavs[None]
        if wavs.ndim != 2:
            raise ValueError(f"wavs must be (batch, samples), got shape {tuple(wavs.shape)}")
        if lengths is None:
            lengths = torch.full((wavs.shape[0],), wavs.shape[1], dtype=torch.long)
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
        if lengths.shape != (wavs.shape[0],):
            raise ValueError(f"lengths must be (batch,)=({wavs.shape[0]},), got shape {tuple(lengths.shape)}")
        if int(lengths.min()) <= 0 or int(lengths.max()) > wavs.shape[1]:
            raise ValueError(f"lengths must be in [1, {wavs.shape[1]}], got {lengths.tolist()}")
        if self.spec.max_samples is not None and int(lengths.max()) > self.spec.max_samples:
            raise ValueError(
                f"{self.spec.name} accepts at most {self.spec.max_samples} samples per call, got "
                f"{int(lengths.max())}; adapt.embed chunks longer clips"
            )
        return wavs.float(), lengths

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def freeze(self) -> "Backbone":
        self.requires_grad_(False)
        self.eval()
        return self

    def transformer_layers(self) -> torch.nn.ModuleList:
        """The encoder's transformer blocks, bottom to top (``adapt.finetune`` unfreezes the top ones).

        Raises ``NotImplementedError`` for backbones without transformer blocks (classical features).
        """
        raise NotImplementedError(f"{self.spec.name} has no transformer layers to fine-tune")

    def output_norm(self) -> torch.nn.Module | None:
        """The norm applied after the last block (part of the top layer when fine-tuning), or ``None``."""
        return None

    def extra_repr(self) -> str:
        s = self.spec
        return f"name={s.name!r}, layers={s.num_layers}, dim={s.dim}, fingerprint={s.fingerprint}"
