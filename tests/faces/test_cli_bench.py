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
