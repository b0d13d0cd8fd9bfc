"""On a constructed task, Naive forgets measurably and EWC / replay measurably reduce it."""
from __future__ import annotations

import pytest
import torch

from scenarios.continual import language_incremental
from scenarios.runner import run_one
from tests.helpers.continual import conflict_task

torch.set_num_threads(1)

# 30 epochs: with fewer steps Naive does not even learn the second task, so nothing is forgotten.
COMMON = {"epochs": 30}


@pytest.fixture(scope="module")
def scenario():
    return language_incremental(conflict_task(seed=0), normalize="none", seed=0)


@pytest.fixture(scope="module")
def naive(scenario):
    return run_one(scenario, "naive", 0, strategy_opts=COMMON)


def test_naive_forgets_the_first_task(naive):
    m = naive["matrix"]
    assert m[0][0] > 0.9, m          # learned task 0 ...
    assert m[1][1] > 0.9, m          # ... and task 1 ...
    assert naive["forgetting"] > 0.5, m  # ... but lost task 0 while learning task 1


@pytest.mark.parametrize("strategy, opts, factor", [
    # A confident model has a tiny Fisher on this task, hence the large lambda.
    ("ewc", {"ewc_lambda": 1e5}, 0.5),
    ("online-ewc", {"ewc_lambda": 1e5}, 0.5),
    # Avalanche's own SI plugin is a no-op on CPU (its weight snapshots are views): ours must act.
    ("si", {"si_lambda": 1e3}, 0.6),
    ("replay", {"mem_size": 100}, 0.2),
    ("embedding-replay", {"mem_size": 100}, 0.2),
    ("prototype-replay", {}, 0.2),
    ("agem", {"patterns_per_exp": 100}, 0.5),
])
def test_strategy_cuts_naive_forgetting(scenario, naive, strategy, opts, factor):
    run = run_one(scenario, strategy, 0, strategy_opts={**COMMON, **opts})
    assert run["forgetting"] < factor * naive["forgetting"], (run["matrix"], naive["matrix"])
    assert run["matrix"][1][1] > 0.3, run["matrix"]  # it still learns the new task a bit


@pytest.mark.parametrize("strategy", ["ncm", "slda"])
def test_closed_form_classifiers_do_not_forget_what_they_keep(strategy):
    # Class-incremental: new classes arrive, old class statistics never move.
    from scenarios.continual import class_incremental

    sc = class_incremental(conflict_task(n_tasks=1, speakers_per_task=8, seed=1), steps=[["c0", "c1"], ["c2", "c3"]],
                           normalize="none", seed=0)
    run = run_one(sc, strategy, 0)
    assert run["forgetting"] <= 0.1, run["matrix"]
    naive = run_one(sc, "naive", 0, strategy_opts=COMMON)
    assert naive["forgetting"] > 0.2, naive["matrix"]  # the contrast: Naive does forget here
