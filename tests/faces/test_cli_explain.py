"""CLI: `ser-adapt explain FILE` on real clips: segments, layers, cues, a PNG; clear errors."""
from __future__ import annotations

import re
import sys

import pytest
from typer.testing import CliRunner

from adapt.cli import app

pytest.importorskip("captum")
runner = CliRunner()


@pytest.fixture(scope="module")
def clip(emodb):
    return str(next(r for r in emodb.filter(emotions=["angry"])).path)


@pytest.fixture(scope="module")
def store(tmp_path_factory, actor_clips):
    """A store with one enrolled user (two RAVDESS clips per emotion of speaker 10)."""
    db = str(tmp_path_factory.mktemp("explain") / "p.db")
    clips = actor_clips["ravdess_10"]
    files = clips["angry"] + clips["sad"]
    r = runner.invoke(app, ["enroll", "--user", "ann", "--store", db, "--label", "angry", "--label", "angry",
                            "--label", "sad", "--label", "sad", *files])
    assert r.exit_code == 0, r.output
    return db


def test_explain_prints_segments_layers_cues_and_writes_a_png(clip, store, tmp_path):
    png = tmp_path / "e.png"
    r = runner.invoke(app, ["explain", clip, "--store", store, "--out", str(png), "--steps", "4", "--top", "3"])
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert re.match(rf"{re.escape(clip)}: [a-z]+ \(p=[01]\.\d{{3}}, unenrolled model", first), first
    segments = re.findall(r"^\s+(\d+\.\d\d)-\s*(\d+\.\d\d) s\s+[+-]\d\.\d{4}$", r.output, flags=re.M)
    assert len(segments) == 3
    assert all(0 <= float(a) < float(b) <= 2.0 + 1e-9 for a, b in segments)
    assert "layers (drop in log p when ablated): L0" in r.output and "L4" in r.output
    assert "top cues" in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_explain_a_personalized_user_with_occlusion(clip, store):
    r = runner.invoke(app, ["explain", clip, "--store", store, "--user", "ann", "--method", "occlusion", "--top", "2"])
    assert r.exit_code == 0, r.output
    assert "user 'ann'" in r.output.splitlines()[0] and "occlusion" in r.output


def test_explain_bad_input_is_a_clear_error(clip, store, tmp_path):
    r = runner.invoke(app, ["explain", str(tmp_path / "missing.wav"), "--store", store])
    assert r.exit_code == 2 and "no such audio file" in r.output
    r = runner.invoke(app, ["explain", clip, "--store", store, "--user", "nobody"])
    assert r.exit_code == 2 and "UnknownUserError" in r.output and "no profile for user 'nobody'" in r.output
    r = runner.invoke(app, ["explain", clip, "--store", store, "--method", "shap"])
    assert r.exit_code == 2 and "unknown method" in r.output
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    r = runner.invoke(app, ["explain", str(not_audio), "--store", store])
    assert r.exit_code == 2 and "AudioError" in r.output


def test_explain_without_captum_names_the_extra(clip, store, monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    r = runner.invoke(app, ["explain", clip, "--store", store])
    assert r.exit_code == 2 and "ser-adapt[explain]" in r.output
