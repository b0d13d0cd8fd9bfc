"""On-disk cache of per-layer pooled embeddings, one small file per (clip, backbone, pooling).

Key: sha256 of the clip's float32 samples and rate, the backbone fingerprint and the pooling name.
Entry file: magic ``SEREMB1\\n``, the sha256 of the payload (32 bytes), then the payload (``np.save``
of a float32 ``(L, D')`` array). A read that fails the magic, the checksum or ``np.load`` counts as
a miss: the entry is deleted and recomputed. Writes go through a temp file and ``os.replace``, so
two processes writing the same entry at once are safe (both write the same bytes; last one wins whole).

Example:
    >>> import numpy as np, tempfile
    >>> cache = EmbeddingCache(root=tempfile.mkdtemp())
    >>> key = cache.key(samples_digest("0" * 64), fingerprint="fp", pooling="mean")
    >>> cache.get(key) is None
    True
    >>> cache.put(key, np.ones((5, 4), np.float32)); cache.get(key).shape
    (5, 4)
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..cache import atomic_write_bytes, cache_dir

__all__ = ["EmbeddingCache", "samples_digest", "hash_samples"]

log = logging.getLogger(__name__)
_MAGIC = b"SEREMB1\n"


def hash_samples(samples: np.ndarray, sample_rate: int) -> str:
    """Hex sha256 of float32 samples plus their rate (the clip's identity in the cache)."""
    h = hashlib.sha256(str(int(sample_rate)).encode() + b":")
    h.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
    return h.hexdigest()


def samples_digest(digest: str) -> str:
    """Validate a hex digest (64 chars) and return it; a helper for callers that hash elsewhere."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"expected a 64-char lowercase hex sha256, got {digest!r}")
    return digest


class EmbeddingCache:
    """Per-clip embedding store under ``root`` (default ``cache_dir("embeddings")``).

    Counters ``hits``, ``misses`` and ``corrupt`` are kept for tests and benchmarks.
    """

    def __init__(self, *, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir("embeddings")
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    @staticmethod
    def key(digest: str, *, fingerprint: str, pooling: str) -> str:
        return hashlib.sha256(f"{fingerprint}|{pooling}|{digest}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.emb"

    def get(self, key: str) -> np.ndarray | None:
        """The stored array, or ``None`` on a miss or a corrupted entry (which is then deleted)."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        head = len(_MAGIC) + 32
        payload = blob[head:]
        ok = blob[: len(_MAGIC)] == _MAGIC and hashlib.sha256(payload).digest() == blob[len(_MAGIC):head]
        if ok:
            try:
                arr = np.load(io.BytesIO(payload), allow_pickle=False)
                self.hits += 1
                return arr
            except Exception:  # noqa: BLE001 - checksum matched but content unreadable: treat as corrupt
                pass
        log.warning("corrupted embedding cache entry %s: recomputing", path)
        self.corrupt += 1
        self.misses += 1
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return None

    def put(self, key: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        payload = buf.getvalue()
        atomic_write_bytes(self.path(key), _MAGIC + hashlib.sha256(payload).digest() + payload)
