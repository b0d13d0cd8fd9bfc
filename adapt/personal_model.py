"""The math behind per-user personalization: a global head and small per-user statistics.

``GlobalHead`` is the shared, read-only model: global emotion prototypes in a speaker-normalized
embedding space, the global embedding mean/std (used for users without enrollment), and an
optional linear layer for unenrolled predictions. ``UserState`` is what a profile store keeps per
user: running mean/variance of the user's embeddings (speaker normalization) and, per emotion,
the count and sum of the user's raw embeddings. Raw sums stay valid when the normalization
statistics change later, because normalization is affine: ``mean(z) = (mean(x) - mu) / sd``.

Scoring for an enrolled user ``u`` (x: one embedding ``[D]``):

    z   = (x - mu_u) / sd_u                       # mu_u, sd_u shrunk toward the global stats
    p_c = (n_c * (s_c / n_c - mu_u) / sd_u + w * g_c) / (n_c + w)   # personal prototype, shrunk
    P(c | x) = softmax_c(cos(z, p_c) / T)

where ``g_c`` is the global prototype (absent for a user's own new emotion: then ``w = 0``) and
``w`` the prior weight in pseudo-clips, so a user's prototype moves from the global one to their
own mean as their clip count grows. For an enrolled user the logits of ``linear_user`` (a logistic
layer trained on speaker-normalized embeddings) are added to these prototype logits.

Same idea as ``adapt.heads.PrototypeHead(prior=...)`` and ``adapt.normalization.SpeakerNormalizer``,
but the per-user state is kept as *raw-space sufficient statistics* (counts, sums, Welford
moments): those make concurrent updates commute in the store and stay valid when the user's
normalization statistics change; ``PrototypeHead`` sums live in an already-normalized space.

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
    >>> y = np.array(["angry", "sad"] * 20)
    >>> head = GlobalHead.fit(X, y, speakers=np.array(["a"] * 20 + ["b"] * 20))
    >>> st = UserState.empty(8).add(X[:4], y[:4])
    >>> head.predict_proba_user(st, X[:2]).shape
    (2, 2)
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["GlobalHead", "UserState", "STATE_FORMAT"]

STATE_FORMAT = 1
_MAGIC = b"SAU1"


_BLAS: list = []


def _single_blas_thread(fn):
    """Run ``fn`` with one BLAS thread: its matrices are small, and on a busy CPU (a backbone's
    threads, other requests) multi-threaded OpenBLAS made a 39 x 1920 x 256 product ~10x slower."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not _BLAS:
            try:
                from threadpoolctl import ThreadpoolController

                _BLAS.append(ThreadpoolController())
            except Exception:  # noqa: BLE001 - threadpoolctl is optional; only speed depends on it
                _BLAS.append(None)
        if _BLAS[0] is None:
            return fn(*args, **kwargs)
        with _BLAS[0].limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-8)


