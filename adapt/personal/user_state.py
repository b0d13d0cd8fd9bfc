"""One user's personalization state: raw-space sufficient statistics, never audio.

``UserState`` holds running moments of every clip of the user (for speaker normalization) and,
per emotion, the clip count and the sum of the user's raw embeddings (in the global head's
space). Because normalization is affine, raw sums stay valid when the normalization statistics
change later (``mean(z) = (mean(x) - mu) / sd``), and two updates of one user commute: the store
can apply them in either order. Serialized as a compact binary blob for the store
(``to_bytes``, magic ``SAU1``, ``STATE_FORMAT`` 1) and as JSON for export (``to_json``).

Example:
    >>> import numpy as np
    >>> st = UserState.empty(2).add(np.array([[1.0, 0.0], [3.0, 2.0]]), ["sad", "sad"])
    >>> st.labels, st.counts.tolist(), st.mean.tolist()
    (('sad',), [2.0], [2.0, 1.0])
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidStateError
from ..normalization import shrink_to_global
from ..stats import ClassSums, RunningMoments

__all__ = ["UserState", "STATE_FORMAT"]

STATE_FORMAT = 1
_MAGIC = b"SAU1"


@dataclass(frozen=True)
class UserState:
    """One user's statistics; immutable (``add`` returns a new state).

    ``labels`` [C], ``counts`` [C] (clips per label), ``sums`` [C, D] (sum of raw embeddings),
    ``custom`` (labels this user created with ``add_emotion``), ``n``/``mean``/``m2`` [D]
    (Welford running statistics over every clip of the user).
    """

    dim: int
    labels: tuple[str, ...] = ()
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    custom: tuple[str, ...] = ()
    n: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None

    @classmethod
    def empty(cls, dim: int) -> "UserState":
        return cls(dim=dim, sums=np.zeros((0, dim), np.float32), mean=np.zeros(dim, np.float64),
                   m2=np.zeros(dim, np.float64))

    def add(self, X: np.ndarray, y: Sequence[str], *, custom: Sequence[str] = ()) -> "UserState":
        """A new state with the clips ``X`` [N, D] labelled ``y`` [N] folded in."""
        X = np.asarray(X, dtype=np.float64)
        cls_sums = ClassSums(self.labels, self.counts, self.sums.astype(np.float64)).add(X, list(y))
        moments = self.moments.add(X)
        return UserState(dim=self.dim, labels=cls_sums.labels, counts=cls_sums.counts,
                         sums=cls_sums.sums.astype(np.float32).reshape(len(cls_sums.labels), self.dim),
                         custom=tuple(dict.fromkeys(self.custom + tuple(custom))), n=int(moments.n),
                         mean=moments.mean, m2=moments.m2)

    @property
    def moments(self) -> RunningMoments:
        """The running moments of every clip of the user."""
        return RunningMoments(self.n, self.mean, self.m2)

    def normalizer(self, g_mean: np.ndarray, g_std: np.ndarray, prior: float) -> tuple[np.ndarray, np.ndarray]:
        """User mean/std shrunk toward the global statistics (``adapt.normalization.shrink_to_global``)."""
        return shrink_to_global(self.moments, g_mean, g_std, prior)

    def count(self, label: str) -> int:
        return int(self.counts[self.labels.index(label)]) if label in self.labels else 0

    # -- persistence: compact binary for the store, JSON for export -----------------------
    def to_bytes(self) -> bytes:
        header = json.dumps({"v": STATE_FORMAT, "dim": self.dim, "labels": list(self.labels),
                             "counts": [float(c) for c in self.counts], "custom": list(self.custom),
                             "n": self.n}).encode()
        return (_MAGIC + struct.pack("<I", len(header)) + header + self.sums.astype("<f4").tobytes()
                + self.mean.astype("<f8").tobytes() + self.m2.astype("<f8").tobytes())

    @classmethod
    def from_bytes(cls, blob: bytes) -> "UserState":
        if blob[:4] != _MAGIC:
            raise InvalidStateError("not a ser-adapt user state blob (bad magic)")
        (hlen,) = struct.unpack_from("<I", blob, 4)
        h = json.loads(blob[8:8 + hlen])
        if h.get("v") != STATE_FORMAT:
            raise InvalidStateError(f"unsupported user state format {h.get('v')!r} (expected {STATE_FORMAT})")
        d, c = int(h["dim"]), len(h["labels"])
        off = 8 + hlen
        sums = np.frombuffer(blob, "<f4", c * d, off).reshape(c, d)
        mean = np.frombuffer(blob, "<f8", d, off + 4 * c * d)
        m2 = np.frombuffer(blob, "<f8", d, off + 4 * c * d + 8 * d)
        return cls(dim=d, labels=tuple(h["labels"]), counts=np.asarray(h["counts"], np.float64), sums=sums,
                   custom=tuple(h["custom"]), n=int(h["n"]), mean=mean, m2=m2)

    def to_json(self) -> dict[str, Any]:
        return {"format": "ser-adapt.UserState", "version": STATE_FORMAT, "dim": self.dim,
                "labels": list(self.labels), "counts": self.counts.tolist(), "sums": self.sums.tolist(),
                "custom": list(self.custom), "n": self.n, "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "UserState":
        """Validate and restore an exported state; ``InvalidStateError`` (a ValueError) names what is wrong."""
        if not isinstance(d, dict) or d.get("format") != "ser-adapt.UserState":
            raise InvalidStateError("not an exported ser-adapt user state (format must be 'ser-adapt.UserState')")
        try:
            dim, labels = int(d["dim"]), tuple(str(x) for x in d["labels"])
            counts = np.asarray(d["counts"], np.float64)
            sums = np.asarray(d["sums"], np.float32).reshape(len(labels), dim)
            mean, m2 = np.asarray(d["mean"], np.float64), np.asarray(d["m2"], np.float64)
            n = int(d["n"])
            custom = d.get("custom", [])
            if not isinstance(custom, (list, tuple)) or not all(isinstance(c, str) for c in custom):
                raise TypeError(f"custom must be a list of labels, got {custom!r}")
        except (KeyError, TypeError, ValueError, OverflowError) as exc:   # OverflowError: int(inf)
            raise InvalidStateError(f"malformed user state: {exc}") from None
        if counts.shape != (len(labels),) or mean.shape != (dim,) or m2.shape != (dim,) or len(set(labels)) != len(labels):
            raise InvalidStateError(f"inconsistent user state: {len(labels)} labels, counts {counts.shape}, dim {dim}")
        for arr in (counts, sums, mean, m2):
            if not np.isfinite(arr).all():
                raise InvalidStateError("user state holds NaN or infinity")
        if (counts < 0).any() or n < 0 or (m2 < 0).any():
            raise InvalidStateError("user state holds negative counts or variances")
        if not set(custom) <= set(labels):
            raise InvalidStateError(f"user state names own emotions {sorted(set(custom) - set(labels))} it has no clips of")
        return cls(dim=dim, labels=labels, counts=counts, sums=sums, custom=tuple(custom),
                   n=n, mean=mean, m2=m2)
