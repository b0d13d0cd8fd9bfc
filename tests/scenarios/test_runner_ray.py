"""``run_benchmark(..., executor="ray")`` and ``ser-adapt bench --ray``: the serial run's records on a real
scenario (real embeddings of EmoDB and EMOVO), resumed from disk, and clear errors.

One local Ray instance (2 CPUs, loopback, no dashboard) for the module.
"""
from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from adapt.threads import torch_threads
from scenarios.continual import language_incremental
from scenarios.runner import run_benchmark
from tests.helpers.ray_cluster import local_ray

ray_instance = pytest.fixture(scope="module")(local_ray)
STRATEGIES = ["naive", "ewc", "replay"]
OPTS = {"*": {"epochs": 2}}
KEYS = ("strategy", "seed", "matrix", "average_accuracy", "forgetting", "backward_transfer", "final_ua",
        "strategy_opts", "fingerprint", "classes", "experiences")


@pytest.fixture(scope="module")
def factory(emodb, emovo):
    from scenarios.tables import FeatureTable

    features = FeatureTable.from_corpora([emodb, emovo])  # the default backbone's embeddings (cached)
    return lambda seed: language_incremental(features, seed=seed)


def test_ray_sweep_equals_the_serial_run_and_resumes(ray_instance, factory, tmp_path):
    with torch_threads(1):
        serial = run_benchmark(factory, STRATEGIES, seeds=2, strategy_opts=OPTS, progress=False, plots=False)
    out = tmp_path / "ray"
    dist = run_benchmark(factory, STRATEGIES, seeds=2, strategy_opts=OPTS, out_dir=out, progress=False, plots=False,
                         executor="ray")
    assert [(r["strategy"], r["seed"]) for r in dist.runs] == [(r["strategy"], r["seed"]) for r in serial.runs]
    assert len({json.dumps(r["matrix"]) for r in serial.runs}) > 1  # the runs differ, so equality means something
    for a, b in zip(serial.runs, dist.runs):
        assert {k: a[k] for k in KEYS} == {k: b[k] for k in KEYS}
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == sorted(
        f"{s}__seed{k}.json" for s in STRATEGIES for k in (0, 1))
    # an interrupted sweep: one record lost; the rerun resumes the five others and redoes that one on Ray
    (out / "runs" / "ewc__seed1.json").unlink()
    again = run_benchmark(factory, STRATEGIES, seeds=2, strategy_opts=OPTS, out_dir=out, progress=False, plots=False,
                          executor="ray")
    assert sorted(again.skipped) == sorted((s, k) for s in STRATEGIES for k in (0, 1) if (s, k) != ("ewc", 1))
    redone = next(r for r in again.runs if (r["strategy"], r["seed"]) == ("ewc", 1))
    assert redone["matrix"] == next(r for r in serial.runs if (r["strategy"], r["seed"]) == ("ewc", 1))["matrix"]


def test_bad_executor_and_missing_ray_are_clear(factory, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown executor 'threads'"):
        run_benchmark(factory, ["naive"], seeds=1, executor="threads", progress=False, plots=False)
    with pytest.raises(ValueError, match="threads_per_run"):
        run_benchmark(factory, ["naive"], seeds=1, executor="ray", threads_per_run=0, progress=False, plots=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"pip install 'ser-adapt\[ray\]'"):
        run_benchmark(factory, ["naive"], seeds=1, executor="ray", progress=False, plots=False)
    from adapt.cli import app

    res = CliRunner().invoke(app, ["bench", "--ray", "--strategies", "naive", "--seeds", "1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "pip install 'ser-adapt[ray]'" in res.output


def test_cli_bench_ray_flag_checks(tmp_path):
    from adapt.cli import app

    res = CliRunner().invoke(app, ["bench", "--address", "auto", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--address goes with --ray" in res.output
    res = CliRunner().invoke(app, ["bench", "--ray", "--tune", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--tune" in res.output
