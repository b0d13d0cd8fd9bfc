"""The shared model of the Personalizer: a transfer LDA in a speaker-standardized space (format 2).

A frozen encoder's embedding of a clip mixes who speaks, how they were recorded and how they
feel. Across corpora the first two move far more than the third, so a head trained on some
corpora meets a new corpus close to chance. This head is built so that a deployment can remove
the speaker and channel part with *statistics only* (no labels, no training at run time):

1. **Speaker standardization.** Every training speaker is standardized with their own
   emotion-balanced mean and standard deviation (a speaker acting fewer than two emotions gets the
   pooled statistics of their corpus, as in ``adapt.normalization.standardize_by_speaker``). A
   user is standardized the same way with the running moments of *their* clips, shrunk toward
   the training speakers' average centre and within-speaker variance (``prior_mean``,
   ``prior_var``) by pseudo-counts (``Shrinkage``): labelled or not, every clip of the user
   sharpens it (``Personalizer.observe``).
2. **PCA** to ``dim`` components of the standardized training embeddings (``projection``).
3. **Shrinkage LDA.** Class means are averaged over corpora (each corpus weighs the same),
   the within-class covariance is pooled and shrunk toward a scaled identity
   (``lda_shrinkage``), and a clip ``h`` scores ``h·A·m_c - ½ m_c·A·m_c`` for class mean ``m_c``
   and precision ``A``.
4. **Per user / per tenant.** A user's class means (from their labelled clips, standardized with
   their current statistics) are shrunk toward the global means with ``tau`` pseudo-clips; a
   tenant's means (labelled clips of several speakers of a deployment) toward the global means
   with ``tau_tenant``. Everything a user or tenant adds is a sum or a count, so concurrent updates
   commute and the store never needs their clips.

Why LDA (``benchmarks.unseen`` and ``benchmarks.transfer``, BENCHMARKS.md): on leave one corpus out
over the six shipped corpora, with every setting chosen by leaving one *training* corpus out,
shrinkage LDA on speaker-standardized features tied a logistic layer for unenrolled users (mean UA
0.416 vs 0.418; LDA ahead on URDU and EmoDB, behind on RAVDESS and rcebrian_es), beat an MLP,
domain-adversarial training, group DRO over corpora and cross-corpus mixup by 4-6 points on
average, and its per-user form (class means shrunk by counts) beat the first release's fused
cosine prototypes and an L2-SP fine-tuned linear head per user (``linear-ft+norm``) at 5 shots.
LDA is kept over the logistic layer because its class means are exactly what a user or a tenant
adapts from sums, with no training at run time. scikit-learn's ``LinearDiscriminantAnalysis`` is
not used because the per-user path needs the class means and the precision separately (a user's
means replace the global ones at predict time), and because the class means here are
corpus-balanced.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 8)).astype("float32")
    >>> y = np.array(["angry", "sad"] * 40)
    >>> head = GlobalHead.fit(X, y, speakers=np.repeat(["a", "b", "c", "d"], 20), dim=4)
    >>> classes, P = head.predict_proba(X[:3])
    >>> classes, P.shape
    (('angry', 'sad'), (3, 2))
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InvalidStateError, UnknownLabelError
from ..stats import STD_FLOOR, softmax
from ..threads import single_blas_thread
from .calibration import Calibration, calibration_features
from .user_state import UserState

__all__ = ["GlobalHead", "Shrinkage", "FORMAT_VERSION", "load_head"]

FORMAT_VERSION = 2
_FORMAT = "ser-adapt.GlobalHead"


@dataclass(frozen=True)
class Shrinkage:
    """Pseudo-counts that pull a user's (or tenant's) statistics toward their parent's.

    ``mean_unlabelled`` / ``mean_labelled``: clips of the prior centre in the mean of a user with
    no labelled clip / with some; ``var``: clips of the prior within-speaker variance in a user's
    variance; ``tau``: clips of the global class mean in a user's class mean; ``tau_tenant``: clips
    of the global class mean in a tenant's class mean; ``global_weight``: weight of the global
    means' logits next to the tenant means' logits for a user without labels. The defaults were
    chosen by leaving one *training* corpus out (BENCHMARKS.md, "Unseen corpora").

    A user's own emotion (``Personalizer.add_emotion``) has no parent mean: ``own_tau`` clips of
    the head's centre (the average of the global class means, "no emotion in particular") pull
    its mean in, and ``own_offset`` is subtracted from its logit (open-set calibration), so a
    class known from a few clips neither vanishes nor absorbs the user's other clips. With
    ``own_centre > 0``, clips of the user's own emotions do not switch the user's centre to the
    labelled pseudo-count (``mean_labelled``): they say nothing about where the known emotions are
    centred. The defaults (1, 2, 1) were chosen with ``scenarios.lifelong.select_own_emotion`` on
    RAVDESS, EmoDB, EMOVO and rcebrian_es (BENCHMARKS.md "Lifelong", which also picks a setting
    per corpus with that corpus left out); all three at 0 is ``add_emotion`` before issue 18. A
    head file written before these fields existed loads with the defaults.
    """

    mean_unlabelled: float = 5.0
    mean_labelled: float = 20.0
    var: float = 20.0
    tau: float = 2.0
    tau_tenant: float = 16.0
    global_weight: float = 2.0
    own_tau: float = 1.0
    own_offset: float = 2.0
    own_centre: float = 1.0

    def __post_init__(self) -> None:
        for name, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"Shrinkage.{name} must be a finite number >= 0, got {v!r}")


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _balanced_moments(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Emotion-balanced mean and variance ``[D]`` of ``X`` (each emotion weighs the same)."""
    classes, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    w = 1.0 / (counts[inv] * len(classes))
    mean = w @ X
    var = w @ (X - mean) ** 2
    return mean, var


