"""CLI: `ser-adapt export onnx --out DIR --int8 --check CLIP` writes models that load and agree with
torch on a real clip; bad input is a clear error (exit status 2)."""
from __future__ import annotations

import json
import re
import sys

import pytest
from typer.testing import CliRunner

from adapt.cli import app

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
runner = CliRunner()


@pytest.fixture(scope="module")
def clip(emodb):
    return str(next(r for r in emodb.filter(emotions=["angry"])).path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, clip):
    out = tmp_path_factory.mktemp("export") / "model-onnx"
    r = runner.invoke(app, ["export", "onnx", "--out", str(out), "--int8", "--check", clip])
    return out, r


def test_export_writes_encoders_and_head_that_agree_with_torch(exported, clip):
    out, r = exported
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["encoder.int8.onnx", "encoder.onnx", "head.onnx"]
    lines = r.output.splitlines()
    assert re.match(rf"wrote {re.escape(str(out / 'encoder.onnx'))} \(\d+\.\d MiB, fp32\): waveform at 16000 Hz -> "
                    r"5 layers x 384, embedding 1920; fingerprint [0-9a-f]{16}$", lines[0]), lines[0]
    assert "int8" in lines[1] and "head.onnx" in lines[2] and "-> 9 labels (angry, " in lines[2]
    torch_label = re.search(r": torch -> ([a-z]+) \(p=", r.output).group(1)
    fp32 = re.search(r"whisper-tiny.en@onnx -> ([a-z]+) \(p=[0-9.]+\), max abs embedding difference ([0-9.e+-]+)",
                     r.output)
    assert fp32 and fp32.group(1) == torch_label and float(fp32.group(2)) < 1e-4
    assert re.search(r"whisper-tiny.en@onnx-int8 -> [a-z]+ \(p=[0-9.]+\), max abs embedding difference", r.output)
    meta = {p.key: p.value for p in onnx.load(str(out / "head.onnx")).metadata_props}
    assert len(json.loads(meta["labels"])) == 9


def test_export_bad_input_is_a_clear_error(tmp_path, clip):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    r = runner.invoke(app, ["export", "onnx", "--out", str(not_a_dir)])
    assert r.exit_code == 2 and "must be a folder" in r.output
    r = runner.invoke(app, ["export", "onnx", "--out", str(tmp_path / "o"), "--check", str(tmp_path / "missing.wav")])
    assert r.exit_code == 2 and "no such audio file" in r.output
    r = runner.invoke(app, ["export", "onnx"])
    assert r.exit_code == 2 and "--out" in r.output


def test_export_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    r = runner.invoke(app, ["export", "onnx", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "ser-adapt[onnx]" in r.output and not (tmp_path / "o").exists()
