"""CLI: ``ser-adapt predict --segments`` (JSON Lines / CSV) and ``ser-adapt stream`` (a real
WebSocket client against the service started in-process), with the log-mel backbone and a real head."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from adapt.cli import app

runner = CliRunner()
pytest.importorskip("silero_vad")


@pytest.fixture(scope="module")
def long_file(actor_clips, tmp_path_factory):
    """Four clips of a speaker the head never saw, with 1 s of silence between them."""
    from adapt.audio import load_audio

    paths = actor_clips["ravdess_10"]["angry"] + actor_clips["ravdess_10"]["sad"]
    gap = np.zeros(16000, np.float32)
    x = np.concatenate([p for path in paths for p in (load_audio(path).samples, gap)])
    out = tmp_path_factory.mktemp("long") / "session.flac"
    sf.write(out, x, 16000)
    return out, len(x) / 16000


def test_predict_segments_as_json_lines_and_csv(long_file, logmel_head, tmp_path):
    path, duration = long_file
    base = ["predict", "--user", "u", "--segments", "--backbone", "logmel", "--head", logmel_head,
            "--store", str(tmp_path / "p.db"), "--window", "2", "--hop", "1"]
    r = runner.invoke(app, base + [str(path)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) >= 4 and all(row["file"] == str(path) for row in rows)
    assert all(0 <= row["start"] < row["end"] <= duration + 1e-3 and row["end"] - row["start"] <= 2 + 1e-6 for row in rows)
    assert len({row["region"] for row in rows}) == 4          # one speech region per clip
    r = runner.invoke(app, base + ["--format", "csv", "--labels", "angry,sad", str(path)])
    assert r.exit_code == 0, r.output
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(table) == len(rows) and {"p_angry", "p_sad"} <= set(table[0]) and "p_happy" not in table[0]
    assert all(row["label"] in ("angry", "sad") for row in table)
    bad = runner.invoke(app, base + ["--format", "xml", str(path)])
    assert bad.exit_code == 2 and "xml" in bad.output
    bad = runner.invoke(app, base + ["--smoothing", "2", str(path)])
    assert bad.exit_code == 2 and "odd" in bad.output


def test_stream_a_file_to_an_in_process_server(long_file, logmel_head, tmp_path):
    path, duration = long_file
    r = runner.invoke(app, ["stream", str(path), "--user", "u", "--serve", "--backbone", "logmel", "--head",
                            logmel_head, "--store", str(tmp_path / "s.db"), "--speed", "0"])
    assert r.exit_code == 0, r.output
    preds = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [p["seq"] for p in preds] == list(range(1, len(preds) + 1)) and len(preds) == int(np.ceil(duration))
    assert preds[-1]["end"] == pytest.approx(duration, abs=1e-3)
    assert "dropped" in r.output and "0 dropped" in r.output
    r = runner.invoke(app, ["stream", str(path), "--user", "u", "--url", "http://127.0.0.1:9", "--key", "k"])
    assert r.exit_code == 2 and "error:" in r.output
