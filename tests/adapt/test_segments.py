"""``adapt.segments``: long recordings cut into scored segments, with memory bounded by the window.

Real clips (RAVDESS) concatenated into recordings, the small log-mel test model (a real head on
real audio) as the Personalizer's backbone.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as hs

from adapt.errors import TooLongAudioError, TooShortAudioError, UnreadableAudioError
from adapt.segments import LongAudio, SegmentConfig, plan_windows, predict_segments, smooth_probabilities
from adapt.vad import SpeechRegion
from tests.helpers.personal import small_model

SR = 16000


@given(regions=hs.lists(hs.tuples(hs.floats(0, 100), hs.floats(0.01, 20)), max_size=5),
       window=hs.floats(0.5, 5), frac=hs.floats(0.1, 1))
@settings(max_examples=60, deadline=None)
def test_windows_cover_each_region_within_it(regions, window, frac):
    cfg = SegmentConfig(window_s=window, hop_s=window * frac, min_segment_s=min(0.5, window))
    regs = [SpeechRegion(a, a + d) for a, d in regions]
    wins = plan_windows(regs, cfg)
    for i, r in enumerate(regs):
        mine = [w for w in wins if w.region == i]
        if r.duration < cfg.min_segment_s:
            assert mine == []
            continue
        assert mine[0].start == pytest.approx(r.start) and mine[-1].end == pytest.approx(r.end)
        for w in mine:
            assert r.start - 1e-6 <= w.start < w.end <= r.end + 1e-6 and w.end - w.start <= window + 1e-6
        for a, b in zip(mine, mine[1:]):                   # no gap: the next window starts before this one ends
            assert b.start <= a.end + 1e-6 and b.start > a.start


def test_config_and_smoothing():
    for bad in ({"hop_s": 4.0}, {"window_s": 0}, {"smoothing": 2}, {"batch": 0}, {"min_segment_s": 5.0}):
        with pytest.raises(ValueError):
            SegmentConfig(**bad)
    P = np.random.default_rng(0).dirichlet(np.ones(4), size=9)
    S = smooth_probabilities(P, 5)
    assert np.allclose(S.sum(1), 1) and np.allclose(S[4], P[2:7].mean(0)) and np.allclose(S[0], P[:3].mean(0))
    assert np.array_equal(smooth_probabilities(P, 1), P)


@pytest.fixture(scope="module")
def personalizer(tmp_path_factory, data_dir):
    from adapt.personal import Personalizer

    emb, head = small_model()
    return Personalizer(emb, head, tmp_path_factory.mktemp("seg") / "p.db")


@pytest.fixture(scope="module")
def recording(ravdess, tmp_path_factory):
    """Six real clips back to back (their own leading/trailing silence only), as a 44.1 kHz
    stereo WAV file (exercises downmix and resampling); the 16 kHz samples and clip spans."""
    from adapt.audio import load_audio

    recs = list(ravdess.filter(speakers=["ravdess_09"]))[:6]
    waves = [load_audio(r.path).samples for r in recs]
    x = np.concatenate(waves)
    edges = np.cumsum([0] + [len(w) for w in waves]) / SR
    path = tmp_path_factory.mktemp("rec") / "rec.wav"
    import torch
    import torchaudio.functional as AF

    hi = AF.resample(torch.from_numpy(x), SR, 44100).numpy()
    sf.write(path, np.stack([hi, 0.5 * hi], axis=1), 44100)
    return path, x, list(zip(edges[:-1], edges[1:]))


def test_segments_of_a_file_lie_in_speech_in_time_order(personalizer, recording):
    path, x, spans = recording
    segs = personalizer.predict_segments("nobody", str(path))
    assert len(segs) >= len(spans)                 # every clip holds speech; long ones give several windows
    assert [s.start for s in segs] == sorted(s.start for s in segs)
    for s in segs:
        assert 0 <= s.start < s.end <= spans[-1][1] + 1e-3 and s.end - s.start <= 1.5 + 1e-6
        assert abs(sum(s.probabilities.values()) - 1) < 1e-5 and s.label == max(s.probabilities, key=s.probabilities.get)
        assert s.personalized is False and s.confidence == pytest.approx(max(s.probabilities.values()))
    covered = {i for i, (a, b) in enumerate(spans) for s in segs if s.start < b and s.end > a}
    assert covered == set(range(len(spans)))
    # the same audio as a 16 kHz array: the same regions and windows, the same labels mostly
    # (the file went through 44.1 kHz and back)
    arr = personalizer.predict_segments("nobody", x, sr=SR)
    assert len(arr) == len(segs)
    assert max(abs(a.start - b.start) for a, b in zip(arr, segs)) < 0.1
    assert np.mean([a.label == b.label for a, b in zip(arr, segs)]) >= 0.8


def test_labels_windows_smoothing_and_no_vad(personalizer, recording):
    _, x, spans = recording
    segs = predict_segments(personalizer, "nobody", x, sr=SR, labels=["angry", "sad"],
                            config=SegmentConfig(window_s=1.0, hop_s=0.5))
    assert all(set(s.probabilities) == {"angry", "sad"} for s in segs)
    assert all(s.end - s.start <= 1.0 + 1e-6 for s in segs) and len(segs) >= 2 * len(spans)
    smooth = predict_segments(personalizer, "nobody", x, sr=SR, labels=["angry", "sad"],
                              config=SegmentConfig(window_s=1.0, hop_s=0.5, smoothing=5))
    assert [(s.start, s.end) for s in smooth] == [(s.start, s.end) for s in segs]
    for r in {s.region for s in segs}:                 # smoothing stays inside a region and evens it out
        raw = np.array([s.probabilities["angry"] for s in segs if s.region == r])
        sm = np.array([s.probabilities["angry"] for s in smooth if s.region == r])
        assert sm.mean() == pytest.approx(raw.mean(), abs=0.2)
        if len(raw) > 3:
            assert np.abs(np.diff(sm)).sum() <= np.abs(np.diff(raw)).sum() + 1e-9
    whole = predict_segments(personalizer, "nobody", x, sr=SR, config=SegmentConfig(vad=False))
    assert whole[0].start == 0 and whole[-1].end == pytest.approx(len(x) / SR) and {s.region for s in whole} == {0}


def test_bad_recordings_raise_audio_errors(personalizer, tmp_path):
    with pytest.raises(UnreadableAudioError):
        personalizer.predict_segments("u", b"not audio at all" * 10)
    with pytest.raises(TooShortAudioError):
        personalizer.predict_segments("u", np.zeros(1000, np.float32), sr=SR)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(20 * SR, np.int16), SR)
    with pytest.raises(TooLongAudioError, match="20.0 s long"):
        personalizer.predict_segments("u", str(long), config=SegmentConfig(max_seconds=10))
    assert personalizer.predict_segments("u", str(long)) == []          # silence: no speech, no segment
    with pytest.raises(ValueError, match="clip limits"):
        personalizer.predict_segments("u", str(long), config=SegmentConfig(window_s=40, hop_s=20))


def _synthetic(path, minutes: float) -> None:
    """A long WAV: a 220 Hz tone with a syllable-rate envelope and noise, written in blocks."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as f:
        for k in range(int(minutes * 60 // 10)):
            t = np.arange(10 * SR) / SR + 10 * k
            x = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) + rng.normal(0, 0.01, len(t))
            f.write(x.astype(np.float32))


def test_memory_is_bounded_by_the_window_not_the_file(personalizer, tmp_path):
    """A 10-minute file (38 MB as float32) and a 1-minute one cost the same peak memory."""
    cfg = SegmentConfig(vad=False, window_s=3.0, hop_s=3.0, block_s=10.0)
    peaks, held = {}, {}
    orig = LongAudio._held

    def spy(self, x):
        held[minutes] = max(held.get(minutes, 0), len(x))
        return orig(self, x)

    LongAudio._held = spy
    try:
        for minutes in (1, 10):
            path = tmp_path / f"{minutes}.wav"
            _synthetic(path, minutes)
            tracemalloc.start()
            n = len(personalizer.predict_segments("u", str(path), config=cfg))
            peaks[minutes] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert n == minutes * 20
    finally:
        LongAudio._held = orig
    assert held[10] == held[1] == 10 * SR                   # one block of 10 s at most, whatever the length
    assert peaks[10] < 8e6, peaks                           # the file alone would be 38.4 MB as float32
    assert peaks[10] < 1.5 * peaks[1] + 1e6, peaks
