"""Voice-activity detection: Silero VAD (``silero-vad`` from PyPI, whose wheel ships the weights).

``SileroVAD`` runs the model over 16 kHz mono audio given as an array or as an iterator of blocks
(so a long file never has to be in memory at once): one speech probability per 32 ms frame (512
samples), then Silero's own ``get_speech_timestamps_from_probs`` turns them into speech regions
with its hysteresis (``threshold`` to enter speech, ``threshold - 0.15`` to leave it), minimum
speech and silence durations and padding. The frames are fed exactly as Silero's
``get_speech_timestamps`` feeds them (state reset first, the last frame zero-padded), so an array
and the same audio in blocks give the same regions.

Needs the ``realtime`` extra (``pip install 'ser-adapt[realtime]'``); the TorchScript model is
used (torch only, no onnxruntime). Nothing is downloaded.

Example:
    >>> import numpy as np
    >>> vad = SileroVAD()                                       # doctest: +SKIP
    >>> vad.regions(np.zeros(16000, np.float32))                 # doctest: +SKIP
    []
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from .errors import AudioShapeError

__all__ = ["VADConfig", "SpeechRegion", "SileroVAD", "require_silero", "FRAME_SAMPLES", "SAMPLE_RATE"]

SAMPLE_RATE = 16_000
#: samples per Silero frame at 16 kHz (32 ms)
FRAME_SAMPLES = 512


def require_silero():
    """The ``silero_vad`` module, or an ``ImportError`` naming the extra to install.

    Importing ``silero_vad`` calls ``torch.set_num_threads(1)``; the caller's thread count is put
    back, so loading the VAD does not slow the encoder down."""
    import torch

    threads = torch.get_num_threads()
    try:
        import silero_vad
    except ImportError:
        raise ImportError("voice-activity detection needs silero-vad: pip install 'ser-adapt[realtime]'") from None
    finally:
        torch.set_num_threads(threads)
    return silero_vad


@dataclass(frozen=True)
class VADConfig:
    """Silero's segmentation settings, in seconds (its defaults, but 0.3 s of silence to split).

    threshold: a frame is speech above this probability; min_speech_s: shorter regions are dropped;
    min_silence_s: a region ends after this much silence; speech_pad_s: padding on each side."""

    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.3
    speech_pad_s: float = 0.03

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not 0.15 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0.15, 1), got {self.threshold!r}")
        for name in ("min_speech_s", "min_silence_s", "speech_pad_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 60:
                raise ValueError(f"{name} must be a number of seconds in [0, 60], got {v!r}")


@dataclass(frozen=True)
class SpeechRegion:
    """A stretch of speech, ``start`` to ``end`` in seconds from the beginning of the audio."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class SileroVAD:
    """Silero VAD on 16 kHz mono float32 audio (see the module docstring).

    One instance holds one model; calls are serialized by a lock (the model is stateful), so an
    instance can be shared by threads. The model is loaded on first use.
    """

    def __init__(self, config: Optional[VADConfig] = None) -> None:
        self.config = config or VADConfig()
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            import warnings

            with warnings.catch_warnings():   # silero-vad uses torch.jit.load and importlib's path()
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                self._model = require_silero().load_silero_vad(onnx=False)
        return self._model

    def frame_probabilities(self, blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
        """Speech probability of every 512-sample frame of the audio in ``blocks`` (any lengths).

        Returns ``(probabilities [frames], total samples)``. Only one block and one frame are held
        at a time, so memory does not grow with the audio's length."""
        import torch

        from .threads import torch_threads

        # one intra-op thread: a 512-sample frame is too small to split, and with two threads on a
        # busy 2-core machine a frame took 5-12 ms instead of 0.5 ms (measured)
        with self._lock, torch_threads(1), torch.inference_mode():
            model = self._load()
            model.reset_states()
            probs: list[float] = []
            carry = np.zeros(0, np.float32)
            total = 0
            for block in blocks:
                block = np.asarray(block, dtype=np.float32).reshape(-1)
                total += len(block)
                buf = np.concatenate([carry, block]) if len(carry) else block
                n = len(buf) // FRAME_SAMPLES * FRAME_SAMPLES
                for i in range(0, n, FRAME_SAMPLES):
                    probs.append(float(model(torch.from_numpy(buf[i:i + FRAME_SAMPLES].copy()), SAMPLE_RATE)))
                carry = buf[n:].copy()
            if len(carry):
                last = np.zeros(FRAME_SAMPLES, np.float32)
                last[:len(carry)] = carry
                probs.append(float(model(torch.from_numpy(last), SAMPLE_RATE)))
        return np.asarray(probs, dtype=np.float32), total

    def regions_from_probabilities(self, probs: np.ndarray, total_samples: int,
                                   config: Optional[VADConfig] = None) -> list[SpeechRegion]:
        """Speech regions from frame probabilities (Silero's ``get_speech_timestamps_from_probs``),
        with ``config`` (default: this instance's)."""
        if total_samples == 0 or len(probs) == 0:
            return []
        c = config or self.config
        stamps = require_silero().get_speech_timestamps_from_probs(
            [float(p) for p in probs], sampling_rate=SAMPLE_RATE, threshold=c.threshold,
            min_speech_duration_ms=int(round(c.min_speech_s * 1000)),
            min_silence_duration_ms=int(round(c.min_silence_s * 1000)),
            speech_pad_ms=int(round(c.speech_pad_s * 1000)), audio_length_samples=int(total_samples))
        return [SpeechRegion(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]

    def regions_from_blocks(self, blocks: Iterable[np.ndarray]) -> list[SpeechRegion]:
        """Speech regions of the audio in ``blocks`` (16 kHz mono float32 pieces, in order)."""
        return self.regions_from_probabilities(*self.frame_probabilities(blocks))

    def regions(self, samples: np.ndarray) -> list[SpeechRegion]:
        """Speech regions of a 16 kHz mono float32 array ``(time,)``."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioShapeError(f"expected mono samples (time,), got shape {samples.shape}")
        return self.regions_from_blocks([samples])
