"""Audio loading and validation.

``load_audio`` turns a path, bytes, a file object or an array into a validated 16 kHz mono
float32 ``Waveform``, or raises a subclass of ``AudioError`` (a ``ValueError``) naming the problem.

Example:
    >>> import numpy as np
    >>> w = load_audio(np.zeros(8000, dtype=np.float32), sr=8000)
    >>> w.sample_rate, w.samples.shape, w.is_silent
    (16000, (16000,), True)
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

from .errors import (
    AudioShapeError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
    TooLongAudioError,
    TooShortAudioError,
    UnreadableAudioError,
)

__all__ = ["Waveform", "load_audio", "TARGET_SAMPLE_RATE", "DEFAULT_MIN_SECONDS", "DEFAULT_MAX_SECONDS"]

TARGET_SAMPLE_RATE = 16_000
DEFAULT_MIN_SECONDS = 0.25
DEFAULT_MAX_SECONDS = 600.0
#: peak absolute amplitude under which a clip counts as silent (about -80 dBFS)
SILENCE_PEAK = 1e-4
_MIN_RATE, _MAX_RATE = 1_000, 768_000

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, np.ndarray, "torch.Tensor"]  # noqa: F821


@dataclass(frozen=True)
class Waveform:
    """A validated clip: ``samples`` is float32 mono ``(time,)`` at ``sample_rate`` (16 kHz)."""

    samples: np.ndarray
    sample_rate: int
    original_sample_rate: int
    is_silent: bool

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def __len__(self) -> int:
        return len(self.samples)


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _decode(source: object) -> tuple[np.ndarray, int]:
    """Decode a file-like source to ``(channels, time)`` float32 and its rate."""
    import soundfile as sf

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise UnreadableAudioError(f"no audio file at {str(path)!r}")
        data_source: object = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise EmptyAudioError("empty audio: got 0 bytes")
        data_source = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        raw = source.read()
        if not isinstance(raw, (bytes, bytearray)):
            raise UnreadableAudioError(f"file object returned {type(raw).__name__}, expected bytes")
        if len(raw) == 0:
            raise EmptyAudioError("empty audio: the file object held 0 bytes")
        data_source = io.BytesIO(bytes(raw))
    else:
        raise UnreadableAudioError(f"cannot read audio from {type(source).__name__}")
    try:
        data, rate = sf.read(data_source, dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T), int(rate)
    except Exception as sf_error:  # libsndfile cannot decode it: try torchaudio (mp3 etc.)
        first = sf_error
    try:
        import torchaudio

        if isinstance(data_source, io.BytesIO):
            data_source.seek(0)
        tensor, rate = torchaudio.load(data_source)
        return tensor.numpy().astype(np.float32, copy=False), int(rate)
    except Exception:  # noqa: BLE001 - report the first, more specific decoder error
        raise UnreadableAudioError(f"cannot decode audio from {_describe(source)}: {first}") from None


def _from_array(array: object, sr: int | None) -> tuple[np.ndarray, int]:
    if sr is None:
        raise SampleRateError("an array needs its sample rate: pass sr=<Hz>")
    if type(array).__module__.startswith("torch"):
        array = array.detach().cpu().numpy()  # type: ignore[attr-defined]
    arr = np.asarray(array)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise AudioShapeError(f"expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise AudioShapeError(f"expected real samples, got complex dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim == 2:
        # (channels, time) with few channels; accept (time, channels) when clearly so
        if arr.shape[0] > 16 and arr.shape[1] <= 16:
            arr = arr.T
        if arr.shape[0] > 16:
            raise AudioShapeError(f"expected (channels, time) with at most 16 channels, got shape {arr.shape}")
    else:
        raise AudioShapeError(f"expected a 1D (time,) or 2D (channels, time) array, got {arr.ndim}D shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        scale = float(max(abs(info.min), info.max))
        out = arr.astype(np.float64) / scale
        if info.min == 0:  # unsigned PCM is offset-binary
            out = out * 2.0 - 1.0
        arr = out
    return arr.astype(np.float32), sr


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    import torch
    import torchaudio.functional as AF

    with torch.inference_mode():
        out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), rate, target)
    return out.numpy().astype(np.float32, copy=False)


def load_audio(
    source: AudioSource,
    sr: int | None = None,
    *,
    target_sr: int = TARGET_SAMPLE_RATE,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> Waveform:
    """Load and validate one clip.

    Arguments:
        source: a path, ``bytes``, a binary file object, or a numpy / torch array shaped
            ``(time,)`` or ``(channels, time)`` (``(time, channels)`` is accepted when unambiguous).
        sr: the sample rate of an array source (required for arrays; ignored for files, whose
            header says it).
        target_sr: output rate (16 kHz, what every backbone expects).
        min_seconds: shorter clips raise ``TooShortAudioError``.
        max_seconds: longer clips raise ``TooLongAudioError`` (``None``: no limit).

    Returns:
        ``Waveform`` with float32 mono samples ``(time,)`` at ``target_sr``.

    Raises:
        AudioError subclasses: ``UnreadableAudioError``, ``EmptyAudioError``, ``TooShortAudioError``,
        ``TooLongAudioError``, ``NonFiniteAudioError``, ``AudioShapeError``, ``SampleRateError``.
    """
    if isinstance(source, Waveform):
        return source
    is_array = isinstance(source, np.ndarray) or type(source).__module__.startswith("torch")
    if is_array:
        data, rate = _from_array(source, sr)
    else:
        data, rate = _decode(source)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not _MIN_RATE <= int(rate) <= _MAX_RATE:
        raise SampleRateError(f"sample rate must be an integer in [{_MIN_RATE}, {_MAX_RATE}] Hz, got {rate!r}")
    rate = int(rate)
    if data.shape[-1] == 0:
        raise EmptyAudioError(f"empty audio: 0 samples in {_describe(source)}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise NonFiniteAudioError(f"audio holds {bad} non-finite (NaN/inf) samples")
    duration = data.shape[-1] / rate
    if duration < min_seconds:
        raise TooShortAudioError(f"clip is {duration:.3f} s long, shorter than the minimum {min_seconds} s")
    if max_seconds is not None and duration > max_seconds:
        raise TooLongAudioError(f"clip is {duration:.1f} s long, longer than the maximum {max_seconds} s")
    mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    peak = float(np.abs(mono).max())
    if peak > 1.0 + 1e-6 and not is_array:
        mono = mono / peak  # float files may exceed full scale; keep the shape, fix the level
    mono = _resample(mono.astype(np.float32, copy=False), rate, target_sr)
    return Waveform(
        samples=np.ascontiguousarray(mono, dtype=np.float32),
        sample_rate=target_sr,
        original_sample_rate=rate,
        is_silent=peak < SILENCE_PEAK,
    )
