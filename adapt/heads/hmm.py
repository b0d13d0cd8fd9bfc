"""The classical pipeline's sequence model: one Gaussian HMM per emotion over frame features.

``HMMHead`` standardizes frames, optionally reduces them with PCA (fit on the training frames),
trains one ``hmmlearn.hmm.GaussianHMM`` per emotion (diagonal covariances, a few states,
Baum-Welch) and scores a clip by each model's log-likelihood per frame (uniform class prior):
``decision_function`` returns those ``(N, C)`` scores, ``predict_proba`` their softmax. It sits
next to the SVM / kNN / GMM baselines of ``adapt.heads.classical``. Needs ``hmmlearn``
(``pip install 'ser-adapt[classical]'``), imported on first use.

Input: as the sequence heads (``adapt.heads.sequence``): a list of ``(T_i, F)`` arrays, or a padded
``(N, T, F)`` array with ``lengths`` or ``mask``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(20, 3)) + 3 * (i % 2) for i in range(10)]
    >>> HMMHead(n_states=2, n_components=None).fit(X, ["calm", "angry"] * 5).predict(X[:2]).tolist()
    ['calm', 'angry']
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from ..errors import BackboneNotAvailableError
from ..frames.batch import as_ragged
from ..stats import softmax
from ..validation import (check_known, check_label_kind, check_labels, check_state, labels_from_json, labels_to_json,
                          require_fitted, state_header)

__all__ = ["HMMHead"]


def _hmm():
    try:
        from hmmlearn.hmm import GaussianHMM
    except ImportError:  # optional extra
        raise BackboneNotAvailableError("HMMHead needs hmmlearn: pip install 'ser-adapt[classical]' "
                                        "(or pip install hmmlearn==0.3.3)") from None
    return GaussianHMM


def _is_int(v, low: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= low


class HMMHead(ClassifierMixin, BaseEstimator):
    """One diagonal Gaussian HMM per class over (PCA-reduced) standardized frames.

    Args:
        n_states: hidden states per emotion model (left-to-right is not imposed: ergodic HMMs).
        n_components: PCA dimensions kept (``None``: no PCA; capped by the feature count).
        n_iter: Baum-Welch iterations; ``min_covar``: floor of the diagonal variances.
        seed: hmmlearn's ``random_state`` (k-means initialization).
    """

    def __init__(self, *, n_states: int = 3, n_components: int | None = 32, n_iter: int = 20,
                 min_covar: float = 1e-2, seed: int = 0) -> None:
        self.n_states = n_states
        self.n_components = n_components
        self.n_iter = n_iter
        self.min_covar = min_covar
        self.seed = seed

    def _validate_params(self) -> None:
        for name in ("n_states", "n_iter"):
            if not _is_int(getattr(self, name), 1):
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.n_components is not None and not _is_int(self.n_components, 1):
            raise ValueError(f"n_components must be None or an int >= 1, got {self.n_components!r}")
        m = self.min_covar
        if isinstance(m, bool) or not isinstance(m, (int, float, np.number)) or not np.isfinite(m) or m <= 0:
            raise ValueError(f"min_covar must be a finite number > 0, got {m!r}")
        if not _is_int(self.seed, 0):
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")

    def _project(self, flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        Z = (flat.astype(np.float64) - self.mean_) / self.scale_
        if self.components_ is not None:
            Z = Z @ self.components_.T
        return np.split(Z.astype(np.float64), np.cumsum(lengths)[:-1])

    def fit(self, X, y, *, lengths=None, mask=None):
        """Fit one HMM per class on the frames of its clips."""
        self._validate_params()
        GaussianHMM = _hmm()
        flat, lengths = as_ragged(X, lengths, mask, owner="HMMHead")
        y = check_labels(y, len(lengths))
        self.classes_ = np.unique(y)
        self.n_features_in_ = int(flat.shape[1])
        valid = flat.astype(np.float64)
        self.mean_ = valid.mean(0)
        self.scale_ = np.maximum(valid.std(0), 1e-6)
        self.components_ = None
        if self.n_components is not None and self.n_components < flat.shape[1]:
            from sklearn.decomposition import PCA

            pca = PCA(n_components=int(self.n_components), random_state=int(self.seed))
            pca.fit((valid - self.mean_) / self.scale_)
            self.components_ = pca.components_
        seqs = self._project(flat, lengths)
        self.models_ = []
        for c in self.classes_.tolist():
            idx = np.flatnonzero(y == c)
            data = np.concatenate([seqs[i] for i in idx])
            n_states = max(1, min(int(self.n_states), len(data) // 4))
            model = GaussianHMM(n_components=n_states, covariance_type="diag", n_iter=int(self.n_iter),
                                min_covar=float(self.min_covar), random_state=int(self.seed))
            model.fit(data, lengths=[len(seqs[i]) for i in idx])
            self.models_.append(model)
        return self

    def decision_function(self, X, *, lengths=None, mask=None) -> np.ndarray:
        """Per-class log-likelihood per frame ``(N, C)``."""
        require_fitted(self)
        flat, lengths = as_ragged(X, lengths, mask, dim=self.n_features_in_, owner="HMMHead")
        seqs = self._project(flat, lengths)
        return np.array([[m.score(s) / len(s) for m in self.models_] for s in seqs])

    def predict_proba(self, X, *, lengths=None, mask=None) -> np.ndarray:
        return softmax(self.decision_function(X, lengths=lengths, mask=mask))

    def predict(self, X, *, lengths=None, mask=None) -> np.ndarray:
        scores = self.decision_function(X, lengths=lengths, mask=mask)   # raises NotFittedError first
        return self.classes_[np.argmax(scores, axis=1)]

    def score(self, X, y, *, lengths=None, mask=None) -> float:
        """UA (unweighted average recall)."""
        from ..metrics import unweighted_average_recall

        require_fitted(self)
        y = check_labels(y)
        check_label_kind(y, self.classes_, head="HMMHead")
        check_known(y.tolist(), self.classes_.tolist(), head="HMMHead")
        return unweighted_average_recall(y, self.predict(X, lengths=lengths, mask=mask))

    def n_parameters(self) -> int:
        require_fitted(self)
        per = [m.startprob_.size + m.transmat_.size + m.means_.size + m.means_.size for m in self.models_]
        return int(sum(per) + (0 if self.components_ is None else self.components_.size))

    def get_state(self) -> dict:
        require_fitted(self)
        return {**state_header(self), "config": {"n_states": int(self.n_states), "n_components": self.n_components,
                                                 "n_iter": int(self.n_iter), "min_covar": float(self.min_covar),
                                                 "seed": int(self.seed)},
                "classes": labels_to_json(self.classes_), "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "components": None if self.components_ is None else self.components_.tolist(),
                "models": [{"startprob": m.startprob_.tolist(), "transmat": m.transmat_.tolist(),
                            "means": m.means_.tolist(), "covars": np.asarray(m._covars_).tolist()}
                           for m in self.models_]}

    @classmethod
    def from_state(cls, state: dict) -> "HMMHead":
        check_state(state, cls)
        GaussianHMM = _hmm()
        head = cls(**state["config"])
        head._validate_params()
        head.classes_ = labels_from_json(state["classes"])
        head.mean_ = np.asarray(state["mean"])
        head.scale_ = np.asarray(state["scale"])
        head.n_features_in_ = int(head.mean_.shape[0])
        head.components_ = None if state["components"] is None else np.asarray(state["components"])
        head.models_ = []
        for s in state["models"]:
            means = np.asarray(s["means"])
            m = GaussianHMM(n_components=means.shape[0], covariance_type="diag", min_covar=head.min_covar)
            m.n_features = means.shape[1]
            m.startprob_, m.transmat_, m.means_ = np.asarray(s["startprob"]), np.asarray(s["transmat"]), means
            m.covars_ = np.asarray(s["covars"])
            head.models_.append(m)
        return head
