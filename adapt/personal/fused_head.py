"""The first release's per-user model (head format 1): fused cosine prototypes + a logistic layer.

Kept for two reasons: heads saved by the first release (``format 1``) still load
(``adapt.personal.load_head`` returns this class for them), and the unseen-corpus benchmark
(``benchmarks.unseen``) reports it as "today's fused" next to its successor, the transfer LDA
``adapt.personal.FusedPrototypeHead`` (format 2). A ``Personalizer`` serves format-2 heads only: a
format-1 user state lives in the PCA space of its own head, so an upgrade means re-enrollment.

``FusedPrototypeHead`` is the shared, read-only model: global emotion prototypes in a speaker-normalized
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

The prototype shrinkage and the cosine logits are the ones of ``adapt.heads.PrototypeHead``
(``shrink_prototypes``, ``cosine_logits``); the user's normalization is
``adapt.normalization.shrink_to_global``. The per-user state (``adapt.personal.user_state``) is
kept as *raw-space sufficient statistics* (counts, sums, running moments): those make concurrent
updates commute in the store and stay valid when the user's normalization statistics change.

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
    >>> y = np.array(["angry", "sad"] * 20)
    >>> head = FusedPrototypeHead.fit(X, y, speakers=np.array(["a"] * 20 + ["b"] * 20))
    >>> st = UserState.empty(8).add(X[:4], y[:4])
    >>> head.predict_proba_user(st, X[:2]).shape
    (2, 2)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidStateError
from ..heads.prototype import cosine_logits, shrink_prototypes
from ..normalization import shrink_to_global
from ..stats import RunningMoments, Standardizer, softmax
from ..threads import single_blas_thread
from .user_state import UserState

__all__ = ["FusedPrototypeHead", "FORMAT_VERSION"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class FusedPrototypeHead:
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

    @single_blas_thread
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
            info: dict | None = None) -> "FusedPrototypeHead":
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
            pre = Standardizer().fit(X)
            c0, s0 = pre.mean_, pre.scale_
            _, _, Vt = np.linalg.svd((X - c0) / s0, full_matrices=False)
            W = (Vt[:dim].T / s0[:, None])
            proj = (c0.astype(np.float32), W.astype(np.float32))
            X = (X - c0) @ W
        glob = Standardizer().fit(X)
        mean, std = glob.mean_, glob.scale_
        # each training speaker is normalized exactly as an enrolled user will be (same shrinkage)
        Z = np.empty_like(X)
        for s in np.unique(spk):
            m = spk == s
            mu, sd = shrink_to_global(RunningMoments.of(X[m]), mean, std, norm_prior)
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
    @single_blas_thread
    def predict_proba_global(self, X: np.ndarray) -> np.ndarray:
        """``[N, C]`` probabilities over ``classes`` for a user without enrollment."""
        Z = (np.asarray(X, dtype=np.float32) - self.mean) / self.std
        if self.linear is not None:
            return softmax(Z @ self.linear[0].T + self.linear[1])
        return softmax(cosine_logits(Z, self.prototypes, self.temperature))

    def user_classes(self, state: "UserState") -> tuple[str, ...]:
        """Global classes followed by the user's own emotions."""
        return self.classes + tuple(c for c in state.labels if c not in self.classes)

    @single_blas_thread
    def predict_proba_user(self, state: "UserState", X: np.ndarray, *, prior_weight: float = 2.0,
                           norm_prior: float = 4.0, fuse_linear: bool = True) -> np.ndarray:
        """``[N, C_u]`` probabilities over ``user_classes(state)`` for an enrolled user.

        With ``fuse_linear`` and a ``linear_user`` layer, its logits on the user-normalized
        features are added to the prototype logits (a product of the two experts); a user's own
        emotions get the mean linear logit, so the prototypes alone decide about them."""
        mu, sd = state.normalizer(self.mean, self.std, norm_prior)
        Z = (np.asarray(X, dtype=np.float32) - mu) / sd
        classes = self.user_classes(state)
        index = {c: i for i, c in enumerate(state.labels)}
        sums = np.zeros((len(classes), self.dim))
        counts = np.zeros(len(classes))
        prior = np.full((len(classes), self.dim), np.nan)
        prior[:len(self.classes)] = self.prototypes
        for k, c in enumerate(classes):
            i = index.get(c)
            if i is not None and state.counts[i] > 0:
                counts[k] = state.counts[i]
                # the user's mean in the user's normalized space, times n: a normalized "sum"
                sums[k] = (state.sums[i] / state.counts[i] - mu) / sd * state.counts[i]
        # a global class the user has not enrolled keeps the global prototype (n = 0: the prior
        # alone); a user's own emotion has no prior (its row of ``prior`` is NaN)
        protos = shrink_prototypes(sums, counts, prior, prior_weight)
        logits = cosine_logits(Z, protos, self.temperature)
        if fuse_linear and self.linear_user is not None:
            lin = Z @ self.linear_user[0].T + self.linear_user[1]
            extra = len(classes) - len(self.classes)
            if extra:
                lin = np.concatenate([lin, np.repeat(lin.mean(1, keepdims=True), extra, axis=1)], axis=1)
            logits = logits + lin
        return softmax(logits)

    # -- persistence -------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """JSON-serializable state (lists/floats/str); ``FusedPrototypeHead.from_state`` restores it."""
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
    def from_state(cls, d: dict[str, Any]) -> "FusedPrototypeHead":
        if not isinstance(d, dict) or d.get("format") != "ser-adapt.GlobalHead":
            raise InvalidStateError("not a ser-adapt head state (missing format 'ser-adapt.GlobalHead')")
        if d.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise InvalidStateError(f"head format version {d.get('version')!r} is not {FORMAT_VERSION}: "
                                    f"use adapt.personal.load_head")
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
    def load(cls, path) -> "FusedPrototypeHead":
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


