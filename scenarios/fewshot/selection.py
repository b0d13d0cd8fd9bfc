"""Choosing recipe options on training corpora only: inner leave-one-corpus-out cross-validation.

Example:
    >>> cfg, scores = select_by_corpus_cv(parts, recipe="linear-ft+norm", grid={"ft_decay": (1e-3, 1e-2)})  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import replace
from itertools import product
from typing import Sequence

import numpy as np

from ..tables import FeatureTable
from .protocols import new_corpus
from .recipes import RecipeConfig

__all__ = ["select_by_corpus_cv"]


def select_by_corpus_cv(parts: Sequence, *, recipe: str, grid: dict, shots: int = 5,
                        base: RecipeConfig | None = None) -> tuple[RecipeConfig, dict]:
    """Pick ``RecipeConfig`` values for the new-corpus protocol by inner leave-one-corpus-out CV.

    Every training corpus in ``parts`` (``FeatureTable``s; the outer target must not be among them)
    plays the new corpus once, with the others as training data; the candidate with the best mean
    UA at ``shots`` wins. ``grid`` maps a ``RecipeConfig`` field to candidate values, e.g.
    ``{"ft_decay": (1e-3, 1e-2, 1e-1)}``. Returns ``(config, {candidate: mean UA})``.
    """
    if len(parts) < 2:
        raise ValueError(f"corpus CV needs at least 2 training corpora, got {len(parts)}")
    base = base or RecipeConfig()
    names = sorted(grid)
    scores = {}
    for values in product(*(grid[n] for n in names)):
        cand = replace(base, **dict(zip(names, values)))
        uas = []
        for i, inner_target in enumerate(parts):
            inner_train = FeatureTable.concat([p for j, p in enumerate(parts) if j != i])
            r = new_corpus(inner_train, inner_target, recipes=[recipe], shots=(shots,), config=cand, n_boot=1,
                           ceiling=False)
            uas.append(r[0].ua)
        scores[values] = float(np.mean(uas))
    best = max(scores, key=scores.get)
    return replace(base, **dict(zip(names, best))), scores
