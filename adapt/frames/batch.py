"""Variable-length frame sequences as padded batches with lengths (never truncated silently).

``pad_sequences`` stacks ``(T_i, F)`` arrays into ``(N, T_max, F)`` with zeros after each clip and
returns the lengths; ``select_layers`` turns a cached ``(L, T, D)`` entry into ``(T, F)`` (one layer,
a concatenation, the layer mean, fixed weights, or ``"stack"`` for heads that learn their own layer
weights); ``as_padded`` accepts what the sequence heads accept (a list of arrays, or a padded array
with ``lengths`` or a boolean ``mask``) and validates it.

Example:
    >>> import numpy as np
    >>> X, lengths = pad_sequences([np.ones((3, 2)), np.ones((1, 2))])
    >>> X.shape, lengths.tolist()
    ((2, 3, 2), [3, 1])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import EmbeddingShapeError

__all__ = ["pad_sequences", "select_layers", "as_padded", "as_ragged", "pad_rows", "lengths_to_mask",
           "normalize_utterances", "UTTERANCE_NORMS"]

UTTERANCE_NORMS = (None, "mean", "meanvar")


def lengths_to_mask(lengths: np.ndarray, t: int) -> np.ndarray:
    """Boolean ``(N, t)``: True on valid frames."""
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


def _check_sequences(seqs, prefix: str = "") -> list[np.ndarray]:
    """``seqs`` as arrays, each ``(frames >= 1, features)`` with one feature size for all; else
    ``EmbeddingShapeError`` (its message starts with ``prefix``)."""
    arrs = [np.asarray(a) for a in seqs]
    for i, a in enumerate(arrs):
        if a.ndim != 2 or a.shape[0] < 1:
            raise EmbeddingShapeError(f"{prefix}sequence {i} must be (frames >= 1, features), got shape {a.shape}")
    feats = {a.shape[1] for a in arrs}
    if len(feats) != 1:
        raise EmbeddingShapeError(f"{prefix}sequences have different feature sizes {sorted(feats)}")
    return arrs


def pad_sequences(seqs: Sequence[np.ndarray], *, max_len: int | None = None,
                  dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad ``N`` arrays ``(T_i, F)`` into ``(N, T, F)`` plus int64 lengths ``(N,)``.

    ``T`` is the longest ``T_i``, or ``max_len`` when given; a sequence longer than ``max_len``
    raises ``ValueError`` (sequences are never truncated silently).
    """
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence, got 0")
    arrs = _check_sequences(seqs)
    lengths = np.array([a.shape[0] for a in arrs], dtype=np.int64)
    t = int(lengths.max()) if max_len is None else int(max_len)
    if lengths.max() > t:
        raise ValueError(f"sequence of {int(lengths.max())} frames is longer than max_len={t}; refusing to truncate")
    out = np.zeros((len(arrs), t, arrs[0].shape[1]), dtype=dtype)
    for i, a in enumerate(arrs):
        out[i, : a.shape[0]] = a
    return out, lengths


def select_layers(frames: np.ndarray, layers: int | Sequence[int] | str = "all",
                  weights: Sequence[float] | None = None, *, dtype=np.float32) -> np.ndarray:
    """A cached ``(L, T, D)`` entry as ``(T, F)`` (``dtype``: float32, or float16 to halve memory).

    ``layers``: an int (one layer), a list of ints (concatenated), ``"all"`` (all concatenated,
    ``F = L*D``; also what a head with learned layer weights takes: pass its ``num_layers=L``),
    ``"mean"`` (layer average, ``F = D``) or ``"weighted"`` with ``weights`` (fixed, normalised).
    """
    x = np.asarray(frames)
    if x.ndim != 3:
        raise EmbeddingShapeError(f"frame entries must be (L, T, D), got shape {x.shape}")
    n_layers = x.shape[0]
    if isinstance(layers, str):
        if layers == "all":
            return np.ascontiguousarray(x.transpose(1, 0, 2).reshape(x.shape[1], -1), dtype=dtype)
        if layers == "mean":
            return x.astype(np.float32).mean(axis=0).astype(dtype)
        if layers == "weighted":
            w = np.asarray(weights if weights is not None else [], dtype=np.float64)
            if w.shape != (n_layers,) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"weights must be {n_layers} non-negative numbers with a positive sum, got {list(w)}")
            return np.tensordot(w / w.sum(), x.astype(np.float32), axes=([0], [0])).astype(dtype)
        raise ValueError(f"layers must be an int, a list of ints, 'all', 'mean' or 'weighted', got {layers!r}")
    chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    if not chosen or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in chosen):
        raise ValueError(f"layers must be ints, got {layers!r}")
    bad = [i for i in chosen if not -n_layers <= i < n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range for {n_layers} layers (0..{n_layers - 1})")
    sel = x[[int(i) % n_layers for i in chosen]]
    return np.ascontiguousarray(sel.transpose(1, 0, 2).reshape(x.shape[1], -1), dtype=dtype)


def as_padded(X, lengths=None, mask=None, *, dim: int | None = None,
              owner: str = "it") -> tuple[np.ndarray, np.ndarray]:
    """Validate sequence input -> padded float32 ``(N, T, F)`` and int64 lengths ``(N,)``.

    ``X``: a list of ``(T_i, F)`` arrays, or a padded ``(N, T, F)`` array with ``lengths`` ``(N,)`` or a
    boolean ``mask`` ``(N, T)`` (a prefix of True per row); with neither, every frame is valid.
    """
    if isinstance(X, (list, tuple)):
        if lengths is not None or mask is not None:
            raise ValueError(f"{owner}: a list of sequences carries its own lengths; do not pass lengths or mask")
        X, lengths = pad_sequences(X)
    else:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3:
            raise EmbeddingShapeError(f"{owner} expects frames (N, T, F) or a list of (T_i, F), got shape {X.shape}")
        if lengths is not None and mask is not None:
            raise ValueError(f"{owner}: pass lengths or mask, not both")
        if mask is not None:
            m = np.asarray(mask, dtype=bool)
            if m.shape != X.shape[:2]:
                raise ValueError(f"{owner}: mask must be (N, T)={X.shape[:2]}, got {m.shape}")
            lengths = m.sum(axis=1)
            if not (m == lengths_to_mask(lengths, X.shape[1])).all():
                raise ValueError(f"{owner}: mask rows must be a run of True then False (right padding)")
        elif lengths is None:
            lengths = np.full(X.shape[0], X.shape[1])
        lengths = np.asarray(lengths)
        if lengths.shape != (X.shape[0],) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"{owner}: lengths must be {X.shape[0]} integers, got {lengths!r}")
        if (lengths < 1).any() or (lengths > X.shape[1]).any():
            raise ValueError(f"{owner}: lengths must be in [1, {X.shape[1]}], got min {lengths.min()}, max {lengths.max()}")
        lengths = lengths.astype(np.int64)
    if X.shape[0] == 0:
        raise ValueError(f"{owner}: no sequences")
    if dim is not None and X.shape[2] != dim:
        raise EmbeddingShapeError(f"{owner} was fitted on {dim} features per frame, got {X.shape[2]}")
    valid = lengths_to_mask(lengths, X.shape[1])
    if not np.isfinite(X[valid]).all():
        raise ValueError(f"{owner}: frames contain NaN or infinity")
    return X, lengths


