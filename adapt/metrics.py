"""Evaluation metrics as pure functions on arrays.

Classification: ``unweighted_average_recall`` (UA, the headline number: corpora are unbalanced),
``weighted_accuracy`` (WA, plain accuracy), ``macro_f1``, ``confusion``.
Continual learning, on an accuracy matrix ``R`` where ``R[i, j]`` is the score on experience ``j``'s
test set after training on experience ``i`` (shape ``(T, T)``): ``average_accuracy``,
``backward_transfer``, ``forgetting``, ``forward_transfer``.
Uncertainty: ``bootstrap_ci`` resamples groups (speakers), not clips.
Calibration, on probabilities ``P [N, C]``: ``expected_calibration_error`` (ECE, 15 equal-width
bins of the top probability), ``reliability_curve``, ``brier_score``, ``selective_accuracy`` at a
confidence threshold and ``risk_coverage_curve`` (with its AURC).

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
    "ECE_BINS",
    "reliability_curve",
    "expected_calibration_error",
    "brier_score",
    "selective_accuracy",
    "risk_coverage_curve",
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


# -- calibration and selective prediction ------------------------------------------------------
#: bins of ``expected_calibration_error`` and ``reliability_curve`` (Guo et al. 2017 use 15)
ECE_BINS = 15


def _top(y_true, proba, classes: Sequence | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(P [N, C], onehot [N, C], confidence [N], correct [N])`` of probabilities ``proba``.

    ``y_true`` holds column indices when ``classes`` is None, else names among ``classes``.
    """
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError(f"proba must be [N, C] with N, C >= 1, got shape {P.shape}")
    if not np.isfinite(P).all() or (P < 0).any():
        raise ValueError("proba holds negative, NaN or infinite entries")
    t = np.asarray(y_true)
    if t.shape != (P.shape[0],):
        raise ValueError(f"y_true must have one entry per row of proba: {t.shape} vs {P.shape}")
    if classes is None:
        if not np.issubdtype(t.dtype, np.integer) or (t < 0).any() or (t >= P.shape[1]).any():
            raise ValueError(f"without classes, y_true must hold column indices in [0, {P.shape[1]})")
        idx = t.astype(int)
    else:
        names = [str(c) for c in classes]
        if len(names) != P.shape[1]:
            raise ValueError(f"{len(names)} classes for {P.shape[1]} columns of proba")
        pos = {c: i for i, c in enumerate(names)}
        bad = sorted({str(v) for v in t.tolist()} - set(pos))
        if bad:
            raise ValueError(f"y_true holds label(s) {bad} not among classes {names}")
        idx = np.array([pos[str(v)] for v in t.tolist()], dtype=int)
    onehot = np.zeros_like(P)
    onehot[np.arange(len(idx)), idx] = 1.0
    conf = P.max(axis=1)
    return P, onehot, conf, (P.argmax(axis=1) == idx)


def reliability_curve(y_true, proba, classes: Sequence | None = None, *, n_bins: int = ECE_BINS) -> dict:
    """Top-label reliability: ``n_bins`` equal-width confidence bins on [0, 1].

    A prediction of confidence ``c`` (top probability) falls in bin ``b`` when
    ``b / n_bins < c <= (b + 1) / n_bins`` (``c = 0`` in the first bin). Returns a dict of arrays
    ``[n_bins]``: ``edges`` (``[n_bins + 1]``), ``count``, ``confidence`` (mean per bin) and
    ``accuracy`` (per bin; NaN for empty bins). scikit-learn's ``calibration_curve`` is binary
    only, hence this function.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    _, _, conf, correct = _top(y_true, proba, classes)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.searchsorted(edges[1:-1], conf, side="left")     # bin b holds (edges[b], edges[b + 1]]
    count = np.bincount(b, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct.astype(float), minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": acc}


def expected_calibration_error(y_true, proba, classes: Sequence | None = None, *, n_bins: int = ECE_BINS) -> float:
    """ECE: ``sum_b (n_b / N) |accuracy_b - confidence_b|`` over ``n_bins`` equal-width bins of
    the top probability (``reliability_curve``; default 15 bins). Range [0, 1].

    Example:
        >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]], n_bins=10)
        0.45
    """
    r = reliability_curve(y_true, proba, classes, n_bins=n_bins)
    full = r["count"] > 0
    gaps = np.abs(r["accuracy"][full] - r["confidence"][full])
    return float(round(np.sum(r["count"][full] * gaps) / r["count"].sum(), 12))


def brier_score(y_true, proba, classes: Sequence | None = None) -> float:
    """Multi-class Brier score: ``mean_i sum_c (p_ic - [y_i = c])^2``. Range [0, 2] (0 is perfect).

    Same definition as scikit-learn's multi-class ``brier_score_loss`` (whose ``labels`` must name
    every column); this form also accepts rows scored on a subset of labels (a label set).

    Example:
        >>> brier_score([0, 1], [[0.9, 0.1], [0.8, 0.2]])
        0.65
    """
    P, onehot, _, _ = _top(y_true, proba, classes)
    return float(round(np.mean(np.sum((P - onehot) ** 2, axis=1)), 12))


def selective_accuracy(y_true, proba, classes: Sequence | None = None, *, threshold: float) -> tuple[float, float]:
    """``(accuracy, coverage)`` of the predictions whose confidence is at least ``threshold``:
    accuracy among the kept ones (NaN if none is kept) and the fraction kept.

    Example:
        >>> selective_accuracy([0, 1, 1], [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], threshold=0.65)
        (1.0, 0.6666666666666666)
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    _, _, conf, correct = _top(y_true, proba, classes)
    kept = conf >= threshold
    acc = float(correct[kept].mean()) if kept.any() else float("nan")
    return acc, float(kept.mean())


def risk_coverage_curve(y_true, proba, classes: Sequence | None = None) -> dict:
    """Selective accuracy against coverage, keeping the most confident predictions first.

    Returns ``coverage`` ``[N]`` (k / N for k = 1..N), ``accuracy`` ``[N]`` (of the k most
    confident), ``threshold`` ``[N]`` (the k-th confidence) and ``aurc``: the area under the
    risk (1 - accuracy) - coverage curve, the mean of the N risks (Geifman et al. 2018). Ties in
    confidence are kept together: every prediction tied with the k-th enters at once.

    Example:
        >>> risk_coverage_curve([0, 1], [[0.9, 0.1], [0.8, 0.2]])["aurc"]
        0.25
    """
    _, _, conf, correct = _top(y_true, proba, classes)
    order = np.argsort(-conf, kind="stable")
    c, ok = conf[order], correct[order].astype(float)
    n = len(c)
    # the last position of each run of equal confidences: ties enter together
    last = np.r_[np.flatnonzero(c[1:] != c[:-1]), n - 1]
    cum = np.cumsum(ok)
    k = np.repeat(last + 1, np.diff(np.r_[-1, last]))
    acc = cum[k - 1] / k
    return {"coverage": np.arange(1, n + 1) / n, "accuracy": acc, "threshold": c,
            "aurc": float(round(np.mean(1.0 - acc), 12))}
