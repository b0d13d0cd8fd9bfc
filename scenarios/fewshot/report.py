"""Result rows of the few-shot protocols and their Markdown rendering.

Example:
    >>> row = FewShotRow("personalization", "emodb", "si", "disjoint", 5, 0.9, 0.85, 0.95, 0.9, 5.0, 10, {})
    >>> print(rows_to_markdown([row], ["method", "shots", "ua"]))
    | method | shots | ua |
    |---|---|---|
    | si | 5 | 0.900 |
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from adapt.metrics import bootstrap_ci, unweighted_average_recall

__all__ = ["FewShotRow", "Predictions", "summarize", "rows_to_markdown"]


@dataclass(frozen=True)
class FewShotRow:
    """One cell group of a protocol table. ``ua`` is pooled over targets and seeds; ``lo``/``hi``
    the bootstrap CI; ``ref_ua`` the reference (``si`` / supervised ceiling / before) on the
    same clips; ``extra`` protocol-specific numbers."""

    protocol: str
    corpus: str
    method: str
    mode: str
    shots: int
    ua: float
    lo: float
    hi: float
    ref_ua: float
    shots_mean: float
    n_targets: int
    extra: dict

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Predictions:
    """What a protocol gathers for one table cell: true and predicted labels of every scored clip,
    the bootstrap group of each (``"<target>|<seed>"``), and the enrollment size of each draw."""

    y_true: list = field(default_factory=list)
    y_pred: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    shots_used: list = field(default_factory=list)

    def add(self, y_true, y_pred, group: str | Sequence[str], shots_used: float | None = None) -> None:
        self.y_true.append(np.asarray(y_true).astype(str))
        self.y_pred.append(np.asarray(y_pred).astype(str))
        g = np.asarray(group)
        self.groups.append(np.full(len(self.y_true[-1]), str(group)) if g.ndim == 0 else g.astype(str))
        if shots_used is not None:
            self.shots_used.append(float(shots_used))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self.y_true), np.concatenate(self.y_pred), np.concatenate(self.groups)

    def ua(self) -> float:
        yt, yp, _ = self.arrays()
        return unweighted_average_recall(yt, yp)


def summarize(pred: dict, protocol: str, corpus: str, n_boot: int, ref_key=None) -> list[FewShotRow]:
    """One ``FewShotRow`` per ``(method, mode, k)`` key of ``pred`` (``Predictions`` values), with a
    bootstrap CI over the groups; ``ref_key(key)`` names the reference cell (its UA is ``ref_ua``)."""
    rows = []
    for key, cell in sorted(pred.items()):
        method, mode, k = key
        yt, yp, groups = cell.arrays()
        ua, lo, hi = bootstrap_ci(yt, yp, groups, n_boot=n_boot, seed=0)
        ref = pred.get(ref_key(key)) if ref_key else None
        ref_ua = ref.ua() if ref else float("nan")
        rows.append(FewShotRow(protocol, corpus, method, mode, k, ua, lo, hi, ref_ua,
                               float(np.mean(cell.shots_used)) if cell.shots_used else float("nan"),
                               len({g.split("|")[0] for g in groups}), {}))
    return rows


def rows_to_markdown(rows: Sequence[FewShotRow], columns: Sequence[str]) -> str:
    """A markdown table of ``rows`` with the given attribute / ``extra`` columns (floats to 3 places)."""
    def cell(r, c):
        v = getattr(r, c) if hasattr(r, c) else r.extra.get(c, "")
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
