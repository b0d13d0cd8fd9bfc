"""Input and state validation shared by the heads, the normalizers and the per-user model.

Every estimator checks its inputs the same way: ``X`` is a finite 2D float array ``[N, D]`` whose ``D``
matches what the head was fitted on, ``y`` is a 1D array of ``N`` class labels, and unknown labels
raise ``UnknownLabelError`` naming them.

Labels keep their type, as a scikit-learn classifier's do: ints stay ints (``classes_`` and
predictions are int arrays), strings are held as an object array of ``str`` (numpy ``<U`` / bytes
input is converted to that, so a later, longer label never gets truncated). Float labels must be
whole numbers (class ids); continuous targets raise ``ValueError("Unknown label type: continuous
...")``. One head holds one kind of label: mixing str and int raises ``TypeError``.
``labels_to_json`` / ``labels_from_json`` carry both kinds through a JSON state.

Example:
    >>> X, y = check_Xy([[0.0, 1.0], [1.0, 0.0]], [3, 7])
    >>> y.dtype.kind, check_Xy(X, ["sad", "happy"])[1].dtype
    ('i', dtype('O'))
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any, Sequence

import numpy as np
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from .errors import NotFittedError, UnknownLabelError

__all__ = ["check_X", "check_Xy", "check_labels", "check_sample_weight", "require_fitted", "EstimatorNotFittedError",
           "check_known",
           "check_label_kind", "append_labels", "labels_to_json", "labels_from_json", "state_header",
           "check_state"]


def check_X(X, *, dim: int | None = None, name: str = "X", owner: str = "it") -> np.ndarray:
    """``X`` as a float32 ``[N, D]`` array; raises ValueError/TypeError naming the problem.

    ``dim``: the feature count ``X`` must have (``owner``, e.g. the head's class name, is named in
    the message, worded as scikit-learn's: ``"X has 3 features, but LinearHead is expecting 16
    features as input"``).
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a 2D numeric array [N, D], got {type(X).__name__}")
    if hasattr(X, "tocsr") or hasattr(X, "sparse"):   # scipy.sparse matrices / arrays, pandas sparse
        raise TypeError(f"{name} is a sparse {type(X).__name__}: sparse input is not supported; "
                        f"pass a dense array ({name}.toarray())")
    try:
        raw = np.asarray(X)
        if raw.dtype.kind == "c":
            raise ValueError(f"{name} is complex: Complex data not supported")
        arr = raw.astype(np.float32, copy=False)
    except TypeError as exc:
        raise TypeError(f"{name} must be a 2D numeric array [N, D]: {exc}") from None
    except ValueError as exc:
        if "Complex" in str(exc):
            raise
        raise TypeError(f"{name} must be a 2D numeric array [N, D]: {exc}") from None
    if arr.ndim == 1:
        raise ValueError(f"{name} must be 2D [N, D], got shape {arr.shape}. Reshape your data: "
                         f"{name}.reshape(1, -1) for one clip, {name}.reshape(-1, 1) for one feature")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2D [N, D], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} holds 0 rows (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} features, but {owner} is expecting {dim} features as input")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or infinity in {bad} row(s)")
    return arr


