"""Classical baselines on any embedding (scikit-learn): ``SVMHead``, ``KNNHead``, ``GMMHead``.

These are the baselines of the seed article's era: an RBF SVM, k nearest neighbours (cosine) and
one Gaussian mixture per class. They keep their (standardized) training embeddings: ``partial_fit``
appends examples (new classes allowed) and refits, and ``get_state`` stores the embeddings, so
``from_state`` refits deterministically. That is cheap at few-shot scale; for big training sets
prefer ``LinearHead``. ``classes_`` is ``np.unique(y)`` after ``fit``; labels new to a
``partial_fit`` are appended in first-seen order.

Example:
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0], [3.1, 2.9]])
    >>> KNNHead(n_neighbors=1).fit(X, ["sad", "sad", "angry", "angry"]).predict(np.array([[2.9, 3.0]])).tolist()
    ['angry']
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from ..stats import Standardizer
from ..validation import (append_labels, check_label_kind, check_labels, check_state, check_X, check_Xy,
                          labels_from_json, labels_to_json, require_fitted, state_header)
from .base import HeadMixin

__all__ = ["SVMHead", "KNNHead", "GMMHead"]


def _is_int(v, low: int = 1) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= low


class _SklearnHead(HeadMixin, ClassifierMixin, BaseEstimator):
    """Keeps standardized training data; subclasses implement ``_fit_model`` and ``_logits_z``."""

    def _config(self) -> dict:
        raise NotImplementedError

    def _fit_model(self, Z: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _logits_z(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _refit(self, classes: np.ndarray) -> None:
        self.classes_ = classes
        std = Standardizer().fit(self.X_)
        self.mean_, self.scale_ = std.mean_, std.scale_
        self._fit_model((self.X_ - self.mean_) / self.scale_, self.y_)

    def _model_order(self, model_classes) -> list[int]:
        """Columns of the wrapped scikit-learn model in ``classes_`` order."""
        index = {c: i for i, c in enumerate(np.asarray(model_classes).tolist())}
        return [index[c] for c in self.classes_.tolist()]

    def fit(self, X, y):
        """Fit on ``X [N, D]``, ``y [N]`` (replaces any stored examples; ``classes_ = np.unique(y)``)."""
        self._validate_params()
        X, y = check_Xy(X, y, owner=type(self).__name__)
        self.X_, self.y_, self.n_features_in_ = X.astype(np.float64), y, X.shape[1]
        self._refit(np.unique(y))
        return self

    def partial_fit(self, X, y, classes=None):
        """Append examples (new labels become classes, appended in first-seen order) and refit.

        ``classes`` (scikit-learn's argument) is accepted and checked; a listed label becomes a
        class once it has examples.
        """
        if getattr(self, "X_", None) is None:
            return self.fit(X, y)
        self._validate_params()
        name = type(self).__name__
        X, y = check_Xy(X, y, dim=self.n_features_in_, owner=name)
        check_label_kind(y, self.classes_, head=name)
        if classes is not None:
            check_label_kind(check_labels(classes), self.classes_, head=name)
        known = set(self.classes_.tolist())
        new = [c for c in dict.fromkeys(y.tolist()) if c not in known]
        self.X_ = np.vstack([self.X_, X.astype(np.float64)])
        self.y_ = np.concatenate([self.y_, y])
        self._refit(append_labels(self.classes_, new))
        return self

    def _logits(self, X) -> np.ndarray:
        """Scores ``[N, C]`` ordered as ``classes_`` (larger = more likely)."""
        require_fitted(self)
        Z = (check_X(X, dim=self.n_features_in_, owner=type(self).__name__).astype(np.float64)
             - self.mean_) / self.scale_
        return self._logits_z(Z)

    def get_state(self) -> dict:
        """JSON-serializable: config plus the stored training embeddings, labels and class order."""
        require_fitted(self)
        return {**state_header(self), "config": self._config(), "X": self.X_.tolist(),
                "y": labels_to_json(self.y_), "classes": labels_to_json(self.classes_)}

    @classmethod
    def from_state(cls, state: dict):
        check_state(state, cls)
        head = cls(**state["config"]).fit(np.asarray(state["X"], dtype=np.float64), labels_from_json(state["y"]))
        if state.get("classes") is not None:   # the order partial_fit built (older states: sorted)
            classes = labels_from_json(state["classes"])
            if sorted(classes.tolist()) != sorted(head.classes_.tolist()):
                raise ValueError(f"state lists classes {classes.tolist()} but its labels hold "
                                 f"{head.classes_.tolist()}")
            head._refit(classes)
        return head


class SVMHead(_SklearnHead):
    """RBF (or linear) SVM, one-vs-rest scores; ``class_weight="balanced"`` by default."""

    def __init__(self, *, C: float = 1.0, kernel: str = "rbf", gamma: str | float = "scale",
                 class_weight: str | None = "balanced") -> None:
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.class_weight = class_weight

    def _validate_params(self) -> None:
        if self.kernel not in ("rbf", "linear"):
            raise ValueError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}")
        if isinstance(self.C, bool) or not isinstance(self.C, (int, float, np.number)) or not self.C > 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")

    def _config(self):
        return {"C": float(self.C), "kernel": self.kernel, "gamma": self.gamma, "class_weight": self.class_weight}

    def _fit_model(self, Z, y):
        self._single = len(self.classes_) == 1
        if not self._single:
            self.model_ = SVC(C=float(self.C), kernel=self.kernel, gamma=self.gamma, class_weight=self.class_weight,
                              decision_function_shape="ovr").fit(Z, y)

    def _logits_z(self, Z):
        if self._single:
            return np.zeros((len(Z), 1))
        d = self.model_.decision_function(Z)
        if d.ndim == 1:   # two classes: sklearn returns one column, positive = classes_[1]
            d = np.stack([-d, d], axis=1)
        return d[:, self._model_order(self.model_.classes_)]


class KNNHead(_SklearnHead):
    """k nearest neighbours (cosine by default), distance-weighted votes."""

    def __init__(self, *, n_neighbors: int = 5, metric: str = "cosine") -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric

    def _validate_params(self) -> None:
        if not _is_int(self.n_neighbors):
            raise ValueError(f"n_neighbors must be an int >= 1, got {self.n_neighbors!r}")

    def _config(self):
        return {"n_neighbors": int(self.n_neighbors), "metric": self.metric}

    def _fit_model(self, Z, y):
        k = min(int(self.n_neighbors), len(y))   # few-shot: fewer stored examples than k
        self.model_ = KNeighborsClassifier(n_neighbors=k, metric=self.metric, weights="distance").fit(Z, y)

    def _logits_z(self, Z):
        p = self.model_.predict_proba(Z)
        return np.log(np.clip(p[:, self._model_order(self.model_.classes_)], 1e-9, None))


class GMMHead(_SklearnHead):
    """One diagonal Gaussian mixture per class; scores are log-likelihoods (uniform class prior)."""

    def __init__(self, *, n_components: int = 2, covariance_type: str = "diag", reg_covar: float = 1e-2,
                 seed: int = 0) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.seed = seed

    def _validate_params(self) -> None:
        if not _is_int(self.n_components):
            raise ValueError(f"n_components must be an int >= 1, got {self.n_components!r}")
        if self.covariance_type not in ("diag", "spherical", "full", "tied"):
            raise ValueError(f"unknown covariance_type {self.covariance_type!r}")
        r = self.reg_covar
        if isinstance(r, bool) or not isinstance(r, (int, float, np.number)) or not np.isfinite(r) or r < 0:
            raise ValueError(f"reg_covar must be a finite number >= 0, got {r!r}")
        if not _is_int(self.seed, low=0):
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")

    def _config(self):
        return {"n_components": int(self.n_components), "covariance_type": self.covariance_type,
                "reg_covar": float(self.reg_covar), "seed": int(self.seed)}

    def _fit_model(self, Z, y):
        models = []
        for c in self.classes_.tolist():
            Zc = Z[y == c]
            if len(Zc) == 1:   # a single shot: no spread to estimate; duplicate it, reg_covar sets the width
                Zc = np.vstack([Zc, Zc])
            # a mixture component needs a few points of its own; few shots get a single Gaussian
            k = max(1, min(int(self.n_components), len(Zc) // 4))
            models.append(GaussianMixture(n_components=k, covariance_type=self.covariance_type,
                                          reg_covar=float(self.reg_covar), random_state=int(self.seed)).fit(Zc))
        self.models_ = models

    def _logits_z(self, Z):
        return np.stack([m.score_samples(Z) for m in self.models_], axis=1)
