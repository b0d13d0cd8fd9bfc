"""Classical baselines on any embedding (scikit-learn): ``SVMHead``, ``KNNHead``, ``GMMHead``.

These are the baselines of the seed article's era: an RBF SVM, k nearest neighbours (cosine) and
one Gaussian mixture per class. They keep their (standardized) training embeddings: ``partial_fit``
appends examples (new classes allowed) and refits, and ``get_state`` stores the embeddings, so
``from_state`` refits deterministically. That is cheap at few-shot scale; for big training sets
prefer ``LinearHead``.

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0], [3.1, 2.9]])
    >>> KNNHead(n_neighbors=1).fit(X, ["sad", "sad", "angry", "angry"]).predict(np.array([[2.9, 3.0]])).tolist()
    ['angry']
"""
from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from ..stats import Standardizer
from ..validation import check_state, check_X, check_Xy, require_fitted, state_header
from .base import HeadMixin

__all__ = ["SVMHead", "KNNHead", "GMMHead"]


class _SklearnHead(HeadMixin):
    """Keeps standardized training data; subclasses implement ``_fit_model`` and ``_logits``."""

    def __init__(self) -> None:
        self.classes_: np.ndarray | None = None
        self.X_: np.ndarray | None = None
        self.y_: np.ndarray | None = None
        self.n_features_in_: int | None = None

    def _config(self) -> dict:
        raise NotImplementedError

    def _fit_model(self, Z: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _logits(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _refit(self) -> None:
        self.classes_ = np.array(sorted(set(self.y_.tolist())), dtype=object)
        std = Standardizer().fit(self.X_)
        self.mean_, self.scale_ = std.mean_, std.scale_
        self._fit_model((self.X_ - self.mean_) / self.scale_, self.y_)

    def fit(self, X, y):
        """Fit on ``X [N, D]``, ``y [N]`` (replaces any stored examples)."""
        X, y = check_Xy(X, y)
        self.X_, self.y_, self.n_features_in_ = X.astype(np.float64), y, X.shape[1]
        self._refit()
        return self

    def partial_fit(self, X, y):
        """Append examples (new labels become classes) and refit."""
        if self.classes_ is None:
            return self.fit(X, y)
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        self.X_ = np.vstack([self.X_, X.astype(np.float64)])
        self.y_ = np.concatenate([self.y_, y])
        self._refit()
        return self

    def decision_function(self, X) -> np.ndarray:
        """Scores ``[N, C]`` ordered as ``classes_`` (larger = more likely)."""
        require_fitted(self)
        Z = (check_X(X, dim=self.n_features_in_).astype(np.float64) - self.mean_) / self.scale_
        return self._logits(Z)


    def get_state(self) -> dict:
        """JSON-serializable: config plus the stored training embeddings and labels."""
        require_fitted(self)
        return {**state_header(self), "config": self._config(), "X": self.X_.tolist(), "y": list(self.y_)}

    @classmethod
    def from_state(cls, state: dict):
        check_state(state, cls)
        return cls(**state["config"]).fit(np.asarray(state["X"], dtype=np.float64), [str(v) for v in state["y"]])


class SVMHead(_SklearnHead):
    """RBF (or linear) SVM, one-vs-rest scores; ``class_weight="balanced"`` by default."""

    def __init__(self, *, C: float = 1.0, kernel: str = "rbf", gamma: str | float = "scale",
                 class_weight: str | None = "balanced") -> None:
        super().__init__()
        if kernel not in ("rbf", "linear"):
            raise ValueError(f"kernel must be 'rbf' or 'linear', got {kernel!r}")
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C!r}")
        self.C, self.kernel, self.gamma, self.class_weight = float(C), kernel, gamma, class_weight

    def _config(self):
        return {"C": self.C, "kernel": self.kernel, "gamma": self.gamma, "class_weight": self.class_weight}

    def _fit_model(self, Z, y):
        self._single = len(self.classes_) == 1
        if not self._single:
            self.model_ = SVC(C=self.C, kernel=self.kernel, gamma=self.gamma, class_weight=self.class_weight,
                              decision_function_shape="ovr").fit(Z, y)

    def _logits(self, Z):
        if self._single:
            return np.zeros((len(Z), 1))
        d = self.model_.decision_function(Z)
        if d.ndim == 1:   # two classes: sklearn returns one column, positive = classes_[1]
            d = np.stack([-d, d], axis=1)
        order = [list(self.model_.classes_).index(c) for c in self.classes_]
        return d[:, order]


class KNNHead(_SklearnHead):
    """k nearest neighbours (cosine by default), distance-weighted votes."""

    def __init__(self, *, n_neighbors: int = 5, metric: str = "cosine") -> None:
        super().__init__()
        if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or n_neighbors < 1:
            raise ValueError(f"n_neighbors must be an int >= 1, got {n_neighbors!r}")
        self.n_neighbors, self.metric = n_neighbors, metric

    def _config(self):
        return {"n_neighbors": self.n_neighbors, "metric": self.metric}

    def _fit_model(self, Z, y):
        k = min(self.n_neighbors, len(y))   # few-shot: fewer stored examples than k
        self.model_ = KNeighborsClassifier(n_neighbors=k, metric=self.metric, weights="distance").fit(Z, y)

    def _logits(self, Z):
        p = self.model_.predict_proba(Z)
        order = [list(self.model_.classes_).index(c) for c in self.classes_]
        return np.log(np.clip(p[:, order], 1e-9, None))


class GMMHead(_SklearnHead):
    """One diagonal Gaussian mixture per class; scores are log-likelihoods (uniform class prior)."""

    def __init__(self, *, n_components: int = 2, covariance_type: str = "diag", reg_covar: float = 1e-2,
                 seed: int = 0) -> None:
        super().__init__()
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be an int >= 1, got {n_components!r}")
        if covariance_type not in ("diag", "spherical", "full", "tied"):
            raise ValueError(f"unknown covariance_type {covariance_type!r}")
        self.n_components, self.covariance_type, self.reg_covar, self.seed = (
            n_components, covariance_type, float(reg_covar), seed)

    def _config(self):
        return {"n_components": self.n_components, "covariance_type": self.covariance_type,
                "reg_covar": self.reg_covar, "seed": self.seed}

    def _fit_model(self, Z, y):
        self.models_ = []
        for c in self.classes_:
            Zc = Z[y == c]
            if len(Zc) == 1:   # a single shot: no spread to estimate; duplicate it, reg_covar sets the width
                Zc = np.vstack([Zc, Zc])
            # a mixture component needs a few points of its own; few shots get a single Gaussian
            k = max(1, min(self.n_components, len(Zc) // 4))
            self.models_.append(GaussianMixture(n_components=k, covariance_type=self.covariance_type,
                                                reg_covar=self.reg_covar, random_state=self.seed).fit(Zc))

    def _logits(self, Z):
        return np.stack([m.score_samples(Z) for m in self.models_], axis=1)
