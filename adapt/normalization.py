"""Per-speaker standardization of embeddings: remove who is speaking, keep how they feel.

A frozen speech encoder's embedding carries a strong speaker signature (voice, channel). Subtracting
the speaker's mean embedding and dividing by their standard deviation, estimated from a few of their
clips, moves every speaker into a common frame, so one head serves all of them. Two variants:

* **unlabeled** — ``fit(X)``: plain mean / std of any few clips of the speaker (any emotions);
* **labelled enrollment** — ``fit(X, y)``: every emotion weighs the same (the mean of the class
  means), so enrolling 5 angry clips and 1 sad one does not drag the centre toward "angry".

With few clips the per-dimension std is noisy; ``std_shrinkage`` (a pseudo-count, default 4) pulls
each dimension's variance toward the speaker's average variance over dimensions, and ``std_floor``
keeps near-constant dimensions from exploding.

Training data are normalized the same way, speaker by speaker: ``standardize_by_speaker(X, speakers)``.

Two speaker estimators live here, side by side, because two paths need different things:

=========================  =================================================  ==========================
estimator                  shrinks the speaker's variance toward              used by
=========================  =================================================  ==========================
``SpeakerNormalizer``      the speaker's *own* mean variance over dimensions  few-shot recipes and
                           (``std_shrinkage`` pseudo-clips), relative floor   benchmarks (``scenarios``),
                                                                              ``standardize_by_speaker``
``shrink_to_global``       the *global* per-dimension mean and variance       the per-user model
                           (``prior`` pseudo-clips of the global statistics)  (``adapt.personal``)
=========================  =================================================  ==========================

``shrink_to_global`` works on running moments (``adapt.stats.RunningMoments``), which is what a
user's profile stores, so it needs no clip.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(5.0, 2.0, size=(8, 3))
    >>> norm = SpeakerNormalizer().fit(X)
    >>> np.allclose(norm.transform(X).mean(axis=0), 0.0, atol=1e-6)
    True
"""
from __future__ import annotations

import numpy as np

from sklearn.base import BaseEstimator, TransformerMixin

from .stats import STD_FLOOR, RunningMoments
from .validation import check_state, check_X, check_Xy, require_fitted, state_header

__all__ = ["SpeakerNormalizer", "standardize_by_speaker", "shrink_to_global"]


