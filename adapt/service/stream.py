"""Streaming and long recordings over HTTP: the WebSocket route ``/v1/users/{user_id}/stream`` and
the helpers of ``POST /v1/users/{user_id}/segments``.

**WebSocket protocol.** Authentication and tenant rules are the REST routes': the API key goes in
the handshake headers (``Authorization: Bearer <key>`` or ``X-API-Key``); ``Guard`` refuses a
missing or unknown key with a 401 (429 over the tenant's rate) before the connection is accepted;
the stream sees only the key's tenant. The client then sends

* optionally first, a text message ``{"type": "config", "format": "int16" | "float32",
  "window_s": 2.0, "hop_s": 1.0, "labels": [...] | null, "overflow": "drop" | "block"}``
  (every field optional; these are the defaults);
* binary messages of 16 kHz mono PCM, little-endian ``int16`` (default) or ``float32``, of any
  length up to ``StreamLimits.max_message_bytes`` (100 ms chunks are typical);
* a text message ``{"type": "end"}`` when done: the audio after the last window is scored, an
  ``end`` message is sent and the server closes the connection (code 1000).

The server sends JSON text messages: ``{"type": "ready", ...the settings}`` once, then per
window ``{"type": "prediction", "seq", "start", "end", "label", "probabilities", "confidence",
"uncertain", "personalized", "dropped"}`` (times in seconds of audio from the stream's start;
window ``seq`` ends at ``seq * hop_s`` and spans up to ``window_s`` seconds before it; ``dropped``:
windows dropped so far), and finally ``{"type": "end", "windows", "dropped", "seconds"}``. An error
is ``{"type": "error", "code", "message"}`` followed by a close (1008 bad input, 1009 message too
big, 1011 internal error, 1013 too many streams).

**Backpressure.** Memory per stream is bounded whatever the client does: the server keeps only the
last window of audio, at most ``queue`` windows waiting for the encoder and at most ``outbox``
predictions waiting to be sent. With ``overflow: "drop"`` (the default, for live audio) the
server never stops reading: when the encoder or the client falls behind, the *oldest* waiting
window or prediction is dropped and counted (``dropped``; its ``seq`` never arrives), so latency
stays bounded. With ``overflow: "block"`` (for files sent faster than real time) nothing is
dropped: when the queue is full the server stops reading the socket until the encoder catches up,
and TCP slows the sender down. uvicorn itself holds at most one unread message per connection
(it pauses reading until the application takes it).

Example (a client; ``ser-adapt stream FILE`` is one):
    >>> from websockets.sync.client import connect                      # doctest: +SKIP
    >>> with connect("ws://127.0.0.1:8000/v1/users/alice/stream",
    ...              additional_headers={"X-API-Key": key}) as ws:         # doctest: +SKIP
    ...     ws.send(pcm_int16_bytes); ws.send('{"type": "end"}')
    ...     for msg in ws: print(msg)
"""
from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
from starlette.websockets import WebSocket

from ..errors import InvalidIdError, SerAdaptError, UnknownLabelError

__all__ = ["StreamLimits", "StreamSettings", "StreamStats", "stream_endpoint", "LONG_MAX_SECONDS", "long_segments",
           "SAMPLE_RATE", "FORMATS"]

SAMPLE_RATE = 16_000
FORMATS = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
#: the longest recording ``POST /v1/users/{user_id}/segments`` accepts (10 minutes); the request
#: body limit (``ServiceLimits.max_request_bytes``, 20 MiB) applies too: a 10-minute 16 kHz mono
#: int16 WAV is 19.2 MB, FLAC about half.
LONG_MAX_SECONDS = 600.0


