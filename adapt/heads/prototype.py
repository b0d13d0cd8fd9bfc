"""Prototype (nearest class mean) head: the cheapest few-shot learner, incremental by construction.

A class is the mean of its examples' embeddings (L2-normalized first under the cosine metric). A
clip is scored by its similarity to every prototype, divided by a temperature, and softmaxed.
``partial_fit`` only adds to per-class sums and counts, so new examples and **new classes** cost
O(N * D) and never revisit old data; the whole state is ``C`` vectors and ``C`` counts.

Shrinkage toward a prior: with ``prior`` (another fitted ``PrototypeHead``, e.g. global prototypes
learned on many speakers) a user's prototype of class ``c`` is

    p_c = (sum_c + s * prior_c) / (n_c + s)

where ``n_c`` is the user's shot count and ``s = shrinkage`` a pseudo-count: with 1 shot and
``s = 2`` the prior weighs 2/3, with 10 shots 1/6. Classes that only the prior knows are
predicted from the prior's prototypes, so a partly enrolled user still gets every emotion.

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

from ..stats import l2_normalize
from ..validation import check_known, check_state, check_X, check_Xy, require_fitted, state_header
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


class PrototypeHead(HeadMixin):
    """Nearest-prototype classifier with incremental classes and optional shrinkage to a prior.

    Args:
        metric: ``"cosine"`` (default; embeddings L2-normalized before averaging) or
            ``"euclidean"`` (negative squared distance).
        temperature: logits are ``similarity / temperature``; it only shapes ``predict_proba``
            (``predict`` is the arg-max either way). Default 0.1 for cosine, 1.0 for euclidean.
        prior: a fitted ``PrototypeHead`` (same metric and dimension) whose prototypes a user's
            prototypes shrink toward; None for none.
        shrinkage: pseudo-count ``s`` of the prior (>= 0); weight of the prior is ``s / (n_c + s)``.

    Attributes (after fit): ``classes_`` (object array of str, ``[C]``), ``sums_`` (``[C, D]``),
    ``counts_`` (``[C]``), ``n_features_in_``, ``prototypes_`` (``[C', D]`` over ``classes_``).
    """

    def __init__(self, *, metric: str = "cosine", temperature: float | None = None,
                 prior: "PrototypeHead | None" = None, shrinkage: float = 2.0) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if temperature is None:
            temperature = _DEFAULT_TEMPERATURE[metric]
        if not isinstance(temperature, (int, float)) or not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if not isinstance(shrinkage, (int, float)) or not np.isfinite(shrinkage) or shrinkage < 0:
            raise ValueError(f"shrinkage must be a finite number >= 0, got {shrinkage!r}")
        if prior is not None:
            if not isinstance(prior, PrototypeHead):
                raise TypeError(f"prior must be a fitted PrototypeHead, got {type(prior).__name__}")
            require_fitted(prior)
            if prior.metric != metric:
                raise ValueError(f"prior uses metric {prior.metric!r} but this head uses {metric!r}")
        self.metric = metric
        self.temperature = float(temperature)
        self.prior = prior
        self.shrinkage = float(shrinkage)
        self._reset()

    def _reset(self) -> None:
        self._own: list[str] = []
        self.sums_: np.ndarray | None = None
        self.counts_: np.ndarray | None = None
        self.n_features_in_: int | None = self.prior.n_features_in_ if self.prior is not None else None
        self.classes_: np.ndarray | None = None
        self.prototypes_: np.ndarray | None = None

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X, y) -> "PrototypeHead":
        """Forget everything and fit on ``X [N, D]``, ``y [N]`` (classes sorted)."""
        X, y = check_Xy(X, y, dim=self.prior.n_features_in_ if self.prior is not None else None)
        self._reset()
        order = np.argsort(y, kind="stable")
        return self._accumulate(X[order], y[order])

    def partial_fit(self, X, y) -> "PrototypeHead":
        """Add examples; labels never seen before become new classes (appended to ``classes_``)."""
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        return self._accumulate(X, y)

    def _accumulate(self, X: np.ndarray, y: np.ndarray) -> "PrototypeHead":
        d = X.shape[1]
        if self.sums_ is None:
            self.sums_ = np.zeros((0, d), dtype=np.float64)
            self.counts_ = np.zeros(0, dtype=np.float64)
            self.n_features_in_ = d
        Z = l2_normalize(X) if self.metric == "cosine" else X
        index = {c: i for i, c in enumerate(self._own)}
        new = [c for c in dict.fromkeys(y.tolist()) if c not in index]
        if new:
            for c in new:
                index[c] = len(self._own)
                self._own.append(c)
            self.sums_ = np.vstack([self.sums_, np.zeros((len(new), d))])
            self.counts_ = np.concatenate([self.counts_, np.zeros(len(new))])
        rows = np.fromiter((index[c] for c in y), dtype=np.int64, count=len(y))
        np.add.at(self.sums_, rows, Z.astype(np.float64))
        self.counts_ += np.bincount(rows, minlength=len(self._own))
        self._refresh()
        return self

    def _refresh(self) -> None:
        """Recompute ``classes_`` and ``prototypes_`` from sums, counts and the prior."""
        classes = list(self._own)
        if self.prior is None:
            protos = shrink_prototypes(self.sums_, self.counts_, None, 0.0)
        else:
            pidx = {c: i for i, c in enumerate(self.prior.classes_.tolist())}
            pp = self.prior.prototypes_
            prior = np.full((len(classes), pp.shape[1]), np.nan)
            for i, c in enumerate(classes):
                if c in pidx:
                    prior[i] = pp[pidx[c]]
            protos = shrink_prototypes(self.sums_, self.counts_, prior, self.shrinkage)
            extra = [c for c in self.prior.classes_.tolist() if c not in set(classes)]
            if extra:   # classes only the prior knows are predicted from the prior's prototypes
                classes += extra
                protos = np.vstack([protos, pp[[pidx[c] for c in extra]]])
        self.classes_ = np.array(classes, dtype=object)
        self.prototypes_ = l2_normalize(protos) if self.metric == "cosine" else protos

    # -- inference -------------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Logits ``[N, C]`` (similarity / temperature), columns ordered as ``classes_``."""
        require_fitted(self)
        X = check_X(X, dim=self.n_features_in_).astype(np.float64)
        P = self.prototypes_
        if self.metric == "cosine":
            sim = l2_normalize(X) @ P.T
        else:
            sim = -(np.sum(X * X, axis=1, keepdims=True) - 2 * X @ P.T + np.sum(P * P, axis=1)[None, :])
        return sim / self.temperature


    def class_counts(self) -> dict[str, int]:
        """The user's own shot count per class (prior-only classes are absent)."""
        require_fitted(self)
        return {c: int(n) for c, n in zip(self._own, self.counts_)}

    def forget_classes(self, labels: Sequence[str]) -> "PrototypeHead":
        """Drop the head's own examples of ``labels`` (a prior's prototypes of them stay)."""
        require_fitted(self)
        labels = [str(v) for v in labels]
        check_known(labels, self._own, head=type(self).__name__)
        keep = [i for i, c in enumerate(self._own) if c not in set(labels)]
        self._own = [self._own[i] for i in keep]
        self.sums_, self.counts_ = self.sums_[keep], self.counts_[keep]
        self._refresh()
        return self

    # -- state -----------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """JSON-serializable state: config, class names, per-class sums and counts, prior's state."""
        require_fitted(self)
        return {
            **state_header(self),
            "metric": self.metric,
            "temperature": self.temperature,
            "shrinkage": self.shrinkage,
            "n_features": int(self.n_features_in_),
            "classes": list(self._own),
            "sums": self.sums_.tolist(),
            "counts": self.counts_.tolist(),
            "prior": self.prior.get_state() if self.prior is not None else None,
        }

    @classmethod
    def from_state(cls, state: dict) -> "PrototypeHead":
        """Rebuild a head from ``get_state()``'s output (predictions are identical)."""
        check_state(state, cls)
        prior = cls.from_state(state["prior"]) if state.get("prior") else None
        head = cls(metric=state["metric"], temperature=state["temperature"], prior=prior,
                   shrinkage=state["shrinkage"])
        d = int(state["n_features"])
        sums = np.asarray(state["sums"], dtype=np.float64).reshape(-1, d)
        counts = np.asarray(state["counts"], dtype=np.float64)
        classes = [str(c) for c in state["classes"]]
        if sums.shape[0] != len(classes) or counts.shape != (len(classes),):
            raise ValueError(f"state holds {len(classes)} classes but sums {sums.shape} / counts {counts.shape}")
        head._own, head.sums_, head.counts_, head.n_features_in_ = classes, sums, counts, d
        head._refresh()
        return head

    def __repr__(self) -> str:
        n = 0 if self.classes_ is None else len(self.classes_)
        return (f"PrototypeHead(metric={self.metric!r}, temperature={self.temperature}, "
                f"shrinkage={self.shrinkage}, prior={'yes' if self.prior is not None else 'no'}, classes={n})")
