"""Faithfulness of a relevance curve: deletion and insertion curves against random relevance.

A relevance curve is faithful when the windows it ranks first are the ones the model needs.
**Deletion** silences (zeros) the most relevant windows first and tracks the target class's
probability: a faithful ranking makes it fall fast, so the area under the curve (AUC, fraction of
windows removed on ``[0, 1]``) is small. **Insertion** starts from silence and restores the most
relevant windows first: a faithful ranking makes the probability rise fast (large AUC). Both are
compared with random rankings of the same windows (``random_relevance``, several seeds), as in
Petsiuk et al. (RISE, 2018) and Samek et al. (2017, "most relevant first"); the window grid is
the relevance curve's own. captum has no deletion/insertion metric (its ``infidelity`` and
``sensitivity_max`` answer other questions), hence the code here.

Example:
    >>> curve = deletion_curve(model, wave, r)        # doctest: +SKIP
    >>> curve.auc < deletion_curve(model, wave, random_relevance(r, seed=0)).auc   # doctest: +SKIP
    True
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch

from .attribution import Relevance, window_samples
from .model import ClipModel, waveform_tensor

__all__ = ["Curve", "deletion_curve", "insertion_curve", "perturbation_curves", "random_relevance", "auc"]

DEFAULT_FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 3))


def auc(fractions: Sequence[float], probs: Sequence[float]) -> float:
    """Trapezoidal area under ``probs`` over ``fractions`` (both ``[n]``; fractions span [0, 1])."""
    return float(np.trapezoid(np.asarray(probs, np.float64), np.asarray(fractions, np.float64)))


@dataclass(frozen=True)
class Curve:
    """``probs[i]``: the target probability with ``fractions[i]`` of the windows deleted (or
    inserted), most relevant first; ``auc`` its area."""

    kind: str
    method: str
    fractions: np.ndarray
    probs: np.ndarray

    @property
    def auc(self) -> float:
        return auc(self.fractions, self.probs)


def random_relevance(r: Relevance, seed: int) -> Relevance:
    """``r`` with its values replaced by a seeded random ranking (the baseline of the curves)."""
    rng = np.random.default_rng(seed)
    return replace(r, method=f"random:{seed}", values=rng.permutation(len(r.values)).astype(np.float64),
                   delta=None, raw=None)


def _masked(x: torch.Tensor, removed: Sequence[int], win: int, kind: str) -> torch.Tensor:
    """The clip with the windows ``removed`` zeroed (deletion) or the only ones kept (insertion)."""
    keep = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    for w in removed:
        keep[w * win:(w + 1) * win] = 0.0
    return x[0] * (keep if kind == "deletion" else 1.0 - keep)


def perturbation_curves(model: ClipModel, wave: Any, relevances: Sequence[Relevance], *,
                        kinds: Sequence[str] = ("deletion", "insertion"),
                        fractions: Sequence[float] = DEFAULT_FRACTIONS, batch_size: int = 16) -> list[Curve]:
    """Deletion / insertion ``Curve``\\ s of several relevance curves of one clip, in one batched
    pass (every relevance must share the window grid and the target). Returns, for each relevance
    in order, one curve per kind in ``kinds``."""
    if not relevances:
        raise ValueError("no relevance curves given")
    r0 = relevances[0]
    for r in relevances:
        if len(r.values) != len(r0.values) or r.window_s != r0.window_s or r.target_index != r0.target_index:
            raise ValueError("all relevance curves of a clip must share the window grid and the target")
    for kind in kinds:
        if kind not in ("deletion", "insertion"):
            raise KeyError(f"unknown curve kind {kind!r}; known: ['deletion', 'insertion']")
    x = waveform_tensor(wave).to(model.backbone.device)
    win = window_samples(model, r0.window_s)
    K = len(r0.values)
    fr = np.asarray(fractions, np.float64)
    counts = [int(round(f * K)) for f in fr]
    # the full clip and full silence end every curve: evaluate each distinct waveform once
    keys: dict[tuple, int] = {}
    waves: list[torch.Tensor] = []
    index, rows = [], []
    for r in relevances:
        order = np.argsort(-np.asarray(r.values), kind="stable")
        for kind in kinds:
            row = []
            for n in counts:
                silent = (n == K) == (kind == "deletion")
                key = ("silent",) if silent and n in (0, K) else ("full",) if n in (0, K) else (kind, *sorted(order[:n]))
                if key not in keys:
                    keys[key] = len(waves)
                    waves.append(_masked(x, order[:n], win, kind))
                row.append(keys[key])
            index.append((r.method, kind))
            rows.append(row)
    stacked = torch.stack(waves)
    probs = []
    with torch.no_grad():
        for s in range(0, len(stacked), batch_size):
            probs.append(model.probabilities(stacked[s:s + batch_size])[:, r0.target_index].cpu().double())
    flat = torch.cat(probs).numpy()
    P = flat[np.asarray(rows)]
    return [Curve(kind=kind, method=method, fractions=fr, probs=P[i]) for i, (method, kind) in enumerate(index)]


def deletion_curve(model: ClipModel, wave: Any, r: Relevance, **kw: Any) -> Curve:
    """The deletion ``Curve`` of one relevance curve (see ``perturbation_curves``)."""
    return perturbation_curves(model, wave, [r], kinds=("deletion",), **kw)[0]


def insertion_curve(model: ClipModel, wave: Any, r: Relevance, **kw: Any) -> Curve:
    """The insertion ``Curve`` of one relevance curve (see ``perturbation_curves``)."""
    return perturbation_curves(model, wave, [r], kinds=("insertion",), **kw)[0]
