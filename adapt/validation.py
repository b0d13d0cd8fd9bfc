"""Input and state validation shared by the heads, the normalizers and the per-user model.

Every estimator checks its inputs the same way: ``X`` is a finite 2D float array ``[N, D]`` whose ``D``
matches what the head was fitted on, ``y`` is a 1D array of ``N`` string labels, and unknown labels
raise ``UnknownLabelError`` naming them.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import NotFittedError, UnknownLabelError

__all__ = ["check_X", "check_Xy", "check_sample_weight", "require_fitted", "check_known", "state_header",
           "check_state"]


def check_X(X, *, dim: int | None = None, name: str = "X") -> np.ndarray:
    """``X`` as a float32 ``[N, D]`` array; raises ValueError/TypeError naming the problem."""
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a 2D numeric array [N, D], got {type(X).__name__}")
    try:
        arr = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 2D numeric array [N, D]: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2D [N, D], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} holds 0 rows (shape {arr.shape})")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} features but the head was fitted on {dim}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or infinity in {bad} row(s)")
    return arr


def check_Xy(X, y, *, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(X [N, D] float32, y [N] str)``."""
    arr = check_X(X, dim=dim)
    if isinstance(y, (str, bytes)):
        raise TypeError(f"y must be a sequence of labels, got the single string {y!r}")
    lab = np.asarray(y)
    if lab.ndim != 1:
        raise ValueError(f"y must be 1D, got shape {lab.shape}")
    if len(lab) != arr.shape[0]:
        raise ValueError(f"X has {arr.shape[0]} rows but y has {len(lab)} labels")
    lab = lab.astype(str).astype(object)
    empty = [i for i, v in enumerate(lab) if not v.strip()]
    if empty:
        raise UnknownLabelError(f"empty label at position(s) {empty[:5]}")
    return arr, lab


def check_sample_weight(sample_weight, n: int) -> np.ndarray:
    """``sample_weight`` as float64 ``[N]`` of non-negative finite values (ones when None)."""
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"sample_weight must be finite and >= 0, got min {w.min()}")
    return w


def require_fitted(head: Any, attr: str = "classes_") -> None:
    if getattr(head, attr, None) is None:
        raise NotFittedError(f"{type(head).__name__} is not fitted yet: call fit(X, y) first")


def check_known(labels: Sequence[str], classes: Sequence[str], *, head: str) -> None:
    """Raise ``UnknownLabelError`` if a label is not among ``classes``."""
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise UnknownLabelError(f"{head} does not know label(s) {unknown}; known: {list(classes)}")


def state_header(head: Any, version: int = 1) -> dict:
    return {"type": type(head).__name__, "version": version}


def check_state(state: Any, cls: type, version: int = 1) -> dict:
    if not isinstance(state, dict):
        raise TypeError(f"{cls.__name__}.from_state expects a dict, got {type(state).__name__}")
    if state.get("type") != cls.__name__:
        raise ValueError(f"state is of type {state.get('type')!r}, not {cls.__name__!r}")
    if state.get("version") != version:
        raise ValueError(f"{cls.__name__} state version {state.get('version')!r} is not supported (want {version})")
    return state
