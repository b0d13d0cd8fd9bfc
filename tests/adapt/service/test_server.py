"""The service over a real socket: uvicorn with ``adapt.service.server``'s protocol, on 127.0.0.1.

Regression tests of the review's defects 3 (slow headers, idle connections, no connection cap),
6 (the body of an unauthenticated upload read before the 401) and 12 (plain-text protocol errors).
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("uvicorn")

from tests.helpers.personal import small_model  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from adapt.personal import Personalizer
    from adapt.service import create_app
    from adapt.service.server import ServerOptions, protocol_class

    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path_factory.mktemp("srv") / "p.db")
    key = p.store.create_key("t")
    opts = ServerOptions(header_timeout_s=1.0, keep_alive_s=1.0, max_connections=6)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(p), host="127.0.0.1", port=port, http=protocol_class(opts),
                            timeout_keep_alive=opts.keep_alive_s, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield port, key
    srv.should_exit = True
    thread.join(10)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def _read_all(s: socket.socket, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    return out


def _status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert b"application/json" in head.lower(), head
    return status, json.loads(body)


def test_slow_headers_get_408_and_are_closed(server):
    port, _ = server
    s = _connect(port)
    t0 = time.time()
    s.sendall(b"GET /health HTTP/1.1\r\n")
    for _ in range(4):                      # one header byte every 0.5 s never completes in 1 s
        time.sleep(0.5)
        try:
            s.sendall(b"X")
        except OSError:
            break
    raw = _read_all(s)
    assert time.time() - t0 < 4.0
    status, body = _status_and_json(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    s.close()


def test_idle_connections_are_closed(server):
    port, _ = server
    s = _connect(port)
    t0 = time.time()
    assert _read_all(s).startswith(b"HTTP/1.1 408")   # nothing sent: closed after the header timeout
    assert time.time() - t0 < 3.0
    s.close()
    s = _connect(port)                                  # keep-alive: idle after a response
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.time()
    raw = _read_all(s)
    assert raw.startswith(b"HTTP/1.1 200") and time.time() - t0 < 3.0
    s.close()


def test_connection_cap_answers_503_json_and_real_requests_recover(server):
    port, _ = server
    hogs = [_connect(port) for _ in range(6)]
    time.sleep(0.2)
    extra = _connect(port)
    status, body = _status_and_json(_read_all(extra, 3))
    assert status == 503 and body["error"]["code"] == "overloaded"
    extra.close()
    for h in hogs:
        h.close()
    time.sleep(0.3)
    s = _connect(port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _read_all(s).startswith(b"HTTP/1.1 200")
    s.close()


def test_protocol_errors_are_json(server):
    port, _ = server
    s = _connect(port)
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    status, body = _status_and_json(_read_all(s))
    assert status == 400 and body["error"]["code"] == "bad_request"
    s.close()


def test_unauthenticated_upload_is_refused_before_its_body_is_sent(server):
    port, key = server
    s = _connect(port)
    s.sendall(b"POST /v1/users/u/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Content-Length: 1800000\r\n\r\n")          # headers only: the body never comes
    t0 = time.time()
    s.settimeout(3)
    raw = s.recv(65536)
    assert time.time() - t0 < 1.0
    status, body = _status_and_json(raw)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    s.close()
