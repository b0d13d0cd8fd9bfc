"""Evaluation metrics as pure functions on arrays.

Classification: ``unweighted_average_recall`` (UA, the headline number: corpora are unbalanced),
``weighted_accuracy`` (WA, plain accuracy), ``macro_f1``, ``confusion``.
Continual learning, on an accuracy matrix ``R`` where ``R[i, j]`` is the score on experience ``j``'s
test set after training on experience ``i`` (shape ``(T, T)``): ``average_accuracy``,
``backward_transfer``, ``forgetting``, ``forward_transfer``.
Uncertainty: ``bootstrap_ci`` resamples groups (speakers), not clips.

Example:
    >>> unweighted_average_recall(["a", "a", "b"], ["a", "b", "b"])
    0.75
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = [
    "unweighted_average_recall",
    "weighted_accuracy",
    "macro_f1",
    "confusion",
    "per_class_recall",
    "average_accuracy",
    "backward_transfer",
    "forgetting",
    "forward_transfer",
    "bootstrap_ci",
    "summarize",
]


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"expected 1D label arrays, got shapes {t.shape} and {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(t)} vs {len(p)}")
    if len(t) == 0:
        raise ValueError("cannot score 0 predictions")
    return t, p


def per_class_recall(y_true, y_pred, labels: Sequence | None = None) -> dict:
    """Recall of each class present in ``y_true`` (or of ``labels``; absent ones are NaN)."""
    t, p = _pair(y_true, y_pred)
    classes = list(labels) if labels is not None else sorted(set(t.tolist()))
    out = {}
    for c in classes:
        mask = t == c
        out[c] = float((p[mask] == c).mean()) if mask.any() else float("nan")
    return out


def unweighted_average_recall(y_true, y_pred) -> float:
    """UA: the mean over the classes present in ``y_true`` of each class's recall. Range [0, 1]."""
    rec = per_class_recall(y_true, y_pred)
    return float(np.mean(list(rec.values())))


def summarize(y_true, y_pred) -> dict:
    """The headline numbers in report order: ``{"ua", "wa", "macro_f1", "n"}``.

    Example:
        >>> summarize(["a", "a", "b"], ["a", "b", "b"])["ua"]
        0.75
    """
    t, p = _pair(y_true, y_pred)
    return {"ua": unweighted_average_recall(t, p), "wa": weighted_accuracy(t, p), "macro_f1": macro_f1(t, p), "n": len(t)}


def weighted_accuracy(y_true, y_pred) -> float:
    """WA: the fraction of correct predictions (accuracy weighted by class frequency)."""
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean())


def macro_f1(y_true, y_pred) -> float:
    """Unweighted mean of per-class F1 over the union of true and predicted classes."""
    t, p = _pair(y_true, y_pred)
    scores = []
    for c in sorted(set(t.tolist()) | set(p.tolist())):
        tp = float(np.sum((t == c) & (p == c)))
        fp = float(np.sum((t != c) & (p == c)))
        fn = float(np.sum((t == c) & (p != c)))
        denom = 2 * tp + fp + fn
        scores.append(0.0 if denom == 0 else 2 * tp / denom)
    return float(np.mean(scores))


def confusion(y_true, y_pred, labels: Sequence | None = None, *, normalize: str | None = None) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = count of true ``labels[i]`` predicted as ``labels[j]``.

    ``normalize="true"`` divides each row by its total (rows of absent classes stay 0).
    """
    t, p = _pair(y_true, y_pred)
    labs = list(labels) if labels is not None else sorted(set(t.tolist()) | set(p.tolist()))
    index = {c: i for i, c in enumerate(labs)}
    mat = np.zeros((len(labs), len(labs)), dtype=np.float64 if normalize else np.int64)
    for a, b in zip(t.tolist(), p.tolist()):
        if a in index and b in index:
            mat[index[a], index[b]] += 1
    if normalize == "true":
        totals = mat.sum(axis=1, keepdims=True)
        mat = np.divide(mat, totals, out=np.zeros_like(mat, dtype=np.float64), where=totals > 0)
    elif normalize is not None:
        raise ValueError(f"normalize must be None or 'true', got {normalize!r}")
    return mat


def _square(matrix) -> np.ndarray:
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"expected a square (T, T) accuracy matrix, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError(f"accuracy matrix holds non-finite entries: {r.tolist()}")
    return r


def average_accuracy(matrix) -> float:
    """Mean score over all experiences after the last one: ``mean(R[T-1, :])``."""
    r = _square(matrix)
    return float(r[-1].mean())


def backward_transfer(matrix) -> float:
    """BWT = mean over j < T-1 of ``R[T-1, j] - R[j, j]`` (negative means forgetting)."""
    r = _square(matrix)
    t = r.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)]))


def forgetting(matrix) -> float:
    """Mean over j < T-1 of ``max_{i<T-1} R[i, j] - R[T-1, j]`` (Chaudhry et al. 2018)."""
    r = _square(matrix)
    t = r.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([r[j:t - 1, j].max() - r[-1, j] for j in range(t - 1)]))


def forward_transfer(matrix, baseline: Sequence[float]) -> float:
    """FWT = mean over j > 0 of ``R[j-1, j] - baseline[j]`` (baseline: a model that saw nothing)."""
    r = _square(matrix)
    b = np.asarray(baseline, dtype=np.float64)
    if b.shape != (r.shape[0],):
        raise ValueError(f"baseline needs {r.shape[0]} values, got shape {b.shape}")
    if r.shape[0] < 2:
        return 0.0
    return float(np.mean([r[j - 1, j] - b[j] for j in range(1, r.shape[0])]))


def bootstrap_ci(
    y_true,
    y_pred,
    groups,
    metric: Callable = unweighted_average_recall,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile CI, resampling whole groups (e.g. speakers) with replacement.

    Returns ``(estimate, low, high)``.
    """
    t, p = _pair(y_true, y_pred)
    g = np.asarray(groups)
    if g.shape != t.shape:
        raise ValueError(f"groups must have one entry per prediction: {g.shape} vs {t.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    uniq = np.unique(g)
    members = [np.flatnonzero(g == u) for u in uniq]
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), size=len(uniq))
        idx = np.concatenate([members[i] for i in pick])
        stats.append(metric(t[idx], p[idx]))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(metric(t, p)), float(lo), float(hi)
