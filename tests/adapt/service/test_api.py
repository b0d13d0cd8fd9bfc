"""HTTP service through FastAPI's TestClient: auth, tenant isolation, limits, error codes."""
from __future__ import annotations

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")

from tests.helpers.service import H, enroll, flac  # noqa: E402


def test_health_metrics_and_openapi_need_no_key(env):
    client, _, p = env
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["emotions"] == list(p.head.classes)
    spec = client.get("/openapi.json").json()
    assert "/v1/users/{user_id}/enroll" in spec["paths"] and "/v1/users/{user_id}/predict" in spec["paths"]
    client.get("/v1/users")
    text = client.get("/metrics").text
    assert 'ser_adapt_requests_total{method="GET",route="/v1/users",status="401"} 1' in text


def test_enroll_predict_feedback_emotion_delete_flow(env, clips):
    client, keys, _ = env
    r = enroll(client, keys["a"], "alice", clips)
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {"angry": 2, "sad": 2, "happy": 2}
    r = client.post("/v1/users/alice/predict", files={"file": ("x.flac", clips["sad"][2], "audio/flac")}, headers=H(keys["a"]))
    body = r.json()
    assert r.status_code == 200 and body["personalized"] is True and body["label"] in body["probabilities"]
    assert isinstance(body["uncertain"], bool) and 0 < body["confidence"] <= 1
    r = client.post("/v1/users/alice/feedback", files={"file": ("x.flac", clips["sad"][2], "audio/flac")},
                    data={"label": "sad"}, headers=H(keys["a"]))
    assert r.status_code == 200 and r.json()["counts"]["sad"] == 3
    r = client.post("/v1/users/alice/emotions", data={"name": "sarcastic"}, headers=H(keys["a"]),
                    files=[("files", ("a.flac", clips["happy"][2], "audio/flac")), ("files", ("b.flac", clips["angry"][2], "audio/flac"))])
    assert r.status_code == 200 and r.json()["custom_emotions"] == ["sarcastic"]
    r = client.post("/v1/users/alice/emotions", data={"name": "sarcastic"}, headers=H(keys["a"]),
                    files=[("files", ("a.flac", clips["happy"][2], "audio/flac")), ("files", ("b.flac", clips["angry"][2], "audio/flac"))])
    assert r.status_code == 409 and r.json()["error"]["code"] == "emotion_exists"
    assert client.get("/v1/users", headers=H(keys["a"])).json()["users"] == ["alice"]
    assert client.get("/v1/users/alice/export", headers=H(keys["a"])).json()["state"]["labels"]
    assert client.delete("/v1/users/alice", headers=H(keys["a"])).status_code == 204
    assert client.get("/v1/users/alice", headers=H(keys["a"])).status_code == 404
    r = client.post("/v1/users/alice/predict", files={"file": ("x.flac", clips["sad"][2], "audio/flac")}, headers=H(keys["a"]))
    assert r.status_code == 200 and r.json()["personalized"] is False


def test_auth_401_and_read_only_403(env, clips):
    client, keys, _ = env
    assert client.get("/v1/users").status_code == 401
    r = client.get("/v1/users", headers=H("sa_000000000000_" + "x" * 43))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/users", headers={"X-API-Key": keys["a"]}).status_code == 200
    assert client.get("/v1/users", headers=H(keys["ro"])).status_code == 200
    assert enroll(client, keys["ro"], "alice", clips).status_code == 403
    assert client.delete("/v1/users/alice", headers=H(keys["ro"])).status_code == 403


def test_tenant_isolation_is_indistinguishable_from_absence(env, clips):
    client, keys, p = env
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    ka, kb = H(keys["a"]), H(keys["b"])
    # B cannot list, read, export, change or delete A's user; every answer equals "no such user"
    assert client.get("/v1/users", headers=kb).json()["users"] == []
    for path in ("/v1/users/alice", "/v1/users/alice/export"):
        theirs, nobody = client.get(path, headers=kb), client.get(path.replace("alice", "zed"), headers=kb)
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.json()["error"]["code"] == nobody.json()["error"]["code"] == "unknown_user"
    fb = {"file": ("x.flac", clips["sad"][2], "audio/flac")}
    assert client.post("/v1/users/alice/feedback", files=fb, data={"label": "sad"}, headers=kb).status_code == 404
    assert client.delete("/v1/users/alice", headers=kb).status_code == 404
    pb = client.post("/v1/users/alice/predict", files=fb, headers=kb).json()
    assert pb["personalized"] is False  # B's "alice" is a different, unenrolled user
    assert client.get("/v1/users/alice", headers=ka).json()["counts"] == {"angry": 2, "sad": 2, "happy": 2}
    assert p.for_tenant("tenant-b").users() == []


