"""adapt.audio: a generated corrupt-audio corpus, property tests on arrays, and real corpus clips."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adapt import errors
from adapt.audio import SILENCE_PEAK, Waveform, load_audio

SR = 16_000


def _tone(seconds: float, sr: int, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _encode(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _load(source, **kwargs):
    """Load, and turn any exception that is not an AudioError into a test failure."""
    try:
        return load_audio(source, **kwargs)
    except errors.AudioError:
        raise
    except Exception as err:  # noqa: BLE001 - the point of the test
        pytest.fail(f"load_audio raised {type(err).__name__} (not an AudioError): {err}")


@pytest.fixture(scope="module")
def corrupt_dir(tmp_path_factory, data_dir) -> Path:
    """A folder of broken and unusual files, built once per module."""
    d = tmp_path_factory.mktemp("corrupt_audio")
    real = (data_dir / "ravdess/audio/Actor_01/03-01-01-01-01-01-01.flac").read_bytes()
    tone = _tone(2.0, SR)
    tone_flac = _encode(tone + _tone(2.0, SR, freq=3217.0, amp=0.2), SR, "FLAC", "PCM_16")
    files = {
        "truncated_real.flac": real[: len(real) // 2],
        "truncated_synthetic.flac": tone_flac[: len(tone_flac) // 2],
        "header_only.flac": real[:100],
        "truncated.wav": _encode(tone, SR, "WAV", "PCM_16")[: 44 + 2 * SR],  # header says 2 s, 1 s present
        "random_bytes.wav": np.random.default_rng(0).bytes(50_000),
        "no_data.wav": _encode(np.zeros(0, np.float32), SR, "WAV", "PCM_16"),
        "nan.wav": _encode(np.where(np.arange(SR) == 500, np.nan, tone[:SR]).astype(np.float32), SR, "WAV", "FLOAT"),
        "inf.wav": _encode(np.where(np.arange(SR) == 9, np.inf, tone[:SR]).astype(np.float32), SR, "WAV", "FLOAT"),
        "rate_8k.wav": _encode(_tone(1.5, 8000), 8000, "WAV", "PCM_16"),
        "stereo_44k.wav": _encode(np.stack([_tone(2.0, 44_100), np.zeros(88_200, np.float32)], 1), 44_100, "WAV", "PCM_16"),
        "pcm24.wav": _encode(tone, SR, "WAV", "PCM_24"),
        "float_loud.wav": _encode(4.0 * tone, SR, "WAV", "FLOAT"),
        "one_sample.wav": _encode(np.array([0.1], np.float32), SR, "WAV", "PCM_16"),
        "rate_500.wav": _encode(_tone(1.0, 500), 500, "WAV", "PCM_16"),
        "rate_7919.wav": _encode(_tone(1.0, 7919), 7919, "WAV", "PCM_16"),
        "text.wav": b"this is not audio, just a text file renamed to .wav\n" * 20,
        "tone.ogg": _encode(tone, SR, "OGG", "VORBIS"),
        "tone.mp3": _encode(tone, SR, "MP3"),
        "silence.flac": _encode(np.zeros(SR, np.float32), SR, "FLAC", "PCM_16"),
        "empty.wav": b"",
    }
    for name, payload in files.items():
        (d / name).write_bytes(payload)
    # an hour of silence: 8 kHz 8-bit PCM keeps the file at 29 MB and the test fast
    with sf.SoundFile(d / "hour_silence.wav", "w", 8000, 1, "PCM_U8", format="WAV") as fh:
        block = np.zeros(8000 * 60, np.float32)
        for _ in range(60):
            fh.write(block)
    return d


# name -> expected error class, or a dict of properties the loaded Waveform must have
EXPECTED = {
    "truncated_real.flac": errors.UnreadableAudioError,
    "truncated_synthetic.flac": errors.UnreadableAudioError,
    "header_only.flac": errors.UnreadableAudioError,
    "truncated.wav": {"duration_s": 1.0, "original_sample_rate": SR},
    "random_bytes.wav": errors.UnreadableAudioError,
    "no_data.wav": errors.EmptyAudioError,
    "nan.wav": errors.NonFiniteAudioError,
    "inf.wav": errors.NonFiniteAudioError,
    "rate_8k.wav": {"duration_s": 1.5, "original_sample_rate": 8000},
    "stereo_44k.wav": {"duration_s": 2.0, "original_sample_rate": 44_100},
    "pcm24.wav": {"duration_s": 2.0, "original_sample_rate": SR},
    "float_loud.wav": {"duration_s": 2.0, "original_sample_rate": SR},
    "one_sample.wav": errors.TooShortAudioError,
    "rate_500.wav": errors.SampleRateError,
    "rate_7919.wav": {"duration_s": 1.0, "original_sample_rate": 7919},
    "text.wav": errors.UnreadableAudioError,
    "tone.ogg": {"duration_s": 2.0, "original_sample_rate": SR},
    "tone.mp3": {"duration_s": 2.0, "original_sample_rate": SR},
    "silence.flac": {"duration_s": 1.0, "original_sample_rate": SR, "is_silent": True},
    "empty.wav": errors.EmptyAudioError,
    "hour_silence.wav": errors.TooLongAudioError,
}


CASES = [(name, as_) for name in sorted(EXPECTED) for as_ in ("path", "bytes", "fileobj")
         if not (as_ == "bytes" and name == "hour_silence.wav")]  # 29 MB of bytes adds nothing


@pytest.mark.parametrize("name,as_", CASES)
def test_corrupt_corpus(corrupt_dir, name, as_):
    path = corrupt_dir / name
    expected = EXPECTED[name]
    if as_ == "path":
        source = path
    elif as_ == "bytes":
        source = path.read_bytes()
    else:
        source = path.open("rb")
    try:
        if isinstance(expected, type):
            with pytest.raises(expected) as info:
                _load(source)
            assert str(info.value)  # the message names the problem
            assert type(info.value) is expected  # the most specific class, not a sibling
        else:
            w = _load(source)
            assert w.sample_rate == SR and w.samples.dtype == np.float32 and w.samples.ndim == 1
            assert np.isfinite(w.samples).all() and np.abs(w.samples).max() <= 1.0 + 1e-5
            assert w.duration_s == pytest.approx(expected["duration_s"], abs=2e-3)
            assert w.original_sample_rate == expected["original_sample_rate"]
            assert w.is_silent == expected.get("is_silent", False)
    finally:
        if hasattr(source, "close"):
            source.close()


def test_stereo_is_mixed_to_mono(corrupt_dir):
    w = _load(corrupt_dir / "stereo_44k.wav")
    # left = 0.5 sine, right = silence: the mean of the channels has amplitude 0.25
    assert np.abs(w.samples[1000:-1000]).max() == pytest.approx(0.25, abs=0.01)


def test_pcm24_keeps_precision(corrupt_dir):
    w = _load(corrupt_dir / "pcm24.wav")
    np.testing.assert_allclose(w.samples, _tone(2.0, SR), atol=1e-6)


def test_float_file_above_full_scale_is_peak_normalized(corrupt_dir):
    w = _load(corrupt_dir / "float_loud.wav")
    assert np.abs(w.samples).max() == pytest.approx(1.0, abs=1e-4)


def test_resampled_tone_keeps_its_pitch(corrupt_dir):
    w = _load(corrupt_dir / "rate_8k.wav")
    spectrum = np.abs(np.fft.rfft(w.samples))
    peak_hz = np.argmax(spectrum) * SR / len(w.samples)
    assert peak_hz == pytest.approx(220.0, abs=2.0)


def test_hour_of_silence_loads_when_allowed():
    w = _load(np.zeros(SR * 3600, np.float32), sr=SR, max_seconds=None)
    assert w.duration_s == 3600.0 and w.is_silent


def test_bad_file_objects_and_paths(tmp_path):
    (tmp_path / "t.wav").write_bytes(_encode(_tone(1.0, SR), SR))
    with open(tmp_path / "t.wav", "r", encoding="latin-1") as text_mode:
        with pytest.raises(errors.UnreadableAudioError, match="'rb' mode"):
            _load(text_mode)
    closed = open(tmp_path / "t.wav", "rb")
    closed.close()
    with pytest.raises(errors.UnreadableAudioError, match="cannot read"):
        _load(closed)
    with pytest.raises(errors.UnreadableAudioError, match="no audio file"):
        _load(tmp_path / "missing.wav")
    with pytest.raises(errors.UnreadableAudioError, match="no audio file"):
        _load(tmp_path)  # a directory
    with pytest.raises(errors.UnreadableAudioError, match="cannot read audio from int"):
        _load(12345)
    with pytest.raises(errors.EmptyAudioError):
        _load(io.BytesIO(b""))
    assert _load(memoryview(_encode(_tone(1.0, SR), SR))).duration_s == pytest.approx(1.0)


def test_min_max_and_sr_validation():
    x = _tone(1.0, SR)
    with pytest.raises(errors.TooShortAudioError, match="0.100 s"):
        _load(x[:1600], sr=SR)
    assert _load(x[:1600], sr=SR, min_seconds=0.0).duration_s == pytest.approx(0.1)
    with pytest.raises(errors.TooLongAudioError, match="maximum 0.5"):
        _load(x, sr=SR, max_seconds=0.5)
    with pytest.raises(errors.SampleRateError, match="pass sr="):
        _load(x)
    for bad in (0, -16000, True, "16000", 16000.5, 10**7):
        with pytest.raises(errors.SampleRateError):
            _load(x, sr=bad)
    assert _load(x, sr=16000.0).original_sample_rate == SR
    # bad arguments (not bad audio) are plain ValueErrors
    with pytest.raises(ValueError, match="min_seconds"):
        load_audio(x, sr=SR, min_seconds=-1)
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio(x, sr=SR, max_seconds=0)


def test_torch_tensors():
    import torch

    x = torch.from_numpy(_tone(1.0, SR))
    assert _load(x, sr=SR).samples.shape == (SR,)
    assert _load(x.to(torch.bfloat16), sr=SR).samples.dtype == np.float32
    assert _load(x.clone().requires_grad_(True), sr=SR).duration_s == 1.0
    with pytest.raises(errors.AudioShapeError):
        _load(torch.zeros(2, 3, SR), sr=SR)


def test_unsigned_pcm_midscale_is_silence():
    w = _load(np.full(SR, 128, np.uint8), sr=SR)
    assert w.is_silent and np.abs(w.samples).max() < SILENCE_PEAK


def test_waveform_passes_through():
    w = _load(_tone(1.0, SR), sr=SR)
    assert load_audio(w) is w and isinstance(w, Waveform)
    low = _load(w, target_sr=8000)  # another target rate: resampled, not returned as is
    assert low.sample_rate == 8000 and len(low) == 8000


# ---- property tests ---------------------------------------------------------------------------

DTYPES = [np.int16, np.int32, np.uint8, np.float32, np.float64, np.float16, bool, np.complex64, object]


@st.composite
def array_and_rate(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 40 if ndim > 1 else 3000), min_size=ndim, max_size=ndim)))
    if dtype == object:
        arr = np.empty(shape, dtype=object)
        arr.fill(0.1)
    else:
        elements = None
        if dtype.kind == "f":
            w = min(dtype.itemsize * 8, 64)
            elements = st.floats(-2, 2, width=w) | st.sampled_from([np.nan, np.inf, -np.inf, float(np.finfo(dtype).max)])
        arr = draw(hnp.arrays(dtype, shape, elements=elements))
    rate = draw(st.one_of(
        st.sampled_from([8000, 16000, 22050, 44100, 48000]),
        st.integers(-5, 200_000),
        st.floats(-1, 1e6) | st.just(float("nan")),
        st.none(),
    ))
    return arr, rate


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=array_and_rate(), min_seconds=st.sampled_from([0.0, 0.01, 0.25]))
def test_arrays_load_or_raise_audio_error(case, min_seconds):
    arr, rate = case
    try:
        w = load_audio(arr, sr=rate, min_seconds=min_seconds)
    except errors.AudioError as err:
        assert str(err)
        return
    # it loaded: then the input was valid and the output must be a clean 16 kHz mono clip
    assert arr.dtype != object and not np.iscomplexobj(arr) and arr.ndim in (1, 2)
    n = arr.shape[-1] if arr.ndim == 1 or arr.shape[0] <= 16 else arr.shape[0]
    assert w.samples.dtype == np.float32 and w.samples.ndim == 1 and w.sample_rate == SR
    assert np.isfinite(w.samples).all()
    assert w.original_sample_rate == int(rate)
    assert abs(len(w.samples) - n * SR / int(rate)) <= 1.0
    assert n / int(rate) >= min_seconds
    if arr.dtype.kind in "iub":
        assert np.abs(w.samples).max() <= 2.0  # PCM stays near full scale (sinc resampling rings at the edges)


@settings(max_examples=40, deadline=None)
@given(rate=st.integers(1000, 96_000), seconds=st.floats(0.3, 1.0))
def test_any_valid_rate_resamples_to_the_right_length(rate, seconds):
    n = int(seconds * rate)
    w = load_audio(np.zeros(n, np.float32) + 0.01, sr=rate)
    assert abs(len(w) - n * SR / rate) <= 1.0
    assert w.duration_s == pytest.approx(n / rate, abs=2 / rate + 1 / SR)


# ---- real corpora -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ravdess", "emodb", "emovo", "urdu"])
def test_real_clips_load(name, request):
    corpus = request.getfixturevalue(name)
    picks = np.random.default_rng(7).choice(len(corpus), size=4, replace=False)
    for i in picks:
        rec = corpus[int(i)]
        w = _load(rec.path)
        assert w.original_sample_rate == SR and w.sample_rate == SR
        assert w.duration_s == pytest.approx(rec.duration_s, abs=1e-3)
        assert not w.is_silent and math.isfinite(float(w.samples.std()))
