"""``ser-adapt bench``: options reach the runner, outputs and the summary table appear, errors are clean."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adapt.cli import app
from scenarios.tables import FeatureTable
from tests.helpers.continual import corpus_table


@pytest.fixture
def fake_features(monkeypatch, emodb, emovo):
    # Real EmoDB/EMOVO speakers and labels, cheap synthetic vectors: the CLI path, not the encoder.
    calls = []

    def load(corpora, backbone=None, *, progress=True, **_):
        calls.append((tuple(corpora), backbone))
        return corpus_table([emodb, emovo])

    monkeypatch.setattr(FeatureTable, "from_corpora", staticmethod(load))
    return calls


def test_bench_runs_and_prints_a_summary(fake_features, tmp_path):
    out = tmp_path / "lang"
    args = ["bench", "--scenario", "language-incremental", "--strategies", "naive,ewc,joint", "--seeds", "2",
            "--corpora", "emodb,emovo", "--out", str(out), "--epochs", "2", "--option", "ewc.ewc_lambda=1e4",
            "--no-progress", "--no-plots"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert fake_features == [(("emodb", "emovo"), None)]
    for name in ("naive", "ewc", "joint"):
        assert name in result.output
    assert "emodb" in result.output and "emovo" in result.output  # per-experience columns
    summary = json.loads((out / "summary.json").read_text())
    assert summary["experiences"] == ["emodb", "emovo"]
    ewc = [r for r in summary["runs"] if r["strategy"] == "ewc"]
    assert len(ewc) == 2 and all(r["strategy_opts"] == {"epochs": 2, "ewc_lambda": 10000.0} for r in ewc)
    # a second invocation resumes everything from disk
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "6 run(s) resumed" in again.output


def test_bench_list_and_errors(fake_features, tmp_path):
    listing = CliRunner().invoke(app, ["bench", "--list", "--out", str(tmp_path)])
    assert listing.exit_code == 0 and "embedding-replay" in listing.output and "class-incremental" in listing.output
    bad = CliRunner().invoke(app, ["bench", "--strategies", "naive,ewcc", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "ewcc" in bad.output
    bad_opt = CliRunner().invoke(app, ["bench", "--option", "ewc_lambda=3", "--out", str(tmp_path)])
    assert bad_opt.exit_code == 2 and "ewc_lambda" in bad_opt.output
    wrong = CliRunner().invoke(app, ["bench", "--strategies", "naive", "--option", "naive.mem_size=3", "--corpora",
                                     "emodb,emovo", "--seeds", "1", "--out", str(tmp_path / "x"), "--no-progress"])
    assert wrong.exit_code == 2 and "mem_size" in wrong.output


def test_parse_assignments():
    from scenarios.commands import bench

    assert bench.parse_assignments(["a=1e4", "b=true", "c=x,y", "d=word"], "--option") == {
        "a": 1e4, "b": True, "c": ["x", "y"], "d": "word"}


def _speakers(*groups) -> set:
    return set().union(*(set(g) for group in groups for g in group))


def test_bench_tune_chooses_options_on_validation_speakers_only(fake_features, tmp_path, monkeypatch):
    """A spy on every run: the selection runs see training speakers only, never a test speaker."""
    from scenarios import runner
    from scenarios.continual import tuning

    selection, final = [], {}
    select_run, final_run = tuning.run_one, runner.run_one

    def spy_selection(scenario, strategy, seed, **kw):
        selection.append((strategy, seed, _speakers(scenario.train_speakers, scenario.test_speakers)))
        return select_run(scenario, strategy, seed, **kw)

    def spy_final(scenario, strategy, seed, **kw):
        final[seed] = scenario
        return final_run(scenario, strategy, seed, **kw)

    monkeypatch.setattr(tuning, "run_one", spy_selection)
    monkeypatch.setattr(runner, "run_one", spy_final)
    out = tmp_path / "tuned"
    args = ["bench", "--tune", "--scenario", "language-incremental", "--strategies", "naive,ewc,slda,joint",
            "--seeds", "2", "--corpora", "emodb,emovo", "--out", str(out), "--epochs", "1", "--no-progress",
            "--no-plots"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "chosen on validation speakers" in result.output
    assert "seed 0: normalize=" in result.output and "ewc.ewc_lambda=" in result.output
    # per seed: Joint for each candidate normalization, then the EWC and SLDA grids
    grids = tuning.DEFAULT_GRIDS
    assert len(selection) == 2 * (2 + len(grids["ewc"][1]) + len(grids["slda"][1]))
    assert sorted(final) == [0, 1]
    for strategy, seed, seen in selection:
        sc = final[seed]
        assert seen <= _speakers(sc.train_speakers), strategy
        assert not seen & _speakers(sc.test_speakers), f"{strategy} seed {seed} saw test speakers"
    # the choices are saved, and the final runs use them (plus the fixed --epochs)
    chosen = json.loads((out / "tuning.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    for seed in (0, 1):
        c = chosen[f"seed{seed}"]
        assert set(c["validation_speakers"]) <= _speakers(final[seed].train_speakers)
        assert final[seed].options["normalize"] == c["normalize"]
        assert c["tuned"]["ewc"]["strategy_opts"] == {"epochs": 1}
        ewc = next(r for r in summary["runs"] if r["strategy"] == "ewc" and r["seed"] == seed)
        assert ewc["strategy_opts"] == {"epochs": 1, "ewc_lambda": c["tuned"]["ewc"]["value"]}
    # a rerun reuses the saved choices and runs: no training at all
    selection.clear()
    final.clear()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "8 run(s) resumed" in again.output
    assert selection == [] and final == {}


def test_bench_tune_keeps_what_the_user_fixed(fake_features, tmp_path, monkeypatch):
    from scenarios.continual import tuning

    selection = []
    select_run = tuning.run_one

    def spy(scenario, strategy, seed, **kw):
        selection.append((strategy, kw.get("strategy_opts")))
        return select_run(scenario, strategy, seed, **kw)

    monkeypatch.setattr(tuning, "run_one", spy)
    out = tmp_path / "fixed"
    result = CliRunner().invoke(app, [
        "bench", "--tune", "--normalize", "corpus", "--option", "ewc.ewc_lambda=1e4", "--strategies", "naive,ewc,slda",
        "--seeds", "1", "--corpora", "emodb,emovo", "--out", str(out), "--epochs", "1", "--no-progress", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "seed 0: normalize=corpus; slda.shrinkage=" in result.output
    assert [s for s, _ in selection] == ["slda"] * len(tuning.DEFAULT_GRIDS["slda"][1])  # no Joint, no EWC runs
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert next(r for r in runs if r["strategy"] == "ewc")["strategy_opts"] == {"epochs": 1, "ewc_lambda": 1e4}
    bad = CliRunner().invoke(app, ["bench", "--normalize", "speaker,corpus", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--tune" in bad.output