@dataclass(frozen=True)
class GlobalHead:
    """Format-2 global head (see the module docstring for the maths).

    Arrays: ``means`` [C, d] (corpus-balanced class means in head space), ``precision`` [d, d],
    ``projection`` ``(center [D], W [D, d])`` (head space = ``(z - center) @ W`` for a
    standardized embedding ``z``), ``prior_mean`` / ``prior_var`` [D] (average training-speaker
    centre and within-speaker variance, in backbone space). ``info`` records how it was made.
    ``calibration`` (``adapt.personal.calibration``): per-path temperatures applied by
    ``predict_proba`` and the ``uncertain`` thresholds the ``Personalizer`` uses; the default
    (``T = 1``, no threshold) is what a head file without one loads with.
    """

    classes: tuple[str, ...]
    means: np.ndarray
    precision: np.ndarray
    projection: tuple[np.ndarray, np.ndarray]
    prior_mean: np.ndarray
    prior_var: np.ndarray
    shrinkage: Shrinkage = field(default_factory=Shrinkage)
    info: dict = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)

    def __post_init__(self) -> None:
        c, d = self.means.shape
        if len(self.classes) != c or len(set(self.classes)) != c:
            raise ValueError(f"{c} class means but classes {self.classes!r} (must be {c} distinct names)")
        center, W = self.projection
        if W.ndim != 2 or W.shape[1] != d or center.shape != (W.shape[0],):
            raise ValueError(f"projection must be (center [D], W [D, {d}]), got {center.shape}, {W.shape}")
        if self.precision.shape != (d, d):
            raise ValueError(f"precision must be [{d}, {d}], got {self.precision.shape}")
        D = W.shape[0]
        if self.prior_mean.shape != (D,) or self.prior_var.shape != (D,) or not (self.prior_var > 0).all():
            raise ValueError(f"prior_mean / prior_var must be [{D}] (variance > 0)")
        for name in ("means", "precision", "prior_mean", "prior_var"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} holds NaN or infinity")

    @property
    def input_dim(self) -> int:
        """Dimension ``D`` of the backbone embeddings the head accepts (and of user statistics)."""
        return int(self.projection[1].shape[0])

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the head space."""
        return int(self.means.shape[1])

    @property
    def state_dim(self) -> int:
        """Dimension of the statistics a ``UserState`` for this head keeps (backbone space)."""
        return self.input_dim

    # -- training ----------------------------------------------------------------------------
    @classmethod
    @single_blas_thread
    def fit(cls, X: np.ndarray, y: Sequence[str], *, speakers: Sequence[str], corpora: Sequence[str] | None = None,
            dim: int | None = 256, lda_shrinkage: float = 0.3, min_emotions: int = 2,
            shrinkage: Shrinkage | None = None, info: dict | None = None) -> "GlobalHead":
        """Fit on embeddings ``X`` [N, D], labels ``y`` [N], ``speakers`` [N], ``corpora`` [N].

        ``corpora`` (default: one corpus) balances the class means over corpora and gives
        speakers with fewer than ``min_emotions`` emotions their corpus's pooled statistics.
        ``dim``: PCA components kept (``None`` or more than the data allow: as many as they
        allow, ``min(N - 1, D)``). ``lda_shrinkage`` in [0, 1]: weight of the scaled identity in
        the within-class covariance.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).astype(str)
        spk = np.asarray(speakers).astype(str)
        grp = np.zeros(len(X), dtype=str) if corpora is None else np.asarray(corpora).astype(str)
        if X.ndim != 2 or not len(X) == len(y) == len(spk) == len(grp):
            raise ValueError(f"X [N, D], y [N], speakers [N], corpora [N] expected, got {X.shape}, {y.shape}, "
                             f"{spk.shape}, {grp.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X holds NaN or infinity")
        if len(np.unique(y)) < 2:
            raise ValueError("need at least two emotions to fit a head")
        if not 0.0 <= lda_shrinkage <= 1.0:
            raise ValueError(f"lda_shrinkage must be in [0, 1], got {lda_shrinkage}")
        N, D = X.shape
        # 1. per-speaker standardization (pooled corpus statistics for single-emotion speakers)
        Z = np.empty_like(X)
        centres, variances = [], []
        pooled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for s in np.unique(spk):
            rows = np.flatnonzero(spk == s)
            if len(np.unique(y[rows])) >= min_emotions and len(rows) >= 2:
                mu, var = _balanced_moments(X[rows], y[rows])
                centres.append(mu), variances.append(var)
            else:
                g = grp[rows[0]]
                if g not in pooled:
                    in_g = grp == g
                    pooled[g] = _balanced_moments(X[in_g], y[in_g])
                mu, var = pooled[g]
            Z[rows] = (X[rows] - mu) / np.maximum(np.sqrt(var), STD_FLOOR)
        if centres:
            prior_mean, prior_var = np.mean(centres, axis=0), np.mean(variances, axis=0)
        else:
            prior_mean, prior_var = _balanced_moments(X, y)
        prior_var = np.maximum(prior_var, STD_FLOOR ** 2)
        # 2. PCA of the standardized embeddings
        center = Z.mean(axis=0)
        k = min(dim or D, D, N - 1)
        _, _, Vt = np.linalg.svd(Z - center, full_matrices=False)
        W = Vt[:k].T
        H = (Z - center) @ W
        # 3. corpus-balanced class means, pooled within-class covariance, shrunk toward the identity
        classes = tuple(sorted(set(y.tolist())))
        means = np.zeros((len(classes), k))
        resid = np.empty_like(H)
        for i, c in enumerate(classes):
            per_corpus = [H[(y == c) & (grp == g)].mean(axis=0) for g in np.unique(grp[y == c])]
            means[i] = np.mean(per_corpus, axis=0)
            resid[y == c] = H[y == c] - means[i]
        S = resid.T @ resid / max(N - len(classes), 1)
        S = (1.0 - lda_shrinkage) * S + lda_shrinkage * (np.trace(S) / k) * np.eye(k)
        precision = np.linalg.inv(S)
        precision = (precision + precision.T) / 2
        meta = dict(info or {})
        meta.setdefault("recipe", {"dim": int(k), "lda_shrinkage": float(lda_shrinkage),
                                   "min_emotions": int(min_emotions), "speakers": int(len(np.unique(spk))),
                                   "clips": int(N), "corpora": sorted(set(grp.tolist())) if corpora is not None else []})
        return cls(classes=classes, means=_f32(means), precision=_f32(precision),
                   projection=(_f32(center), _f32(W)), prior_mean=_f32(prior_mean), prior_var=_f32(prior_var),
                   shrinkage=shrinkage or Shrinkage(), info=meta)

    # -- the maths of one user ---------------------------------------------------------------
    def normalizer(self, n: float, mean: np.ndarray | None, m2: np.ndarray | None, *, labelled: bool,
                   prior: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A user's centre and scale ``[D]`` from their running moments (``n`` clips, ``mean``,
        ``m2``), shrunk toward ``prior`` (``(mean, var)``; default the training speakers')."""
        pm, pv = prior if prior is not None else (self.prior_mean, self.prior_var)
        pm, pv = np.asarray(pm, np.float64), np.asarray(pv, np.float64)
        sh = self.shrinkage
        km = sh.mean_labelled if labelled else sh.mean_unlabelled
        if n <= 0 or mean is None:
            return _f32(pm), _f32(np.sqrt(pv))
        mu = (n * np.asarray(mean, np.float64) + km * pm) / (n + km)
        var = (np.asarray(m2, np.float64) + sh.var * pv) / (n + sh.var)
        return _f32(mu), _f32(np.maximum(np.sqrt(var), STD_FLOOR))

    def to_head_space(self, X: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Backbone embeddings ``[N, D]`` standardized with ``(mu, sd)`` -> head space ``[N, d]``."""
        center, W = self.projection
        return ((np.asarray(X, np.float32) - mu) / sd - center) @ W

    def logits(self, H: np.ndarray, means: np.ndarray) -> np.ndarray:
        """LDA scores ``[N, C]`` of head-space rows ``H`` against class means ``[C, d]``."""
        AM = means @ self.precision            # [C, d] (A is symmetric)
        return H @ AM.T - 0.5 * np.einsum("cd,cd->c", AM, means)

    def speaker_head_sums(self, X: np.ndarray, labels: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray,
                                                                             tuple[np.ndarray, np.ndarray] | None]:
        """One speaker's labelled clips as tenant increments: ``(labels, counts [C], head-space
        sums [C, d], (centre, var) or None)``. The speaker is standardized with their own clips
        (shrunk toward the training speakers' prior as a labelled user is); their centre and
        variance count toward the tenant's prior when they act at least two emotions."""
        X = np.asarray(X, np.float64)
        y = np.asarray(labels).astype(str)
        st = UserState.empty(self.input_dim).add(X, y.tolist())
        mu, sd = self.normalizer(st.n, st.mean, st.m2, labelled=True)
        H = self.to_head_space(X, mu, sd).astype(np.float64)
        labs = tuple(sorted(set(y.tolist())))
        counts = np.array([(y == c).sum() for c in labs], np.float64)
        sums = np.stack([H[y == c].sum(axis=0) for c in labs])
        spk_prior = _balanced_moments(X, y) if len(labs) >= 2 and len(X) >= 2 else None
        return labs, counts, sums, spk_prior

    # -- prediction --------------------------------------------------------------------------
    def available_classes(self, state: UserState | None = None, tenant: Any = None) -> tuple[str, ...]:
        """Global classes, then the tenant's own, then the user's own."""
        out = list(self.classes)
        for extra in ((tenant.labels if tenant is not None else ()), (state.labels if state is not None else ())):
            out += [c for c in extra if c not in out]
        return tuple(out)

    @staticmethod
    def is_enrolled(state: UserState | None) -> bool:
        """Whether ``state`` takes the enrolled path (at least one labelled clip)."""
        return state is not None and float(np.sum(state.counts)) > 0

    @single_blas_thread
    def predict_proba(self, X: np.ndarray, state: UserState | None = None, tenant: Any = None,
                      labels: Sequence[str] | None = None, *,
                      calibrated: bool = True) -> tuple[tuple[str, ...], np.ndarray]:
        """``(classes, P [N, len(classes)])`` for backbone embeddings ``X`` [N, D].

        ``state``: the user's statistics (None: a user never seen); ``tenant``: a
        ``TenantState`` (None: none); ``labels``: the classes to score (default: every
        available one); one that is not available raises ``UnknownLabelError``.
        ``calibrated``: apply the path's calibration (``calibration.apply``: the temperature, a
        function of the clip's and the user's ``calibration_features`` where the path has
        ``terms``, then the per-class bias; the enrolled path when the user has a labelled clip);
        the temperature alone never changes the top class, a bias can.
        """
        classes, logits, H = self._scores(X, state, tenant, labels)
        if not calibrated:
            return classes, softmax(logits, axis=1).astype(np.float32)
        enrolled = self.is_enrolled(state)
        feats = (calibration_features(self, X, state, tenant, head_space=H) if self.calibration.terms(enrolled)
                 else None)
        return classes, softmax(self.calibration.apply(logits, classes, enrolled, feats), axis=1).astype(np.float32)

    def user_normalizer(self, state: UserState | None, tenant: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sd)``: the standardization of a prediction for the user of ``state`` (None: a
        user never seen), with ``tenant``'s prior (``TenantState`` or None)."""
        prior = tenant.prior() if tenant is not None else None
        if state is None:
            return self.normalizer(0, None, None, labelled=False, prior=prior)
        # clips of the user's own emotions say nothing about where the known emotions are
        # centred: with ``own_centre`` they do not switch the centre to the labelled prior
        shared = self.is_enrolled(state) and (self.shrinkage.own_centre <= 0 or any(
            n > 0 and c not in state.custom for c, n in zip(state.labels, state.counts)))
        return self.normalizer(state.n, state.mean, state.m2, labelled=shared, prior=prior)

    @single_blas_thread
    def predict_logits(self, X: np.ndarray, state: UserState | None = None, tenant: Any = None,
                       labels: Sequence[str] | None = None) -> tuple[tuple[str, ...], np.ndarray]:
        """``(classes, logits [N, len(classes)])``: the uncalibrated scores behind ``predict_proba``."""
        classes, logits, _ = self._scores(X, state, tenant, labels)
        return classes, logits

    def _scores(self, X: np.ndarray, state: UserState | None, tenant: Any,
                labels: Sequence[str] | None) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """``predict_logits`` and the clips in head space ``H`` [N, dim] it scored (which
        ``calibration_features`` needs too)."""
        available = self.available_classes(state, tenant)
        classes = available if labels is None else tuple(labels)
        missing = [c for c in classes if c not in available]
        if missing:
            raise UnknownLabelError(f"unknown emotion(s) {missing}: this user can be scored on {list(available)}")
        if not classes:
            raise UnknownLabelError("the label set is empty")
        g_index = {c: i for i, c in enumerate(self.classes)}
        t_index = {c: i for i, c in enumerate(tenant.labels)} if tenant is not None else {}
        u_index = {c: i for i, c in enumerate(state.labels)} if state is not None else {}
        labelled = self.is_enrolled(state)
        mu, sd = self.user_normalizer(state, tenant)
        H = self.to_head_space(X, mu, sd)
        sh = self.shrinkage
        tenant_means = {}
        for c, i in t_index.items():       # a tenant's class means, shrunk toward the global ones
            n_t, s_t = float(tenant.counts[i]), tenant.head_sums[i].astype(np.float32)
            if c in g_index:
                tenant_means[c] = (s_t + sh.tau_tenant * self.means[g_index[c]]) / (n_t + sh.tau_tenant)
            elif n_t > 0:
                tenant_means[c] = s_t / n_t
        if labelled:
            # a user with labels: their class means shrunk toward the global means (the tenant's
            # for a class the global head lacks); the tenant only supplied the normalization prior
            C_mu = np.zeros((len(classes), self.dim), np.float32)
            rows = [u_index.get(c) for c in classes]
            own = [k for k, i in enumerate(rows) if i is not None and state.counts[i] > 0]
            if own:   # the user's class means in head space, standardized with their current statistics
                idx = [rows[k] for k in own]
                n_own = state.counts[idx].astype(np.float32)
                M = self.to_head_space(state.sums[idx] / n_own[:, None], mu, sd)
            centre = self.means.mean(axis=0)
            orphan = []   # a user's own emotion: no global or tenant mean to shrink toward
            for k, c in enumerate(classes):
                parent = self.means[g_index[c]] if c in g_index else tenant_means.get(c)
                if k in own:
                    j = own.index(k)
                    n_c, m_c = float(n_own[j]), M[j]
                    if parent is None:
                        orphan.append(k)
                        C_mu[k] = (n_c * m_c + sh.own_tau * centre) / (n_c + sh.own_tau)
                    else:
                        C_mu[k] = (n_c * m_c + sh.tau * parent) / (n_c + sh.tau)
                else:
                    C_mu[k] = parent
            logits = self.logits(H, C_mu)
            if orphan and sh.own_offset:
                logits[:, orphan] -= sh.own_offset
        elif tenant_means:
            # no labels of the user: the tenant's means and the global means vote (global x global_weight)
            L = np.zeros((len(H), len(classes)))
            for k, c in enumerate(classes):
                parts = []
                if c in tenant_means:
                    parts.append((1.0, tenant_means[c]))
                if c in g_index:
                    parts.append((sh.global_weight, self.means[g_index[c]]))
                w = np.array([p[0] for p in parts])
                Ls = self.logits(H, np.stack([p[1] for p in parts]))
                L[:, k] = Ls @ w / w.sum() * (1.0 + sh.global_weight)
            logits = L
        else:
            logits = self.logits(H, np.stack([self.means[g_index[c]] for c in classes]))
        return classes, np.asarray(logits, dtype=np.float64), H

    # -- persistence -------------------------------------------------------------------------
    _ARRAYS = ("means", "precision", "prior_mean", "prior_var")

    def get_state(self) -> dict[str, Any]:
        """JSON-serializable state; ``GlobalHead.from_state`` restores it."""
        return {"format": _FORMAT, "version": FORMAT_VERSION, "classes": list(self.classes),
                **{k: getattr(self, k).tolist() for k in self._ARRAYS},
                "projection": {"center": self.projection[0].tolist(), "W": self.projection[1].tolist()},
                "shrinkage": asdict(self.shrinkage), "info": self.info,
                "calibration": self.calibration.to_dict()}

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> "GlobalHead":
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            raise InvalidStateError(f"not a ser-adapt head state (missing format {_FORMAT!r})")
        if d.get("version") != FORMAT_VERSION:
            raise InvalidStateError(f"head format version {d.get('version')!r} is not {FORMAT_VERSION}: "
                                    f"use adapt.personal.load_head")
        try:
            return cls(classes=tuple(str(c) for c in d["classes"]),
                       **{k: _f32(d[k]) for k in cls._ARRAYS},
                       projection=(_f32(d["projection"]["center"]), _f32(d["projection"]["W"])),
                       shrinkage=Shrinkage(**d.get("shrinkage", {})), info=dict(d.get("info", {})),
                       calibration=Calibration.from_dict(d.get("calibration")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidStateError(f"malformed head state: {exc}") from None

    def save(self, path) -> None:
        """Write the head: ``.npz`` (float32 arrays, the large projection as float16) or JSON."""
        if str(path).endswith(".npz"):
            meta = {k: v for k, v in self.get_state().items() if k not in self._ARRAYS + ("projection",)}
            arrays = {k: getattr(self, k) for k in self._ARRAYS}
            arrays["projection_center"] = self.projection[0]
            # the [D, d] projection dominates the file; float16 halves it (relative error ~5e-4)
            arrays["projection_W"] = self.projection[1].astype(np.float16)
            with open(path, "wb") as fh:
                np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
            return
        with open(path, "w") as fh:
            json.dump(self.get_state(), fh, separators=(",", ":"))

    @classmethod
    def load(cls, path) -> "GlobalHead":
        """Read a format-2 head written by ``save``; ``load_head`` also reads format 1."""
        head = load_head(path)
        if not isinstance(head, cls):
            raise InvalidStateError(f"{path} holds a format-1 head ({type(head).__name__}); "
                                    f"retrain it with `ser-adapt train-head` for the Personalizer")
        return head


def _read_state(path) -> dict[str, Any]:
    try:
        if str(path).endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                d = json.loads(str(z["meta"]))
                for k in z.files:
                    if k != "meta":
                        d[k] = z[k].astype(np.float32)
            return d
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidStateError(f"cannot read a head from {path}: {exc}") from None


def load_head(path):
    """The head stored at ``path`` (``.npz`` or JSON): a ``GlobalHead`` (format 2) or a
    first-release ``FusedPrototypeHead`` (format 1)."""
    d = _read_state(path)
    if not isinstance(d, dict) or d.get("format") != _FORMAT:
        raise InvalidStateError(f"{path} is not a ser-adapt head (missing format {_FORMAT!r})")
    if d.get("version", 1) == 1:
        from .fused_head import FusedPrototypeHead

        return FusedPrototypeHead.load(path)
    if "projection_W" in d:
        d["projection"] = {"center": d.pop("projection_center"), "W": d.pop("projection_W")}
    return GlobalHead.from_state(d)
