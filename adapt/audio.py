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
import math
import os
import re
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
#: accepted sample rates (arrays and file headers); 384 kHz is the highest rate audio interfaces record at
_MIN_RATE, _MAX_RATE = 1_000, 384_000
_MAX_CHANNELS = 16
# torchaudio's windowed-sinc kernel has (new/g) x (orig/g) taps (g = gcd of the rates): fine for
# 44.1k/48k/22.05k/8k, but a rate like 7919 Hz would build a 16000 x 7919 kernel and take seconds.
_MAX_SINC_KERNEL = 10_000_000

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
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, memoryview):
        return f"<{source.nbytes} bytes>"
    return f"<{type(source).__name__}>"


def _sf_reason(error: Exception) -> str:
    # libsndfile messages embed the repr of our BytesIO ("Error opening <_io.BytesIO ...>: ..."):
    # keep only the reason
    text = str(error)
    text = re.sub(r"^Error opening .*?: ", "", text)
    return text.replace("Error : ", "").strip() or type(error).__name__


def _open(source: object) -> tuple[object, str]:
    """A path string or BytesIO that soundfile can read, plus a description for messages."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise UnreadableAudioError(f"no audio file at {str(path)!r}")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"empty audio: {str(path)!r} is a 0-byte file")
        return str(path), _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        if len(raw) == 0:
            raise EmptyAudioError("empty audio: got 0 bytes")
        return io.BytesIO(raw), _describe(source)
    if hasattr(source, "read"):
        try:
            raw = source.read()
        except Exception as err:  # closed file, text-mode decode error, socket error, ...
            raise UnreadableAudioError(f"cannot read from {_describe(source)}: {err}") from err
        if not isinstance(raw, (bytes, bytearray)):
            raise UnreadableAudioError(
                f"file object returned {type(raw).__name__}, expected bytes (open the file in 'rb' mode)"
            )
        if len(raw) == 0:
            raise EmptyAudioError("empty audio: the file object held 0 bytes")
        return io.BytesIO(bytes(raw)), f"<{len(raw)} bytes from {type(source).__name__}>"
    raise UnreadableAudioError(
        f"cannot read audio from {type(source).__name__}: pass a path, bytes, a binary file object or an array"
    )


def _decode(source: object, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode a file-like source to mono ``(1, time)`` float32 at its own rate, in bounded blocks.

    The header (rate, channels, frames) is checked before anything is decoded: absurd rates and
    channel counts are refused, and so are files whose header says they are too long. The payload
    is then read one second at a time and each block is downmixed at once, so peak memory is one
    block of all channels plus the mono signal - never the whole multichannel file (an 8-channel
    655 kHz FLAC of 29 s would otherwise decode to ~1.2 GB). A stream longer than its header says
    stops at ``max_seconds``. soundfile's own ``blocks`` reader is not used because it cannot stop
    early on a lying header nor downmix per block."""
    import soundfile as sf

    data_source, what = _open(source)
    try:
        f = sf.SoundFile(data_source)
    except Exception as err:  # noqa: BLE001 - libsndfile raises several types; all mean "not audio"
        raise UnreadableAudioError(f"cannot decode audio from {what}: {_sf_reason(err)}") from None
    with f:
        rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
        if not _MIN_RATE <= rate <= _MAX_RATE:
            raise SampleRateError(f"the header of {what} gives a sample rate of {rate} Hz, outside "
                                  f"[{_MIN_RATE}, {_MAX_RATE}] Hz")
        if not 1 <= channels <= _MAX_CHANNELS:
            raise AudioShapeError(f"the header of {what} gives {channels} channels; at most {_MAX_CHANNELS} are accepted")
        # reject over-long files from the header, before decoding an hour of audio into memory
        if max_seconds is not None and frames > 0 and frames / rate > max_seconds:
            raise TooLongAudioError(
                f"clip is {frames / rate:.1f} s long, longer than the maximum {max_seconds} s ({what})"
            )
        limit = None if max_seconds is None else int(math.floor(max_seconds * rate)) + 1
        size = frames if 0 < frames and (limit is None or frames <= limit) else rate
        mono = np.empty(size, np.float32)
        n = 0
        while True:
            try:
                block = f.read(rate, dtype="float32", always_2d=True)
            except Exception as err:  # noqa: BLE001 - truncated or corrupt payload behind a valid header
                raise UnreadableAudioError(f"cannot decode audio from {what}: {_sf_reason(err)}") from None
            if len(block) == 0:
                break
            if not np.isfinite(block).all():
                raise NonFiniteAudioError(f"audio holds non-finite (NaN/inf) samples ({what})")
            if limit is not None and n + len(block) > limit:
                raise TooLongAudioError(f"clip is longer than the maximum {max_seconds} s ({what}; "
                                        f"the stream holds more samples than its header says)")
            if n + len(block) > len(mono):
                mono = np.resize(mono, max(2 * len(mono), n + len(block)))
            mono[n:n + len(block)] = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float64)
            n += len(block)
    return mono[None, :n], rate


