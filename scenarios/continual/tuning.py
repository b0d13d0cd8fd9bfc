"""Choose strategy hyper-parameters on validation speakers, never on test speakers.

``validation_scenario(features, scenario)`` rebuilds the same kind of scenario from the
*training* speakers of ``scenario`` only: the builder holds out some of them as validation
speakers, so the test speakers of ``scenario`` are never seen. ``select_option`` trains a strategy
with each candidate value on that validation scenario and keeps the value with the best validation
average accuracy (mean UA over experiences after the last one, so forgetting counts).

Example:
    >>> sc = language_incremental(fs, seed=0)                                    # doctest: +SKIP
    >>> val = validation_scenario(fs, sc)                                        # doctest: +SKIP
    >>> best, scores = select_option(val, "ewc", "ewc_lambda", [1e2, 1e3, 1e4])  # doctest: +SKIP
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import numpy as np

from ..runner import run_one
from .builders import ContinualScenario, builder_of

__all__ = ["validation_scenario", "validation_score", "select_option", "DEFAULT_GRIDS"]

#: Candidate values per strategy (one option each), tried by ``select_option`` in the benchmarks.
#: Avalanche's EWC averages squared *minibatch* gradients, so useful lambdas are large.
DEFAULT_GRIDS: dict[str, tuple[str, tuple]] = {
    "ewc": ("ewc_lambda", (1e3, 1e4, 1e5, 1e6, 1e7)),
    "online-ewc": ("ewc_lambda", (1e3, 1e4, 1e5, 1e6, 1e7)),
    "si": ("si_lambda", (10.0, 100.0, 1000.0, 10000.0)),
    "lwf": ("alpha", (0.5, 1.0, 2.0, 4.0)),
    "slda": ("shrinkage", (1e-4, 1e-2, 0.1, 0.5)),
}


def _restrict(features, mask: np.ndarray):
    if hasattr(features, "subset"):
        return features.subset(mask)
    cols = {k: np.asarray(getattr(features, k))[mask] for k in ("X", "y", "speakers", "corpora", "languages")
            if getattr(features, k, None) is not None}
    return SimpleNamespace(**cols)


def validation_scenario(features, scenario: ContinualScenario, *, seed_offset: int = 1000) -> ContinualScenario:
    """The same scenario kind and options, built from ``scenario``'s training speakers only.

    What "the same" keeps is the builder's rule (``ScenarioBuilder.validation_options``): label set
    or class steps, number of experiences, normalization, shots; the seed is shifted by
    ``seed_offset``, so the builder holds out other speakers, now as validation speakers.
    """
    builder = builder_of(scenario)
    train_spk = set().union(*map(set, scenario.train_speakers))
    mask = np.isin(np.asarray(features.speakers).astype(str), sorted(train_spk))
    return builder(_restrict(features, mask), **builder.validation_options(scenario, seed_offset=seed_offset))


def validation_score(validation: ContinualScenario, strategy: str, seed: int, strategy_opts: dict | None = None) -> float:
    """Validation average accuracy of one run of ``strategy`` (mean UA of the last row, so forgetting counts).

    Every run made to choose an option goes through here (a single place to check or spy on).
    """
    return run_one(validation, strategy, seed, strategy_opts=strategy_opts)["average_accuracy"]


def select_option(validation: ContinualScenario, strategy: str, option: str, grid: Sequence, *,
                  strategy_opts: dict | None = None, seed: int = 0) -> tuple[object, dict]:
    """Train ``strategy`` with each ``option`` value on ``validation``; return (best value, scores).

    ``scores`` maps each value to its validation average accuracy; ties keep the first value.
    """
    if not grid:
        raise ValueError(f"grid for {strategy}.{option} is empty")
    scores = {value: validation_score(validation, strategy, seed, {**(strategy_opts or {}), option: value})
              for value in grid}
    best = max(scores, key=lambda v: scores[v])
    return best, scores
