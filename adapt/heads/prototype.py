"""Prototype (nearest class mean) head: the cheapest few-shot learner, incremental by construction.

A class is the mean of its examples' embeddings (L2-normalized first under the cosine metric). A
clip is scored by its similarity to every prototype, divided by a temperature, and softmaxed.
``partial_fit`` only adds to per-class sums and counts, so new examples and **new classes** cost
O(N * D) and never revisit old data; the whole state is ``C`` vectors and ``C`` counts.

Shrinkage toward a prior: with ``prior`` (another fitted ``PrototypeHead``, e.g. global prototypes
learned on many speakers, or ``sklearn.frozen.FrozenEstimator`` of one) a user's prototype of class
``c`` is

    p_c = (sum_c + s * prior_c) / (n_c + s)

where ``n_c`` is the user's shot count and ``s = shrinkage`` a pseudo-count: with 1 shot and
``s = 2`` the prior weighs 2/3, with 10 shots 1/6. Classes that only the prior knows are
predicted from the prior's prototypes, so a partly enrolled user still gets every emotion.

``sklearn.base.clone`` (and so ``GridSearchCV`` / ``cross_val_score``) clones a sub-estimator
*unfitted*: a plain fitted prior would be lost. Wrap it as ``prior=FrozenEstimator(global_head)``,
which ``clone`` keeps as is; ``fit`` with an unfitted prior raises ``NotFittedError`` saying so.

Example:
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> head = PrototypeHead().fit(X, ["happy", "happy", "sad"])
    >>> head.predict(np.array([[0.8, 0.3]])).tolist()
    ['happy']
    >>> head.partial_fit(np.array([[-1.0, 0.0]]), ["angry"]).classes_.tolist()
    ['happy', 'sad', 'angry']
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator

from ..stats import l2_normalize
from ..validation import (EstimatorNotFittedError, append_labels, check_known, check_label_kind, check_labels,
                          check_state, check_X, check_Xy, labels_from_json, labels_to_json, require_fitted,
                          state_header)
from .base import HeadMixin

__all__ = ["PrototypeHead", "METRICS", "shrink_prototypes", "cosine_logits"]

METRICS = ("cosine", "euclidean")
_DEFAULT_TEMPERATURE = {"cosine": 0.1, "euclidean": 1.0}


def shrink_prototypes(sums: np.ndarray, counts: np.ndarray, prior: np.ndarray | None,
                      pseudo_count: float) -> np.ndarray:
    """Class prototypes ``[C, D]`` shrunk toward a prior: ``(sums_c + s * prior_c) / (n_c + s)``.

    ``sums`` ``[C, D]`` and ``counts`` ``[C]`` are a class's own examples; ``prior`` ``[C, D]``
    (rows of NaN, or ``None`` for all rows, where a class has no prior) is weighed as
    ``pseudo_count`` ``s`` pseudo-examples; a class without examples gets its prior (whatever
    ``s``), one with neither examples nor a prior gives zeros.
    ``PrototypeHead`` and the per-user model (``adapt.personal``) both score through this.

    Example:
        >>> shrink_prototypes(np.array([[2.0, 0.0]]), np.array([2.0]), np.array([[0.0, 1.0]]), 2.0).tolist()
        [[0.5, 0.5]]
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)[:, None]
    if prior is None:
        return sums / np.maximum(counts, 1e-12)
    prior = np.asarray(prior, dtype=np.float64)
    has = ~np.isnan(prior).any(axis=1, keepdims=True)
    s = np.where(has, float(pseudo_count), 0.0)
    prior = np.where(has, prior, 0.0)
    out = (sums + s * prior) / np.maximum(counts + s, 1e-12)
    # no example and a zero pseudo-count: the prior alone (not a zero vector)
    return np.where(has & (counts + s <= 0), prior, out)


def cosine_logits(Z: np.ndarray, prototypes: np.ndarray, temperature: float) -> np.ndarray:
    """``cos(z_i, p_c) / temperature``: ``[N, D]`` x ``[C, D]`` -> ``[N, C]``."""
    return l2_normalize(Z) @ l2_normalize(prototypes).T / temperature


