"""``adapt.vad``: Silero VAD (from its wheel, offline) on real speech separated by silence."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("silero_vad")

from adapt.vad import SileroVAD, VADConfig, require_silero  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def vad():
    return SileroVAD()


@pytest.fixture(scope="module")
def recording(ravdess):
    """Three real clips with 1.5 s of digital silence between them; their spans in seconds."""
    from adapt.audio import load_audio

    recs = list(ravdess.filter(speakers=["ravdess_07"]))[:3]
    gap = np.zeros(int(1.5 * SR), np.float32)
    parts, spans, t = [], [], 0.0
    for r in recs:
        w = load_audio(r.path).samples
        spans.append((t, t + len(w) / SR))
        parts += [w, gap]
        t += (len(w) + len(gap)) / SR
    return np.concatenate(parts), spans


def test_one_region_per_clip_inside_its_span(vad, recording):
    x, spans = recording
    regions = vad.regions(x)
    assert len(regions) == 3
    pad = vad.config.speech_pad_s + 0.05
    for r, (a, b) in zip(regions, spans):
        assert a - pad <= r.start < r.end <= b + pad
        assert r.duration > 0.5             # the actors speak for over a second in every clip


def test_blocks_of_any_size_give_the_regions_of_the_whole_array(vad, recording):
    x, _ = recording
    whole = vad.regions(x)
    for size in (7777, 512, 16000 * 3 + 5):
        blocks = [x[i:i + size] for i in range(0, len(x), size)]
        assert vad.regions_from_blocks(iter(blocks)) == whole


def test_silence_and_empty_audio_have_no_speech(vad):
    assert vad.regions(np.zeros(2 * SR, np.float32)) == []
    assert vad.regions_from_blocks([]) == []
    with pytest.raises(ValueError, match="mono"):
        vad.regions(np.zeros((2, SR), np.float32))


def test_settings_are_checked_and_the_import_keeps_torch_threads():
    import torch

    for bad in ({"threshold": 1.5}, {"min_silence_s": -1}, {"speech_pad_s": "x"}):
        with pytest.raises(ValueError):
            VADConfig(**bad)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        require_silero()
        assert torch.get_num_threads() == 2      # silero_vad's import sets 1; we put it back
    finally:
        torch.set_num_threads(before)
