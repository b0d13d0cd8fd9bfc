"""Hyper-parameters are chosen on validation speakers drawn from the training speakers only."""
from __future__ import annotations

import pytest
import torch

from scenarios.continual import class_incremental, language_incremental, speaker_incremental
from scenarios.continual.tuning import select_option, validation_scenario
from tests.helpers.continual import conflict_task, corpus_table

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def table(ravdess, emodb, emovo, urdu):
    return corpus_table([ravdess, emodb, emovo, urdu])


@pytest.mark.parametrize("build", [
    lambda t: language_incremental(t, seed=3),
    lambda t: speaker_incremental(t, n_experiences=4, seed=3),
    lambda t: class_incremental(t, n_experiences=3, seed=3),
])
def test_validation_never_touches_test_speakers(table, build):
    sc = build(table)
    val = validation_scenario(table, sc)
    test_spk = set().union(*map(set, sc.test_speakers))
    train_spk = set().union(*map(set, sc.train_speakers))
    val_spk = set().union(*map(set, val.train_speakers), *map(set, val.test_speakers))
    assert val_spk <= train_spk and not val_spk & test_spk
    assert val.classes == sc.classes and val.n_experiences == sc.n_experiences
    assert set().union(*map(set, val.test_speakers))  # some training speakers became validation speakers
    if sc.name == "class-incremental":
        assert val.experience_names == sc.experience_names  # same class steps


def test_select_option_returns_the_best_scoring_value():
    val = language_incremental(conflict_task(seed=0), normalize="none", seed=0)
    best, scores = select_option(val, "ewc", "ewc_lambda", [0.0, 1e5], strategy_opts={"epochs": 30})
    assert set(scores) == {0.0, 1e5}
    assert scores[best] == max(scores.values())
    assert scores[1e5] > scores[0.0]  # on this task EWC's penalty is what keeps task 0
    with pytest.raises(ValueError, match="empty"):
        select_option(val, "ewc", "ewc_lambda", [])
