"""Long recordings: per-segment emotions with start and end times.

``predict_segments(personalizer, user, audio)`` (also ``Personalizer.predict_segments``) finds the
speech regions of a recording (``adapt.vad.SileroVAD``), cuts regions longer than
``SegmentConfig.window_s`` into windows every ``hop_s`` (the last window ends where the region
ends), and scores each window with the user's personalized model (the tenant's or global model for
a user without a profile). Optional temporal smoothing averages each segment's probabilities with
its neighbours in the same speech region (``smoothing``: a centred moving average over that many
segments).

Memory is bounded by the window and the read block, not by the file: ``LongAudio`` reads a file
twice in bounded pieces - once in blocks of ``block_s`` seconds for the VAD (which keeps one
speech probability per 32 ms frame), then window by window with ``seek``, so at most
``batch`` windows of audio are held at a time. Arrays (and bytes, which are decoded from memory)
are of course already in memory. Files at other rates are resampled per block and per window
(the encoder sees each window resampled on its own, as it would see a clip).

Example:
    >>> from adapt import Personalizer                                   # doctest: +SKIP
    >>> p = Personalizer.default()                                       # doctest: +SKIP
    >>> for s in p.predict_segments("alice", "meeting.flac"):            # doctest: +SKIP
    ...     print(f"{s.start:6.2f}-{s.end:6.2f} {s.label} {s.confidence:.2f}")
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from .audio import TARGET_SAMPLE_RATE, Waveform, _open, _resample, _sf_reason, load_audio
from .errors import (AudioShapeError, EmptyAudioError, NonFiniteAudioError, SampleRateError, TooLongAudioError,
                     TooShortAudioError, UnreadableAudioError)
from .vad import SileroVAD, SpeechRegion, VADConfig

__all__ = ["SegmentConfig", "Segment", "Window", "LongAudio", "plan_windows", "iter_segments", "predict_segments",
           "smooth_probabilities", "SEGMENT_FIELDS", "SEGMENT_PAD_S", "WINDOW_S",
           "HOP_S"]

SR = TARGET_SAMPLE_RATE
_MIN_RATE, _MAX_RATE, _MAX_CHANNELS = 1_000, 384_000, 16
#: padding of each speech region (seconds): the head was trained on whole clips, silence included,
#: and regions trimmed to the speech scored worse. Chosen among 0.03 (Silero's), 0.25, 0.5 and 1.0
#: by per-clip UA on fold-1 speakers of RAVDESS and EmoDB (48 clips each, a head trained without
#: them; never the benchmark's fold-0 test speakers): 0.498 / 0.551 / 0.610 / 0.560 on RAVDESS,
#: 0.898 / 0.882 / 0.894 / 0.894 on EmoDB.
SEGMENT_PAD_S = 0.5
#: the default window and hop, chosen among 1.5 / 0.75, 2 / 1 and 3 / 1.5 s by segment-level minus
#: clip-level UA on fold 1 of RAVDESS and EmoDB (``python -m benchmarks.longform --fold 1 --quick``;
#: -0.7 / -0.1, +1.0 / -3.0 and 0.0 / -23.9 points): longer windows straddle EmoDB's unpaused clips.
WINDOW_S, HOP_S = 1.5, 0.75
#: the columns of a segment row (CSV header, JSON keys besides ``probabilities``)
SEGMENT_FIELDS = ("start", "end", "region", "label", "confidence", "uncertain", "personalized")


def _positive(name: str, v: Any, low: float = 0.0) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not v > low:
        raise ValueError(f"{name} must be a number > {low:g}, got {v!r}")


@dataclass(frozen=True)
class SegmentConfig:
    """How a long recording is cut and scored.

    window_s / hop_s: speech regions longer than ``window_s`` are cut into windows of that length
    every ``hop_s`` seconds; min_segment_s: shorter regions are skipped; vad: find speech regions
    with Silero VAD (False: the whole recording is one region); vad_config: its settings (Silero's,
    but regions padded by ``SEGMENT_PAD_S`` = 0.5 s each side);
    smoothing: average each segment's probabilities with its neighbours in the same region
    (a centred moving average over this many segments, odd; 1: none); batch: windows embedded at
    once; block_s: seconds read at a time by the VAD pass; max_seconds: longer recordings raise
    ``TooLongAudioError`` (from the header, before decoding; None: no limit)."""

    window_s: float = WINDOW_S
    hop_s: float = HOP_S
    min_segment_s: float = 0.5
    vad: bool = True
    vad_config: VADConfig = field(default_factory=lambda: VADConfig(speech_pad_s=SEGMENT_PAD_S))
    smoothing: int = 1
    batch: int = 8
    block_s: float = 30.0
    max_seconds: Optional[float] = None

    def __post_init__(self) -> None:
        _positive("window_s", self.window_s)
        _positive("hop_s", self.hop_s)
        _positive("min_segment_s", self.min_segment_s)
        _positive("block_s", self.block_s, 0.1)
        if self.hop_s > self.window_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed window_s ({self.window_s}): audio would be skipped")
        if self.min_segment_s > self.window_s:
            raise ValueError(f"min_segment_s ({self.min_segment_s}) must not exceed window_s ({self.window_s})")
        for name in ("smoothing", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.smoothing % 2 == 0:
            raise ValueError(f"smoothing must be odd (a centred window), got {self.smoothing}")
        if not isinstance(self.vad, bool):
            raise ValueError(f"vad must be a bool, got {self.vad!r}")
        if self.max_seconds is not None:
            _positive("max_seconds", self.max_seconds)


@dataclass(frozen=True)
class Window:
    """A piece of audio to score: ``start`` / ``end`` in seconds, ``region``: its speech region's index."""

    start: float
    end: float
    region: int


