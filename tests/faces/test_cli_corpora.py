"""The ``ser-adapt`` CLI: help, ``corpora list`` (counts read from disk), recipes and prepare."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapt.cli import app
from scenarios.corpora import available_corpora, load_corpus

from tests.helpers.foundation import ravdess_like_zip

runner = CliRunner()
SCRIPT = Path(sys.executable).parent / "ser-adapt"


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows of ``corpora list`` keyed by corpus name (rich draws cells between │)."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells
    return rows


def test_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "corpora" in result.output
    sub = runner.invoke(app, ["corpora", "--help"])
    assert sub.exit_code == 0 and all(c in sub.output for c in ("list", "prepare", "recipes"))


def _check_counts(output: str) -> None:
    rows = _rows(output)
    names = available_corpora()
    assert names and set(names) <= set(rows)
    for name in names:
        c = load_corpus(name)
        _, lang, files, speakers, emotions, hours = rows[name]
        assert (lang, int(files), int(speakers)) == (",".join(c.languages), len(c), len(c.speakers))
        assert emotions.startswith(f"{len(c.emotions)}:")
        assert float(hours) == pytest.approx(sum(r.duration_s for r in c) / 3600, abs=0.006)


def test_corpora_list(data_dir):
    result = runner.invoke(app, ["corpora", "list"])
    assert result.exit_code == 0, result.output
    _check_counts(result.output)


def test_corpora_list_subprocess(data_dir):
    assert SCRIPT.is_file(), f"console script missing at {SCRIPT} (pip install -e .)"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([str(SCRIPT), "corpora", "list"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    _check_counts(proc.stdout)


def test_corpora_list_empty_root(tmp_path):
    result = runner.invoke(app, ["corpora", "list", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "no corpora under" in result.output


def test_recipes_and_prepare(tmp_path):
    listing = runner.invoke(app, ["corpora", "recipes"])
    assert listing.exit_code == 0
    for name in ("ravdess", "crema_d", "tess", "savee", "emodb", "emovo", "urdu", "subesco"):
        assert re.search(rf"│ {name}\s", listing.output), name
    data, expected = ravdess_like_zip()
    zip_path = tmp_path / "ravdess.zip"
    zip_path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "data"
    args = ["corpora", "prepare", "ravdess", "--dest", str(dest), "--url", str(zip_path)]
    bad = runner.invoke(app, args + ["--sha256", "f" * 64])
    assert bad.exit_code == 2 and "sha256 mismatch" in bad.output
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and digest in missing.output  # tells the user the hash to confirm
    assert not dest.exists()
    ok = runner.invoke(app, args + ["--sha256", digest])
    assert ok.exit_code == 0, ok.output
    n_speakers = len({e["speaker"] for e in expected.values()})
    assert f"prepared {dest / 'ravdess'}: {len(expected)} clips, {n_speakers} speakers" in ok.output
    listed = runner.invoke(app, ["corpora", "list", "--root", str(dest)])
    assert _rows(listed.output)["ravdess"][2] == str(len(expected))
    unknown = runner.invoke(app, ["corpora", "prepare", "iemocap", "--dest", str(dest)])
    assert unknown.exit_code == 2 and "known: [" in unknown.output and "no corpus source" in unknown.output


def test_corpora_show(emovo):
    result = runner.invoke(app, ["corpora", "show", "emovo"])
    assert result.exit_code == 0, result.output
    assert f"{len(emovo)} clips, {len(emovo.speakers)} speakers" in result.output
    rows = _rows(result.output)
    for spk in emovo.speakers:
        assert rows[spk][-1] == str(sum(1 for r in emovo if r.speaker == spk))
    assert rows["all"][-1] == str(len(emovo))
    missing = runner.invoke(app, ["corpora", "show", "nope"])
    assert missing.exit_code == 2 and "known corpora" in missing.output


def test_corpora_list_reports_broken_metadata(tmp_path):
    good = tmp_path / "good"
    (good / "audio").mkdir(parents=True)
    (good / "metadata.csv").write_text("path,speaker,emotion,language,gender,duration_s\naudio/a.flac,g_1,sad,en,f,1.0\n")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.csv").write_text("path,speaker\n")
    result = runner.invoke(app, ["corpora", "list", "--root", str(tmp_path)])
    assert result.exit_code == 1
    rows = _rows(result.output)
    assert rows["good"][2] == "1" and "lacks columns" in result.output
