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


def test_each_builder_says_how_to_validate(table):
    from scenarios.continual import SCENARIOS, fewshot_incremental

    lang = language_incremental(table, seed=3)
    opts = SCENARIOS["language-incremental"].validation_options(lang)
    assert opts["seed"] == 1003 and opts["classes"] == list(lang.classes) and opts["order"] == lang.options["order"]
    cls = class_incremental(table, n_experiences=3, seed=3)
    opts = SCENARIOS["class-incremental"].validation_options(cls, seed_offset=7)
    assert opts["steps"] == cls.options["steps"] and opts["seed"] == 10 and "classes" not in opts
    few = fewshot_incremental(table, shots=3, base="speaker-incremental", n_experiences=2, seed=1)
    assert few.builder == "fewshot-incremental" and few.name == "fewshot-speaker-incremental"
    opts = SCENARIOS["fewshot-incremental"].validation_options(few)
    assert opts["base"] == "speaker-incremental" and opts["shots"] == 3 and opts["n_experiences"] == 2
    val = validation_scenario(table, few)
    assert val.name == few.name and val.n_experiences == 2
    assert not set().union(*map(set, val.test_speakers), *map(set, val.train_speakers)) & set().union(
        *map(set, few.test_speakers))
    with pytest.raises(ValueError, match="built by"):
        SCENARIOS["class-incremental"].validation_options(lang)


def test_validation_scenario_uses_the_builders_rule_not_its_name(table, monkeypatch):
    from dataclasses import replace

    from scenarios.continual import SCENARIOS
    from scenarios.continual.builders import ScenarioBuilder

    seen = []

    def rule(scenario, *, seed_offset):
        seen.append(scenario.name)
        return {"seed": 5, "order": scenario.options["order"][:2]}

    custom = ScenarioBuilder("custom", language_incremental, rule)
    monkeypatch.setitem(SCENARIOS, "custom", custom)
    sc = replace(language_incremental(table, seed=0), name="anything", builder="custom")
    val = validation_scenario(table, sc)
    assert seen == ["anything"] and val.n_experiences == 2
