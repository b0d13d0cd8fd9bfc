"""Bounded decoding (review defect 1): what a file can cost is bounded by its accepted duration at
its mono rate, whatever its header claims about channels; absurd rates are refused from the header.

Peak memory is measured as the growth of the peak RSS of a fresh process, so it counts
libsndfile's and torch's allocations too."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = r"""
import io, json, resource, sys
import numpy as np, soundfile as sf
from adapt.audio import load_audio
out = {}
for rate, ch, secs in json.loads(sys.argv[1]):
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, ch, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((rate, ch), np.int16)
        for _ in range(secs):
            f.write(block)
    raw = buf.getvalue(); del buf, block
    load_audio(np.zeros(min(rate, 384000), np.float32), sr=min(rate, 384000))   # warm up the resampler
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        w = load_audio(raw, max_seconds=30)
        result = round(w.duration_s, 2)
    except Exception as e:
        result = type(e).__name__
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out[f"{rate}x{ch}"] = {"bytes": len(raw), "result": result, "mb": (peak - base) / 1024}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe():
    cases = [[655350, 8, 29], [384000, 8, 29]]
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(cases)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_reviews_amplification_file_is_refused_without_decoding(probe):
    r = probe["655350x8"]
    assert r["bytes"] < 200_000 and r["result"] == "SampleRateError"
    assert r["mb"] < 20, r                  # it used to cost ~1.14 GB


def test_the_worst_legal_flac_costs_a_bounded_amount(probe):
    """8 channels at 384 kHz for 29 s: 356 MB as float32 channels, ~700 MB with the old copy."""
    r = probe["384000x8"]
    assert r["result"] == 29.0
    assert r["mb"] < 160, r