def as_ragged(X, lengths=None, mask=None, *, dim: int | None = None,
              owner: str = "it") -> tuple[np.ndarray, np.ndarray]:
    """Validate sequence input -> the valid frames of every clip, concatenated ``(sum T_i, F)``, and
    int64 lengths ``(N,)``.

    Accepts the same input as ``as_padded``; a list is concatenated without padding it first (a
    float16 list stays float16), so memory follows the real frame count, not ``N x T_max``.
    """
    if isinstance(X, (list, tuple)):
        if lengths is not None or mask is not None:
            raise ValueError(f"{owner}: a list of sequences carries its own lengths; do not pass lengths or mask")
        if len(X) == 0:
            raise ValueError(f"{owner}: no sequences")
        arrs = _check_sequences(X, f"{owner}: ")
        dt = np.float16 if all(a.dtype == np.float16 for a in arrs) else np.float32
        flat = np.concatenate(arrs).astype(dt, copy=False)
        lengths = np.array([a.shape[0] for a in arrs], dtype=np.int64)
    else:
        padded, lengths = as_padded(X, lengths, mask, dim=dim, owner=owner)
        return padded[lengths_to_mask(lengths, padded.shape[1])], lengths
    if dim is not None and flat.shape[1] != dim:
        raise EmbeddingShapeError(f"{owner} was fitted on {dim} features per frame, got {flat.shape[1]}")
    if not np.isfinite(flat).all():
        raise ValueError(f"{owner}: frames contain NaN or infinity")
    return flat, lengths


def pad_rows(flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Padded float32 ``(len(rows), max length, F)`` of clips ``rows`` of a ragged ``flat`` array
    (``offsets[i]``: first frame of clip ``i``)."""
    t = int(lengths[rows].max())
    out = np.zeros((len(rows), t, flat.shape[1]), dtype=np.float32)
    for j, i in enumerate(rows):
        out[j, : lengths[i]] = flat[offsets[i]: offsets[i] + lengths[i]]
    return out


def normalize_utterances(flat: np.ndarray, lengths: np.ndarray, mode: str | None) -> np.ndarray:
    """Per-utterance normalization of a ragged ``(sum T_i, F)`` array: each clip's own statistics
    over its valid frames (time), per feature, never the padding nor other clips.

    ``mode``: ``None`` (unchanged), ``"mean"`` (subtract the clip's mean frame: cepstral-mean style)
    or ``"meanvar"`` (also divide by the clip's per-feature std over time, floored at 1e-3). A
    float16 input stays float16 (the statistics are computed in float64, clip by clip). A clip of one frame
    becomes zeros under either mode.
    """
    if mode not in UTTERANCE_NORMS:
        raise ValueError(f"utterance_norm must be one of {list(UTTERANCE_NORMS)}, got {mode!r}")
    if mode is None:
        return flat
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.empty_like(flat)
    s = 0
    for t in lengths.tolist():
        z = flat[s:s + t].astype(np.float64)
        z -= z.mean(axis=0)
        if mode == "meanvar":
            z /= np.maximum(z.std(axis=0), 1e-3)
        out[s:s + t] = z
        s += t
    return out