def test_limits_413_415_and_bad_audio_422(env, clips):
    client, keys, _ = env
    ka = H(keys["a"])
    big = flac(np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 40).astype(np.float32))  # > 500 kB file
    r = client.post("/v1/users/u/predict", files={"file": ("big.flac", big, "audio/flac")}, headers=ka)
    assert r.status_code == 413, r.text
    r = client.post("/v1/users/u/predict", files={"file": ("huge.bin", b"\0" * 2_100_000, "audio/wav")}, headers=ka)
    assert r.status_code == 413 and r.json()["error"]["code"] in ("request_too_large", "too_large")
    long_clip = flac(np.zeros(16000 * 31, np.float32) + 0.01)  # small file (constant), but 31 s > 30 s
    r = client.post("/v1/users/u/predict", files={"file": ("long.flac", long_clip, "audio/flac")}, headers=ka)
    assert r.status_code == 413 and r.json()["error"]["code"] == "clip_too_long"
    r = client.post("/v1/users/u/predict", files={"file": ("x.txt", b"hello", "text/plain")}, headers=ka)
    assert r.status_code == 415
    r = client.post("/v1/users/u/predict", files={"file": ("x.wav", b"RIFF garbage", "audio/wav")}, headers=ka)
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_audio"
    files = [("files", (f"{i}.flac", clips["sad"][0], "audio/flac")) for i in range(9)]
    r = client.post("/v1/users/u/enroll", files=files, data={"labels": ["sad"]}, headers=ka)
    assert r.status_code == 413


