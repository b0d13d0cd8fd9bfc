"""The service's front door, as one ASGI middleware: authentication before the body is read,
per-tenant rate limits, and admission control for the routes that run the backbone.

FastAPI parses a multipart body before it resolves a route's dependencies, so an
authentication dependency alone would let anyone make the server read (and parse) 20 MiB before
the 401. ``Guard`` runs before any of that, on the request's headers only:

1. **Authentication** of every ``/v1`` request: a missing, malformed, unknown, revoked or expired
   key is answered 401 at once, without reading the body. The key record is left in
   ``scope["state"]["api_key"]`` for the route dependencies (``adapt.service.auth``).
2. **Rate limit** per tenant: a token bucket (``ServiceLimits.tenant_rate_per_s`` requests per
   second, bursts up to ``tenant_burst``); over it, 429 ``rate_limited`` with ``Retry-After``.
3. **Admission** of the audio routes (``POST`` of enroll / observe / predict / feedback /
   emotions / segments / tenant enroll): at most ``max_inflight`` of them are processed at once; one more is
   answered 503 ``overloaded`` with ``Retry-After`` straight away (measured well under 100 ms)
   instead of queueing without bound in the thread pool, so memory stays bounded by
   ``max_inflight`` decoded clips.

WebSocket handshakes (``/v1/users/{user_id}/stream``) get steps 1 and 2 too: a refused handshake
is answered with the same JSON error and status (the ASGI denial-response extension), and the
stream is never accepted. Streams have their own cap (``adapt.service.stream.StreamLimits``).

Everything here runs on the event loop; the key lookup is one indexed SELECT on the store.

Example:
    >>> b = TokenBucket(rate=2.0, burst=2)
    >>> [b.take(now=0.0) for _ in range(3)]
    [0.0, 0.0, 0.5]
"""
from __future__ import annotations

import math
import threading
import time
from typing import Optional

from ..errors import ProfileStoreError
from .errors import error_response, status_of

__all__ = ["Guard", "TokenBucket", "AUDIO_ROUTES", "presented_key"]

#: path suffixes of the POST routes that decode audio and run the backbone
AUDIO_ROUTES = ("/enroll", "/observe", "/predict", "/feedback", "/emotions", "/segments")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class TokenBucket:
    """A token bucket: ``take`` returns 0 when a request may pass, else the seconds to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.stamp = float(burst), None
        self._lock = threading.Lock()

    def take(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self.stamp is not None:
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


def presented_key(headers: dict[bytes, bytes]) -> Optional[str]:
    """The API key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, else ``None``."""
    auth = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, cred = auth.partition(" ")
    if scheme.lower() == "bearer" and cred.strip():
        return cred.strip()
    xkey = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return xkey or None


def _ws_denial(status: int, code: str, message: str, headers=None):
    """An ASGI app refusing a WebSocket handshake with the JSON error and ``status``, through the
    ASGI denial-response extension (uvicorn has it); without it, a close before accept (HTTP 403)."""
    import json

    async def deny(scope, receive, send):
        if "websocket.http.response" in (scope.get("extensions") or {}):
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            hdrs += [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (headers or {}).items()]
            await send({"type": "websocket.http.response.start", "status": status, "headers": hdrs})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    return deny


class Guard:
    """ASGI middleware: 401 / 429 / 503 from the headers alone (see the module docstring)."""

    def __init__(self, app, limits, store, routes=()) -> None:
        self.app, self.limits, self.store, self.routes = app, limits, store, routes
        self.inflight = 0
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, tenant: str) -> Optional[TokenBucket]:
        if self.limits.tenant_rate_per_s is None:
            return None
        b = self._buckets.get(tenant)
        if b is None:
            b = self._buckets[tenant] = TokenBucket(self.limits.tenant_rate_per_s, self.limits.tenant_burst)
        return b

    def _reject(self, scope, status: int, code: str, message: str, headers=None):
        """The JSON error answer; the route template is put in the scope first, so the metrics
        and logs of a request refused here name its route like any other."""
        from starlette.routing import Match

        for route in self.routes:
            if route.matches(scope)[0] == Match.FULL:
                scope["route"] = route
                break
        if scope["type"] == "websocket":
            return _ws_denial(status, code, message, headers)
        return error_response(status, code, message, headers=headers)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if not path.startswith("/v1/"):
            return await self.app(scope, receive, send)
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        key = presented_key(headers)
        if key is None:
            return await self._reject(scope, 401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>' "
                                        "or 'X-API-Key: <key>'", headers=_CHALLENGE)(scope, receive, send)
        try:
            rec = self.store.authenticate(key)
        except ProfileStoreError as exc:   # closed, busy or unreachable store: the table's 503
            return await self._reject(scope, *status_of(exc), str(exc))(scope, receive, send)
        if rec is None:
            return await self._reject(scope, 401, "unauthorized", "invalid, revoked or expired API key",
                                        headers=_CHALLENGE)(scope, receive, send)
        scope.setdefault("state", {})["api_key"] = rec
        bucket = self._bucket(rec.tenant)
        wait = 0.0 if bucket is None else bucket.take()
        if wait > 0:
            return await self._reject(scope, 429, "rate_limited", f"tenant {rec.tenant!r} exceeds "
                                        f"{self.limits.tenant_rate_per_s:g} requests/s",
                                        headers={"Retry-After": str(max(1, math.ceil(wait)))})(scope, receive, send)
        if scope.get("method") != "POST" or not path.endswith(AUDIO_ROUTES):
            return await self.app(scope, receive, send)
        if self.inflight >= self.limits.max_inflight:
            return await self._reject(scope, 503, "overloaded", f"the server is processing {self.inflight} audio requests, "
                                        f"its limit; retry shortly",
                                        headers={"Retry-After": "1"})(scope, receive, send)
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
