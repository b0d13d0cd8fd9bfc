"""Request limits of the HTTP service: ``ServiceLimits``, the body-size middleware, the accepted
content types and reading uploads within the limits.

Bytes are checked before anything is decoded (the request body by ``BodyLimit``, each file by
``read_audio``); clip durations are checked after decoding, by the Personalizer
(``TooLongAudioError``, 413 ``clip_too_long``). Importing this module does not import FastAPI.

Example:
    >>> ServiceLimits(max_files=4).max_files
    4
    >>> ServiceLimits(max_files=0)
    Traceback (most recent call last):
    ...
    ValueError: max_files must be a positive integer, got 0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .errors import error_response

__all__ = ["AUDIO_CONTENT_TYPES", "ServiceLimits", "BodyLimit", "read_audio", "read_audio_files"]

AUDIO_CONTENT_TYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac", "audio/mpeg",
    "audio/mp3", "audio/ogg", "audio/webm", "application/octet-stream",
)


@dataclass(frozen=True)
class ServiceLimits:
    """Request limits: the whole body, each audio file, files per request, accepted content types,
    concurrent audio requests, and the per-tenant request rate."""

    max_request_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    max_files: int = 64
    content_types: tuple[str, ...] = AUDIO_CONTENT_TYPES
    #: audio requests processed at once; one more gets 503 ``overloaded`` (``adapt.service.guard``).
    #: 4 = two per core on the 2-core reference machine: with 8, the fault suite measured a peak
    #: RSS of 2.08 GB (8 worst-case 30 s uploads) and 503s slowed to ~0.8 s by GIL contention.
    max_inflight: int = 4
    #: per-tenant request rate (token bucket; ``None``: unlimited) and burst; over it: 429
    tenant_rate_per_s: Optional[float] = 50.0
    tenant_burst: int = 100

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_file_bytes", "max_files", "max_inflight", "tenant_burst"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        r = self.tenant_rate_per_s
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0):
            raise ValueError(f"tenant_rate_per_s must be a positive number or None, got {r!r}")


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (by header, or while streaming)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from fastapi import HTTPException

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                return await error_response(413, "request_too_large", f"request body of {int(length)} bytes "
                                            f"exceeds {self.max_bytes} bytes")(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # chunked upload without a Content-Length
                    raise HTTPException(413, f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def read_audio(upload: Any, limits: ServiceLimits) -> bytes:
    """The bytes of one uploaded file: 415 unless its content type is audio, 413 over ``max_file_bytes``."""
    from fastapi import HTTPException

    ctype = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if ctype not in limits.content_types:
        raise HTTPException(415, f"file {upload.filename!r} has content type {ctype!r}; expected audio "
                                 f"({', '.join(limits.content_types)})")
    data = upload.file.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise HTTPException(413, f"file {upload.filename!r} exceeds {limits.max_file_bytes} bytes")
    return data


def read_audio_files(files: Sequence[Any], limits: ServiceLimits) -> list[bytes]:
    """``read_audio`` for each file; 413 for more than ``max_files`` files."""
    from fastapi import HTTPException

    if len(files) > limits.max_files:
        raise HTTPException(413, f"{len(files)} files exceed the limit of {limits.max_files} per request")
    return [read_audio(f, limits) for f in files]
