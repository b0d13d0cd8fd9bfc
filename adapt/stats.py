"""Numeric primitives shared by every head, normalizer and per-user model: one home, one epsilon.

* ``softmax(logits)`` — row-wise, max-shifted.
* ``l2_normalize(X)`` — rows to unit length; a zero row stays zero (``EPS`` guards the division).
* ``Standardizer`` — per-dimension mean / std with one floor policy (``STD_FLOOR``): a feature that
  barely varies is divided by the floor, never by ~0. Every head that standardizes its inputs uses it.
* ``batch_moments`` / ``merge_moments`` / ``RunningMoments`` — count, mean and sum of squared
  deviations (``m2``) merged with the parallel update of Chan et al. (1979): exact, order-free, so
  two statistics built on different clips combine into the statistics of all of them. The merge is
  plain arithmetic, so it works on numpy arrays and torch tensors alike (the replay plugins use it
  on tensors).
* ``ClassSums`` — per-label counts and sums (class prototypes are ``sums / counts``), immutable.

Why hand-written: scikit-learn's ``StandardScaler`` adds no floor (it divides near-constant
features by their tiny std) and has no exact merge of two partial fits; the per-user state needs
both and needs them on a few dozen numbers, where sklearn's validation overhead dominates.

Example:
    >>> import numpy as np
    >>> X = np.array([[1.0, 2.0], [3.0, 2.0]])
    >>> Standardizer().fit(X).transform(X).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    >>> a, b = RunningMoments.of(X[:1]), RunningMoments.of(X[1:])
    >>> a.merge(b).mean.tolist(), a.merge(b).var().tolist()
    ([2.0, 2.0], [1.0, 0.0])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["EPS", "STD_FLOOR", "softmax", "l2_normalize", "Standardizer", "batch_moments", "merge_moments",
           "RunningMoments", "ClassSums"]

#: guards divisions by a norm (``l2_normalize``)
EPS = 1e-12
#: the smallest standard deviation any feature is divided by (``Standardizer``, speaker statistics)
STD_FLOOR = 1e-6


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (default: the last; ``[N, C]`` -> rows summing to 1)."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def l2_normalize(X: np.ndarray, axis: int = -1) -> np.ndarray:
    """``X`` scaled to unit L2 norm along ``axis``; all-zero vectors stay zero."""
    return X / np.maximum(np.linalg.norm(X, axis=axis, keepdims=True), EPS)


class Standardizer:
    """Per-dimension standardization ``(X - mean_) / scale_`` with ``scale_ = max(std, floor)``.

    Arguments:
        floor: the smallest scale (default ``STD_FLOOR``).

    Attributes (after ``fit``): ``mean_`` ``[D]`` and ``scale_`` ``[D]`` (float64). One row has no
    spread: its scale is all ones.
    """

    def __init__(self, *, floor: float = STD_FLOOR) -> None:
        self.floor = floor

    def fit(self, X: np.ndarray, sample_weight: np.ndarray | None = None) -> "Standardizer":
        """Estimate ``mean_`` / ``scale_`` from ``X [N, D]`` (optionally weighted, ``[N]``)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"Standardizer.fit needs a non-empty [N, D] array, got shape {X.shape}")
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.mean_ = np.average(X, axis=0, weights=w)
        if len(X) == 1:
            self.scale_ = np.ones(X.shape[1])
        else:
            var = np.average((X - self.mean_) ** 2, axis=0, weights=w)
            self.scale_ = np.maximum(np.sqrt(var), self.floor)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardized float64 ``[N, D]``."""
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_

    def fit_transform(self, X: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, sample_weight).transform(X)


def batch_moments(X: Any) -> tuple[int, Any, Any]:
    """``(n, mean [D], m2 [D])`` of the rows of ``X [N, D]`` (numpy array or torch tensor)."""
    n = int(X.shape[0])
    mean = X.mean(0)
    return n, mean, ((X - mean) ** 2).sum(0)


def merge_moments(n_a: float, mean_a: Any, m2_a: Any, n_b: float, mean_b: Any, m2_b: Any) -> tuple[float, Any, Any]:
    """Chan et al.'s exact merge of two ``(n, mean, m2)`` statistics; either side may be empty."""
    if n_a == 0:
        return n_b, mean_b, m2_b
    if n_b == 0:
        return n_a, mean_a, m2_a
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta ** 2 * (n_a * n_b / n)


@dataclass(frozen=True)
class RunningMoments:
    """Count, mean ``[D]`` and sum of squared deviations ``m2`` ``[D]``; immutable, float64."""

    n: float
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> "RunningMoments":
        return cls(0, np.zeros(dim), np.zeros(dim))

    @classmethod
    def of(cls, X: np.ndarray) -> "RunningMoments":
        """The moments of the rows of ``X [N, D]``."""
        n, mean, m2 = batch_moments(np.asarray(X, dtype=np.float64))
        return cls(n, mean, m2)

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        return RunningMoments(*merge_moments(self.n, self.mean, self.m2, other.n, other.mean, other.m2))

    def add(self, X: np.ndarray) -> "RunningMoments":
        """The moments with the rows of ``X [N, D]`` folded in."""
        return self.merge(RunningMoments.of(X)) if len(X) else self

    def var(self, ddof: int = 0) -> np.ndarray:
        """Per-dimension variance (``ddof=1``: the unbiased one); zeros when there is no spread."""
        d = self.n - ddof
        return self.m2 / d if d > 0 else np.zeros_like(self.m2)


@dataclass(frozen=True)
class ClassSums:
    """Per-label clip counts ``[C]`` and embedding sums ``[C, D]``, labels in first-seen order."""

    labels: tuple[str, ...]
    counts: np.ndarray
    sums: np.ndarray = field(repr=False)

    @classmethod
    def empty(cls, dim: int) -> "ClassSums":
        return cls((), np.zeros(0), np.zeros((0, dim)))

    def add(self, X: np.ndarray, y: Sequence[str]) -> "ClassSums":
        """A new ``ClassSums`` with the rows of ``X [N, D]`` (labels ``y [N]``) added."""
        X = np.asarray(X, dtype=np.float64)
        labels = list(self.labels)
        for lab in y:
            if lab not in labels:
                labels.append(lab)
        index = {c: i for i, c in enumerate(labels)}
        counts = np.concatenate([self.counts, np.zeros(len(labels) - len(self.labels))])
        sums = np.vstack([self.sums, np.zeros((len(labels) - len(self.labels), X.shape[1]))])
        rows = np.fromiter((index[c] for c in y), dtype=np.int64, count=len(y))
        np.add.at(sums, rows, X)
        counts += np.bincount(rows, minlength=len(labels))
        return ClassSums(tuple(labels), counts, sums)

    def means(self) -> np.ndarray:
        """Class means ``[C, D]`` (``sums / counts``; a class with no clip gives zeros)."""
        return self.sums / np.maximum(self.counts, EPS)[:, None]

    def drop(self, labels: Sequence[str]) -> "ClassSums":
        """Without ``labels``."""
        keep = [i for i, c in enumerate(self.labels) if c not in set(labels)]
        return ClassSums(tuple(self.labels[i] for i in keep), self.counts[keep], self.sums[keep])
