"""The WebSocket stream ``/v1/users/{user_id}/stream`` with a real ``websockets`` client against a
real uvicorn (``adapt.service.server``'s protocol) on 127.0.0.1: authentication, tenant rules,
sequence numbers and timestamps, backpressure (a slow encoder, a client that does not read),
disconnects, bad input.
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from tests.helpers.personal import small_model  # noqa: E402

SR = 16000


class SlowEmbedder:
    """The small test embedder, ``delay`` seconds slower per call: an encoder that falls behind."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def __call__(self, waves):
        time.sleep(self.delay)
        return self.inner(waves)


def _serve(app):
    import uvicorn

    from adapt.service.server import ServerOptions, protocol_class

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = ServerOptions(header_timeout_s=5.0)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol_class(opts),
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    return port, srv, thread


@pytest.fixture(scope="module")
def speech(ravdess):
    """12 s of real speech: RAVDESS clips of a speaker the test head never saw, 16 kHz float32."""
    from adapt.audio import load_audio

    recs = list(ravdess.filter(speakers=["ravdess_12"]))[:4]
    return np.concatenate([load_audio(r.path).samples for r in recs])


@pytest.fixture(scope="module")
def servers(tmp_path_factory, ravdess):
    """Two servers over one store: ``fast`` (the small model) and ``slow`` (0.25 s per window)."""
    from adapt.personal import Personalizer
    from adapt.service import create_app
    from adapt.service.stream import StreamLimits

    emb, head = small_model()
    db = tmp_path_factory.mktemp("stream") / "p.db"
    p = Personalizer(emb, head, db)
    keys = {"a": p.store.create_key("tenant-a"), "b": p.store.create_key("tenant-b")}
    recs = list(ravdess.filter(speakers=["ravdess_12"]))
    pick = [r for r in recs if r.emotion in ("angry", "sad")][:4]
    p.for_tenant("tenant-a").enroll("alice", [r.path for r in pick], [r.emotion for r in pick])
    limits = StreamLimits(queue=2, outbox=4, max_streams=3, idle_timeout_s=5.0)
    fast_app = create_app(p, stream_limits=limits)
    slow_app = create_app(Personalizer(SlowEmbedder(emb, 0.25), head, p.store), stream_limits=limits)
    out = {}
    for name, app in (("fast", fast_app), ("slow", slow_app)):
        port, srv, thread = _serve(app)
        out[name] = (f"ws://127.0.0.1:{port}", app, srv, thread)
    yield out, keys
    for _, _, srv, thread in out.values():
        srv.should_exit = True
    for _, _, srv, thread in out.values():
        thread.join(10)


def _pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def _open(url, user, key, **kw):
    return connect(f"{url}/v1/users/{user}/stream", additional_headers={"X-API-Key": key}, open_timeout=10, **kw)


def _drain(ws) -> list[dict]:
    """Every message until the server closes (whatever the close code)."""
    out = []
    try:
        while True:
            out.append(json.loads(ws.recv(timeout=10)))
    except ConnectionClosed:
        return out


def _run(ws, audio: np.ndarray, config=None, chunk_s: float = 0.1):
    """Send ``config``, then ``audio`` in chunks as fast as possible, then ``end``; all messages back."""
    ws.send(json.dumps({"type": "config", **(config or {})}))
    ready = json.loads(ws.recv(timeout=10))
    n = int(chunk_s * SR)
    for i in range(0, len(audio), n):
        ws.send(_pcm(audio[i:i + n]))
    ws.send(json.dumps({"type": "end"}))
    msgs = [json.loads(m) for m in ws]
    return ready, msgs


def test_missing_or_unknown_key_is_refused_at_the_handshake(servers):
    out, keys = servers
    url = out["fast"][0]
    for headers in ({}, {"X-API-Key": "sk-not-a-key"}):
        with pytest.raises(InvalidStatus) as err:
            with connect(f"{url}/v1/users/alice/stream", additional_headers=headers, open_timeout=10):
                pass
        assert err.value.response.status_code == 401
        assert json.loads(err.value.response.body)["error"]["code"] == "unauthorized"


def test_predictions_arrive_in_order_with_timestamps(servers, speech):
    out, keys = servers
    audio = speech[:int(6.5 * SR)]
    with _open(out["fast"][0], "bob", keys["a"]) as ws:
        ready, msgs = _run(ws, audio, {"window_s": 2.0, "hop_s": 1.0, "overflow": "block"})
    assert ready["type"] == "ready" and ready["sample_rate"] == SR and ready["format"] == "int16"
    preds, end = [m for m in msgs if m["type"] == "prediction"], msgs[-1]
    assert end["type"] == "end" and end["dropped"] == 0 and abs(end["seconds"] - 6.5) < 1e-3
    assert [m["seq"] for m in preds] == list(range(1, 8))           # 6 full hops + the last 0.5 s
    assert [m["end"] for m in preds] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 6.5]
    assert [m["start"] for m in preds][:3] == [0.0, 0.0, 1.0]        # windows of up to 2 s
    for m in preds:
        assert abs(sum(m["probabilities"].values()) - 1) < 1e-4 and m["label"] in m["probabilities"]
        assert m["confidence"] == max(m["probabilities"].values()) and m["personalized"] is False