@dataclass(frozen=True)
class StreamLimits:
    """Server-side bounds of the WebSocket streams (``create_app(stream_limits=...)``).

    max_streams: concurrent streams (one more is refused with 1013); queue: windows waiting for
    the encoder; outbox: predictions waiting for the client; max_message_bytes: one binary
    message; max_window_s: the longest ``window_s`` a client may ask for; idle_timeout_s: a stream
    that sends nothing for this long is closed; max_stream_s: audio seconds per stream."""

    max_streams: int = 4
    queue: int = 4
    outbox: int = 32
    max_message_bytes: int = 256 * 1024
    max_window_s: float = 10.0
    idle_timeout_s: float = 30.0
    max_stream_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        for name in ("max_streams", "queue", "outbox", "max_message_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("max_window_s", "idle_timeout_s", "max_stream_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")


@dataclass
class StreamStats:
    """Counters over all streams of an app (``app.state.stream_stats``), for tests and metrics:
    the most windows ever queued and predictions ever waiting at once, windows dropped."""

    active: int = 0
    started: int = 0
    max_queued: int = 0
    max_outbox: int = 0
    dropped: int = 0


class StreamError(Exception):
    """A protocol error: sent to the client as an ``error`` message, then the stream is closed."""

    def __init__(self, code: str, message: str, close: int = 1008) -> None:
        super().__init__(message)
        self.code, self.close = code, close


@dataclass(frozen=True)
class StreamSettings:
    """One stream's settings (the client's ``config`` message, checked against ``StreamLimits``)."""

    format: str = "int16"
    window_s: float = 2.0
    hop_s: float = 1.0
    labels: Optional[tuple[str, ...]] = None
    overflow: str = "drop"

    @classmethod
    def from_message(cls, msg: dict, limits: StreamLimits) -> "StreamSettings":
        known = {"type", "format", "window_s", "hop_s", "labels", "overflow"}
        extra = sorted(set(msg) - known)
        if extra:
            raise StreamError("bad_config", f"unknown config field(s) {extra}; known: {sorted(known - {'type'})}")
        fmt = msg.get("format", "int16")
        if fmt not in FORMATS:
            raise StreamError("bad_config", f"format must be one of {list(FORMATS)}, got {fmt!r}")
        overflow = msg.get("overflow", "drop")
        if overflow not in ("drop", "block"):
            raise StreamError("bad_config", f"overflow must be 'drop' or 'block', got {overflow!r}")
        window, hop = msg.get("window_s", 2.0), msg.get("hop_s", 1.0)
        for name, v in (("window_s", window), ("hop_s", hop)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise StreamError("bad_config", f"{name} must be a number of seconds, got {v!r}")
        if not 0.25 <= hop <= window <= limits.max_window_s:
            raise StreamError("bad_config", f"need 0.25 <= hop_s <= window_s <= {limits.max_window_s:g}, "
                                            f"got hop_s={hop}, window_s={window}")
        labels = msg.get("labels")
        if labels is not None:
            if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
                raise StreamError("bad_config", f"labels must be a non-empty list of emotion names or null, got {labels!r}")
            labels = tuple(labels)
        return cls(format=fmt, window_s=float(window), hop_s=float(hop), labels=labels, overflow=overflow)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "sample_rate": SAMPLE_RATE, "window_s": self.window_s, "hop_s": self.hop_s,
                "labels": None if self.labels is None else list(self.labels), "overflow": self.overflow}


class _Bounded:
    """A bounded FIFO for one producer and one consumer coroutine: ``put`` drops the oldest item
    when full (``drop``) or waits for room (``block``); ``get`` waits for an item."""

    def __init__(self, size: int, block: bool) -> None:
        self.items: deque = deque()
        self.size, self.block = size, block
        self.dropped = 0
        self._changed = asyncio.Event()

    async def put(self, item) -> None:
        while self.block and len(self.items) >= self.size:
            self._changed.clear()
            await self._changed.wait()
        if len(self.items) >= self.size:
            self.items.popleft()
            self.dropped += 1
        self.items.append(item)
        self._changed.set()

    async def get(self):
        while not self.items:
            self._changed.clear()
            await self._changed.wait()
        item = self.items.popleft()
        self._changed.set()
        return item


_END = object()


class _Stream:
    """One connection's state: the audio of the current window, the queues, the counters."""

    def __init__(self, ws, personalizer, user: str, limits: StreamLimits, stats: StreamStats) -> None:
        self.ws, self.p, self.user, self.limits, self.stats = ws, personalizer, user, limits, stats
        self.settings = StreamSettings()
        self.buffer = np.zeros(0, np.float32)   # the last window_s seconds of audio
        self.total = 0                          # samples received
        self.seq = 0                            # windows cut so far
        self.last_end = 0                       # sample where the last window ended
        self.jobs: _Bounded | None = None
        self.outbox: _Bounded | None = None
        self.pending = b""                      # bytes of a sample split across two messages

    @property
    def dropped(self) -> int:
        return (self.jobs.dropped if self.jobs else 0) + (self.outbox.dropped if self.outbox else 0)

    def start(self, settings: StreamSettings) -> None:
        self.settings = settings
        block = settings.overflow == "block"
        self.jobs = _Bounded(self.limits.queue, block)
        self.outbox = _Bounded(self.limits.outbox, block)
        self.win = int(round(settings.window_s * SAMPLE_RATE))
        self.hop = int(round(settings.hop_s * SAMPLE_RATE))

    def _samples(self, data: bytes) -> np.ndarray:
        dt = FORMATS[self.settings.format]
        data = self.pending + data
        n = len(data) // dt.itemsize * dt.itemsize
        self.pending = data[n:]
        x = np.frombuffer(data[:n], dtype=dt)
        if dt.kind == "i":
            return x.astype(np.float32) / 32768.0
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise StreamError("bad_audio", "audio holds non-finite (NaN/inf) float32 samples")
        return x

    async def _cut(self, end: int) -> None:
        """Queue the window that ends at sample ``end`` (the buffer ends there)."""
        self.seq += 1
        self.last_end = end
        start = max(0, end - self.win)
        await self.jobs.put((self.seq, start, end, self.buffer[-(end - start):].copy()))
        self.stats.max_queued = max(self.stats.max_queued, len(self.jobs.items))

    async def feed(self, data: bytes) -> None:
        x = self._samples(data)
        if (self.total + len(x)) / SAMPLE_RATE > self.limits.max_stream_s:
            raise StreamError("stream_too_long", f"a stream may carry at most {self.limits.max_stream_s:g} s of audio")
        while len(x):
            to_boundary = (self.seq + 1) * self.hop - self.total
            piece, x = x[:to_boundary], x[to_boundary:]
            self.buffer = np.concatenate([self.buffer, piece])[-self.win:]
            self.total += len(piece)
            if self.total == (self.seq + 1) * self.hop:
                await self._cut(self.total)

    async def finish(self) -> None:
        """Score the audio after the last window (if at least 0.25 s), then end the worker."""
        if self.total - self.last_end >= SAMPLE_RATE // 4:
            await self._cut(self.total)
        await self.jobs.put(_END)

    def _predict(self, samples: np.ndarray):
        X = self.p.embed([samples], sr=SAMPLE_RATE)
        return self.p.predict_embeddings(self.user, X, labels=self.settings.labels)[0]

    async def worker(self) -> None:
        """Windows -> predictions, one at a time, in a thread (the event loop keeps reading)."""
        from starlette.concurrency import run_in_threadpool

        while True:
            job = await self.jobs.get()
            if job is _END:
                await self.outbox.put(_END)
                return
            seq, start, end, samples = job
            try:
                pred = await run_in_threadpool(self._predict, samples)
            except SerAdaptError as exc:
                from .errors import status_of

                row = status_of(exc)
                await self.outbox.put(StreamError(row[1] if row else "error", str(exc)))
                return
            msg = {"type": "prediction", "seq": seq, "start": round(start / SAMPLE_RATE, 4),
                   "end": round(end / SAMPLE_RATE, 4), **pred.to_dict(), "dropped": self.dropped}
            await self.outbox.put(msg)
            self.stats.max_outbox = max(self.stats.max_outbox, len(self.outbox.items))

    async def sender(self) -> None:
        while True:
            msg = await self.outbox.get()
            if msg is _END:
                await self.ws.send_json({"type": "end", "windows": self.seq, "dropped": self.dropped,
                                         "seconds": round(self.total / SAMPLE_RATE, 4)})
                return
            if isinstance(msg, StreamError):
                raise msg
            await self.ws.send_json(msg)


async def _error(ws, exc: StreamError) -> None:
    try:
        await ws.send_json({"type": "error", "code": exc.code, "message": str(exc)})
        await ws.close(code=exc.close)
    except Exception:  # noqa: BLE001 - the client may be gone already
        pass


async def _reader(st: _Stream, ws, first: Optional[dict]) -> None:
    """Receive messages until ``end`` or a disconnect; audio goes to ``st.feed``."""
    from starlette.websockets import WebSocketDisconnect

    limits = st.limits
    while True:
        if first is not None:
            msg, first = first, None
        else:
            try:
                msg = await asyncio.wait_for(ws.receive(), timeout=limits.idle_timeout_s)
            except asyncio.TimeoutError:
                raise StreamError("idle_timeout", f"no message for {limits.idle_timeout_s:g} s") from None
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        if msg.get("bytes") is not None:
            data = msg["bytes"]
            if len(data) > limits.max_message_bytes:
                raise StreamError("message_too_big", f"a binary message of {len(data)} bytes exceeds "
                                                     f"{limits.max_message_bytes} bytes", close=1009)
            await st.feed(data)
            continue
        try:
            body = json.loads(msg.get("text") or "")
        except json.JSONDecodeError:
            raise StreamError("bad_message", "text messages must be JSON objects") from None
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "end":
            await st.finish()
            return
        if kind == "config":
            raise StreamError("bad_message", "the config message must come first, before any audio")
        raise StreamError("bad_message", f"unknown message type {kind!r}; expected binary audio or "
                                         f"{{'type': 'end'}}")


async def stream_endpoint(websocket: WebSocket, user_id: str) -> None:
    """The ``/v1/users/{user_id}/stream`` handler (see the module docstring)."""
    from starlette.websockets import WebSocketDisconnect

    from ..labels import check_label
    from ..store.ids import check_user

    app = websocket.app
    limits: StreamLimits = app.state.stream_limits
    stats: StreamStats = app.state.stream_stats
    key = (websocket.scope.get("state") or {}).get("api_key")
    await websocket.accept()
    if key is None:   # Guard authenticates every /v1 path; this is only reached if it was bypassed
        return await _error(websocket, StreamError("unauthorized", "missing API key"))
    try:
        user = check_user(user_id)
    except InvalidIdError as exc:
        return await _error(websocket, StreamError("invalid_id", str(exc)))
    if stats.active >= limits.max_streams:
        return await _error(websocket, StreamError("overloaded", f"the server carries {stats.active} streams, its "
                                                                 f"limit; retry shortly", close=1013))
    stats.active += 1
    stats.started += 1
    st = _Stream(websocket, app.state.personalizer.for_tenant(key.tenant), user, limits, stats)
    tasks: list[asyncio.Task] = []
    try:
        first = await asyncio.wait_for(websocket.receive(), timeout=limits.idle_timeout_s)
        settings = StreamSettings()
        if first["type"] != "websocket.disconnect" and first.get("text") is not None:
            try:
                body = json.loads(first["text"])
            except json.JSONDecodeError:
                raise StreamError("bad_message", "text messages must be JSON objects") from None
            if isinstance(body, dict) and body.get("type") == "config":
                settings = StreamSettings.from_message(body, limits)
                if settings.labels is not None:
                    try:
                        settings = replace(settings, labels=tuple(check_label(x) for x in settings.labels))
                        available = st.p.available_emotions(user)
                        missing = [x for x in settings.labels if x not in available]
                        if missing:
                            raise UnknownLabelError(f"unknown emotion(s) {missing}; available: {list(available)}")
                    except UnknownLabelError as exc:
                        raise StreamError("unknown_label", str(exc)) from None
                first = None
        st.start(settings)
        await websocket.send_json({"type": "ready", **settings.to_dict()})
        # the reader ends at "end", the worker at the last window, the sender after the last
        # prediction; the first of them to fail ends the stream
        tasks = [asyncio.create_task(_reader(st, websocket, first)), asyncio.create_task(st.worker()),
                 asyncio.create_task(st.sender())]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                raise t.exception()
        await websocket.close(code=1000)
    except asyncio.TimeoutError:
        await _error(websocket, StreamError("idle_timeout", f"no message for {limits.idle_timeout_s:g} s"))
    except StreamError as exc:
        await _error(websocket, exc)
    except WebSocketDisconnect:
        pass   # the client left mid-stream: nothing to send; the tasks are cancelled below
    except Exception:  # noqa: BLE001 - an internal error: logged, the client gets 1011
        import logging

        logging.getLogger("adapt.service").exception("stream of user %r failed", user)
        await _error(websocket, StreamError("internal_error", "internal server error", close=1011))
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        stats.active -= 1
        stats.dropped += st.dropped


# -- POST /v1/users/{user_id}/segments ------------------------------------------------------
def long_segments(personalizer, user: str, upload: Any, limits, *, labels=None, window_s: float = 1.5,
                  hop_s: float = 0.75, smoothing: int = 1, vad=None) -> dict[str, Any]:
    """The answer of the segments route: ``{"user", "duration", "segments": [...]}``.

    The upload may be as large as the request-body limit (not ``max_file_bytes``) and as long as
    ``LONG_MAX_SECONDS`` (checked from the header before decoding: 413 ``clip_too_long``)."""
    from fastapi import HTTPException

    from ..segments import LongAudio, SegmentConfig, iter_segments

    ctype = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if ctype not in limits.content_types:
        raise HTTPException(415, f"file {upload.filename!r} has content type {ctype!r}; expected audio")
    data = upload.file.read(limits.max_request_bytes + 1)
    if len(data) > limits.max_request_bytes:
        raise HTTPException(413, f"file {upload.filename!r} exceeds {limits.max_request_bytes} bytes")
    try:
        config = SegmentConfig(window_s=window_s, hop_s=hop_s, smoothing=smoothing, max_seconds=LONG_MAX_SECONDS)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    with LongAudio(data, max_seconds=LONG_MAX_SECONDS) as rec:   # header checks first: 413 before any decoding
        duration = rec.duration_s
    segs = list(iter_segments(personalizer, user, data, labels=labels, config=config, vad=vad))
    return {"user": user, "duration": round(duration, 4), "segments": [s.to_dict() for s in segs]}


def segment_models():
    """The pydantic response models of the segments route: ``(Segment, SegmentList)`` (built on
    first use, so importing this module needs no pydantic)."""
    global _MODELS
    if _MODELS is None:
        from pydantic import BaseModel, Field

        class SegmentOut(BaseModel):
            """One scored window of a long recording."""

            start: float = Field(description="seconds from the start of the recording")
            end: float = Field(description="seconds from the start of the recording")
            region: int = Field(description="index of the speech region (VAD) the segment belongs to")
            label: str = Field(description="the most probable emotion")
            probabilities: dict[str, float] = Field(description="emotion -> probability (they sum to 1)")
            confidence: float = Field(description="the top probability")
            uncertain: bool = Field(description="confidence below the service's uncertainty threshold")
            personalized: bool = Field(description="False: the user has no profile and got the global model")

        class SegmentList(BaseModel):
            """Per-segment emotions of a long recording for one user."""

            user: str
            duration: float = Field(description="the recording's duration in seconds")
            segments: list[SegmentOut]

        _MODELS = (SegmentOut, SegmentList)
    return _MODELS


_MODELS = None