@dataclass(frozen=True)
class GlobalHead:
    """Shared model: ``classes`` [C], ``prototypes`` [C, d] (normalized space), ``mean``/``std`` [d].

    ``projection`` (optional ``(center [D], W [D, d])``) maps a backbone embedding ``[D]`` to the
    head's space ``[d]`` first (standardize + PCA: smaller per-user state, faster scoring); every
    other array lives in that space, and the scoring methods take projected features
    (``project(X)``). ``linear`` (optional ``(W [C, d], b [C])``) scores users without enrollment;
    otherwise the prototypes do. ``info`` records how the head was made (backbone, corpora, command).
    """

    classes: tuple[str, ...]
    prototypes: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    temperature: float = 0.1
    linear: tuple[np.ndarray, np.ndarray] | None = None
    linear_user: tuple[np.ndarray, np.ndarray] | None = None
    projection: tuple[np.ndarray, np.ndarray] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        c, d = self.prototypes.shape
        if len(self.classes) != c or len(set(self.classes)) != c:
            raise ValueError(f"{c} prototypes but classes {self.classes!r} (must be {c} distinct names)")
        if self.mean.shape != (d,) or self.std.shape != (d,):
            raise ValueError(f"mean/std must have shape ({d},), got {self.mean.shape}/{self.std.shape}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("linear", "linear_user"):
            lin = getattr(self, name)
            if lin is not None and (lin[0].shape != (c, d) or lin[1].shape != (c,)):
                raise ValueError(f"{name} must be (W [{c}, {d}], b [{c}]), got {lin[0].shape}, {lin[1].shape}")
        if self.projection is not None:
            center, W = self.projection
            if W.ndim != 2 or W.shape[1] != d or center.shape != (W.shape[0],):
                raise ValueError(f"projection must be (center [D], W [D, {d}]), got {center.shape}, {W.shape}")

    @property
    def input_dim(self) -> int:
        """Dimension of the backbone embeddings the head accepts."""
        return int(self.projection[1].shape[0]) if self.projection is not None else self.dim

    @_single_blas_thread
    def project(self, X: np.ndarray) -> np.ndarray:
        """Backbone embeddings ``[N, input_dim]`` -> head features ``[N, dim]`` (float32)."""
        X = np.asarray(X, dtype=np.float32)
        if self.projection is None:
            return X
        return (X - self.projection[0]) @ self.projection[1]

    @property
    def dim(self) -> int:
        return int(self.prototypes.shape[1])

    @classmethod
    def fit(cls, X: np.ndarray, y: Sequence[str], *, speakers: Sequence[str], temperature: float = 0.1,
            linear: bool = False, C: float = 1.0, dim: int | None = None, norm_prior: float = 4.0,
            info: dict | None = None) -> "GlobalHead":
        """Fit on embeddings ``X`` [N, D] with labels ``y`` [N] and ``speakers`` [N].

        ``dim``: keep this many principal components of the globally standardized embeddings
        (None: no projection).

        Each speaker's embeddings are standardized with that speaker's own statistics (what an
        enrolled user gets), then class means give the prototypes; ``linear=True`` also fits a
        logistic regression on globally standardized embeddings (what an unenrolled user gets).
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).astype(str)
        spk = np.asarray(speakers).astype(str)
        if X.ndim != 2 or len(X) != len(y) or len(y) != len(spk):
            raise ValueError(f"X [N, D], y [N], speakers [N] expected, got {X.shape}, {y.shape}, {spk.shape}")
        proj = None
        if dim is not None:
            if not 1 <= dim <= min(X.shape):
                raise ValueError(f"dim must be in [1, {min(X.shape)}], got {dim}")
            c0, s0 = X.mean(0), X.std(0) + 1e-6
            _, _, Vt = np.linalg.svd((X - c0) / s0, full_matrices=False)
            W = (Vt[:dim].T / s0[:, None])
            proj = (c0.astype(np.float32), W.astype(np.float32))
            X = (X - c0) @ W
        mean, std = X.mean(0), X.std(0) + 1e-6
        # each training speaker is normalized exactly as an enrolled user will be (same shrinkage)
        Z = np.empty_like(X)
        for s in np.unique(spk):
            m = spk == s
            mu, sd = UserState.empty(X.shape[1]).add(X[m], ["_"] * int(m.sum())).normalizer(mean, std, norm_prior)
            Z[m] = (X[m] - mu) / sd
        classes = tuple(str(c) for c in sorted(set(y)))
        protos = np.stack([Z[y == c].mean(0) for c in classes])
        lin = lin_user = None
        if linear:
            from sklearn.linear_model import LogisticRegression

            def fit_lr(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit(F, y)
                order = [list(lr.classes_).index(c) for c in classes]
                return lr.coef_[order].astype(np.float32), lr.intercept_[order].astype(np.float32)

            lin, lin_user = fit_lr((X - mean) / std), fit_lr(Z)
        return cls(classes=classes, prototypes=protos.astype(np.float32), mean=mean.astype(np.float32),
                   std=std.astype(np.float32), temperature=float(temperature), linear=lin, linear_user=lin_user,
                   projection=proj, info=dict(info or {}))

    # -- scoring -----------------------------------------------------------------------------
    @_single_blas_thread
    def predict_proba_global(self, X: np.ndarray) -> np.ndarray:
        """``[N, C]`` probabilities over ``classes`` for a user without enrollment."""
        Z = (np.asarray(X, dtype=np.float32) - self.mean) / self.std
        if self.linear is not None:
            return _softmax(Z @ self.linear[0].T + self.linear[1])
        return _softmax(_unit(Z) @ _unit(self.prototypes).T / self.temperature)

    def user_classes(self, state: "UserState") -> tuple[str, ...]:
        """Global classes followed by the user's own emotions."""
        return self.classes + tuple(c for c in state.labels if c not in self.classes)

    @_single_blas_thread
    def predict_proba_user(self, state: "UserState", X: np.ndarray, *, prior_weight: float = 2.0,
                           norm_prior: float = 4.0, fuse_linear: bool = True) -> np.ndarray:
        """``[N, C_u]`` probabilities over ``user_classes(state)`` for an enrolled user.

        With ``fuse_linear`` and a ``linear_user`` layer, its logits on the user-normalized
        features are added to the prototype logits (a product of the two experts); a user's own
        emotions get the mean linear logit, so the prototypes alone decide about them."""
        mu, sd = state.normalizer(self.mean, self.std, norm_prior)
        Z = (np.asarray(X, dtype=np.float32) - mu) / sd
        classes = self.user_classes(state)
        protos = np.empty((len(classes), self.dim), dtype=np.float32)
        index = {c: i for i, c in enumerate(state.labels)}
        for k, c in enumerate(classes):
            g = self.prototypes[k] if k < len(self.classes) else None
            i = index.get(c)
            n = float(state.counts[i]) if i is not None else 0.0
            if n <= 0:
                protos[k] = g  # a global class this user has not enrolled (user classes always have n > 0)
                continue
            own = (state.sums[i] / n - mu) / sd
            w = prior_weight if g is not None else 0.0
            protos[k] = (n * own + w * (g if g is not None else 0.0)) / (n + w)
        logits = _unit(Z) @ _unit(protos).T / self.temperature
        if fuse_linear and self.linear_user is not None:
            lin = Z @ self.linear_user[0].T + self.linear_user[1]
            extra = len(classes) - len(self.classes)
            if extra:
                lin = np.concatenate([lin, np.repeat(lin.mean(1, keepdims=True), extra, axis=1)], axis=1)
            logits = logits + lin
        return _softmax(logits)

    # -- persistence -------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """JSON-serializable state (lists/floats/str); ``GlobalHead.from_state`` restores it."""
        d = {"format": "ser-adapt.GlobalHead", "version": 1, "classes": list(self.classes),
             "prototypes": self.prototypes.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist(),
             "temperature": self.temperature, "info": self.info}
        for name in ("linear", "linear_user"):
            lin = getattr(self, name)
            if lin is not None:
                d[name] = {"W": lin[0].tolist(), "b": lin[1].tolist()}
        if self.projection is not None:
            d["projection"] = {"center": self.projection[0].tolist(), "W": self.projection[1].tolist()}
        return d

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> "GlobalHead":
        if not isinstance(d, dict) or d.get("format") != "ser-adapt.GlobalHead":
            raise ValueError("not a ser-adapt GlobalHead state (missing format 'ser-adapt.GlobalHead')")
        f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
        lin = (f32(d["linear"]["W"]), f32(d["linear"]["b"])) if d.get("linear") else None
        lin_user = (f32(d["linear_user"]["W"]), f32(d["linear_user"]["b"])) if d.get("linear_user") else None
        proj = (f32(d["projection"]["center"]), f32(d["projection"]["W"])) if d.get("projection") else None
        return cls(classes=tuple(str(c) for c in d["classes"]), prototypes=f32(d["prototypes"]), mean=f32(d["mean"]),
                   std=f32(d["std"]), temperature=float(d["temperature"]), linear=lin, linear_user=lin_user, projection=proj,
                   info=d.get("info", {}))

    def save(self, path) -> None:
        """Write the head: ``.npz`` (compact float32 arrays + JSON metadata) or JSON otherwise."""
        if str(path).endswith(".npz"):
            state = self.get_state()
            arrays = {"prototypes": self.prototypes, "mean": self.mean, "std": self.std}
            if self.linear is not None:
                arrays.update(linear_W=self.linear[0], linear_b=self.linear[1])
            if self.linear_user is not None:
                arrays.update(linear_user_W=self.linear_user[0], linear_user_b=self.linear_user[1])
            if self.projection is not None:
                arrays.update(projection_center=self.projection[0], projection_W=self.projection[1])
            meta = {k: v for k, v in state.items() if k not in ("prototypes", "mean", "std", "linear", "linear_user", "projection")}
            # the [D, d] projection dominates the file; float16 halves it (relative error ~5e-4)
            packed = {k: np.asarray(v, np.float16 if k == "projection_W" else np.float32) for k, v in arrays.items()}
            with open(path, "wb") as fh:
                np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **packed)
            return
        with open(path, "w") as fh:
            json.dump(self.get_state(), fh, separators=(",", ":"))

    @classmethod
    def load(cls, path) -> "GlobalHead":
        """Read a head written by ``save`` (``.npz`` or JSON)."""
        if str(path).endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                d = json.loads(str(z["meta"]))
                d.update(prototypes=z["prototypes"], mean=z["mean"], std=z["std"])
                if "linear_W" in z:
                    d["linear"] = {"W": z["linear_W"], "b": z["linear_b"]}
                if "linear_user_W" in z:
                    d["linear_user"] = {"W": z["linear_user_W"], "b": z["linear_user_b"]}
                if "projection_W" in z:
                    d["projection"] = {"center": z["projection_center"], "W": z["projection_W"].astype(np.float32)}
            return cls.from_state(d)
        with open(path) as fh:
            return cls.from_state(json.load(fh))


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
        labels = list(self.labels)
        counts = list(self.counts)
        sums = [row.astype(np.float64) for row in self.sums]
        for lab in y:
            if lab not in labels:
                labels.append(lab), counts.append(0.0), sums.append(np.zeros(self.dim))
        index = {c: i for i, c in enumerate(labels)}
        for x, lab in zip(X, y):
            counts[index[lab]] += 1.0
            sums[index[lab]] = sums[index[lab]] + x
        # Chan et al. parallel update of the running mean / M2 with the batch's statistics
        nb = len(X)
        mb, m2b = X.mean(0), ((X - X.mean(0)) ** 2).sum(0)
        n = self.n + nb
        delta = mb - self.mean
        mean = self.mean + delta * nb / n
        m2 = self.m2 + m2b + delta ** 2 * self.n * nb / n
        return UserState(dim=self.dim, labels=tuple(labels), counts=np.asarray(counts, np.float64),
                         sums=np.asarray(sums, np.float32).reshape(len(labels), self.dim),
                         custom=tuple(dict.fromkeys(self.custom + tuple(custom))), n=n, mean=mean, m2=m2)

    def normalizer(self, g_mean: np.ndarray, g_std: np.ndarray, prior: float) -> tuple[np.ndarray, np.ndarray]:
        """User mean/std pooled with ``prior`` pseudo-clips drawn from the global statistics."""
        n, k = float(self.n), float(prior)
        mu = (n * self.mean + k * g_mean) / (n + k)
        var = (self.m2 + k * g_std.astype(np.float64) ** 2 + (n * k / (n + k)) * (self.mean - g_mean) ** 2) / (n + k)
        return mu.astype(np.float32), np.sqrt(var).astype(np.float32) + 1e-6

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
            raise ValueError("not a ser-adapt user state blob (bad magic)")
        (hlen,) = struct.unpack_from("<I", blob, 4)
        h = json.loads(blob[8:8 + hlen])
        if h.get("v") != STATE_FORMAT:
            raise ValueError(f"unsupported user state format {h.get('v')!r} (expected {STATE_FORMAT})")
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
        """Validate and restore an exported state; ValueError names what is wrong."""
        if not isinstance(d, dict) or d.get("format") != "ser-adapt.UserState":
            raise ValueError("not an exported ser-adapt user state (format must be 'ser-adapt.UserState')")
        try:
            dim, labels = int(d["dim"]), tuple(str(x) for x in d["labels"])
            counts = np.asarray(d["counts"], np.float64)
            sums = np.asarray(d["sums"], np.float32).reshape(len(labels), dim)
            mean, m2 = np.asarray(d["mean"], np.float64), np.asarray(d["m2"], np.float64)
            n = int(d["n"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed user state: {exc}") from None
        if counts.shape != (len(labels),) or mean.shape != (dim,) or m2.shape != (dim,) or len(set(labels)) != len(labels):
            raise ValueError(f"inconsistent user state: {len(labels)} labels, counts {counts.shape}, dim {dim}")
        for arr in (counts, sums, mean, m2):
            if not np.isfinite(arr).all():
                raise ValueError("user state holds NaN or infinity")
        if (counts < 0).any() or n < 0 or (m2 < 0).any():
            raise ValueError("user state holds negative counts or variances")
        return cls(dim=dim, labels=labels, counts=counts, sums=sums, custom=tuple(d.get("custom", ())),
                   n=n, mean=mean, m2=m2)
