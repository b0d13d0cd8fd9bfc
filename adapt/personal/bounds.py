"""Plausibility bounds for everything that enters a stored profile from outside.

A profile is only sums, counts and moments, so a tampered export (or an absurd embedding) can
make every later prediction of that user NaN without any single value being NaN: a count of
1e308, a custom emotion with 0 clips, an embedding of 3e38 whose square overflows. These bounds
are far above anything a real encoder produces (the default encoder's pooled values stay under
10 in magnitude on all six shared corpora) and far below where float32/float64 arithmetic breaks:

* ``MAX_ABS_VALUE`` (1e4) bounds embeddings and every mean (class means, moments, tenant centres);
  variances are bounded by its square;
* ``MAX_CLIPS`` (1e9) bounds every count; counts are whole numbers, and a label in a profile has
  at least one clip.

``check_labels_field`` applies the label rule of ``adapt.labels.check_label`` to stored label
names (printable, at most 64 characters, already in canonical form).

Example:
    >>> import numpy as np
    >>> check_counts(np.array([3.0, 1.0]), "user state")
    >>> check_counts(np.array([0.0]), "user state")
    Traceback (most recent call last):
    ...
    adapt.errors.InvalidStateError: user state: every emotion needs 1 to 1000000000 clips (whole numbers), got [0.0]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InvalidStateError, UnknownLabelError
from ..labels import check_label

__all__ = ["MAX_ABS_VALUE", "MAX_CLIPS", "check_counts", "check_magnitude", "check_labels_field", "check_total"]

MAX_ABS_VALUE = 1e4
MAX_CLIPS = 10**9


def check_counts(counts: np.ndarray, what: str) -> None:
    """Every count a whole number in [1, MAX_CLIPS]."""
    c = np.asarray(counts, np.float64)
    if c.size and (not np.isfinite(c).all() or (c < 1).any() or (c > MAX_CLIPS).any() or (c != np.round(c)).any()):
        raise InvalidStateError(f"{what}: every emotion needs 1 to {MAX_CLIPS} clips (whole numbers), "
                                f"got {c.tolist()[:8]}")


def check_total(n: int, what: str, name: str = "clip count") -> None:
    """A total count in [0, MAX_CLIPS]."""
    if not 0 <= n <= MAX_CLIPS:
        raise InvalidStateError(f"{what}: {name} {n} outside [0, {MAX_CLIPS}]")


def check_magnitude(values: np.ndarray, what: str, limit: float = MAX_ABS_VALUE) -> None:
    """Finite values of magnitude at most ``limit``."""
    v = np.asarray(values, np.float64)
    if v.size and (not np.isfinite(v).all() or np.abs(v).max() > limit):
        raise InvalidStateError(f"{what} holds values that are not finite or exceed {limit:g} in magnitude")


def check_labels_field(labels: Sequence[object], what: str) -> tuple[str, ...]:
    """Stored label names: each a valid label (``check_label``) already in canonical form."""
    out = []
    for lab in labels:
        try:
            ok = isinstance(lab, str) and check_label(lab) == lab
        except UnknownLabelError:
            ok = False
        if not ok:
            shown = repr(lab) if len(repr(lab)) <= 80 else repr(lab)[:77] + "..."
            raise InvalidStateError(f"{what}: invalid emotion label {shown} (at most 64 printable characters, "
                                    f"lower case, canonical spelling)")
        out.append(lab)
    return tuple(out)
