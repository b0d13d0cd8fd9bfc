"""On-disk cache of per-clip frame features: one memory-mappable float16 ``.npy`` per clip.

A sibling of the embedding cache (``adapt.embedding.cache``): the key is the same sha256 of the
clip's samples and rate, the backbone fingerprint and a *reduction* string (frame-rate factor and
layers kept, e.g. ``"frames:avg4:all"``) in place of the pooling name. Entries live under
``cache_dir("frames")`` (``$SER_ADAPT_CACHE/frames``).

Entry file: a plain ``np.save`` of a float16 ``(L, T, D)`` array, followed by a 40-byte trailer:
magic ``SERFRM1\\n`` and the sha256 of the ``.npy`` bytes. ``np.load(path, mmap_mode="r")`` maps the
array and ignores the trailer, so an entry can be memory-mapped as it is. ``get`` checks the trailer
and the checksum (``verify=True``, the default) or only that the array maps with its declared size
(``verify=False``); a file that fails either (truncated, garbled, not an entry) is a miss: it is
deleted, counted in ``corrupt``, and the caller recomputes it. Writes go through a temp file and
``os.replace``.

Example:
    >>> import numpy as np, tempfile
    >>> cache = FrameCache(root=tempfile.mkdtemp())
    >>> key = cache.key("0" * 64, fingerprint="fp", reduction="frames:avg4:all")
    >>> cache.get(key) is None
    True
    >>> cache.put(key, np.ones((5, 3, 4), np.float32)); cache.get(key).dtype
    dtype('float16')
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..cache import atomic_write_bytes, cache_dir
from ..embedding.cache import EmbeddingCache

__all__ = ["FrameCache"]

log = logging.getLogger(__name__)
_MAGIC = b"SERFRM1\n"
_TRAILER = len(_MAGIC) + 32


class FrameCache:
    """Per-clip frame store under ``root`` (default ``cache_dir("frames")``).

    Arguments:
        root: folder of the entries.
        verify: check every entry's sha256 on read (reads the file once); ``False`` only checks that
            the array maps with its declared shape (a truncated file is still caught).

    Counters ``hits``, ``misses`` and ``corrupt`` are kept for tests and benchmarks.
    """

    def __init__(self, *, root: str | os.PathLike | None = None, verify: bool = True) -> None:
        self.root = Path(root) if root is not None else cache_dir("frames")
        self.verify = bool(verify)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    @staticmethod
    def key(digest: str, *, fingerprint: str, reduction: str) -> str:
        """The entry key: ``EmbeddingCache.key`` with the reduction string in the pooling slot."""
        return EmbeddingCache.key(digest, fingerprint=fingerprint, pooling=reduction)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def _bad(self, path: Path, why: str) -> None:
        log.warning("corrupted frame cache entry %s (%s): recomputing", path, why)
        self.corrupt += 1
        self.misses += 1
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def get(self, key: str) -> np.ndarray | None:
        """The stored float16 ``(L, T, D)`` array, memory-mapped read-only, or ``None`` on a miss or a
        corrupted entry (which is then deleted)."""
        path = self.path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            self.misses += 1
            return None
        if self.verify:
            blob = path.read_bytes()
            payload, trailer = blob[:-_TRAILER], blob[-_TRAILER:]
            if (size < _TRAILER or trailer[: len(_MAGIC)] != _MAGIC
                    or hashlib.sha256(payload).digest() != trailer[len(_MAGIC):]):
                self._bad(path, "checksum")
                return None
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.dtype != np.float16 or arr.ndim != 3:
                raise ValueError(f"dtype {arr.dtype}, shape {arr.shape}")
            if arr.size * 2 + _TRAILER > size:
                raise ValueError("file shorter than its array and trailer")
        except Exception as err:  # noqa: BLE001 - whatever np.load raises on a damaged file, it is a miss
            self._bad(path, str(err))
            return None
        self.hits += 1
        return arr

    def put(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` ``(L, T, D)`` as float16 (values beyond float16's range raise ``ValueError``)."""
        arr = np.asarray(array)
        if arr.ndim != 3:
            raise ValueError(f"frame entries are (L, T, D) arrays, got shape {arr.shape}")
        half = arr.astype(np.float16)
        if not np.isfinite(half).all():
            raise ValueError("frame features overflow float16 (non-finite after the cast); not cached")
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(half), allow_pickle=False)
        payload = buf.getvalue()
        atomic_write_bytes(self.path(key), payload + _MAGIC + hashlib.sha256(payload).digest())

    def size_bytes(self) -> int:
        """Bytes on disk of every entry under ``root``."""
        return sum(p.stat().st_size for p in self.root.glob("*/*.npy"))
