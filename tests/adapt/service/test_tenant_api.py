"""The tenant routes (``/v1/tenant...``): the HTTP side of ``Personalizer.enroll_tenant``,
``tenant_summary``, ``export_tenant`` / ``import_tenant``, ``set_tenant_labels`` and
``forget_tenant``. The tenant is always the API key's."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from tests.helpers.service import H, audio_part, enroll  # noqa: E402

EMOTIONS = ("angry", "sad", "happy", "neutral")


@pytest.fixture(scope="module")
def speakers(ravdess):
    """``[(speaker, emotion, bytes), ...]``: one clip per emotion of two speakers the head never saw
    (8 files: the ``env`` app's ``max_files``)."""
    out = []
    for spk in ("ravdess_10", "ravdess_11"):
        recs = list(ravdess.filter(speakers=[spk]))
        for e in EMOTIONS:
            out += [(spk, e, r.path.read_bytes()) for r in [r for r in recs if r.emotion == e][:1]]
    return out


def enroll_tenant(client, key, rows, *, speakers=True, new_emotions=None):
    files = [audio_part(f"{i}.flac", data) for i, (_, _, data) in enumerate(rows)]
    data = {"labels": [e for _, e, _ in rows]}
    if new_emotions:
        data["new_emotions"] = new_emotions
    if speakers:
        data["speakers"] = [s for s, _, _ in rows]
    return client.post("/v1/tenant/enroll", files=files, data=data, headers=H(key))


def predict(client, key, user, clip, labels=None):
    data = None if labels is None else {"labels": labels}
    return client.post(f"/v1/users/{user}/predict", files={"file": ("x.flac", clip, "audio/flac")}, data=data,
                       headers=H(key))


def test_enroll_summary_export_forget_import_round_trip(env, speakers, clips):
    client, keys, p = env
    ka = H(keys["a"])
    r = client.get("/v1/tenant", headers=ka)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_tenant"
    assert "no tenant profile" in r.json()["error"]["message"]
    before = predict(client, keys["a"], "nobody", clips["sad"][2]).json()

    r = enroll_tenant(client, keys["a"], speakers)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["tenant"] == "tenant-a" and summary["speakers"] == 2 and summary["labels"] is None
    assert summary["counts"] == {e: 2 for e in EMOTIONS}          # 2 speakers x 1 clip
    assert client.get("/v1/tenant", headers=ka).json() == summary
    assert p.for_tenant("tenant-a").tenant_summary().to_dict() == summary
    # the tenant layer is used for a user never seen (still not personalized)
    after = predict(client, keys["a"], "nobody", clips["sad"][2]).json()
    assert after["personalized"] is False and after["probabilities"] != before["probabilities"]

    exported = client.get("/v1/tenant/export", headers=ka).json()
    assert exported["tenant"] == "tenant-a" and exported["state"]["format"] == "ser-adapt.TenantState"
    assert exported["state"]["counts"] == [2.0] * 4 and exported["state"]["n_speakers"] == 2
    assert client.delete("/v1/tenant", headers=ka).status_code == 204
    assert client.get("/v1/tenant", headers=ka).status_code == 404
    assert client.get("/v1/tenant/export", headers=ka).status_code == 404
    assert predict(client, keys["a"], "nobody", clips["sad"][2]).json()["probabilities"] == before["probabilities"]

    r = client.post("/v1/tenant/import", json=exported, headers=ka)
    assert r.status_code == 200, r.text
    assert {k: v for k, v in r.json().items() if k != "revision"} == {k: v for k, v in summary.items()
                                                                      if k != "revision"}
    assert client.get("/v1/tenant/export", headers=ka).json() == exported
    assert predict(client, keys["a"], "nobody", clips["sad"][2]).json() == after   # bit for bit


def test_a_second_enroll_adds_and_speakers_are_optional(env, speakers):
    client, keys, _ = env
    half = len(speakers) // 2                                    # ravdess_10 only
    assert enroll_tenant(client, keys["a"], speakers[:half], speakers=False).json()["speakers"] == 1
    r = enroll_tenant(client, keys["a"], speakers[half:])
    assert r.status_code == 200 and r.json()["speakers"] == 2 and r.json()["counts"] == {e: 2 for e in EMOTIONS}
    assert r.json()["revision"] == 2


def test_import_is_409_unless_overwrite_and_a_tampered_export_changes_nothing(env, speakers):
    client, keys, _ = env
    ka = H(keys["a"])
    assert enroll_tenant(client, keys["a"], speakers).status_code == 200
    exported = client.get("/v1/tenant/export", headers=ka).json()
    assert enroll_tenant(client, keys["a"], speakers[:2], speakers=False).status_code == 200   # 2 clips more
    current = client.get("/v1/tenant", headers=ka).json()
    r = client.post("/v1/tenant/import", json=exported, headers=ka)
    assert r.status_code == 409 and r.json()["error"]["code"] == "profile_exists"
    assert client.get("/v1/tenant", headers=ka).json() == current

    state = exported["state"]
    tampered = [
        {**state, "counts": state["counts"][:1]},                          # 4 labels, 1 count
        {**state, "centre_sum": state["centre_sum"][:-1]},                 # wrong dimension
        {**state, "counts": [-1.0] + state["counts"][1:]},                 # negative count
        {**state, "labels": ["angry"] * len(state["labels"])},             # duplicate labels
        {**state, "dim": state["dim"] + 1, "centre_sum": state["centre_sum"] + [0.0],
         "var_sum": state["var_sum"] + [0.0]},                             # made for another head
    ]
    for bad in tampered:
        r = client.post("/v1/tenant/import?overwrite=true", json={**exported, "state": bad}, headers=ka)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_state", r.text
    r = client.post("/v1/tenant/import?overwrite=true", json={**exported, "state": {**state, "labelset": ["smug"]}},
                    headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label"
    r = client.post("/v1/tenant/import?overwrite=true", json={"tenant": "x"}, headers=ka)   # no "state"
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert client.get("/v1/tenant", headers=ka).json() == current                # nothing changed

    r = client.post("/v1/tenant/import?overwrite=true", json=exported, headers=ka)
    assert r.status_code == 200 and r.json()["counts"] == {e: 2 for e in EMOTIONS}


def test_tenant_labels_are_the_default_label_set_of_its_users(env, clips, speakers):
    client, keys, _ = env
    ka = H(keys["a"])
    r = client.put("/v1/tenant/labels", json={"labels": ["sad", "angry"]}, headers=ka)
    assert r.status_code == 200 and r.json()["labels"] == ["sad", "angry"]
    assert client.get("/v1/tenant", headers=ka).json()["labels"] == ["sad", "angry"]
    assert set(predict(client, keys["a"], "nobody", clips["sad"][2]).json()["probabilities"]) == {"sad", "angry"}
    assert enroll(client, keys["a"], "alice", clips).status_code == 200
    assert set(predict(client, keys["a"], "alice", clips["sad"][2]).json()["probabilities"]) == {"sad", "angry"}
    # the user's own label set wins over the tenant's, the call's over both
    assert client.put("/v1/users/alice/labels", json={"labels": ["happy", "sad", "neutral"]}, headers=ka).status_code == 200
    assert set(predict(client, keys["a"], "alice", clips["sad"][2]).json()["probabilities"]) == {"happy", "sad", "neutral"}
    assert set(predict(client, keys["a"], "alice", clips["sad"][2], ["angry", "happy"]).json()["probabilities"]) == \
        {"angry", "happy"}
    # another tenant is not affected
    assert set(predict(client, keys["b"], "nobody", clips["sad"][2]).json()["probabilities"]) == set(env[2].head.classes)
    # an unknown label is refused and changes nothing; null clears
    r = client.put("/v1/tenant/labels", json={"labels": ["sad", "smug"]}, headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label" and "smug" in r.json()["error"]["message"]
    assert client.get("/v1/tenant", headers=ka).json()["labels"] == ["sad", "angry"]
    r = client.put("/v1/tenant/labels", json={"labels": None}, headers=ka)
    assert r.status_code == 200 and r.json()["labels"] is None
    assert set(predict(client, keys["a"], "nobody", clips["sad"][2]).json()["probabilities"]) == set(env[2].head.classes)
    assert client.put("/v1/tenant/labels", json={}, headers=ka).status_code == 422     # "labels" is required


def test_an_emotion_of_the_tenant_is_available_to_its_users_only(env, speakers, clips):
    client, keys, _ = env
    ka = H(keys["a"])
    assert enroll_tenant(client, keys["a"], speakers).status_code == 200
    rows = [(s, "sarcastic", data) for s, e, data in speakers if e == "happy"]
    r = enroll_tenant(client, keys["a"], rows)                       # a new emotion must be named as new
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label" and "new_emotions" in r.text
    assert client.get("/v1/tenant", headers=ka).json()["counts"].get("sarcastic") is None
    r = enroll_tenant(client, keys["a"], rows, new_emotions=["sarcastic"])
    assert r.status_code == 200 and r.json()["counts"]["sarcastic"] == 2 and r.json()["counts"]["happy"] == 2
    files = [audio_part("a.flac", clips["happy"][0])]
    r = client.post("/v1/users/alice/enroll", files=files, data={"labels": ["sarcastic"]}, headers=ka)
    assert r.status_code == 200 and r.json()["counts"] == {"sarcastic": 1} and r.json()["custom_emotions"] == []
    assert "sarcastic" in predict(client, keys["a"], "nobody", clips["happy"][2]).json()["probabilities"]
    r = client.post("/v1/users/alice/enroll", files=files, data={"labels": ["sarcastic"]}, headers=H(keys["b"]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label"


def test_forget_with_users_deletes_every_profile_of_the_tenant_only(env, speakers, clips):
    client, keys, p = env
    ka, kb = H(keys["a"]), H(keys["b"])
    r = client.delete("/v1/tenant", headers=ka)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_tenant"
    assert enroll_tenant(client, keys["a"], speakers).status_code == 200
    assert enroll_tenant(client, keys["b"], speakers[:4]).status_code == 200
    for user in ("alice", "bob"):
        assert enroll(client, keys["a"], user, clips).status_code == 200
    assert enroll(client, keys["b"], "carol", clips).status_code == 200
    # without users=true only the tenant layer goes
    assert client.delete("/v1/tenant", headers=ka).status_code == 204
    assert client.get("/v1/tenant", headers=ka).status_code == 404
    assert client.get("/v1/users", headers=ka).json()["users"] == ["alice", "bob"]
    # users=true deletes the users even when no tenant layer is left
    assert client.delete("/v1/tenant?users=true", headers=ka).status_code == 204
    assert client.get("/v1/users", headers=ka).json() == {"users": [], "total": 0, "limit": 100, "offset": 0}
    assert client.get("/v1/users/alice", headers=ka).status_code == 404
    assert p.for_tenant("tenant-a").users() == [] and not p.for_tenant("tenant-a").has_tenant_profile()
    assert client.delete("/v1/tenant?users=true", headers=ka).status_code == 404    # nothing left
    # tenant B is untouched
    assert client.get("/v1/users", headers=kb).json()["users"] == ["carol"]
    assert client.get("/v1/tenant", headers=kb).json()["counts"] == {e: 1 for e in EMOTIONS}


def test_read_only_keys_read_but_never_write_the_tenant(env, speakers):
    client, keys, _ = env
    ka, ro = H(keys["a"]), H(keys["ro"])
    assert enroll_tenant(client, keys["a"], speakers).status_code == 200
    summary = client.get("/v1/tenant", headers=ka).json()
    exported = client.get("/v1/tenant/export", headers=ro).json()
    assert client.get("/v1/tenant", headers=ro).json() == summary
    writes = [enroll_tenant(client, keys["ro"], speakers),
              client.post("/v1/tenant/import?overwrite=true", json=exported, headers=ro),
              client.put("/v1/tenant/labels", json={"labels": ["sad"]}, headers=ro),
              client.delete("/v1/tenant", headers=ro), client.delete("/v1/tenant?users=true", headers=ro)]
    for r in writes:
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    for r in (client.get("/v1/tenant"), client.delete("/v1/tenant"), client.put("/v1/tenant/labels", json={"labels": None})):
        assert r.status_code == 401
    assert client.get("/v1/tenant", headers=ka).json() == summary


def test_tenants_are_isolated(env, speakers):
    client, keys, _ = env
    assert enroll_tenant(client, keys["a"], speakers).status_code == 200
    kb = H(keys["b"])
    assert client.get("/v1/tenant", headers=kb).status_code == 404
    assert client.get("/v1/tenant/export", headers=kb).status_code == 404
    assert client.delete("/v1/tenant", headers=kb).status_code == 404
    exported = client.get("/v1/tenant/export", headers=H(keys["a"])).json()
    # the body's "tenant" is ignored: the key names the tenant
    r = client.post("/v1/tenant/import", json=exported, headers=kb)
    assert r.status_code == 200 and r.json()["tenant"] == "tenant-b"
    assert client.get("/v1/tenant", headers=H(keys["a"])).json()["tenant"] == "tenant-a"


def test_enroll_checks_lengths_labels_and_upload_limits(env, speakers):
    client, keys, _ = env
    ka = H(keys["a"])
    files = [audio_part(f"{i}.flac", d) for i, (_, _, d) in enumerate(speakers[:3])]
    r = client.post("/v1/tenant/enroll", files=files, data={"labels": ["sad", "angry"]}, headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "length_mismatch"
    r = client.post("/v1/tenant/enroll", files=files, data={"labels": ["sad"], "speakers": ["a", "b"]}, headers=ka)
    assert r.status_code == 400 and r.json()["error"]["code"] == "length_mismatch" and "speaker" in r.text
    r = client.post("/v1/tenant/enroll", files=files, data={"labels": ["a\tb"]}, headers=ka)   # not a label
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_label"
    r = client.post("/v1/tenant/enroll", files=files, headers=ka)                   # no labels
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = client.post("/v1/tenant/enroll", files=[audio_part(f"{i}.flac", speakers[0][2]) for i in range(9)],
                    data={"labels": ["sad"]}, headers=ka)                           # max_files = 8
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = client.post("/v1/tenant/enroll", files=[("files", ("x.txt", b"hello", "text/plain"))], data={"labels": ["sad"]},
                    headers=ka)
    assert r.status_code == 415
    r = client.post("/v1/tenant/enroll", files=[("files", ("x.wav", b"RIFF garbage", "audio/wav"))],
                    data={"labels": ["sad"]}, headers=ka)
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_audio"
    r = client.post("/v1/tenant/enroll", files=[audio_part("big.flac", b"\0" * 600_000)], data={"labels": ["sad"]},
                    headers=ka)
    assert r.status_code == 413
    assert client.get("/v1/tenant", headers=ka).status_code == 404                  # nothing was written