class PrototypeHead(HeadMixin, ClassifierMixin, BaseEstimator):
    """Nearest-prototype classifier with incremental classes and optional shrinkage to a prior.

    Args:
        metric: ``"cosine"`` (default; embeddings L2-normalized before averaging) or
            ``"euclidean"`` (negative squared distance).
        temperature: logits are ``similarity / temperature``; it only shapes ``predict_proba``
            (``predict`` is the arg-max either way). None (default): 0.1 for cosine, 1.0 for euclidean.
        prior: a fitted ``PrototypeHead`` (same metric and dimension) whose prototypes a user's
            prototypes shrink toward, or ``FrozenEstimator(head)`` of one (the form ``clone``
            keeps); None for none.
        shrinkage: pseudo-count ``s`` of the prior (>= 0); weight of the prior is ``s / (n_c + s)``.

    Parameters are checked by ``fit`` / ``partial_fit`` (ValueError / TypeError naming the value).

    Attributes (after fit): ``classes_`` (``[C]``, the labels' own type: object array of str, or
    ints), ``sums_`` (``[C, D]``), ``counts_`` (``[C]``), ``n_features_in_``, ``prototypes_``
    (``[C', D]`` over ``classes_``, which also lists the classes only the prior knows).
    """

    def __init__(self, *, metric: str = "cosine", temperature: float | None = None,
                 prior: "PrototypeHead | FrozenEstimator | None" = None, shrinkage: float = 2.0) -> None:
        self.metric = metric
        self.temperature = temperature
        self.prior = prior
        self.shrinkage = shrinkage

    # -- parameters ------------------------------------------------------------------------------
    def _temperature(self) -> float:
        t = self.temperature
        return _DEFAULT_TEMPERATURE.get(self.metric, 1.0) if t is None else t

    def _validate_params(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        t = self._temperature()
        if isinstance(t, bool) or not isinstance(t, (int, float, np.number)) or not np.isfinite(t) or t <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        s = self.shrinkage
        if isinstance(s, bool) or not isinstance(s, (int, float, np.number)) or not np.isfinite(s) or s < 0:
            raise ValueError(f"shrinkage must be a finite number >= 0, got {s!r}")
        self._prior_head()

    def _prior_head(self) -> "PrototypeHead | None":
        """The fitted ``PrototypeHead`` behind ``prior`` (unwrapping a ``FrozenEstimator``), or None."""
        prior = self.prior
        if prior is None:
            return None
        if isinstance(prior, FrozenEstimator):
            prior = prior.estimator
        if not isinstance(prior, PrototypeHead):
            raise TypeError(f"prior must be a fitted PrototypeHead, got {type(prior).__name__}")
        if getattr(prior, "classes_", None) is None:
            raise EstimatorNotFittedError("prior is an unfitted PrototypeHead (sklearn.base.clone refits nothing and "
                                 "drops a plain prior's fit: pass prior=FrozenEstimator(fitted_head))")
        if prior.metric != self.metric:
            raise ValueError(f"prior uses metric {prior.metric!r} but this head uses {self.metric!r}")
        return prior

    def _reset(self, d: int, labels: np.ndarray) -> None:
        self._own = labels[:0]
        self.sums_ = np.zeros((0, d), dtype=np.float64)
        self.counts_ = np.zeros(0, dtype=np.float64)
        self.n_features_in_ = d

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X, y) -> "PrototypeHead":
        """Forget everything and fit on ``X [N, D]``, ``y [N]`` (``classes_ = np.unique(y)``, sorted)."""
        self._validate_params()
        prior = self._prior_head()
        X, y = check_Xy(X, y, dim=prior.n_features_in_ if prior is not None else None, owner=type(self).__name__)
        if prior is not None:
            check_label_kind(y, prior.classes_, head=type(self).__name__)
        self._reset(X.shape[1], y)
        self._add_classes(np.unique(y))
        return self._accumulate(X, y)

    def partial_fit(self, X, y, classes=None) -> "PrototypeHead":
        """Add examples; labels never seen before become new classes (appended to ``classes_``).

        On an unfitted head the classes come in first-seen order. ``classes`` (scikit-learn's
        argument) is accepted and checked, but a listed label gets a prototype only once it has
        examples (or from the prior).
        """
        self._validate_params()
        name = type(self).__name__
        if getattr(self, "sums_", None) is None:
            prior = self._prior_head()
            X, y = check_Xy(X, y, dim=prior.n_features_in_ if prior is not None else None, owner=name)
            if prior is not None:
                check_label_kind(y, prior.classes_, head=name)
            self._reset(X.shape[1], y)
        else:
            X, y = check_Xy(X, y, dim=self.n_features_in_, owner=name)
            check_label_kind(y, self.classes_, head=name)
        if classes is not None:
            check_label_kind(check_labels(classes), y, head=name)
        return self._accumulate(X, y)

    def _add_classes(self, new) -> None:
        self._own = append_labels(self._own, new)
        self.sums_ = np.vstack([self.sums_, np.zeros((len(new), self.sums_.shape[1]))])
        self.counts_ = np.concatenate([self.counts_, np.zeros(len(new))])

    def _accumulate(self, X: np.ndarray, y: np.ndarray) -> "PrototypeHead":
        Z = l2_normalize(X) if self.metric == "cosine" else X
        known = set(self._own.tolist())
        new = [c for c in dict.fromkeys(y.tolist()) if c not in known]
        if new:
            self._add_classes(new)
        index = {c: i for i, c in enumerate(self._own.tolist())}
        rows = np.fromiter((index[c] for c in y.tolist()), dtype=np.int64, count=len(y))
        np.add.at(self.sums_, rows, Z.astype(np.float64))
        self.counts_ += np.bincount(rows, minlength=len(self._own))
        self._refresh()
        return self

    def _refresh(self) -> None:
        """Recompute ``classes_`` and ``prototypes_`` from sums, counts and the prior."""
        classes = self._own
        prior_head = self._prior_head()
        if prior_head is None:
            protos = shrink_prototypes(self.sums_, self.counts_, None, 0.0)
        else:
            pidx = {c: i for i, c in enumerate(prior_head.classes_.tolist())}
            pp = prior_head.prototypes_
            prior = np.full((len(classes), pp.shape[1]), np.nan)
            for i, c in enumerate(classes.tolist()):
                if c in pidx:
                    prior[i] = pp[pidx[c]]
            protos = shrink_prototypes(self.sums_, self.counts_, prior, float(self.shrinkage))
            own = set(classes.tolist())
            extra = [c for c in prior_head.classes_.tolist() if c not in own]
            if extra:   # classes only the prior knows are predicted from the prior's prototypes
                classes = append_labels(classes, extra)
                protos = np.vstack([protos, pp[[pidx[c] for c in extra]]])
        self.classes_ = classes
        self.prototypes_ = l2_normalize(protos) if self.metric == "cosine" else protos

    # -- inference -------------------------------------------------------------------------------
    def _logits(self, X) -> np.ndarray:
        """Logits ``[N, C]`` (similarity / temperature), columns ordered as ``classes_``."""
        require_fitted(self)
        X = check_X(X, dim=self.n_features_in_, owner=type(self).__name__).astype(np.float64)
        P = self.prototypes_
        if self.metric == "cosine":
            sim = l2_normalize(X) @ P.T
        else:
            sim = -(np.sum(X * X, axis=1, keepdims=True) - 2 * X @ P.T + np.sum(P * P, axis=1)[None, :])
        return sim / float(self._temperature())

    def class_counts(self) -> dict:
        """The user's own shot count per class (prior-only classes are absent)."""
        require_fitted(self)
        return {c: int(n) for c, n in zip(self._own.tolist(), self.counts_)}

    def forget_classes(self, labels: Sequence) -> "PrototypeHead":
        """Drop the head's own examples of ``labels`` (a prior's prototypes of them stay)."""
        require_fitted(self)
        labels = check_labels(labels).tolist()
        check_known(labels, self._own.tolist(), head=type(self).__name__)
        drop = set(labels)
        keep = [i for i, c in enumerate(self._own.tolist()) if c not in drop]
        self._own = self._own[keep]
        self.sums_, self.counts_ = self.sums_[keep], self.counts_[keep]
        self._refresh()
        return self

    # -- state -----------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """JSON-serializable state: config, class labels, per-class sums and counts, prior's state.

        Labels are stored as JSON str or numbers, so int labels come back as ints; a prior given as
        ``FrozenEstimator`` comes back frozen (``"prior_frozen"``; older states without it: plain).
        """
        require_fitted(self)
        prior = self._prior_head()
        return {
            **state_header(self),
            "metric": self.metric,
            "temperature": float(self._temperature()),
            "shrinkage": float(self.shrinkage),
            "n_features": int(self.n_features_in_),
            "classes": labels_to_json(self._own),
            "sums": self.sums_.tolist(),
            "counts": self.counts_.tolist(),
            "prior": prior.get_state() if prior is not None else None,
            "prior_frozen": isinstance(self.prior, FrozenEstimator),
        }

    @classmethod
    def from_state(cls, state: dict) -> "PrototypeHead":
        """Rebuild a head from ``get_state()``'s output (predictions are identical)."""
        check_state(state, cls)
        prior = cls.from_state(state["prior"]) if state.get("prior") else None
        if prior is not None and state.get("prior_frozen"):
            prior = FrozenEstimator(prior)
        head = cls(metric=state["metric"], temperature=state["temperature"], prior=prior,
                   shrinkage=state["shrinkage"])
        head._validate_params()
        d = int(state["n_features"])
        sums = np.asarray(state["sums"], dtype=np.float64).reshape(-1, d)
        counts = np.asarray(state["counts"], dtype=np.float64)
        classes = labels_from_json(state["classes"])
        if sums.shape[0] != len(classes) or counts.shape != (len(classes),):
            raise ValueError(f"state holds {len(classes)} classes but sums {sums.shape} / counts {counts.shape}")
        head._own, head.sums_, head.counts_, head.n_features_in_ = classes, sums, counts, d
        head._refresh()
        return head
