"""Clips -> utterance embeddings: length-bucketed batches, long-audio chunking, on-disk cache.

The package holds the pooling of frame features (``adapt.embedding.pooling``: masked mean /
mean+std over time, layer selection, SUPERB-style layer weights) and the content-addressed
embedding cache (``adapt.embedding.cache``); ``adapt.embed`` is the ``embed`` function below.

``embed_layers`` returns per-layer pooled vectors ``(N, L, D')`` (what the cache stores, so layer
weights can be learned without recomputing); ``embed`` selects / combines layers into ``(N, D)``.

Batching: clips are sorted by length and grouped into batches of at most ``batch_size`` clips and
``max_batch_seconds`` of padded audio, so padding waste stays small; every backbone guarantees that
a padded batch equals one-by-one calls (see ``adapt.backbones``). Clips longer than
``chunk_seconds`` (or the backbone's own limit, 30 s for Whisper) are cut into windows overlapping
by ``overlap_seconds``; each window keeps the frames of its own central part (half the overlap is
dropped on each inner side) and the stitched frames are pooled as one utterance.

Example:
    >>> import numpy as np
    >>> from adapt.backbones import get_backbone
    >>> X = embed(get_backbone("logmel"), [np.random.randn(16000).astype("float32")], sr=16000, cache=False)
    >>> X.shape
    (1, 80)
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from ..audio import Waveform, load_audio
from ..backbones import Backbone, get_backbone, pad_batch
from ..threads import torch_threads
from .cache import EmbeddingCache, hash_samples
from .pooling import LayerWeights, combine_layers, pool, pooled_dim

__all__ = ["embed", "embed_layers", "EmbeddingCache", "DEFAULT_LAYERS", "DEFAULT_POOLING", "resolve_backbone",
           "combine_layers", "pool", "pooled_dim", "LayerWeights"]

#: default layer combination for the default backbone: all layers concatenated. Chosen on training
#: folds only (RAVDESS + EmoDB speaker-CV, see benchmarks/results/backbones.md and docs/backbones.md).
DEFAULT_LAYERS = "all"
DEFAULT_POOLING = "mean"


def resolve_backbone(backbone: Backbone | str | None) -> Backbone:
    """A ``Backbone`` instance from an instance, a registry name or ``None`` (the default)."""
    if backbone is None or isinstance(backbone, str):
        return get_backbone(backbone)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"backbone must be a Backbone, a name or None, got {type(backbone).__name__}")
    return backbone


def _buckets(lengths: Sequence[int], batch_size: int, max_samples: int) -> list[list[int]]:
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        # sorted ascending, so the padded size of a batch is len(batch) * its last length
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * lengths[i] > max_samples):
            batches.append(cur)
            cur = []
        cur.append(int(i))
    if cur:
        batches.append(cur)
    return batches


def _forward_long(bb: Backbone, wave: np.ndarray, chunk: int, overlap: int, device: torch.device) -> torch.Tensor:
    """Frames ``(L, T, D)`` of a clip longer than ``chunk`` samples, stitched from overlapping windows."""
    step = chunk - overlap
    starts = list(range(0, max(len(wave) - overlap, 1), step))
    pieces = []
    for k, s in enumerate(starts):
        seg = torch.from_numpy(np.ascontiguousarray(wave[s: s + chunk]))
        out = bb(seg[None].to(device), torch.tensor([len(seg)]))
        frames = out.item(0)
        per_sample = frames.shape[1] / len(seg)
        lo = 0 if k == 0 else int(round(overlap / 2 * per_sample))
        hi = frames.shape[1] if k == len(starts) - 1 else int(round((step + overlap / 2) * per_sample))
        pieces.append(frames[:, lo:max(hi, lo + 1)])
    return torch.cat(pieces, dim=1)


def _load(clip: object, sr: int | None, target_sr: int) -> Waveform:
    if isinstance(clip, Waveform):
        if clip.sample_rate != target_sr:
            return load_audio(clip.samples, sr=clip.sample_rate, target_sr=target_sr, max_seconds=None)
        return clip
    return load_audio(clip, sr=sr, target_sr=target_sr, max_seconds=None)  # type: ignore[arg-type]


def embed_layers(
    backbone: Backbone | str | None,
    clips: Sequence[object],
    *,
    pooling: str = DEFAULT_POOLING,
    sr: int | None = None,
    batch_size: int = 16,
    max_batch_seconds: float = 120.0,
    chunk_seconds: float | None = 30.0,
    overlap_seconds: float = 2.0,
    cache: EmbeddingCache | bool | None = True,
    progress: bool = False,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    block: int = 256,
) -> np.ndarray:
    """Per-layer pooled embeddings of ``clips``: float32 ``(N, L, D')``.

    Arguments:
        backbone: a ``Backbone``, a registry name, or ``None`` (the offline default).
        clips: paths, bytes, ``Waveform``\\ s or arrays (arrays need ``sr``); any rate, resampled.
        pooling: ``"mean"`` or ``"meanstd"`` (``D' = 2D``).
        batch_size / max_batch_seconds: bucket limits (clips per batch, padded seconds per batch).
        chunk_seconds / overlap_seconds: long-audio windows (also capped by the backbone's limit).
        cache: ``True`` (default location), an ``EmbeddingCache``, or ``False``/``None`` (no cache).
        progress: show a tqdm progress bar.
        device: ``"cpu"``, ``"cuda"``... (``None``: keep the backbone where it is).
        num_threads: torch CPU threads for this call (restored after).
        block: clips decoded at a time (bounds memory on big corpora).
    """
    bb = resolve_backbone(backbone)
    if pooling not in ("mean", "meanstd"):
        pooled_dim(pooling, 1)  # raises KeyError listing the known poolings
    if batch_size <= 0 or max_batch_seconds <= 0:
        raise ValueError(f"batch_size and max_batch_seconds must be positive, got {batch_size}, {max_batch_seconds}")
    if isinstance(clips, (str, os.PathLike, Waveform, np.ndarray, bytes)):
        clips = [clips]
    store = EmbeddingCache() if cache is True else (cache or None)
    if device is not None:
        bb.to(device)
    dev = bb.device
    rate = bb.spec.sample_rate
    limit = bb.spec.max_samples
    chunk = int(chunk_seconds * rate) if chunk_seconds else None
    if limit is not None:
        chunk = min(chunk, limit) if chunk else limit
    overlap = int(overlap_seconds * rate)
    if chunk is not None and not 0 <= overlap < chunk // 2:
        raise ValueError(f"overlap_seconds={overlap_seconds} must be >= 0 and under half of the chunk ({chunk / rate} s)")
    n = len(clips)
    out = np.zeros((n, bb.spec.num_layers, pooled_dim(pooling, bb.spec.dim)), dtype=np.float32)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"embed [{bb.spec.name}]", unit="clip")
    with torch_threads(num_threads), torch.inference_mode():
        for start in range(0, n, block):
            idx = range(start, min(start + block, n))
            waves: dict[int, np.ndarray] = {}
            keys: dict[int, str] = {}
            for i in idx:
                w = _load(clips[i], sr, rate)
                key = EmbeddingCache.key(hash_samples(w.samples, rate), fingerprint=bb.spec.fingerprint, pooling=pooling)
                hit = store.get(key) if store is not None else None
                if hit is not None and hit.shape == out.shape[1:]:
                    out[i] = hit
                    if bar is not None:
                        bar.update(1)
                else:
                    waves[i], keys[i] = w.samples, key
            long_ids = [i for i in waves if chunk is not None and len(waves[i]) > chunk]
            for i in long_ids:
                frames = _forward_long(bb, waves.pop(i), chunk, overlap, dev)  # type: ignore[arg-type]
                out[i] = pool(frames[:, None], torch.tensor([frames.shape[1]]), pooling)[:, 0].float().cpu().numpy()
                if store is not None:
                    store.put(keys[i], out[i])
                if bar is not None:
                    bar.update(1)
            ids = list(waves)
            lengths = [len(waves[i]) for i in ids]
            for batch in _buckets(lengths, batch_size, int(max_batch_seconds * rate)):
                members = [ids[j] for j in batch]
                x, lens = pad_batch([waves[i] for i in members])
                stack = bb(x.to(dev), lens)
                pooled = pool(stack.features, stack.lengths, pooling).float().cpu().numpy()
                for b, i in enumerate(members):
                    out[i] = pooled[:, b]
                    if store is not None:
                        store.put(keys[i], out[i])
                if bar is not None:
                    bar.update(len(members))
    if bar is not None:
        bar.close()
    return out


def embed(
    backbone: Backbone | str | None,
    clips: Sequence[object],
    *,
    layers: int | Sequence[int] | str = DEFAULT_LAYERS,
    weights: Sequence[float] | None = None,
    pooling: str = DEFAULT_POOLING,
    **kwargs: object,
) -> np.ndarray:
    """Utterance embeddings ``(N, D)`` float32: ``embed_layers`` then ``combine_layers``.

    ``layers``: an int, a list of ints (concatenated), ``"all"`` (concatenation of every layer; the
    default), ``"mean"``, or ``"weighted"`` with ``weights`` (one per layer). Other keyword
    arguments go to ``embed_layers`` (``sr``, ``cache``, ``progress``, ``batch_size``...).

    Example:
        >>> bb = get_backbone()                          # doctest: +SKIP
        >>> embed(bb, ["a.wav", "b.flac"]).shape         # doctest: +SKIP
        (2, 1920)
    """
    per_layer = embed_layers(backbone, clips, pooling=pooling, **kwargs)  # type: ignore[arg-type]
    return np.ascontiguousarray(combine_layers(per_layer, layers, weights), dtype=np.float32)
