"""One user's personalization state: raw-space sufficient statistics, never audio.

``UserState`` holds running moments of every clip of the user, labelled or not (for speaker
normalization), per emotion the clip count and the sum of the user's raw embeddings (in the
space the head keeps statistics in, ``head.state_dim``: backbone space for the format-2
``GlobalHead``), and optionally the user's label set (the emotions an application scores for
this user). Because normalization is affine, raw sums stay valid when the normalization
statistics change later (``mean(z) = (mean(x) - mu) / sd``), and two updates of one user
commute: the store can apply them in either order.

Serialized as a compact binary blob for the store (``to_bytes``, magic ``SAU1``) and as JSON for
export (``to_json``). Blob format 2 (written since the unseen-corpora release) keeps the moments
as float32 and the class *means* as float16 (float32 when a value would not fit), so a
1920-dimensional user with 8 emotions takes about 46 kB; format 1 (float32 sums, float64
moments) is still read. What the blob reveals: the average embedding of the user's clips per
emotion and overall, and how many clips of each emotion they gave; no audio and no single clip.

Example:
    >>> import numpy as np
    >>> st = UserState.empty(2).add(np.array([[1.0, 0.0], [3.0, 2.0]]), ["sad", "sad"])
    >>> st.labels, st.counts.tolist(), st.mean.tolist()
    (('sad',), [2.0], [2.0, 1.0])
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidStateError
from ..normalization import shrink_to_global
from ..stats import ClassSums, RunningMoments
from .bounds import MAX_ABS_VALUE, check_counts, check_labels_field, check_magnitude, check_total

__all__ = ["UserState", "STATE_FORMAT"]

STATE_FORMAT = 2
_MAGIC = b"SAU1"
_F16_MAX = 60000.0


@dataclass(frozen=True)
class UserState:
    """One user's statistics; immutable (``add`` returns a new state).

    ``labels`` [C], ``counts`` [C] (clips per label), ``sums`` [C, D] (sum of raw embeddings),
    ``custom`` (labels this user created with ``add_emotion``), ``n``/``mean``/``m2`` [D]
    (Welford running statistics over every clip of the user, labelled or observed), ``labelset``
    (the emotions to score for this user; None: the tenant's or every available one).
    """

    dim: int
    labels: tuple[str, ...] = ()
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    custom: tuple[str, ...] = ()
    n: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    labelset: tuple[str, ...] | None = None

    @classmethod
    def empty(cls, dim: int) -> "UserState":
        return cls(dim=dim, sums=np.zeros((0, dim), np.float32), mean=np.zeros(dim, np.float64),
                   m2=np.zeros(dim, np.float64))

    def add(self, X: np.ndarray, y: Sequence[str], *, custom: Sequence[str] = ()) -> "UserState":
        """A new state with the clips ``X`` [N, D] labelled ``y`` [N] folded in."""
        X = np.asarray(X, dtype=np.float64)
        cls_sums = ClassSums(self.labels, self.counts, self.sums.astype(np.float64)).add(X, list(y))
        moments = self.moments.add(X)
        return replace(self, labels=cls_sums.labels, counts=cls_sums.counts,
                       sums=cls_sums.sums.astype(np.float32).reshape(len(cls_sums.labels), self.dim),
                       custom=tuple(dict.fromkeys(self.custom + tuple(custom))), n=int(moments.n),
                       mean=moments.mean, m2=moments.m2)

    def observe(self, X: np.ndarray) -> "UserState":
        """A new state with clips of unknown emotion ``X`` [N, D] folded into the moments only."""
        moments = self.moments.add(np.asarray(X, dtype=np.float64))
        return replace(self, n=int(moments.n), mean=moments.mean, m2=moments.m2)

    def with_labelset(self, labels: Sequence[str] | None) -> "UserState":
        """A new state scoring ``labels`` (None: the tenant's or every available emotion)."""
        return replace(self, labelset=None if labels is None else tuple(labels))

    @property
    def labelled(self) -> int:
        """Clips with a label (the rest of ``n`` were observed without one)."""
        return int(round(float(np.sum(self.counts))))

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
        """The compact store blob (format 2, see the module docstring)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(self.counts[:, None] > 0, self.sums / np.maximum(self.counts, 1)[:, None], 0.0)
        dtype = "<f2" if means.size == 0 or np.abs(means).max() < _F16_MAX else "<f4"
        mean = self.mean if self.mean is not None else np.zeros(self.dim)
        m2 = self.m2 if self.m2 is not None else np.zeros(self.dim)
        header = json.dumps({"v": STATE_FORMAT, "dim": self.dim, "labels": list(self.labels),
                             "counts": [float(c) for c in self.counts], "custom": list(self.custom),
                             "n": self.n, "means": dtype,
                             "labelset": None if self.labelset is None else list(self.labelset)}).encode()
        return (_MAGIC + struct.pack("<I", len(header)) + header + means.astype(dtype).tobytes()
                + np.asarray(mean).astype("<f4").tobytes() + np.asarray(m2).astype("<f4").tobytes())

    @classmethod
    def from_bytes(cls, blob: bytes) -> "UserState":
        if blob[:4] != _MAGIC:
            raise InvalidStateError("not a ser-adapt user state blob (bad magic)")
        try:
            (hlen,) = struct.unpack_from("<I", blob, 4)
            h = json.loads(blob[8:8 + hlen])
            v = h.get("v")
            if v not in (1, 2):
                raise InvalidStateError(f"unsupported user state format {v!r} (expected 1 or {STATE_FORMAT})")
            d, c = int(h["dim"]), len(h["labels"])
            counts = np.asarray(h["counts"], np.float64)
            off = 8 + hlen
            if v == 1:
                sums = np.frombuffer(blob, "<f4", c * d, off).reshape(c, d)
                mean = np.frombuffer(blob, "<f8", d, off + 4 * c * d)
                m2 = np.frombuffer(blob, "<f8", d, off + 4 * c * d + 8 * d)
            else:
                dt = np.dtype(h["means"])
                means = np.frombuffer(blob, dt, c * d, off).reshape(c, d).astype(np.float64)
                sums = (means * counts[:, None]).astype(np.float32)
                off += dt.itemsize * c * d
                mean = np.frombuffer(blob, "<f4", d, off).astype(np.float64)
                m2 = np.frombuffer(blob, "<f4", d, off + 4 * d).astype(np.float64)
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise InvalidStateError(f"corrupt user state blob: {exc}") from None
        labelset = h.get("labelset")
        return cls(dim=d, labels=tuple(h["labels"]), counts=counts, sums=sums, custom=tuple(h["custom"]),
                   n=int(h["n"]), mean=mean, m2=m2, labelset=None if labelset is None else tuple(labelset))

    def to_json(self) -> dict[str, Any]:
        return {"format": "ser-adapt.UserState", "version": STATE_FORMAT, "dim": self.dim,
                "labels": list(self.labels), "counts": self.counts.tolist(), "sums": self.sums.tolist(),
                "custom": list(self.custom), "n": self.n, "mean": self.mean.tolist(), "m2": self.m2.tolist(),
                "labelset": None if self.labelset is None else list(self.labelset)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "UserState":
        """Validate and restore an exported state; ``InvalidStateError`` (a ValueError) names what is wrong."""
        if not isinstance(d, dict) or d.get("format") != "ser-adapt.UserState":
            raise InvalidStateError("not an exported ser-adapt user state (format must be 'ser-adapt.UserState')")
        try:
            dim, labels = int(d["dim"]), tuple(str(x) for x in d["labels"])
            counts = np.asarray(d["counts"], np.float64)
            sums = np.asarray(d["sums"], np.float64).reshape(len(labels), dim)   # float32 once checked
            mean, m2 = np.asarray(d["mean"], np.float64), np.asarray(d["m2"], np.float64)
            n = int(d["n"])
            custom = d.get("custom", [])
            if not isinstance(custom, (list, tuple)) or not all(isinstance(c, str) for c in custom):
                raise TypeError(f"custom must be a list of labels, got {custom!r}")
            labelset = d.get("labelset")
            if labelset is not None and (not isinstance(labelset, (list, tuple)) or not labelset
                                         or not all(isinstance(c, str) for c in labelset)):
                raise TypeError(f"labelset must be null or a non-empty list of labels, got {labelset!r}")
        except (KeyError, TypeError, ValueError, OverflowError) as exc:   # OverflowError: int(inf)
            raise InvalidStateError(f"malformed user state: {exc}") from None
        if counts.shape != (len(labels),) or mean.shape != (dim,) or m2.shape != (dim,) or len(set(labels)) != len(labels):
            raise InvalidStateError(f"inconsistent user state: {len(labels)} labels, counts {counts.shape}, dim {dim}")
        for arr in (counts, sums, mean, m2):
            if not np.isfinite(arr).all():
                raise InvalidStateError("user state holds NaN or infinity")
        if (counts < 0).any() or n < 0 or (m2 < 0).any():
            raise InvalidStateError("user state holds negative counts or variances")
        # plausibility (adapt.personal.bounds): values that are finite but would overflow later
        what = "user state"
        check_counts(counts, what)
        check_total(n, what)
        check_labels_field(labels, what)
        check_labels_field(custom, f"{what} (own emotions)")
        if labelset is not None:
            check_labels_field(labelset, f"{what} (label set)")
        check_magnitude(sums / np.maximum(counts, 1)[:, None], f"{what} (class means)")
        check_magnitude(mean, f"{what} (mean)")
        check_magnitude(m2 / max(n, 1), f"{what} (variance)", MAX_ABS_VALUE**2)
        if not set(custom) <= set(labels):
            raise InvalidStateError(f"user state names own emotions {sorted(set(custom) - set(labels))} it has no clips of")
        if n < int(round(float(counts.sum()))):
            raise InvalidStateError(f"user state counts {int(counts.sum())} labelled clips but only {n} clips")
        return cls(dim=dim, labels=labels, counts=counts, sums=sums.astype(np.float32), custom=tuple(custom),
                   n=n, mean=mean, m2=m2, labelset=None if labelset is None else tuple(labelset))
