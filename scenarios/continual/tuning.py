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
from .builders import SCENARIOS, ContinualScenario

__all__ = ["validation_scenario", "select_option", "DEFAULT_GRIDS"]

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
    """The same scenario kind and options, built from ``scenario``'s training speakers only."""
    base = scenario.name.removeprefix("fewshot-")
    builder = SCENARIOS.get(base)
    if builder is None:
        raise KeyError(f"no builder for scenario {scenario.name!r}; known: {', '.join(sorted(SCENARIOS))}")
    train_spk = set().union(*map(set, scenario.train_speakers))
    mask = np.isin(np.asarray(features.speakers).astype(str), sorted(train_spk))
    opts = dict(scenario.options)
    opts.pop("base", None)
    opts["seed"] = int(opts.get("seed", 0)) + seed_offset
    if base == "class-incremental":  # same class steps, not a reshuffle
        opts.pop("n_experiences", None)
    if base == "speaker-incremental":  # fewer speakers: keep the number of experiences, it still fits
        opts["n_experiences"] = scenario.n_experiences
    opts["classes"] = list(scenario.classes) if base != "class-incremental" else None
    if opts["classes"] is None:
        opts.pop("classes")
    return builder(_restrict(features, mask), **opts)


def select_option(validation: ContinualScenario, strategy: str, option: str, grid: Sequence, *,
                  strategy_opts: dict | None = None, seed: int = 0) -> tuple[object, dict]:
    """Train ``strategy`` with each ``option`` value on ``validation``; return (best value, scores).

    ``scores`` maps each value to its validation average accuracy; ties keep the first value.
    """
    if not grid:
        raise ValueError(f"grid for {strategy}.{option} is empty")
    scores = {}
    for value in grid:
        record = run_one(validation, strategy, seed, strategy_opts={**(strategy_opts or {}), option: value})
        scores[value] = record["average_accuracy"]
    best = max(scores, key=lambda v: scores[v])
    return best, scores
