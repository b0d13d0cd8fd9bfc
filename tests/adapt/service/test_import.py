"""``POST /v1/users/{user_id}/import``: the HTTP side of ``Personalizer.import_user``."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from tests.helpers.service import H, audio_part, enroll  # noqa: E402


def predict(client, key, user, clip):
    return client.post(f"/v1/users/{user}/predict", files={"file": ("x.flac", clip, "audio/flac")}, headers=H(key))


def test_export_forget_import_predicts_identically(env, clips):
    client, keys, _ = env
    ka = H(keys["a"])
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    parts = [audio_part("a.flac", clips["happy"][2]), audio_part("b.flac", clips["angry"][2])]
    assert client.post("/v1/users/alice/emotions", data={"name": "sarcastic"}, files=parts, headers=ka).status_code == 200
    before = predict(client, keys["a"], "alice", clips["sad"][2]).json()
    summary = client.get("/v1/users/alice", headers=ka).json()
    exported = client.get("/v1/users/alice/export", headers=ka).json()
    assert client.delete("/v1/users/alice", headers=ka).status_code == 204
    assert predict(client, keys["a"], "alice", clips["sad"][2]).json()["personalized"] is False

    r = client.post("/v1/users/alice/import", json=exported, headers=ka)
    assert r.status_code == 200, r.text
    assert {k: v for k, v in r.json().items() if k != "revision"} == {k: v for k, v in summary.items() if k != "revision"}
    assert predict(client, keys["a"], "alice", clips["sad"][2]).json() == before   # bit for bit
    assert client.get("/v1/users/alice/export", headers=ka).json() == exported

    # the path names the user: the same export restores another user, the body's "user" is ignored
    r = client.post("/v1/users/bob/import", json=exported, headers=ka)
    assert r.status_code == 200 and r.json()["user"] == "bob" and r.json()["counts"] == summary["counts"]


def test_import_onto_an_existing_user_is_409_unless_overwrite(env, clips):
    client, keys, _ = env
    ka = H(keys["a"])
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    exported = client.get("/v1/users/alice/export", headers=ka).json()
    assert enroll(client, keys["a"], "carol", {"sad": clips["sad"]}).status_code == 200
    r = client.post("/v1/users/carol/import", json=exported, headers=ka)
    assert r.status_code == 409 and r.json()["error"]["code"] == "profile_exists"
    assert client.get("/v1/users/carol", headers=ka).json()["counts"] == {"sad": 2}    # untouched
    r = client.post("/v1/users/carol/import?overwrite=true", json=exported, headers=ka)
    assert r.status_code == 200 and r.json()["counts"] == {"angry": 2, "sad": 2, "happy": 2}


def test_import_needs_a_writer_key_and_a_well_formed_body(env, clips):
    client, keys, _ = env
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    exported = client.get("/v1/users/alice/export", headers=H(keys["a"])).json()
    assert client.post("/v1/users/x/import", json=exported).status_code == 401
    r = client.post("/v1/users/x/import", json=exported, headers=H(keys["ro"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = client.post("/v1/users/x/import", json={"user": "x"}, headers=H(keys["a"]))   # no "state"
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    bad = {**exported, "state": {**exported["state"], "custom": ["sarcastic"]}}       # no clips of it
    r = client.post("/v1/users/x/import", json=bad, headers=H(keys["a"]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_state"
    assert client.get("/v1/users/x", headers=H(keys["a"])).status_code == 404


def test_import_keeps_tenants_apart(env, clips):
    client, keys, _ = env
    ka, kb = H(keys["a"]), H(keys["b"])
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    a_before = client.get("/v1/users/alice", headers=ka).json()
    exported = client.get("/v1/users/alice/export", headers=ka).json()
    # B cannot export A's alice: exactly the answer for a user that does not exist
    theirs, nobody = client.get("/v1/users/alice/export", headers=kb), client.get("/v1/users/zed/export", headers=kb)
    assert theirs.status_code == nobody.status_code == 404 and theirs.json()["error"] == {
        **nobody.json()["error"], "message": nobody.json()["error"]["message"].replace("zed", "alice")}
    # B importing "alice" meets no conflict with A's alice: the same answer as for a new name
    theirs, nobody = (client.post(f"/v1/users/{u}/import", json=exported, headers=kb) for u in ("alice", "zed"))
    assert theirs.status_code == nobody.status_code == 200
    assert {**theirs.json(), "user": "zed"} == nobody.json()
    assert client.get("/v1/users/alice", headers=ka).json() == a_before                  # A's alice untouched
    assert client.get("/v1/users", headers=kb).json()["users"] == ["alice", "zed"]
    assert client.get("/v1/users", headers=ka).json()["users"] == ["alice"]
