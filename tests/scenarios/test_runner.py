"""The runner: matrices agree with the metric functions and an independent UA; resume skips finished runs."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from adapt import metrics
from scenarios import runner
from scenarios.continual import language_incremental
from scenarios.runner import run_benchmark, run_one
from adapt.nn import MLPClassifier
from strategies import make_strategy, predict_scores
from tests.helpers.continual import conflict_task

torch.set_num_threads(1)
OPTS = {"*": {"epochs": 3}}


@pytest.fixture(scope="module")
def table():
    return conflict_task(n_per_speaker=30, n_tasks=3, speakers_per_task=3, seed=7)


def factory(table):
    return lambda seed: language_incremental(table, normalize="none", seed=seed)


def test_matrix_matches_an_independent_evaluation(table):
    sc = factory(table)(0)
    record = run_one(sc, "naive", 3, strategy_opts={"epochs": 3})
    # replay the same run by hand (same seed, same construction order) and score with scikit-learn
    runner.seed_everything(3)
    model = MLPClassifier(input_size=sc.input_size, num_classes=len(sc.classes))
    strategy = make_strategy("naive", model, epochs=3)
    for i, experience in enumerate(sc.benchmark.train_stream):
        strategy.train(experience)
        for j, (x, y) in enumerate(sc.test_data):
            pred = predict_scores(strategy, x).argmax(1).numpy()
            assert record["matrix"][i][j] == pytest.approx(balanced_accuracy_score(y.numpy(), pred))
    m = np.asarray(record["matrix"])
    assert m.shape == (3, 3)
    assert record["average_accuracy"] == pytest.approx(metrics.average_accuracy(m))
    assert record["forgetting"] == pytest.approx(metrics.forgetting(m))
    assert record["backward_transfer"] == pytest.approx(metrics.backward_transfer(m))
    assert record["wall_time_s"] > 0 and record["peak_rss_mb"] > 0


def test_joint_repeats_its_final_row(table):
    record = run_one(factory(table)(0), "joint", 0, strategy_opts={"epochs": 3})
    assert record["joint"] and all(row == record["matrix"][-1] for row in record["matrix"])
    assert record["forgetting"] == 0.0


def test_outputs_and_aggregates(table, tmp_path):
    res = run_benchmark(factory(table), ["naive", "replay"], seeds=2, out_dir=tmp_path, strategy_opts=OPTS,
                        progress=False)
    assert len(res.runs) == 4 and not res.skipped
    for name in ("summary.json", "summary.csv", "runs.csv", "matrices.csv", "accuracy_matrices.png",
                 "accuracy_curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    naive = [r for r in res.runs if r["strategy"] == "naive"]
    assert rows[0]["strategy"] == "naive"
    assert float(rows[0]["average_accuracy"]) == pytest.approx(np.mean([r["average_accuracy"] for r in naive]))
    assert float(rows[0]["average_accuracy_std"]) == pytest.approx(np.std([r["average_accuracy"] for r in naive],
                                                                          ddof=1))
    long = list(csv.DictReader(open(tmp_path / "matrices.csv")))
    assert len(long) == 4 * 3 * 3
    assert naive[0]["seed"] != naive[1]["seed"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["experiences"] == ["task0", "task1", "task2"]


def test_resume_after_interruption(table, tmp_path, monkeypatch):
    calls = []
    real = runner.run_one

    def flaky(sc, name, seed, **kw):
        calls.append((name, seed))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user hits Ctrl-C during the third run
        return real(sc, name, seed, **kw)

    monkeypatch.setattr(runner, "run_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(factory(table), ["naive", "ewc"], seeds=2, out_dir=tmp_path, strategy_opts=OPTS, progress=False)
    done = sorted(p.name for p in (tmp_path / "runs").glob("*.json"))
    assert done == ["ewc__seed0.json", "naive__seed0.json"]
    assert not list((tmp_path / "runs").glob("*.tmp"))
    calls.clear()
    res = run_benchmark(factory(table), ["naive", "ewc"], seeds=2, out_dir=tmp_path, strategy_opts=OPTS,
                        progress=False)
    assert calls == [("naive", 1), ("ewc", 1)]
    assert sorted(res.skipped) == [("ewc", 0), ("naive", 0)]
    assert len(res.runs) == 4
    # different options invalidate the stored runs: they are recomputed, not reused
    calls.clear()
    run_benchmark(factory(table), ["naive"], seeds=1, out_dir=tmp_path, strategy_opts={"*": {"epochs": 2}},
                  progress=False)
    assert calls == [("naive", 0)]


def test_unknown_strategy_and_bad_seeds(table):
    with pytest.raises(KeyError, match="known"):
        run_benchmark(factory(table), ["naive", "ewcc"], seeds=1, progress=False)
    with pytest.raises(ValueError, match="seed"):
        run_benchmark(factory(table), ["naive"], seeds=[], progress=False)
