"""The error contract of the HTTP service: every row of ``adapt.service.errors.ERROR_TABLE``
triggered through a real route, the logged generic 500, and the framework's own statuses."""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("fastapi")

from adapt import errors as E  # noqa: E402
from adapt.personal import Personalizer  # noqa: E402
from adapt.service.errors import ERROR_TABLE  # noqa: E402
from tests.helpers.service import H, audio_part, enroll, flac  # noqa: E402


def _predict(client, key, user, data, ctype="audio/flac"):
    return client.post(f"/v1/users/{user}/predict", files={"file": ("x.flac", data, ctype)}, headers=H(key))


def _emotion(client, key, user, name, clips):
    return client.post(f"/v1/users/{user}/emotions", data={"name": name}, headers=H(key),
                       files=[audio_part(f"{i}.flac", c) for i, c in enumerate(clips)])


def unknown_user(client, keys, p, clips):
    return client.get("/v1/users/ghost", headers=H(keys["a"]))


def unknown_tenant(client, keys, p, clips):
    return client.get("/v1/tenant", headers=H(keys["a"]))        # this tenant has no tenant profile


def label_exists(client, keys, p, clips):
    return _emotion(client, keys["a"], "u", "sad", clips["happy"][:2])   # "sad" is a global emotion


def profile_exists(client, keys, p, clips):
    enroll(client, keys["a"], "u", clips)
    exported = client.get("/v1/users/u/export", headers=H(keys["a"])).json()
    return client.post("/v1/users/u/import", json=exported, headers=H(keys["a"]))


def too_many_emotions(client, keys, p, clips):
    p.config = replace(p.config, max_user_emotions=1)
    assert _emotion(client, keys["a"], "u", "sarcastic", clips["happy"][:2]).status_code == 200
    return _emotion(client, keys["a"], "u", "smug", clips["angry"][:2])


def unknown_label(client, keys, p, clips):
    return client.post("/v1/users/u/enroll", files=[audio_part("a.flac", clips["sad"][0])], data={"labels": ["smug"]},
                       headers=H(keys["a"]))


def too_few_clips(client, keys, p, clips):
    return _emotion(client, keys["a"], "u", "sarcastic", clips["happy"][:1])   # min_new_emotion_clips = 2


def length_mismatch(client, keys, p, clips):
    files = [audio_part("a.flac", clips["sad"][0]), audio_part("b.flac", clips["sad"][1])]
    return client.post("/v1/users/u/enroll", files=files, data={"labels": ["sad", "sad", "angry"]}, headers=H(keys["a"]))


def invalid_id(client, keys, p, clips):
    return client.get("/v1/users/%20x", headers=H(keys["a"]))


def invalid_state(client, keys, p, clips):
    enroll(client, keys["a"], "u", clips)
    exported = client.get("/v1/users/u/export", headers=H(keys["a"])).json()
    exported["state"]["counts"] = exported["state"]["counts"][:1]   # 3 labels, 1 count
    return client.post("/v1/users/v/import", json=exported, headers=H(keys["a"]))


def clip_too_long(client, keys, p, clips):
    return _predict(client, keys["a"], "u", flac(np.zeros(16000 * 31, np.float32) + 0.01))   # 31 s > 30 s


def bad_audio(client, keys, p, clips):
    return _predict(client, keys["a"], "u", b"RIFF garbage", "audio/wav")


def store_unavailable(client, keys, p, clips):
    p.store.close()
    return client.get("/v1/users", headers=H(keys["a"]))


TRIGGERS = {
    E.UnknownUserError: unknown_user, E.UnknownTenantError: unknown_tenant, E.LabelExistsError: label_exists, E.ProfileExistsError: profile_exists,
    E.TooManyEmotionsError: too_many_emotions, E.UnknownLabelError: unknown_label, E.TooFewClipsError: too_few_clips,
    E.LengthMismatchError: length_mismatch, E.InvalidIdError: invalid_id, E.InvalidStateError: invalid_state,
    E.TooLongAudioError: clip_too_long, E.AudioError: bad_audio, E.ProfileStoreError: store_unavailable,
}


def test_every_row_has_a_trigger():
    assert set(TRIGGERS) == set(ERROR_TABLE)


@pytest.mark.parametrize("exc_type", list(ERROR_TABLE), ids=lambda t: t.__name__)
def test_error_table_row_through_a_real_route(exc_type, env, clips):
    client, keys, p = env
    status, code = ERROR_TABLE[exc_type]
    r = TRIGGERS[exc_type](client, keys, p, clips)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert r.json()["error"]["message"]


@pytest.mark.parametrize("exc", [RuntimeError("secret detail"), ValueError("secret detail"),
                                 E.NotFittedError("secret detail")], ids=lambda e: type(e).__name__)
def test_unexpected_exceptions_are_a_logged_generic_500(exc, env, clips, monkeypatch, caplog):
    client, keys, _ = env

    def boom(self, user):
        raise exc

    monkeypatch.setattr(Personalizer, "summary", boom)
    with caplog.at_level(logging.ERROR, logger="adapt.service"):
        r = client.get("/v1/users/alice", headers=H(keys["a"]))
    assert r.status_code == 500 and r.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret" not in r.text
    rec = [x for x in caplog.records if x.name == "adapt.service"]
    assert len(rec) == 1 and rec[0].exc_info[1] is exc and "GET /v1/users/{user_id}" in rec[0].getMessage()
    assert 'route="/v1/users/{user_id}",status="500"} 1' in client.get("/metrics").text


def test_a_backbone_emitting_nan_is_internal_not_the_clients_fault(env, clips, caplog):
    client, keys, p = env
    p._embedder = lambda waves: np.full((len(waves), p.head.input_dim), np.nan, np.float32)
    with caplog.at_level(logging.ERROR, logger="adapt.service"):
        r = _predict(client, keys["a"], "u", clips["sad"][0])
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    assert isinstance(caplog.records[-1].exc_info[1], E.EmbeddingShapeError)


def test_framework_statuses_share_the_error_shape(env):
    client, keys, _ = env
    r = client.get("/v1/nothing", headers=H(keys["a"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.put("/v1/users/alice", headers=H(keys["a"]))
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = client.get("/v1/users/%20x")    # authentication comes before the id check
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = client.get("/v1/users/alice", headers=H(keys["ro"]))
    assert r.status_code == 404    # a read-only key reads
    r = client.delete("/v1/users/alice", headers=H(keys["ro"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = _predict(client, keys["a"], "u", b"\0" * 600_000, "audio/wav")            # file over max_file_bytes
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = _predict(client, keys["a"], "u", b"\0" * 2_100_000, "audio/wav")          # body over max_request_bytes
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = _predict(client, keys["a"], "u", b"hello", "text/plain")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = client.post("/v1/users/u/predict", headers=H(keys["a"]))                   # no file part
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
