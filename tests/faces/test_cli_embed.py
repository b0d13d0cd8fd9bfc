"""``ser-adapt embed``: corpus folders and files in, a matrix out; clear errors."""
from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from adapt.cli import app


def test_embed_files_to_npy(tmp_path, emodb, monkeypatch):
    monkeypatch.setenv("SER_ADAPT_CACHE", str(tmp_path / "cache"))
    files = [str(r.path) for r in emodb.records[:3]]
    out = tmp_path / "x.npy"
    res = CliRunner().invoke(app, ["embed", *files, "--backbone", "mfcc", "--pooling", "meanstd", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert np.load(out).shape == (3, 80)


def test_embed_per_layer_npz_keeps_paths(tmp_path, emodb, monkeypatch):
    monkeypatch.setenv("SER_ADAPT_CACHE", str(tmp_path / "cache"))
    files = [str(r.path) for r in emodb.records[:2]]
    out = tmp_path / "x.npz"
    res = CliRunner().invoke(app, ["embed", *files, "-b", "logmel", "--per-layer", "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    z = np.load(out)
    assert z["X"].shape == (2, 1, 80) and list(z["paths"]) == files and str(z["backbone"]) == "logmel"


def test_embed_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["embed", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "no such file" in res.output
    res = runner.invoke(app, ["embed", str(tmp_path), "-o", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "no audio files" in res.output
    res = runner.invoke(app, ["embed", str(tmp_path), "-o", str(tmp_path / "x.txt")])
    assert res.exit_code != 0 and ".npz" in res.output