def test_bad_requests_400_404_422(env, clips):
    client, keys, _ = env
    ka = H(keys["a"])
    files = [("files", ("a.flac", clips["sad"][0], "audio/flac")), ("files", ("b.flac", clips["sad"][1], "audio/flac"))]
    r = client.post("/v1/users/u/enroll", files=files, data={"labels": ["sad", "smug"]}, headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label"
    r = client.post("/v1/users/u/enroll", files=files + files, data={"labels": ["sad", "angry"]}, headers=ka)
    assert r.status_code == 400
    r = client.post("/v1/users/ghost/feedback", files={"file": ("a.flac", clips["sad"][0], "audio/flac")},
                    data={"label": "sad"}, headers=ka)
    assert r.status_code == 404
    r = client.post("/v1/users/u/enroll", data={"labels": ["sad"]}, headers=ka)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert client.get("/v1/users?limit=0", headers=ka).status_code == 422
    # an invalid user id is 400 invalid_id, as in Python and the CLI (it was a 422 from a service-only regex)
    r = client.get("/v1/users/%20x", headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_id"


def _predict(client, key, user, clip, labels=None):
    return client.post(f"/v1/users/{user}/predict", files={"file": ("x.flac", clip, "audio/flac")},
                       data=None if labels is None else {"labels": labels}, headers=H(key))


def test_observe_folds_unlabelled_clips_into_the_profile(env, clips):
    client, keys, p = env
    ka = H(keys["a"])
    before = _predict(client, keys["a"], "olga", clips["sad"][2]).json()
    assert before["personalized"] is False
    files = [("files", (f"{i}.flac", c, "audio/flac")) for i, c in enumerate(clips["happy"] + clips["angry"][:1])]
    r = client.post("/v1/users/olga/observe", files=files, headers=ka)
    assert r.status_code == 200, r.text
    assert r.json() == {"user": "olga", "counts": {}, "custom_emotions": [], "clips": 4, "revision": 1,
                        "unlabelled": 4, "labels": None}
    assert p.for_tenant("tenant-a").summary("olga").unlabelled == 4
    after = _predict(client, keys["a"], "olga", clips["sad"][2]).json()
    assert after["personalized"] is True and after["probabilities"] != before["probabilities"]
    # labelled clips add to counts; the unlabelled ones stay counted apart
    r = enroll(client, keys["a"], "olga", clips)
    assert r.json()["counts"] == {"angry": 2, "sad": 2, "happy": 2} and r.json()["clips"] == 10
    assert r.json()["unlabelled"] == 4
    # a writer route with enroll's upload limits
    assert client.post("/v1/users/olga/observe", files=files, headers=H(keys["ro"])).status_code == 403
    r = client.post("/v1/users/olga/observe", files=[("files", ("x.txt", b"hello", "text/plain"))], headers=ka)
    assert r.status_code == 415
    r = client.post("/v1/users/olga/observe", files=[("files", (f"{i}.flac", clips["sad"][0], "audio/flac"))
                                                     for i in range(9)], headers=ka)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = client.post("/v1/users/olga/observe", files=[("files", ("x.wav", b"RIFF garbage", "audio/wav"))], headers=ka)
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_audio"
    assert client.post("/v1/users/olga/observe", headers=ka).status_code == 422        # no files
    assert client.get("/v1/users/olga", headers=ka).json()["clips"] == 10              # nothing else was written
    assert client.get("/v1/users/olga", headers=H(keys["b"])).status_code == 404        # tenant B has no olga


def test_predict_labels_restrict_the_probabilities_to_exactly_that_set(env, clips):
    client, keys, p = env
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    full = _predict(client, keys["a"], "alice", clips["sad"][2]).json()
    assert set(full["probabilities"]) == set(p.head.classes)
    for user in ("alice", "nobody"):                                   # enrolled or not
        r = _predict(client, keys["a"], user, clips["sad"][2], ["sad", "angry", "happy"])
        body = r.json()
        assert r.status_code == 200 and set(body["probabilities"]) == {"sad", "angry", "happy"}, r.text
        assert body["label"] in {"sad", "angry", "happy"} and abs(sum(body["probabilities"].values()) - 1) < 1e-5
    r = _predict(client, keys["a"], "alice", clips["sad"][2], ["sadness", "anger"])    # aliases harmonized
    assert set(r.json()["probabilities"]) == {"sad", "angry"}
    r = _predict(client, keys["a"], "alice", clips["sad"][2], ["sad", "smug"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label" and "smug" in r.json()["error"]["message"]
    r = _predict(client, keys["ro"], "alice", clips["sad"][2], ["sad", "angry"])       # a read: read-only keys may
    assert r.status_code == 200 and set(r.json()["probabilities"]) == {"sad", "angry"}


def test_put_user_labels_sets_and_clears_the_users_label_set(env, clips):
    client, keys, p = env
    ka = H(keys["a"])
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    r = client.put("/v1/users/alice/labels", json={"labels": ["sad", "happy"]}, headers=ka)
    assert r.status_code == 200 and r.json()["labels"] == ["sad", "happy"] and r.json()["counts"]["sad"] == 2
    assert client.get("/v1/users/alice", headers=ka).json()["labels"] == ["sad", "happy"]
    assert set(_predict(client, keys["a"], "alice", clips["sad"][2]).json()["probabilities"]) == {"sad", "happy"}
    # the label set travels with an export and comes back with an import
    exported = client.get("/v1/users/alice/export", headers=ka).json()
    assert exported["state"]["labelset"] == ["sad", "happy"]
    r = client.post("/v1/users/alice2/import", json=exported, headers=ka)
    assert r.status_code == 200 and r.json()["labels"] == ["sad", "happy"]
    assert set(_predict(client, keys["a"], "alice2", clips["sad"][2]).json()["probabilities"]) == {"sad", "happy"}
    # refused: an unknown label (nothing changes), a user without a profile, a read-only key, a bad body
    r = client.put("/v1/users/alice/labels", json={"labels": ["sad", "smug"]}, headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label" and "smug" in r.json()["error"]["message"]
    r = client.put("/v1/users/alice/labels", json={"labels": []}, headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label"
    assert client.get("/v1/users/alice", headers=ka).json()["labels"] == ["sad", "happy"]
    r = client.put("/v1/users/ghost/labels", json={"labels": ["sad"]}, headers=ka)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_user"
    r = client.put("/v1/users/alice/labels", json={"labels": ["sad"]}, headers=H(keys["ro"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.put("/v1/users/alice/labels", json={"labels": "sad"}, headers=ka).status_code == 422
    assert client.put("/v1/users/alice/labels", json={"labels": ["sad"]}, headers=H(keys["b"])).status_code == 404
    # null: back to every emotion (no tenant label set here)
    r = client.put("/v1/users/alice/labels", json={"labels": None}, headers=ka)
    assert r.status_code == 200 and r.json()["labels"] is None
    assert set(_predict(client, keys["a"], "alice", clips["sad"][2]).json()["probabilities"]) == set(p.head.classes)
