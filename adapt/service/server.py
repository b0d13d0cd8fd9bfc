"""Running the service: uvicorn with a hardened HTTP/1.1 protocol and safe defaults.

uvicorn closes idle keep-alive connections, but it has no limit on how long a client may take to
send a request's headers, so connections that send one header byte every second stay open for
ever and use up the server's file descriptors (a slow-loris attack); its over-capacity and
protocol-error answers are plain text. ``GuardedH11Protocol`` (a subclass of uvicorn's own h11
protocol, so parsing, keep-alive and flow control stay uvicorn's) adds:

* a **header timeout**: a connection that has not sent a complete request head within
  ``header_timeout_s`` of opening (or of its previous response) is answered 408 and closed;
  this also bounds connections that never send anything;
* a **connection cap**: beyond ``max_connections`` open connections a new one is answered 503
  at once and closed, so a flood cannot exhaust file descriptors or the accept loop;
* **JSON** for the protocol's own errors (malformed requests: 400), in the service's error
  shape ``{"error": {"code", "message"}}``.

``run`` starts uvicorn with it; ``ser-adapt serve`` calls ``run``.

Example:
    >>> opts = ServerOptions(header_timeout_s=5)
    >>> opts.keep_alive_s, opts.max_connections
    (5.0, 256)
"""
from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["ServerOptions", "protocol_class", "run"]


@dataclass(frozen=True)
class ServerOptions:
    """Connection limits of ``ser-adapt serve``."""

    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 256

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "keep_alive_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, got {self.max_connections!r}")
        object.__setattr__(self, "header_timeout_s", float(self.header_timeout_s))
        object.__setattr__(self, "keep_alive_s", float(self.keep_alive_s))


def _json_error(status: int, reason: bytes, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, reason, len(body)) + body)


def protocol_class(options: ServerOptions):
    """A ``GuardedH11Protocol`` subclass bound to ``options`` (uvicorn instantiates the class)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with a header timeout, a connection cap and JSON errors."""

        opts = options

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = None
            if len(self.connections) > self.opts.max_connections:
                self.logger.warning("connection cap of %d reached: answering 503", self.opts.max_connections)
                transport.write(_json_error(503, b"Service Unavailable", "overloaded",
                                            f"the server holds {self.opts.max_connections} connections, its limit"))
                transport.close()
                return
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            if getattr(self, "_head_timer", None) is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(self.opts.header_timeout_s, self._head_timeout)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.IDLE:   # no complete request head yet
                self.transport.write(_json_error(408, b"Request Timeout", "request_timeout",
                                                 f"no complete request head within {self.opts.header_timeout_s:g} s"))
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()       # the next request on this connection gets the same time

        def connection_lost(self, exc) -> None:
            if getattr(self, "_head_timer", None) is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_json_error(400, b"Bad Request", "bad_request", msg))
            self.transport.close()

    return GuardedH11Protocol


#: largest WebSocket message uvicorn reads: its default (16 MiB) is read into memory before the stream
#: route's own per-message limit (256 KiB, ``adapt.service.stream.StreamLimits``) can refuse it
WS_MAX_SIZE = 1 << 20


def run(app, *, host: str = "127.0.0.1", port: int = 8000, options: ServerOptions | None = None,
        log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn and ``GuardedH11Protocol`` (see the module docstring)."""
    import uvicorn

    options = options or ServerOptions()
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol_class(options),
                timeout_keep_alive=options.keep_alive_s, ws_max_size=WS_MAX_SIZE)
