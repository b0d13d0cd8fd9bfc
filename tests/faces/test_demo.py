"""The README's third command, ``ser-adapt demo``, on real RAVDESS audio."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from adapt.cli import app


def test_demo_personalizes_a_held_out_speaker(ravdess):
    result = CliRunner().invoke(app, ["demo", "--corpus", "ravdess", "--shots", "2", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output.strip().splitlines()[-1])
    assert r["speaker"] == ravdess.speakers[-1]
    # sentence-disjoint: enrollment and test clips never share a RAVDESS statement
    assert r["enroll_texts"] and r["test_texts"] and not set(r["enroll_texts"]) & set(r["test_texts"])
    assert r["enroll_clips"] <= 2 * len(r["labels"]) and r["test_clips"] >= 24
    assert sum(map(sum, r["confusion_after"])) == r["test_clips"]
    # enrollment must help this speaker clearly (measured here: UA 0.50 -> 0.78)
    assert r["ua_after"] >= r["ua_before"] + 0.10, r


def test_demo_rejects_an_unknown_speaker(ravdess):
    result = CliRunner().invoke(app, ["demo", "--speaker", "nobody"])
    assert result.exit_code != 0
    assert "unknown speaker 'nobody'" in result.output
