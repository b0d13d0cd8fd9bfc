"""The benchmark protocol (choose per seed on validation speakers, then run) as a library function."""
from __future__ import annotations

import json

import pytest
import torch

from scenarios.continual import protocol, tuning
from scenarios.continual.protocol import SeedChoice, choose_options, run_tuned_benchmark, tune
from tests.helpers.continual import conflict_task

torch.set_num_threads(1)
GRIDS = {"ewc": ("ewc_lambda", (0.0, 1e5))}
FAST = {"*": {"epochs": 2}}


@pytest.fixture
def table():
    return conflict_task(seed=0, speakers_per_task=6, n_per_speaker=20)


@pytest.fixture
def runs(monkeypatch):
    seen = []
    real = tuning.run_one

    def spy(scenario, strategy, seed, **kw):
        seen.append((strategy, kw.get("strategy_opts")))
        return real(scenario, strategy, seed, **kw)

    monkeypatch.setattr(tuning, "run_one", spy)
    return seen


def test_choose_options_picks_normalization_with_joint_then_the_grid(table, runs):
    c = choose_options(table, "language-incremental", 0, ["naive", "ewc", "joint"], grids=GRIDS,
                       normalizations=("none", "speaker"), strategy_opts=FAST)
    assert [s for s, _ in runs] == ["joint", "joint", "ewc", "ewc"]
    assert c.normalize == max(c.normalize_scores, key=c.normalize_scores.get)
    assert set(c.options) == {"ewc"} and c.options["ewc"]["ewc_lambda"] in (0.0, 1e5)
    assert c.tuned["ewc"]["strategy_opts"] == {"epochs": 2}
    assert SeedChoice.from_json(json.loads(json.dumps(c.to_json()))) == c
    assert c.describe().startswith(f"seed 0: normalize={c.normalize} (none ")


def test_tune_resumes_only_what_still_matches(table, runs, tmp_path):
    path = tmp_path / "tuning.json"
    kw = dict(grids=GRIDS, normalizations=("none", "speaker"), path=path)
    first = tune(table, "language-incremental", ["ewc"], 2, strategy_opts=FAST, **kw)
    assert len(runs) == 2 * 4 and set(json.loads(path.read_text())) == {"seed0", "seed1"}
    runs.clear()
    assert tune(table, "language-incremental", ["ewc"], 2, strategy_opts=FAST, **kw) == first
    assert runs == []
    # other fixed options: the choices no longer apply and are made again
    tune(table, "language-incremental", ["ewc"], [1], strategy_opts={"*": {"epochs": 1}}, **kw)
    assert len(runs) == 4 and all(opts["epochs"] == 1 for _, opts in runs)


def test_run_tuned_benchmark_runs_with_the_choices(table, runs):
    out = run_tuned_benchmark(table, "language-incremental", ["naive", "ewc"], seeds=[3], grids=GRIDS,
                              normalizations=("none",), strategy_opts=FAST, progress=False)
    assert [s for s, _ in runs] == ["ewc", "ewc"]  # one candidate normalization: nothing to run for it
    ewc = next(r for r in out.result.runs if r["strategy"] == "ewc")
    assert ewc["strategy_opts"] == {"epochs": 2, **out.choices[3].options["ewc"]}
    assert out.tune_s > 0 and out.run_s > 0
    with pytest.raises(ValueError, match="normalizations"):
        choose_options(table, "language-incremental", 0, ["ewc"], normalizations=("global",))
    assert protocol.DEFAULT_NORMALIZATIONS == ("speaker", "corpus")