@dataclass(frozen=True)
class Segment:
    """One scored window: times in seconds, the speech region it belongs to, and the prediction
    (as ``adapt.Prediction``: label, probabilities, confidence, uncertain, personalized)."""

    start: float
    end: float
    region: int
    label: str
    probabilities: dict[str, float]
    confidence: float
    uncertain: bool
    personalized: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_windows(regions: Sequence[SpeechRegion], config: SegmentConfig) -> list[Window]:
    """The windows to score: a region up to ``window_s`` long is one window; a longer one gets
    windows every ``hop_s`` and a last one ending at the region's end. Regions shorter than
    ``min_segment_s`` are skipped.

    Example:
        >>> [(w.start, w.end) for w in plan_windows([SpeechRegion(0.0, 4.0)], SegmentConfig(window_s=2, hop_s=1))]
        [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]
    """
    out: list[Window] = []
    w, h = float(config.window_s), float(config.hop_s)
    for i, r in enumerate(regions):
        a, b = float(r.start), float(r.end)
        if b - a < config.min_segment_s:
            continue
        if b - a <= w + 1e-9:
            out.append(Window(a, b, i))
            continue
        k = 0
        while a + k * h + w < b - 1e-9:
            out.append(Window(a + k * h, a + k * h + w, i))
            k += 1
        out.append(Window(b - w, b, i))
    return out