class SpeakerNormalizer(TransformerMixin, BaseEstimator):
    """Mean/std of one speaker's embeddings, estimated from a few clips (a scikit-learn transformer).

    Args:
        with_std: divide by the std (True) or only subtract the mean (False).
        std_shrinkage: pseudo-count ``k >= 0``; the variance used is
            ``(n * var_d + k * mean_d(var)) / (n + k)`` for ``n`` clips (0 = raw per-dim variance).
        std_floor: lower bound of the std, relative to the mean std over dimensions.

    Attributes (after fit): ``mean_`` ``[D]``, ``scale_`` ``[D]``, ``n_samples_``, ``n_features_in_``.

    A scikit-learn transformer: ``__init__`` only stores, ``fit`` checks the parameters, ``clone``
    / ``Pipeline`` / ``GridSearchCV`` work, and it passes scikit-learn's estimator checks. In a
    ``Pipeline`` it standardizes with the statistics of all the rows it is fitted on (one
    "speaker"); per-speaker standardization of a training table is ``standardize_by_speaker``.
    ``transform`` returns float32 whatever the input dtype.
    """

    def __init__(self, *, with_std: bool = True, std_shrinkage: float = 4.0, std_floor: float = 0.05) -> None:
        self.with_std = with_std
        self.std_shrinkage = std_shrinkage
        self.std_floor = std_floor

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]   # transform always returns float32
        return tags

    def _validate_params(self) -> None:
        if not isinstance(self.with_std, (bool, np.bool_)):
            raise TypeError(f"with_std must be a bool, got {self.with_std!r}")
        for name in ("std_shrinkage", "std_floor"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")

    def fit(self, X, y=None) -> "SpeakerNormalizer":
        """Estimate mean and scale from ``X [N, D]`` (``N >= 1``); with labels ``y``, classes weigh equally."""
        self._validate_params()
        if y is None:
            X = check_X(X, owner=type(self).__name__).astype(np.float64)
            w = np.full(len(X), 1.0 / len(X))
        else:
            X, y = check_Xy(X, y, owner=type(self).__name__)
            X = X.astype(np.float64)
            classes, inv, counts = np.unique(y.astype(str), return_inverse=True, return_counts=True)
            w = 1.0 / (counts[inv] * len(classes))
        mean = w @ X
        self.mean_ = mean
        self.n_samples_ = int(len(X))
        self.n_features_in_ = int(X.shape[1])
        if self.with_std:
            n = len(X)
            # weighted variance with the small-sample (n / (n - 1)) correction; n = 1 has no spread
            var = w @ (X - mean) ** 2 * (n / (n - 1) if n > 1 else 0.0)
            avg = float(var.mean())
            k = float(self.std_shrinkage)
            var = (n * var + k * avg) / (n + k) if n + k > 0 else var
            std = np.sqrt(var)
            floor = max(float(self.std_floor) * float(np.sqrt(avg)) if avg > 0 else 0.0, 1e-8)
            self.scale_ = np.maximum(std, floor) if avg > 0 else np.ones_like(std)
        else:
            self.scale_ = np.ones_like(mean)
        return self

    def transform(self, X) -> np.ndarray:
        """Standardized ``[N, D]`` float32 copy of ``X``."""
        require_fitted(self, "mean_")
        X = check_X(X, dim=self.n_features_in_, owner=type(self).__name__)
        return ((X - self.mean_) / self.scale_).astype(np.float32)

    def get_state(self) -> dict:
        """JSON-serializable state (config, mean, scale, sample count)."""
        require_fitted(self, "mean_")
        return {**state_header(self), "with_std": self.with_std, "std_shrinkage": self.std_shrinkage,
                "std_floor": self.std_floor, "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "n_samples": self.n_samples_}

    @classmethod
    def from_state(cls, state: dict) -> "SpeakerNormalizer":
        check_state(state, cls)
        norm = cls(with_std=state["with_std"], std_shrinkage=state["std_shrinkage"], std_floor=state["std_floor"])
        norm._validate_params()
        mean = np.asarray(state["mean"], dtype=np.float64)
        scale = np.asarray(state["scale"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape or not (scale > 0).all():
            raise ValueError(f"bad normalizer state: mean {mean.shape}, scale {scale.shape} (all > 0 required)")
        norm.mean_, norm.scale_ = mean, scale
        norm.n_samples_, norm.n_features_in_ = int(state["n_samples"]), int(mean.shape[0])
        return norm


def standardize_by_speaker(X, speakers, y=None, *, min_emotions: int = 2, **normalizer_opts) -> np.ndarray:
    """Standardize every speaker's rows of ``X [N, D]`` with their own ``SpeakerNormalizer``.

    ``speakers`` is ``[N]``; with ``y``, each speaker's statistics weigh emotions equally, and a
    speaker with fewer than ``min_emotions`` distinct emotions is standardized with the pooled
    statistics of all speakers instead: the mean of a single emotion's clips is not an
    emotion-neutral centre, and subtracting it would erase the very signal to learn (26 of the 29
    URDU speaker ids hold one emotion each). Returns float32 ``[N, D]``.
    """
    X = check_X(X)
    spk = np.asarray(speakers)
    if spk.shape != (len(X),):
        raise ValueError(f"speakers must have shape ({len(X)},), got {spk.shape}")
    labels = None if y is None else np.asarray(y)
    if labels is not None and labels.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},), got {labels.shape}")
    out = np.empty_like(X)
    pooled = None
    for s in np.unique(spk):
        rows = np.flatnonzero(spk == s)
        if labels is not None and len(np.unique(labels[rows].astype(str))) < min_emotions:
            if pooled is None:
                pooled = SpeakerNormalizer(**normalizer_opts).fit(X, labels)
            out[rows] = pooled.transform(X[rows])
            continue
        norm = SpeakerNormalizer(**normalizer_opts).fit(X[rows], None if labels is None else labels[rows])
        out[rows] = norm.transform(X[rows])
    return out


def shrink_to_global(moments: RunningMoments, g_mean: np.ndarray, g_std: np.ndarray,
                     prior: float) -> tuple[np.ndarray, np.ndarray]:
    """A speaker's mean and std ``[D]`` pooled with ``prior`` pseudo-clips of the global statistics.

    ``moments``: the speaker's running moments (``n`` clips, ``mean``, ``m2``); ``g_mean`` /
    ``g_std``: the global statistics. With no clip the global statistics come back; with many the
    speaker's own. The std is floored at ``adapt.stats.STD_FLOOR``. Returns float32 ``(mu, sd)``.

    Example:
        >>> m = RunningMoments.of(np.array([[2.0], [4.0]]))
        >>> mu, sd = shrink_to_global(m, np.array([0.0]), np.array([1.0]), prior=2.0)
        >>> float(mu[0]), round(float(sd[0]), 3)
        (1.5, 1.803)
    """
    n, k = float(moments.n), float(prior)
    if n + k <= 0:
        raise ValueError(f"need at least one clip or a prior > 0, got n={n}, prior={k}")
    g_mean = np.asarray(g_mean, dtype=np.float64)
    mu = (n * moments.mean + k * g_mean) / (n + k)
    var = (moments.m2 + k * np.asarray(g_std, dtype=np.float64) ** 2
           + (n * k / (n + k)) * (moments.mean - g_mean) ** 2) / (n + k)
    return mu.astype(np.float32), np.maximum(np.sqrt(var), STD_FLOOR).astype(np.float32)
