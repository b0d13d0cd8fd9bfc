"""Regression tests of the outside review's defects (issue "Privacy and hardening"), in process.

The defects that need a real socket (slow headers, idle connections, the connection cap,
protocol errors, the 401 before the body) are in ``test_server.py``; the store-file scans in
``tests/adapt/store/test_forget.py``; the decoded-size bound in ``tests/adapt/test_audio_bounds.py``.
"""
from __future__ import annotations

import copy
import glob
import io
import random
import string
import threading
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")

from adapt import errors as E  # noqa: E402
from adapt.personal import Personalizer  # noqa: E402
from tests.helpers.personal import small_model  # noqa: E402
from tests.helpers.service import H, audio_part, enroll  # noqa: E402


def _predict(client, key, user, data):
    return client.post(f"/v1/users/{user}/predict", files={"file": ("x.flac", data, "audio/flac")}, headers=H(key))


def _amplifier() -> bytes:
    """Defect 1: 165 kB of FLAC that claims 8 channels at 655 350 Hz for 29 s."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 655350, 8, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((655350, 8), np.int16)
        for _ in range(29):
            f.write(block)
    return buf.getvalue()


def test_1_decoded_size_amplification_is_refused_from_the_header(env):
    client, keys, _ = env
    data = _amplifier()
    assert len(data) < 200_000
    t = time.perf_counter()
    r = _predict(client, keys["a"], "x", data)
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_audio"
    assert "655350 Hz" in r.json()["error"]["message"]
    assert time.perf_counter() - t < 2.0          # refused from the header, not after decoding 1 GB


def test_2_forget_over_http_leaves_no_byte_of_the_user_in_the_store_files(env, clips, tmp_path):
    client, keys, p = env
    user = "user-7f3a9c-unique"
    for i in range(5):
        assert enroll(client, keys["a"], f"stays-{i}", clips).status_code == 200
    assert enroll(client, keys["a"], user, clips).status_code == 200
    files = lambda: sorted(glob.glob(str(tmp_path / "svc.db*")))   # noqa: E731
    assert any(user.encode() in open(f, "rb").read() for f in files())
    assert client.delete(f"/v1/users/{user}", headers=H(keys["a"])).status_code == 204
    assert [f for f in files() if user.encode() in open(f, "rb").read()] == []
    assert client.get("/v1/users/stays-0", headers=H(keys["a"])).status_code == 200


def test_4_metrics_stay_bounded_whatever_the_methods(env):
    client, _, _ = env
    client.get("/health")
    size = len(client.get("/metrics").text)
    rng = random.Random(0)
    for _ in range(20):
        method = "X" + "".join(rng.choice(string.ascii_uppercase) for _ in range(3000))
        client.request(method, "/health")
    text = client.get("/metrics").text
    assert len(text) < size + 1000, len(text)
    assert 'method="OTHER",route="/health",status="405"} 20' in text


@pytest.fixture()
def exported(env, clips):
    client, keys, _ = env
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    return client.get("/v1/users/alice/export", headers=H(keys["a"])).json()


def _tamper(exported, **state):
    out = copy.deepcopy(exported)
    out["state"].update(state)
    return out


def test_5_imports_that_would_break_predict_are_refused(env, clips, exported):
    client, keys, _ = env
    c = len(exported["state"]["labels"])
    cases = {
        "huge int count": _tamper(exported, counts=[10**400] * c),
        "count 1e308": _tamper(exported, counts=[1e308] * c),
        "count 0": _tamper(exported, counts=[0.0] + exported["state"]["counts"][1:]),
        "fractional count": _tamper(exported, counts=[1.5] + exported["state"]["counts"][1:]),
        "n 1e300": _tamper(exported, n=10**300),
        "sums 3e38": _tamper(exported, sums=(np.asarray(exported["state"]["sums"]) * 0 + 3e38).tolist()),
        "m2 huge": _tamper(exported, m2=[1e300] * len(exported["state"]["m2"])),
    }
    for name, body in cases.items():
        r = client.post("/v1/users/bob/import", json=body, headers=H(keys["a"]))
        assert r.status_code in (400, 422), (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json", name
        assert r.json()["error"]["code"] in ("invalid_state", "invalid_request"), (name, r.json())
        assert client.get("/v1/users/bob", headers=H(keys["a"])).status_code == 404, name   # nothing stored
    # the untampered export still imports, and its predictions are finite
    assert client.post("/v1/users/bob/import", json=exported, headers=H(keys["a"])).status_code == 200
    probs = _predict(client, keys["a"], "bob", clips["sad"][2]).json()["probabilities"]
    assert all(isinstance(v, float) and np.isfinite(v) for v in probs.values())


def test_5_enroll_embeddings_refuses_absurd_values(tmp_path):
    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path / "p.db")
    X = np.full((1, head.input_dim), 3e38, np.float32)
    with pytest.raises(E.EmbeddingShapeError, match="beyond"):
        p.enroll_embeddings("u", X, [head.classes[0]])
    assert not p.has_user("u")


def test_7_imported_label_names_and_emotion_counts_are_checked(env, exported):
    client, keys, p = env
    evil = "\x1b[31m" + "A" * 10_000
    body = _tamper(exported, labels=[evil] + exported["state"]["labels"][1:])
    r = client.post("/v1/users/bob/import", json=body, headers=H(keys["a"]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_state"
    assert len(r.json()["error"]["message"]) < 400          # the label is not echoed back whole
    dim = exported["state"]["dim"]
    names = [f"mood{i}" for i in range(500)]
    many = _tamper(exported, labels=exported["state"]["labels"] + names, custom=names,
                   counts=exported["state"]["counts"] + [1.0] * 500,
                   sums=exported["state"]["sums"] + [[0.0] * dim] * 500,
                   n=exported["state"]["n"] + 500)
    r = client.post("/v1/users/bob/import", json=many, headers=H(keys["a"]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "too_many_emotions"
    assert client.get("/v1/users/bob", headers=H(keys["a"])).status_code == 404


def test_10_invalid_utf8_in_a_path_is_an_invalid_id_not_a_shared_user(env, clips):
    client, keys, _ = env
    for raw in ("%FF", "%FE", "a%C3"):
        r = enroll(client, keys["a"], raw, clips)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_id", (raw, r.text)
    with pytest.raises(E.InvalidIdError):
        Personalizer(*small_model(), ":memory:").enroll_embeddings("\ufffd", np.zeros((1, 128)), ["sad"])


def test_11_every_valid_id_can_be_reached_and_forgotten_over_http(env, clips):
    from urllib.parse import quote

    client, keys, p = env
    with pytest.raises(E.InvalidIdError):
        p.for_tenant("tenant-a").enroll_embeddings("../x", np.zeros((1, 128)), ["sad"])
    odd = ["a b", "é?#%&+=;:,@!$'()*[]~", "x.y", "...", "\u4e2d\u6587"]
    for user in odd:
        p.for_tenant("tenant-a").enroll_embeddings(user, np.ones((1, 128)), ["sad"])
        path = "/v1/users/" + quote(user, safe="")
        assert client.get(path, headers=H(keys["a"])).json()["user"] == user, user
        assert client.delete(path, headers=H(keys["a"])).status_code == 204, user
        assert not p.for_tenant("tenant-a").has_user(user)


def test_12_status_codes_are_the_documented_ones(env, clips):
    client, keys, _ = env
    for bad in ("x" * 129, "%20x", "x%20", "%09"):
        r = client.get(f"/v1/users/{bad}", headers=H(keys["a"]))
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_id", (bad, r.status_code)
    files = [audio_part(f"{i}.flac", clips["sad"][0][:100]) for i in range(9)]   # env allows 8 files
    r = client.post("/v1/users/u/enroll", files=files, data={"labels": ["sad"]}, headers=H(keys["a"]))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    files = [audio_part(f"{i}.flac", b"x") for i in range(1001)]
    r = client.post("/v1/users/u/enroll", files=files, data={"labels": ["sad"]}, headers=H(keys["a"]))
    assert r.status_code == 413, r.text


def test_uploads_stay_in_memory(tmp_path, clips, monkeypatch):
    """Defect 6 (the disk half): a multipart upload above Starlette's 1 MiB spool size is never
    rolled over to a temp file."""
    from fastapi.testclient import TestClient
    from starlette import formparsers

    from adapt.service import ServiceLimits, create_app

    rolled = []

    class Spy(formparsers.SpooledTemporaryFile):
        def rollover(self):
            rolled.append(True)
            super().rollover()

    monkeypatch.setattr(formparsers, "SpooledTemporaryFile", Spy)
    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path / "p.db")
    key = p.store.create_key("t")
    client = TestClient(create_app(p, limits=ServiceLimits(max_request_bytes=4_000_000, max_file_bytes=3_000_000)))
    rng = np.random.default_rng(0)
    noise = (rng.normal(0, 0.1, (16000 * 20, 2))).astype(np.float32)    # 20 s stereo: 1.28 MB
    buf = io.BytesIO()
    sf.write(buf, noise, 16000, format="WAV", subtype="PCM_16")
    big = buf.getvalue()
    assert len(big) > 1_100_000
    r = client.post("/v1/users/u/predict", files={"file": ("big.wav", big, "audio/wav")}, headers=H(key))
    assert r.status_code == 200, r.text
    assert rolled == []


def test_saturation_answers_503_with_retry_after_at_once(tmp_path, clips):
    from fastapi.testclient import TestClient

    from adapt.service import ServiceLimits, create_app

    emb, head = small_model()
    gate, entered = threading.Event(), threading.Event()

    def slow(waves):
        entered.set()
        gate.wait(10)
        return emb(waves)

    p = Personalizer(slow, head, tmp_path / "p.db")
    key = p.store.create_key("t")
    client = TestClient(create_app(p, limits=ServiceLimits(max_inflight=1)))
    first = {}
    t = threading.Thread(target=lambda: first.setdefault("r", _predict(client, key, "u", clips["sad"][0])))
    t.start()
    assert entered.wait(10)
    t0 = time.perf_counter()
    r = _predict(client, key, "u", clips["sad"][1])
    elapsed = time.perf_counter() - t0
    assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"] == "1"
    assert client.get("/v1/users", headers=H(key)).status_code == 200     # reads without audio still pass
    gate.set()
    t.join(10)
    assert first["r"].status_code == 200
    assert _predict(client, key, "u", clips["sad"][1]).status_code == 200     # capacity is back
    assert elapsed < 1.0, elapsed


def test_per_tenant_rate_limit_is_429_with_retry_after(tmp_path):
    from fastapi.testclient import TestClient

    from adapt.service import ServiceLimits, create_app

    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path / "p.db")
    ka, kb = p.store.create_key("a"), p.store.create_key("b")
    client = TestClient(create_app(p, limits=ServiceLimits(tenant_rate_per_s=0.5, tenant_burst=3)))
    codes = [client.get("/v1/users", headers=H(ka)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = client.get("/v1/users", headers=H(ka))
    assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    assert client.get("/v1/users", headers=H(kb)).status_code == 200        # another tenant is unaffected


def test_expired_and_rotated_keys(tmp_path):
    from fastapi.testclient import TestClient

    from adapt.service import create_app

    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path / "p.db")
    short = p.store.create_key("t", expires_in_s=0.3)
    old = p.store.create_key("t", read_only=True)
    client = TestClient(create_app(p))
    assert client.get("/v1/users", headers=H(short)).status_code == 200
    new = p.store.rotate_key(old.split("_")[1], grace_s=0.5)
    assert p.store.authenticate(new).read_only is True and p.store.authenticate(new).tenant == "t"
    assert client.get("/v1/users", headers=H(old)).status_code == 200      # grace period
    time.sleep(0.6)
    for k in (short, old):
        r = client.get("/v1/users", headers=H(k))
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/users", headers=H(new)).status_code == 200
    with pytest.raises(ValueError, match="expired"):
        p.store.rotate_key(old.split("_")[1])