class LongAudio:
    """A recording opened for reading in bounded pieces: ``blocks()`` (16 kHz mono float32, in
    order) and ``read(start_s, end_s)``; ``duration_s``; ``max_held`` is the most samples one
    returned piece held (what the memory tests check). A context manager.

    ``source``: a path, bytes, a binary file object, a ``Waveform`` or an array (with ``sr``).
    Header checks as ``adapt.load_audio``'s: rates outside [1 kHz, 384 kHz], more than 16
    channels and (with ``max_seconds``) recordings longer than that are refused before decoding.
    soundfile's ``blocks`` reader is not used: it offers no per-block downmix and resampling.
    """

    def __init__(self, source: Any, sr: int | None = None, *, max_seconds: float | None = None,
                 block_s: float = 30.0) -> None:
        self.block_s = float(block_s)
        self.max_held = 0
        self._file = None
        self._samples: np.ndarray | None = None
        self.peak = None   # set by blocks(): the largest absolute sample seen
        is_array = isinstance(source, (np.ndarray, Waveform)) or type(source).__module__.startswith("torch")
        if is_array:
            w = load_audio(source, sr=sr, min_seconds=0.0, max_seconds=max_seconds)
            self._samples, self.rate, self.frames = w.samples, SR, len(w.samples)
            return
        import soundfile as sf

        data, what = _open(source)
        try:
            self._file = sf.SoundFile(data)
        except Exception as err:  # noqa: BLE001 - libsndfile raises several types; all mean "not audio"
            raise UnreadableAudioError(f"cannot decode audio from {what}: {_sf_reason(err)}") from None
        self._what = what
        self.rate, self.channels, self.frames = int(self._file.samplerate), int(self._file.channels), int(self._file.frames)
        if not _MIN_RATE <= self.rate <= _MAX_RATE:
            self.close()
            raise SampleRateError(f"the header of {what} gives a sample rate of {self.rate} Hz, outside "
                                  f"[{_MIN_RATE}, {_MAX_RATE}] Hz")
        if not 1 <= self.channels <= _MAX_CHANNELS:
            self.close()
            raise AudioShapeError(f"the header of {what} gives {self.channels} channels; at most {_MAX_CHANNELS} "
                                  f"are accepted")
        if self.frames <= 0:
            self.close()
            raise EmptyAudioError(f"empty audio: 0 samples in {what}")
        if max_seconds is not None and self.frames / self.rate > max_seconds:
            self.close()
            raise TooLongAudioError(f"recording is {self.frames / self.rate:.1f} s long, longer than the maximum "
                                    f"{max_seconds:g} s ({what})")

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    @property
    def is_file(self) -> bool:
        """True when read from a file (path, bytes, file object), False for an array."""
        return self._samples is None

    def __enter__(self) -> "LongAudio":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _held(self, x: np.ndarray) -> np.ndarray:
        self.max_held = max(self.max_held, len(x))
        return x

    def _read_native(self, start: int, n: int) -> np.ndarray:
        """``n`` frames from ``start`` at the file's own rate, downmixed to mono float32."""
        self._file.seek(start)
        try:
            block = self._file.read(n, dtype="float32", always_2d=True)
        except Exception as err:  # noqa: BLE001 - a truncated or corrupt payload behind a valid header
            raise UnreadableAudioError(f"cannot decode audio from {self._what}: {_sf_reason(err)}") from None
        if not np.isfinite(block).all():
            raise NonFiniteAudioError(f"audio holds non-finite (NaN/inf) samples ({self._what})")
        self._held(block[:, 0])
        mono = block[:, 0] if self.channels == 1 else block.mean(axis=1, dtype=np.float64).astype(np.float32)
        return _resample(np.ascontiguousarray(mono), self.rate, SR)

    def blocks(self) -> Iterator[np.ndarray]:
        """The whole recording as 16 kHz mono float32 blocks of ``block_s`` seconds, in order."""
        peak = 0.0
        if self._samples is not None:
            step = int(self.block_s * SR)
            for i in range(0, len(self._samples), step):
                b = self._held(self._samples[i:i + step])
                peak = max(peak, float(np.abs(b).max()) if len(b) else 0.0)
                yield b
        else:
            step = max(1, int(self.block_s * self.rate))
            for i in range(0, self.frames, step):
                b = self._read_native(i, min(step, self.frames - i))
                peak = max(peak, float(np.abs(b).max()) if len(b) else 0.0)
                yield b
        self.peak = peak

    def read(self, start_s: float, end_s: float) -> np.ndarray:
        """16 kHz mono float32 samples from ``start_s`` to ``end_s`` (seconds, clipped to the recording)."""
        if self._samples is not None:
            a, b = max(0, int(round(start_s * SR))), min(len(self._samples), int(round(end_s * SR)))
            return self._held(self._samples[a:b])
        a = max(0, int(round(start_s * self.rate)))
        b = min(self.frames, int(round(end_s * self.rate)))
        return self._read_native(a, max(0, b - a))


def smooth_probabilities(P: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of the rows of ``P`` [N, C] over ``k`` rows (fewer at the edges).

    Example:
        >>> smooth_probabilities(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), 3)[1].round(3).tolist()
        [0.667, 0.333]
    """
    P = np.asarray(P, dtype=np.float64)
    if k <= 1 or len(P) < 2:
        return P
    c = np.cumsum(np.vstack([np.zeros((1, P.shape[1])), P]), axis=0)
    idx = np.arange(len(P))
    lo, hi = np.maximum(0, idx - k // 2), np.minimum(len(P), idx + k // 2 + 1)
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def _segments(windows: list[Window], preds: list, classes: list[str], threshold: float | None,
              k: int) -> list[Segment]:
    """Segments of one region's windows, their probabilities smoothed over ``k`` neighbours."""
    P = np.array([[pr.probabilities[c] for c in classes] for pr in preds])
    if k > 1:
        P = smooth_probabilities(P, k)
    out = []
    for w, pr, row in zip(windows, preds, P):
        j = int(np.argmax(row))
        conf = float(row[j])
        unc = pr.uncertain if k <= 1 or threshold is None else conf < threshold
        out.append(Segment(start=w.start, end=w.end, region=w.region, label=classes[j],
                           probabilities={c: float(p) for c, p in zip(classes, row)}, confidence=conf,
                           uncertain=bool(unc), personalized=pr.personalized))
    return out


