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
from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np
import torch

from ..audio import Waveform, load_audio
from ..backbones import Backbone, get_backbone, pad_batch
from ..threads import torch_threads
from .cache import EmbeddingCache, hash_samples
from .pooling import LayerWeights, combine_layers, pool, pooled_dim

__all__ = ["embed", "embed_layers", "EmbedOptions", "EmbeddingCache", "DEFAULT_LAYERS", "DEFAULT_POOLING", "resolve_backbone",
           "combine_layers", "pool", "pooled_dim", "LayerWeights"]

#: default layer combination for the default backbone: all layers concatenated. Chosen on training
#: folds only (RAVDESS + EmoDB speaker-CV, see benchmarks/results/backbones.md and docs/backbones.md).
DEFAULT_LAYERS = "all"
DEFAULT_POOLING = "mean"
#: where ``embed_layers`` runs: this process, or Ray actors (``adapt.embedding.distributed``)
EXECUTORS = ("local", "ray")


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


@dataclass(frozen=True)
class EmbedOptions:
    """How ``embed_layers`` batches, chunks, caches and runs (all keyword arguments of it).

    Attributes:
        pooling: ``"mean"`` or ``"meanstd"`` (``D' = 2D``).
        sr: sample rate of array clips (``None``: paths, bytes and ``Waveform`` carry their own).
        batch_size / max_batch_seconds: bucket limits (clips per batch, padded seconds per batch).
        chunk_seconds / overlap_seconds: long-audio windows (also capped by the backbone's limit).
        cache: ``True`` (default location), an ``EmbeddingCache``, or ``False``/``None`` (no cache).
        progress: show a tqdm progress bar.
        device: ``"cpu"``, ``"cuda"``... (``None``: keep the backbone where it is).
        num_threads: torch CPU threads for this call (restored after).
        block: clips decoded at a time (bounds memory on big corpora); with ``executor="ray"``, also
            the clips of one Ray task.
        executor: ``"local"`` (this process) or ``"ray"``: blocks of clips on Ray actors, each with
            the backbone loaded once and ``num_threads`` threads (``adapt.embedding.distributed``).
        workers: Ray actors to start (``None``: the cluster's CPUs / ``num_threads``; at most one
            per block).
        max_retries: with Ray, restarts of a lost actor and re-runs of its unfinished block.
    """

    pooling: str = DEFAULT_POOLING
    sr: int | None = None
    batch_size: int = 16
    max_batch_seconds: float = 120.0
    chunk_seconds: float | None = 30.0
    overlap_seconds: float = 2.0
    cache: EmbeddingCache | bool | None = True
    progress: bool = False
    device: str | torch.device | None = None
    num_threads: int | None = None
    block: int = 256
    executor: str = "local"
    workers: int | None = None
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; known: {list(EXECUTORS)}")
        for name in ("workers", "max_retries"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "workers" else 0)):
                raise ValueError(f"{name} must be an integer >= {1 if name == 'workers' else 0}, got {v!r}")
        if self.pooling not in ("mean", "meanstd"):
            pooled_dim(self.pooling, 1)  # raises KeyError listing the known poolings
        if self.batch_size <= 0 or self.max_batch_seconds <= 0 or self.block <= 0:
            raise ValueError(f"batch_size, max_batch_seconds and block must be positive, got "
                             f"{self.batch_size}, {self.max_batch_seconds}, {self.block}")

    @classmethod
    def of(cls, options: "EmbedOptions | None", overrides: dict) -> "EmbedOptions":
        """``options`` (default ``EmbedOptions()``) with keyword ``overrides``; an unknown key is a
        ``TypeError`` listing the valid ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown embedding option(s) {unknown}; valid: {sorted(names)}")
        return replace(options or cls(), **overrides)


def embed_layers(backbone: Backbone | str | None, clips: Sequence[object], *,
                 options: EmbedOptions | None = None, **overrides: object) -> np.ndarray:
    """Per-layer pooled embeddings of ``clips``: float32 ``(N, L, D')``.

    Arguments:
        backbone: a ``Backbone``, a registry name, or ``None`` (the offline default).
        clips: paths, bytes, ``Waveform``\\ s or arrays (arrays need ``sr``); any rate, resampled.
        options / overrides: an ``EmbedOptions`` and/or its fields as keywords (``pooling="meanstd"``,
            ``sr=16000``, ``cache=False``, ``batch_size=8``, ``executor="ray"``...).

    With ``executor="ray"`` the blocks of clips run on Ray actors and the result is the same array
    (same batches, same cache; see ``adapt.embedding.distributed``); a ``backbone`` given by name is
    loaded by each actor, an instance is shipped to them.
    """
    opts = EmbedOptions.of(options, overrides)
    if isinstance(clips, (str, os.PathLike, Waveform, np.ndarray, bytes)):
        clips = [clips]
    store = EmbeddingCache() if opts.cache is True else (opts.cache or None)
    if opts.executor == "ray":
        from .distributed import embed_layers_ray

        if backbone is not None and not isinstance(backbone, (str, Backbone)):
            resolve_backbone(backbone)  # raises the TypeError of a bad backbone argument here, not in a worker
        return embed_layers_ray(backbone, clips, opts, store)
    bb = resolve_backbone(backbone)
    if opts.device is not None:
        bb.to(opts.device)
    chunk, overlap = _windows(bb, opts)
    n = len(clips)
    out = np.zeros((n, bb.spec.num_layers, pooled_dim(opts.pooling, bb.spec.dim)), dtype=np.float32)
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"embed [{bb.spec.name}]", unit="clip")
    tick = (lambda k: bar.update(k)) if bar is not None else (lambda k: None)
    with torch_threads(opts.num_threads), torch.inference_mode():
        for start in range(0, n, opts.block):
            waves, keys = _cache_lookup(bb, clips, range(start, min(start + opts.block, n)), out, store, opts, tick)
            _embed_long(bb, waves, keys, out, store, opts, chunk, overlap, tick)
            _embed_buckets(bb, waves, keys, out, store, opts, tick)
    if bar is not None:
        bar.close()
    return out


def _windows(bb: Backbone, opts: EmbedOptions) -> tuple[int | None, int]:
    """Chunk and overlap lengths in samples (the chunk is capped by the backbone's own limit)."""
    rate, limit = bb.spec.sample_rate, bb.spec.max_samples
    chunk = int(opts.chunk_seconds * rate) if opts.chunk_seconds else None
    if limit is not None:
        chunk = min(chunk, limit) if chunk else limit
    overlap = int(opts.overlap_seconds * rate)
    if chunk is not None and not 0 <= overlap < chunk // 2:
        raise ValueError(f"overlap_seconds={opts.overlap_seconds} must be >= 0 and under half of the chunk "
                         f"({chunk / rate} s)")
    return chunk, overlap


def _cache_lookup(bb, clips, idx, out, store, opts, tick) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Decode the clips ``idx``; fill ``out`` from the cache; return the misses (samples, cache keys)."""
    rate = bb.spec.sample_rate
    waves: dict[int, np.ndarray] = {}
    keys: dict[int, str] = {}
    for i in idx:
        w = _load(clips[i], opts.sr, rate)
        key = EmbeddingCache.key(hash_samples(w.samples, rate), fingerprint=bb.spec.fingerprint, pooling=opts.pooling)
        hit = store.get(key) if store is not None else None
        if hit is not None and hit.shape == out.shape[1:]:
            out[i] = hit
            tick(1)
        else:
            waves[i], keys[i] = w.samples, key
    return waves, keys


def _embed_long(bb, waves, keys, out, store, opts, chunk, overlap, tick) -> None:
    """Clips longer than one chunk: windows stitched into one frame sequence, pooled once (removed
    from ``waves``)."""
    for i in [i for i in waves if chunk is not None and len(waves[i]) > chunk]:
        frames = _forward_long(bb, waves.pop(i), chunk, overlap, bb.device)   # (L, T, D)
        out[i] = pool(frames[:, None], torch.tensor([frames.shape[1]]), opts.pooling)[:, 0].float().cpu().numpy()
        if store is not None:
            store.put(keys[i], out[i])
        tick(1)


def _embed_buckets(bb, waves, keys, out, store, opts, tick) -> None:
    """The other clips in length-sorted, padded batches."""
    ids = list(waves)
    lengths = [len(waves[i]) for i in ids]
    for batch in _buckets(lengths, opts.batch_size, int(opts.max_batch_seconds * bb.spec.sample_rate)):
        members = [ids[j] for j in batch]
        x, lens = pad_batch([waves[i] for i in members])
        stack = bb(x.to(bb.device), lens)
        pooled = pool(stack.features, stack.lengths, opts.pooling).float().cpu().numpy()   # (L, B, D')
        for b, i in enumerate(members):
            out[i] = pooled[:, b]
            if store is not None:
                store.put(keys[i], out[i])
        tick(len(members))


def embed(
    backbone: Backbone | str | None,
    clips: Sequence[object],
    *,
    layers: int | Sequence[int] | str = DEFAULT_LAYERS,
    weights: Sequence[float] | None = None,
    options: EmbedOptions | None = None,
    **overrides: object,
) -> np.ndarray:
    """Utterance embeddings ``(N, D)`` float32: ``embed_layers`` then ``combine_layers``.

    ``layers``: an int, a list of ints (concatenated), ``"all"`` (concatenation of every layer; the
    default), ``"mean"``, or ``"weighted"`` with ``weights`` (one per layer). ``options`` and other
    keyword arguments are ``EmbedOptions`` fields (``sr``, ``cache``, ``progress``, ``pooling``...).

    Example:
        >>> bb = get_backbone()                          # doctest: +SKIP
        >>> embed(bb, ["a.wav", "b.flac"]).shape         # doctest: +SKIP
        (2, 1920)
    """
    per_layer = embed_layers(backbone, clips, options=options, **overrides)
    return np.ascontiguousarray(combine_layers(per_layer, layers, weights), dtype=np.float32)
