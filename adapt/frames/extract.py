"""Clips -> per-layer frame features ``(L, T, D)``, rate-reduced, float16, cached per clip.

``extract_frames(backbone, clips)`` runs the frozen backbone like ``adapt.embed`` does (the same
length-bucketed padded batches, the same long-audio windows; a padded batch equals one-by-one calls)
but keeps the frames instead of pooling them. Before caching, the frame rate is reduced by averaging
non-overlapping windows of ``rate_factor`` frames (the last, partial window is averaged over the
frames it has, so no frame is dropped: ``T' = ceil(T / rate_factor)``) and only the ``layers`` asked
for are kept.

Default (``FrameOptions()``): every layer, rate factor 4. For Whisper tiny.en that is 5 layers x 384
dims at 12.5 Hz, about 48 kB per second of audio in float16; the six shared corpora (5 097 clips,
~16 000 s) take ~0.8 GB (measured size and time: docs/heads.md, "Frame features").

Example:
    >>> import numpy as np
    >>> from adapt.backbones import get_backbone
    >>> f = extract_frames(get_backbone("logmel"), [np.random.randn(16000).astype("float32")], sr=16000,
    ...                    options=FrameOptions(rate_factor=2), cache=False)
    >>> f[0].shape, f[0].dtype
    ((1, 51, 80), dtype('float16'))
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..audio import Waveform
from ..backbones import Backbone, pad_batch
from ..embedding import _buckets, _forward_long, _load, _windows, EmbedOptions, resolve_backbone
from ..embedding.cache import hash_samples
from ..threads import torch_threads
from .cache import FrameCache

__all__ = ["FrameOptions", "extract_frames", "reduce_rate"]


@dataclass(frozen=True)
class FrameOptions:
    """What is kept of a backbone's frames (part of the cache key).

    Attributes:
        rate_factor: average-pool this many frames into one (1 keeps the backbone's rate; 4 turns
            Whisper's 50 Hz into 12.5 Hz).
        layers: ``"all"`` or a tuple of layer indices (negative counts from the end) to keep.
    """

    rate_factor: int = 4
    layers: str | tuple[int, ...] = "all"

    def __post_init__(self) -> None:
        rf = self.rate_factor
        if isinstance(rf, bool) or not isinstance(rf, (int, np.integer)) or rf < 1:
            raise ValueError(f"rate_factor must be an int >= 1, got {rf!r}")
        if self.layers != "all":
            if isinstance(self.layers, str) or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                                                       for i in self.layers) or not len(self.layers):
                raise ValueError(f"layers must be 'all' or a non-empty tuple of ints, got {self.layers!r}")
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

    def layer_index(self, num_layers: int) -> list[int]:
        if self.layers == "all":
            return list(range(num_layers))
        bad = [i for i in self.layers if not -num_layers <= i < num_layers]
        if bad:
            raise ValueError(f"layers {bad} out of range for {num_layers} layers (0..{num_layers - 1})")
        return [i % num_layers for i in self.layers]

    def reduction(self, num_layers: int) -> str:
        """The cache-key part: ``"frames:avg<k>:<layers>"``."""
        idx = self.layer_index(num_layers)
        kept = "all" if idx == list(range(num_layers)) else ",".join(map(str, idx))
        return f"frames:avg{int(self.rate_factor)}:{kept}"


def reduce_rate(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """Average non-overlapping windows of ``factor`` frames: ``(L, T, D)`` -> ``(L, ceil(T/factor), D)``.

    The last window may be partial; it is the mean of the frames it holds (no frame is dropped).
    """
    if factor == 1:
        return frames
    n_layers, t, d = frames.shape
    out_t = math.ceil(t / factor)
    pad = out_t * factor - t
    x = torch.nn.functional.pad(frames, (0, 0, 0, pad)).reshape(n_layers, out_t, factor, d).sum(2)
    counts = torch.full((out_t,), float(factor), dtype=frames.dtype, device=frames.device)
    counts[-1] = factor - pad
    return x / counts[None, :, None]


def extract_frames(backbone: Backbone | str | None, clips: Sequence[object], *,
                   options: FrameOptions | None = None, cache: FrameCache | bool | None = True,
                   sr: int | None = None, batch_size: int = 16, max_batch_seconds: float = 120.0,
                   num_threads: int | None = None, progress: bool = False) -> list[np.ndarray]:
    """Frame features of ``clips``: one float16 ``(L', T'_i, D)`` array per clip (memory-mapped when cached).

    Arguments:
        backbone: a ``Backbone``, a registry name or ``None`` (the offline default).
        clips: paths, bytes, ``Waveform``\\ s or arrays (arrays need ``sr``).
        options: rate factor and layers kept (``FrameOptions()``: all layers, 4x rate reduction).
        cache: ``True`` (``FrameCache()`` under ``$SER_ADAPT_CACHE/frames``), a ``FrameCache``, or
            ``False`` / ``None``.
        batch_size / max_batch_seconds: bucket limits, as in ``adapt.embed``.
        num_threads: torch CPU threads for this call (restored after).
        progress: a tqdm progress bar.
    """
    opts = options or FrameOptions()
    if isinstance(clips, (str, os.PathLike, Waveform, np.ndarray, bytes)):
        clips = [clips]
    store = FrameCache() if cache is True else (cache or None)
    bb = resolve_backbone(backbone)
    idx = opts.layer_index(bb.spec.num_layers)
    reduction = opts.reduction(bb.spec.num_layers)
    eo = EmbedOptions(sr=sr, batch_size=batch_size, max_batch_seconds=max_batch_seconds)
    chunk, overlap = _windows(bb, eo)
    out: list[np.ndarray | None] = [None] * len(clips)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(clips), desc=f"frames [{bb.spec.name}]", unit="clip")

    def keep(i: int, frames: torch.Tensor, key: str) -> None:   # frames (L, T, D) float32
        arr = reduce_rate(frames[idx].float(), int(opts.rate_factor)).cpu().numpy().astype(np.float16)
        if store is not None:
            store.put(key, arr)
            hit = store.get(key)
            out[i] = hit if hit is not None else arr
        else:
            out[i] = arr
        if bar is not None:
            bar.update(1)

    with torch_threads(num_threads), torch.inference_mode():
        for start in range(0, len(clips), 256):
            waves: dict[int, np.ndarray] = {}
            keys: dict[int, str] = {}
            for i in range(start, min(start + 256, len(clips))):
                w = _load(clips[i], sr, bb.spec.sample_rate)
                key = FrameCache.key(hash_samples(w.samples, bb.spec.sample_rate), fingerprint=bb.spec.fingerprint,
                                     reduction=reduction)
                hit = store.get(key) if store is not None else None
                if hit is not None:
                    out[i] = hit
                    if bar is not None:
                        bar.update(1)
                else:
                    waves[i], keys[i] = w.samples, key
            for i in [i for i in waves if chunk is not None and len(waves[i]) > chunk]:
                keep(i, _forward_long(bb, waves.pop(i), chunk, overlap, bb.device), keys[i])
            ids = list(waves)
            for batch in _buckets([len(waves[i]) for i in ids], batch_size, int(max_batch_seconds * bb.spec.sample_rate)):
                members = [ids[j] for j in batch]
                x, lens = pad_batch([waves[i] for i in members])
                stack = bb(x.to(bb.device), lens)
                for b, i in enumerate(members):
                    keep(i, stack.item(b), keys[i])
    if bar is not None:
        bar.close()
    return out  # type: ignore[return-value]