def iter_segments(personalizer, user: str, audio: Any, *, labels: Optional[Sequence[str]] = None,
                  config: Optional[SegmentConfig] = None, sr: int | None = None,
                  vad: Optional[SileroVAD] = None) -> Iterator[Segment]:
    """Segments of ``audio`` for ``user``, in time order, as they are scored (see the module docstring).

    Arguments:
        personalizer: an ``adapt.Personalizer`` (its backbone, head, store and tenant are used).
        audio: a path, bytes, a binary file object, a ``Waveform`` or an array (with ``sr``).
        labels: score only these emotions (as ``Personalizer.predict``).
        config: ``SegmentConfig``; its ``window_s`` must be within the personalizer's clip limits.
        vad: a ``SileroVAD`` whose model to reuse (its regions follow ``config.vad_config``).

    Raises ``AudioError`` subclasses for unusable audio (``TooLongAudioError`` over
    ``config.max_seconds``, ``TooShortAudioError`` for a recording shorter than the
    personalizer's ``min_clip_s``), and what ``Personalizer.predict`` raises."""
    config = config or SegmentConfig()
    pc = personalizer.config
    if pc.min_clip_s > config.min_segment_s or config.window_s > pc.max_clip_s:
        raise ValueError(f"segments of {config.min_segment_s}-{config.window_s} s do not fit the personalizer's "
                         f"clip limits [{pc.min_clip_s}, {pc.max_clip_s}] s")
    with LongAudio(audio, sr, max_seconds=config.max_seconds, block_s=config.block_s) as rec:
        if rec.duration_s < pc.min_clip_s:
            raise TooShortAudioError(f"recording is {rec.duration_s:.3f} s long, shorter than the minimum "
                                     f"{pc.min_clip_s} s")
        if config.vad:
            v = vad or SileroVAD(config.vad_config)
            regions = v.regions_from_probabilities(*v.frame_probabilities(rec.blocks()), config=config.vad_config)
        else:
            for _ in rec.blocks():   # one pass for the peak, as load_audio normalizes float files
                pass
            regions = [SpeechRegion(0.0, rec.duration_s)]
        # float files beyond full scale are peak-normalized, as load_audio does (arrays are used as they are)
        scale = 1.0 / rec.peak if rec.is_file and rec.peak and rec.peak > 1.0 + 1e-6 else 1.0
        windows = plan_windows(regions, config)
        threshold = None
        if config.smoothing > 1:
            threshold = personalizer.user_uncertain_threshold(user)
        pending: deque = deque()   # (window, prediction) of the current region not yet emitted
        classes: list[str] | None = None
        emitted_left: deque = deque(maxlen=max(1, config.smoothing // 2))
        for i in range(0, len(windows), config.batch):
            batch = windows[i:i + config.batch]
            wavs = [rec.read(w.start, w.end) * scale if scale != 1.0 else rec.read(w.start, w.end) for w in batch]
            preds = personalizer.predict_embeddings(user, personalizer.embed(wavs, sr=SR), labels=labels)
            for w, pr in zip(batch, preds):
                if classes is None:
                    classes = list(pr.probabilities)
                if pending and pending[-1][0].region != w.region:
                    yield from _drain(pending, emitted_left, classes, threshold, config.smoothing, True)
                pending.append((w, pr))
                yield from _drain(pending, emitted_left, classes, threshold, config.smoothing, False)
        if pending:
            yield from _drain(pending, emitted_left, classes, threshold, config.smoothing, True)


def _drain(pending: deque, left: deque, classes: list[str], threshold, k: int, region_done: bool) -> Iterator[Segment]:
    """Emit the pending segments whose smoothing neighbourhood is complete.

    ``pending`` holds ``(window, prediction)`` of the current region not yet emitted; ``left``
    the last ``k // 2`` emitted ones of the same region (their left-hand context)."""
    half = k // 2
    if pending and left and left[-1][0].region != pending[0][0].region:
        left.clear()
    ready = len(pending) if region_done else len(pending) - half
    if ready <= 0:
        return
    ctx = list(left) + list(pending)
    segs = _segments([w for w, _ in ctx], [p for _, p in ctx], classes, threshold, k)[len(left):len(left) + ready]
    for _ in range(ready):
        left.append(pending.popleft())
    if region_done:
        left.clear()
    yield from segs


def predict_segments(personalizer, user: str, audio: Any, **kwargs: Any) -> list[Segment]:
    """``iter_segments`` as a list (the segments are small; the audio is never all in memory)."""
    return list(iter_segments(personalizer, user, audio, **kwargs))
