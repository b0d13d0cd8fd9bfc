"""A tenant's (deployment's) layer between the global head and its users: statistics only.

A tenant is one deployment: a language, a call centre, a device. Labelled clips of several of its
speakers (``Personalizer.enroll_tenant``) give it

* a **normalization prior**: the average centre and within-speaker variance of its speakers (in
  backbone space), which replaces the training speakers' prior for every user of the tenant, so a
  new user of a new microphone or language starts from the right frame;
* **class means in head space**: each speaker's clips standardized with that speaker's own
  statistics, projected, and summed per emotion; at predict time they are shrunk toward the
  global class means by ``Shrinkage.tau_tenant`` pseudo-clips. An emotion the global head lacks
  may be added at this level; every user of the tenant can then use it.

Every field is a sum or a count, so ``merge`` is commutative and concurrent tenant enrollments
never lose an update. What is stored reveals per-emotion averages over the tenant's enrolled
speakers and the average speaker centre; no audio, no single clip, no speaker identity.
Serialized as a binary blob for the store (magic ``SAT1``) and JSON for export.

Example:
    >>> import numpy as np
    >>> t = TenantState.empty(3, 2)
    >>> t.labels, t.n_speakers
    ((), 0)
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidStateError
from .bounds import MAX_ABS_VALUE, check_counts, check_labels_field, check_magnitude, check_total

__all__ = ["TenantState", "TENANT_FORMAT"]

TENANT_FORMAT = 1
_MAGIC = b"SAT1"


@dataclass(frozen=True)
class TenantState:
    """``dim`` (backbone space, the prior) and ``hdim`` (head space, the class sums); ``n_speakers``
    that contributed a prior, ``centre_sum`` / ``var_sum`` [dim] over them; ``labels`` [C],
    ``counts`` [C], ``head_sums`` [C, hdim]; ``labelset`` (the tenant's default emotions to score,
    None: every available one)."""

    dim: int
    hdim: int
    n_speakers: int = 0
    centre_sum: np.ndarray | None = None
    var_sum: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    head_sums: np.ndarray | None = None
    labelset: tuple[str, ...] | None = None

    @classmethod
    def empty(cls, dim: int, hdim: int) -> "TenantState":
        return cls(dim=dim, hdim=hdim, centre_sum=np.zeros(dim), var_sum=np.zeros(dim), counts=np.zeros(0),
                   head_sums=np.zeros((0, hdim)))

    @property
    def clips(self) -> int:
        return int(round(float(self.counts.sum())))

    def prior(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The tenant's normalization prior ``(mean, var)`` [dim], or None before any speaker."""
        if self.n_speakers <= 0:
            return None
        return self.centre_sum / self.n_speakers, np.maximum(self.var_sum / self.n_speakers, 1e-12)

    def add_speaker(self, labels: Sequence[str], counts: np.ndarray, sums: np.ndarray,
                    speaker_prior: tuple[np.ndarray, np.ndarray] | None) -> "TenantState":
        """A new state with one speaker's increments (``GlobalHead.speaker_head_sums``) added."""
        labs = list(self.labels)
        C = np.array(self.counts, np.float64)
        S = np.array(self.head_sums, np.float64)
        for lab, n, s in zip(labels, counts, sums):
            if lab not in labs:
                labs.append(lab)
                C = np.append(C, 0.0)
                S = np.vstack([S, np.zeros((1, self.hdim))])
            i = labs.index(lab)
            C[i] += float(n)
            S[i] += np.asarray(s, np.float64)
        n_spk, cs, vs = self.n_speakers, self.centre_sum, self.var_sum
        if speaker_prior is not None:
            n_spk, cs, vs = n_spk + 1, cs + speaker_prior[0], vs + speaker_prior[1]
        return replace(self, n_speakers=n_spk, centre_sum=cs, var_sum=vs, labels=tuple(labs), counts=C, head_sums=S)

    def with_labelset(self, labels: Sequence[str] | None) -> "TenantState":
        return replace(self, labelset=None if labels is None else tuple(labels))

    # -- persistence --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        header = json.dumps({"v": TENANT_FORMAT, "dim": self.dim, "hdim": self.hdim, "n_speakers": self.n_speakers,
                             "labels": list(self.labels), "counts": [float(c) for c in self.counts],
                             "labelset": None if self.labelset is None else list(self.labelset)}).encode()
        return (_MAGIC + struct.pack("<I", len(header)) + header + np.asarray(self.centre_sum, "<f8").tobytes()
                + np.asarray(self.var_sum, "<f8").tobytes() + np.asarray(self.head_sums, "<f8").tobytes())

    @classmethod
    def from_bytes(cls, blob: bytes) -> "TenantState":
        if blob[:4] != _MAGIC:
            raise InvalidStateError("not a ser-adapt tenant state blob (bad magic)")
        try:
            (hlen,) = struct.unpack_from("<I", blob, 4)
            h = json.loads(blob[8:8 + hlen])
            if h.get("v") != TENANT_FORMAT:
                raise InvalidStateError(f"unsupported tenant state format {h.get('v')!r}")
            d, hd, c = int(h["dim"]), int(h["hdim"]), len(h["labels"])
            off = 8 + hlen
            cs = np.frombuffer(blob, "<f8", d, off).copy()
            vs = np.frombuffer(blob, "<f8", d, off + 8 * d).copy()
            hs = np.frombuffer(blob, "<f8", c * hd, off + 16 * d).reshape(c, hd).copy()
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise InvalidStateError(f"corrupt tenant state blob: {exc}") from None
        ls = h.get("labelset")
        return cls(dim=d, hdim=hd, n_speakers=int(h["n_speakers"]), centre_sum=cs, var_sum=vs,
                   labels=tuple(h["labels"]), counts=np.asarray(h["counts"], np.float64), head_sums=hs,
                   labelset=None if ls is None else tuple(ls))

    def to_json(self) -> dict[str, Any]:
        return {"format": "ser-adapt.TenantState", "version": TENANT_FORMAT, "dim": self.dim, "hdim": self.hdim,
                "n_speakers": self.n_speakers, "centre_sum": np.asarray(self.centre_sum).tolist(),
                "var_sum": np.asarray(self.var_sum).tolist(), "labels": list(self.labels),
                "counts": np.asarray(self.counts).tolist(), "head_sums": np.asarray(self.head_sums).tolist(),
                "labelset": None if self.labelset is None else list(self.labelset)}

    @classmethod
    def from_json(cls, d: Any) -> "TenantState":
        """Validate and restore an exported tenant state; ``InvalidStateError`` names what is wrong."""
        if not isinstance(d, dict) or d.get("format") != "ser-adapt.TenantState":
            raise InvalidStateError("not an exported ser-adapt tenant state (format must be 'ser-adapt.TenantState')")
        try:
            dim, hdim, n_spk = int(d["dim"]), int(d["hdim"]), int(d["n_speakers"])
            labels = tuple(str(x) for x in d["labels"])
            counts = np.asarray(d["counts"], np.float64)
            cs, vs = np.asarray(d["centre_sum"], np.float64), np.asarray(d["var_sum"], np.float64)
            hs = np.asarray(d["head_sums"], np.float64).reshape(len(labels), hdim)
            ls = d.get("labelset")
            if ls is not None and (not isinstance(ls, list) or not ls or not all(isinstance(x, str) for x in ls)):
                raise TypeError(f"labelset must be null or a non-empty list of labels, got {ls!r}")
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidStateError(f"malformed tenant state: {exc}") from None
        if cs.shape != (dim,) or vs.shape != (dim,) or counts.shape != (len(labels),) or len(set(labels)) != len(labels):
            raise InvalidStateError(f"inconsistent tenant state: dim {dim}, {len(labels)} labels, counts {counts.shape}")
        for arr in (counts, cs, vs, hs):
            if not np.isfinite(arr).all():
                raise InvalidStateError("tenant state holds NaN or infinity")
        if (counts < 0).any() or n_spk < 0 or (vs < 0).any():
            raise InvalidStateError("tenant state holds negative counts or variances")
        # plausibility (adapt.personal.bounds): values that are finite but would overflow later
        what = "tenant state"
        check_counts(counts, what)
        check_total(n_spk, what, "speaker count")
        check_labels_field(labels, what)
        if ls is not None:
            check_labels_field(ls, f"{what} (label set)")
        check_magnitude(hs / np.maximum(counts, 1)[:, None], f"{what} (class means)")
        check_magnitude(cs / max(n_spk, 1), f"{what} (speaker centres)")
        check_magnitude(vs / max(n_spk, 1), f"{what} (speaker variances)", MAX_ABS_VALUE**2)
        return cls(dim=dim, hdim=hdim, n_speakers=n_spk, centre_sum=cs, var_sum=vs, labels=labels, counts=counts,
                   head_sums=hs, labelset=None if ls is None else tuple(ls))