def check_Xy(X, y, *, dim: int | None = None, owner: str = "it") -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(X [N, D] float32, y [N])``; ``y`` keeps its label type (see ``check_labels``)."""
    arr = check_X(X, dim=dim, owner=owner)
    return arr, check_labels(y, arr.shape[0])


def _is_number(v) -> bool:
    return isinstance(v, (numbers.Number, np.bool_)) and not isinstance(v, complex)


def check_labels(y, n: int | None = None) -> np.ndarray:
    """``y`` as a 1D label array of length ``n`` that keeps its type.

    Strings (``str``, numpy ``<U`` or bytes) come back as an object array of ``str``; ints, bools
    and whole floats as a numeric array. A column vector ``[N, 1]`` is flattened with a
    ``DataConversionWarning`` (as scikit-learn does). Raises ``TypeError`` for a single string or
    mixed label types, ``ValueError`` for a wrong shape, NaN / infinity or continuous values, and
    ``UnknownLabelError`` for an empty (or blank) string label.
    """
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")
    if isinstance(y, (str, bytes)):
        raise TypeError(f"y must be a sequence of labels, got the single string {y!r}")
    lab = np.asarray(y)
    if lab.ndim == 2 and lab.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        warnings.warn(f"A column-vector y was passed when a 1d array was expected (shape {lab.shape}); "
                      "it was flattened", DataConversionWarning, stacklevel=3)
        lab = lab.ravel()
    if lab.ndim != 1:
        raise ValueError(f"y must be 1D, got shape {lab.shape}")
    if n is not None and len(lab) != n:
        raise ValueError(f"X has {n} rows but y has {len(lab)} labels")
    if lab.dtype.kind in "US":
        lab = lab.astype(str).astype(object)
    elif lab.dtype.kind == "O":
        if not all(isinstance(v, str) for v in lab):
            if not all(_is_number(v) for v in lab):
                kinds = sorted({type(v).__name__ for v in lab})
                raise TypeError(f"y must hold labels of one kind (all str or all int), got {kinds}")
            lab = np.asarray(lab.tolist())   # numbers in an object array: a numeric array
    if lab.dtype.kind in "fc":
        if lab.dtype.kind == "c":
            raise ValueError("y is complex: Complex data not supported")
        if not np.isfinite(lab).all():
            raise ValueError("y contains NaN or infinity")
    elif lab.dtype.kind not in "biuO":
        raise TypeError(f"y must hold str or int labels, got dtype {lab.dtype}")
    if lab.dtype.kind == "f" and len(lab) and not (lab == np.round(lab)).all():
        raise ValueError(f"Unknown label type: continuous (y holds non-integer floats such as "
                         f"{float(lab[lab != np.round(lab)][0])}); a classifier needs class labels (str or int)")
    if lab.dtype == object:
        empty = [i for i, v in enumerate(lab) if isinstance(v, str) and not v.strip()]
        if empty:
            raise UnknownLabelError(f"empty label at position(s) {empty[:5]}")
    return lab


def _label_kind(labels: np.ndarray) -> str:
    return "str" if len(labels) and isinstance(labels[0], str) else "number"


def check_label_kind(y: np.ndarray, classes: np.ndarray, *, head: str) -> None:
    """Raise ``TypeError`` when ``y`` (validated) holds another kind of label than ``classes``."""
    if len(y) and len(classes) and _label_kind(y) != _label_kind(classes):
        raise TypeError(f"{head} was fitted on {_label_kind(classes)} labels, got {_label_kind(y)} labels "
                        f"(e.g. {y[0]!r})")


def append_labels(classes: np.ndarray, new: Sequence) -> np.ndarray:
    """``classes`` with the labels ``new`` appended (order kept; numeric dtypes promote, str stays object)."""
    if not len(new):
        return classes
    extra = np.asarray(list(new), dtype=object if classes.dtype == object else None)
    return np.concatenate([classes, extra])


def labels_to_json(labels) -> list:
    """Labels as a JSON-ready list of plain ``str`` / ``int`` / ``float`` / ``bool``."""
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(labels).tolist()]


def labels_from_json(values: Sequence) -> np.ndarray:
    """The label array ``labels_to_json`` wrote: an object array of str, or a numeric array."""
    values = list(values)
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if not all(_is_number(v) for v in values):
        raise ValueError(f"state labels must be all str or all numbers, got {values[:5]}")
    return np.asarray(values)


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


class EstimatorNotFittedError(NotFittedError, _SklearnNotFittedError):
    """``adapt.errors.NotFittedError`` that is also scikit-learn's ``NotFittedError``.

    The heads and normalizers raise it, so both ``except adapt.errors.NotFittedError`` and
    scikit-learn's own checks (``check_is_fitted`` callers, the estimator test battery) catch it.
    ``adapt.errors`` cannot define it: ``import adapt`` must not import scikit-learn.
    """


def require_fitted(head: Any, attr: str = "classes_") -> None:
    """Raise ``EstimatorNotFittedError`` unless ``head.<attr>`` is set (not missing, not None)."""
    if getattr(head, attr, None) is None:
        raise EstimatorNotFittedError(f"{type(head).__name__} is not fitted yet: call fit(X, y) first")


def check_known(labels: Sequence[str], classes: Sequence[str], *, head: str) -> None:
    """Raise ``UnknownLabelError`` if a label is not among ``classes``."""
    unknown = set(labels) - set(classes)
    if unknown:
        try:
            unknown = sorted(unknown)
        except TypeError:   # labels of another kind than the classes: order by their text
            unknown = sorted(unknown, key=str)
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