def _to_numpy(array: object) -> np.ndarray:
    if type(array).__module__.startswith("torch"):
        import torch

        tensor = array.detach().cpu()  # type: ignore[attr-defined]
        if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.float()  # bfloat16 / float8 have no numpy equivalent
        return tensor.numpy()
    return np.asarray(array)


def _from_array(array: object, rate: int, max_seconds: float | None) -> np.ndarray:
    """Validate an array source and return it as ``(channels, time)`` float32 in [-1, 1] for PCM."""
    arr = _to_numpy(array)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise AudioShapeError(f"expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise AudioShapeError(f"expected real samples, got complex dtype {arr.dtype}")
    if arr.ndim in (1, 2) and arr.size == 0:
        raise EmptyAudioError(f"empty audio: array of shape {arr.shape} has 0 samples")
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim == 2:
        # (channels, time) with few channels; accept (time, channels) when clearly so
        if arr.shape[0] > _MAX_CHANNELS and arr.shape[1] <= _MAX_CHANNELS:
            arr = arr.T
        if arr.shape[0] > _MAX_CHANNELS:
            raise AudioShapeError(
                f"expected (channels, time) with at most {_MAX_CHANNELS} channels, got shape {arr.shape}"
            )
    else:
        raise AudioShapeError(f"expected a 1D (time,) or 2D (channels, time) array, got {arr.ndim}D shape {arr.shape}")
    # check the length before converting: an hour-long int16 array would otherwise be copied twice
    if max_seconds is not None and arr.shape[1] / rate > max_seconds:
        raise TooLongAudioError(f"clip is {arr.shape[1] / rate:.1f} s long, longer than the maximum {max_seconds} s")
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.min == 0:  # unsigned PCM is offset-binary: mid-scale is silence
            mid = (float(info.max) + 1.0) / 2.0
            return ((arr.astype(np.float64) - mid) / mid).astype(np.float32)
        return (arr.astype(np.float64) / -float(info.min)).astype(np.float32)
    if arr.dtype != np.float64 and arr.dtype != np.float32:
        arr = arr.astype(np.float32)  # float16 and friends
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise NonFiniteAudioError(f"audio holds {bad} non-finite (NaN/inf) samples")
    # float64 beyond float32's range would overflow to inf in the cast
    if arr.dtype == np.float64 and np.abs(arr).max() > np.finfo(np.float32).max:
        raise NonFiniteAudioError("audio holds samples beyond the float32 range (|x| > 3.4e38)")
    return arr.astype(np.float32)


def _check_rate(sr: object, what: str) -> int:
    if isinstance(sr, (float, np.floating)) and float(sr).is_integer():
        sr = int(sr)  # 16000.0 from a config file means 16 kHz
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not _MIN_RATE <= int(sr) <= _MAX_RATE:
        raise SampleRateError(f"{what} must be an integer in [{_MIN_RATE}, {_MAX_RATE}] Hz, got {sr!r}")
    return int(sr)


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample mono ``(time,)`` float32; windowed sinc (torchaudio), FFT for awkward rate ratios."""
    if rate == target:
        return samples
    g = math.gcd(rate, target)
    if (rate // g) * (target // g) > _MAX_SINC_KERNEL:
        from scipy.signal import resample

        n_out = max(1, int(round(len(samples) * target / rate)))
        return resample(samples.astype(np.float64), n_out).astype(np.float32)
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
        source: a path, ``bytes``, a binary file object, a ``Waveform`` (returned as is when already
            at ``target_sr``), or a numpy /
            torch array shaped ``(time,)`` or ``(channels, time)`` (``(time, channels)`` is accepted
            when unambiguous: more than 16 rows and at most 16 columns). Integer arrays are PCM
            (int16 full scale is 32768; unsigned types are offset-binary); float arrays are used as is.
        sr: the sample rate of an array source (required for arrays; ignored for files, whose
            header says it).
        target_sr: output rate (16 kHz, what every backbone expects).
        min_seconds: shorter clips raise ``TooShortAudioError``.
        max_seconds: longer clips raise ``TooLongAudioError`` (``None``: no limit). Files are checked
            from their header, before decoding, and again while decoding (a header may lie).

    Files are decoded one second at a time and downmixed block by block, so the memory a file can
    cost is bounded by its accepted duration at its (mono) rate, whatever its channel count;
    rates outside [1 kHz, 384 kHz] and more than 16 channels are refused from the header.

    Returns:
        ``Waveform`` with float32 mono samples ``(time,)`` at ``target_sr``; ``is_silent`` when the
        peak is under ``SILENCE_PEAK``. Float files that exceed full scale are peak-normalized.

    Raises:
        AudioError subclasses: ``UnreadableAudioError`` (missing file, not audio, corrupt or
        truncated), ``EmptyAudioError`` (0 bytes or 0 samples), ``TooShortAudioError``,
        ``TooLongAudioError``, ``NonFiniteAudioError``, ``AudioShapeError`` (rank, channel count or
        dtype), ``SampleRateError``.

    Example:
        >>> import numpy as np
        >>> w = load_audio(np.ones((2, 44100), dtype=np.int16), sr=44100)
        >>> w.samples.shape, w.original_sample_rate, round(w.duration_s, 3)
        ((16000,), 44100, 1.0)
    """
    target_sr = _check_rate(target_sr, "target_sr")
    if isinstance(source, Waveform):
        if source.sample_rate == target_sr:
            return source  # already validated
        source, sr = source.samples, source.sample_rate  # re-validate and resample as an array
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, (int, float)) or not min_seconds >= 0:
        raise ValueError(f"min_seconds must be a number >= 0, got {min_seconds!r}")
    if max_seconds is not None and (
        isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0
    ):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")
    is_array = isinstance(source, np.ndarray) or type(source).__module__.startswith("torch")
    if is_array:
        if sr is None:
            raise SampleRateError("an array needs its sample rate: pass sr=<Hz>")
        rate = _check_rate(sr, "sample rate")
        data = _from_array(source, rate, max_seconds)
        described = f"array of shape {tuple(data.shape)}"
    else:
        data, rate = _decode(source, max_seconds)
        described = _describe(source)
        if data.shape[-1] == 0:
            raise EmptyAudioError(f"empty audio: 0 samples in {described}")
    duration = data.shape[-1] / rate
    if duration < min_seconds:
        raise TooShortAudioError(
            f"clip is {duration:.3f} s long ({data.shape[-1]} samples at {rate} Hz), "
            f"shorter than the minimum {min_seconds} s"
        )
    if max_seconds is not None and duration > max_seconds:
        raise TooLongAudioError(f"clip is {duration:.1f} s long, longer than the maximum {max_seconds} s")
    mono = data.mean(axis=0, dtype=np.float64).astype(np.float32) if data.shape[0] > 1 else data[0]
    peak = float(np.abs(mono).max())
    if peak > 1.0 + 1e-6 and not is_array:
        mono = mono / peak  # float files may exceed full scale; keep the shape, fix the level
    mono = _resample(np.ascontiguousarray(mono, dtype=np.float32), rate, target_sr)
    if not np.isfinite(mono).all():  # huge float arrays can overflow in the resampling filter
        raise NonFiniteAudioError(f"resampling {described} from {rate} Hz overflowed: rescale the samples")
    return Waveform(
        samples=np.ascontiguousarray(mono, dtype=np.float32),
        sample_rate=target_sr,
        original_sample_rate=rate,
        is_silent=peak < SILENCE_PEAK,
    )