def test_float32_audio_and_a_label_set(servers, speech):
    out, keys = servers
    with _open(out["fast"][0], "bob", keys["a"]) as ws:
        ws.send(json.dumps({"type": "config", "format": "float32", "labels": ["angry", "sad"], "overflow": "block"}))
        assert json.loads(ws.recv(timeout=10))["labels"] == ["angry", "sad"]
        ws.send(speech[:3 * SR].astype("<f4").tobytes())
        ws.send(json.dumps({"type": "end"}))
        preds = [json.loads(m) for m in ws][:-1]
    assert len(preds) == 3 and all(set(m["probabilities"]) == {"angry", "sad"} for m in preds)


def test_a_stream_sees_only_its_tenant(servers, speech):
    out, keys = servers
    seen = {}
    for tenant in ("a", "b"):
        with _open(out["fast"][0], "alice", keys[tenant]) as ws:
            _, msgs = _run(ws, speech[:2 * SR], {"overflow": "block"})
        seen[tenant] = {m["personalized"] for m in msgs if m["type"] == "prediction"}
    assert seen == {"a": {True}, "b": {False}}   # tenant b's "alice" is a user it has never seen


def test_a_slow_encoder_drops_the_oldest_windows_and_memory_stays_bounded(servers, speech):
    out, keys = servers
    url, app = out["slow"][0], out["slow"][1]
    with _open(url, "bob", keys["a"]) as ws:
        _, msgs = _run(ws, speech[:10 * SR], {"window_s": 1.0, "hop_s": 0.5})   # 20 windows in ~0.1 s
    preds, end = [m for m in msgs if m["type"] == "prediction"], msgs[-1]
    seqs = [m["seq"] for m in preds]
    assert end["windows"] == 20 and end["dropped"] > 0
    assert len(preds) + end["dropped"] == 20
    assert seqs == sorted(set(seqs)) and seqs[-1] == 20          # increasing, with gaps where windows were dropped
    assert len(seqs) < 20 and preds[-1]["dropped"] == end["dropped"]
    stats = app.state.stream_stats
    assert stats.max_queued <= 2 and stats.max_outbox <= 4        # StreamLimits(queue=2, outbox=4)


def test_block_mode_drops_nothing_from_a_slow_encoder(servers, speech):
    out, keys = servers
    t0 = time.perf_counter()
    with _open(out["slow"][0], "bob", keys["a"]) as ws:
        _, msgs = _run(ws, speech[:4 * SR], {"window_s": 1.0, "hop_s": 0.5, "overflow": "block"})
    preds = [m for m in msgs if m["type"] == "prediction"]
    assert [m["seq"] for m in preds] == list(range(1, 9)) and msgs[-1]["dropped"] == 0
    assert time.perf_counter() - t0 >= 8 * 0.25 * 0.9                # the sender was slowed to the encoder's pace


def test_a_client_that_does_not_read_does_not_grow_the_server(servers, speech):
    out, keys = servers
    url, app = out["fast"][0], out["fast"][1]
    with _open(url, "bob", keys["a"], max_queue=1) as ws:
        ws.send(json.dumps({"type": "config", "window_s": 1.0, "hop_s": 0.25}))
        ws.recv(timeout=10)
        for i in range(0, 12 * SR, SR // 10):                     # 48 windows, nothing read meanwhile
            ws.send(_pcm(speech[i:i + SR // 10]))
        time.sleep(1.0)
        ws.send(json.dumps({"type": "end"}))
        msgs = [json.loads(m) for m in ws]
    preds = [m for m in msgs if m["type"] == "prediction"]
    assert msgs[-1]["type"] == "end" and len(preds) + msgs[-1]["dropped"] == msgs[-1]["windows"] == 48
    assert [m["seq"] for m in preds] == sorted({m["seq"] for m in preds})
    assert app.state.stream_stats.max_outbox <= 4


def test_a_disconnect_mid_stream_frees_the_stream(servers, speech):
    out, keys = servers
    url, app = out["slow"][0], out["slow"][1]
    started = app.state.stream_stats.started
    for _ in range(4):                                            # more than max_streams=3, one after another
        with _open(url, "bob", keys["a"]) as ws:
            ws.send(_pcm(speech[:3 * SR]))
            ws.recv(timeout=10)                                   # "ready"; then gone while windows are queued
    deadline = time.time() + 10
    while app.state.stream_stats.active and time.time() < deadline:
        time.sleep(0.05)
    assert app.state.stream_stats.active == 0 and app.state.stream_stats.started == started + 4
    with _open(url, "bob", keys["a"]) as ws:                      # the server still streams
        _, msgs = _run(ws, speech[:SR], {"overflow": "block"})
    assert [m["type"] for m in msgs] == ["prediction", "end"]


def test_too_many_streams_and_bad_input_get_an_error_then_a_close(servers, speech):
    out, keys = servers
    url = out["fast"][0]
    cases = [({"type": "config", "format": "pcm24"}, "bad_config", 1008),
             ({"type": "config", "window_s": 1.0, "hop_s": 2.0}, "bad_config", 1008),
             ({"type": "config", "labels": ["grumpy"]}, "unknown_label", 1008),
             ({"type": "dance"}, "bad_message", 1008)]
    for first, code, close in cases:
        with _open(url, "bob", keys["a"]) as ws:
            ws.send(json.dumps(first))
            msgs = _drain(ws)
            assert msgs[-1]["type"] == "error" and msgs[-1]["code"] == code, msgs
            assert ws.close_code == close
    with _open(url, "x" * 200, keys["a"]) as ws:                  # over MAX_USER_ID
        assert json.loads(ws.recv(timeout=10))["code"] == "invalid_id"
    with _open(url, "bob", keys["a"]) as ws:
        ws.send(json.dumps({"type": "config"}))
        ws.recv(timeout=10)
        with pytest.raises(ConnectionClosed):
            ws.send(b"\0" * (300 * 1024))                       # over max_message_bytes (256 KiB)
            for _ in range(20):
                json.loads(ws.recv(timeout=10))
        assert ws.close_code == 1009
    with contextlib.ExitStack() as stack:
        for _ in range(3):                                        # max_streams=3 held open
            ws = stack.enter_context(_open(url, "bob", keys["a"]))
            ws.send(json.dumps({"type": "config"}))
            ws.recv(timeout=10)
        with _open(url, "bob", keys["a"]) as ws:
            msgs = _drain(ws)
            assert msgs[-1]["code"] == "overloaded" and ws.close_code == 1013


# -- POST /v1/users/{user_id}/segments: a long upload --------------------------------------
def test_segments_route_answers_per_segment_emotions(env, speech):
    from tests.helpers.service import H, flac

    client, keys, _ = env
    rec = np.concatenate([speech[:6 * SR], np.zeros(SR, np.float32), speech[6 * SR:10 * SR]])
    r = client.post("/v1/users/bob/segments", files={"file": ("rec.flac", flac(rec), "audio/flac")},
                    data={"window_s": "2.0", "hop_s": "1.0", "labels": ["angry", "sad"]}, headers=H(keys["a"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == "bob" and body["duration"] == pytest.approx(11.0)
    segs = body["segments"]
    assert len(segs) >= 3 and [s["start"] for s in segs] == sorted(s["start"] for s in segs)
    assert all(set(s["probabilities"]) == {"angry", "sad"} and s["end"] - s["start"] <= 2.0 + 1e-6 for s in segs)
    assert not any(6.2 < (s["start"] + s["end"]) / 2 < 6.8 for s in segs)      # nothing centred in the silence
    spec = client.get("/openapi.json").json()
    assert "/v1/users/{user_id}/segments" in spec["paths"]


def test_segments_route_refuses_oversized_and_bad_uploads(env):
    from tests.helpers.service import H, flac

    client, keys, _ = env
    long = flac(np.zeros(601 * SR, np.float32))                 # 601 s: over LONG_MAX_SECONDS, tiny as FLAC
    r = client.post("/v1/users/bob/segments", files={"file": ("l.flac", long, "audio/flac")}, headers=H(keys["a"]))
    assert r.status_code == 413 and r.json()["error"]["code"] == "clip_too_long", r.text
    assert "600" in r.json()["error"]["message"]
    r = client.post("/v1/users/bob/segments", files={"file": ("x.flac", b"no audio" * 100, "audio/flac")},
                    headers=H(keys["a"]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_audio"
    r = client.post("/v1/users/bob/segments", files={"file": ("x.flac", flac(np.zeros(SR, np.float32)), "audio/flac")},
                    data={"window_s": "1.0", "hop_s": "2.0"}, headers=H(keys["a"]))
    assert r.status_code == 422
    for bad in ({"hop_s": "0.01"}, {"window_s": "0.1", "hop_s": "0.25"}):   # amplification: thousands of windows
        r = client.post("/v1/users/bob/segments", files={"file": ("x.flac", flac(np.zeros(SR, np.float32)), "audio/flac")},
                        data=bad, headers=H(keys["a"]))
        assert r.status_code == 422, (bad, r.text)
    r = client.post("/v1/users/bob/segments", files={"file": ("x.flac", b"x", "audio/flac")})
    assert r.status_code == 401
