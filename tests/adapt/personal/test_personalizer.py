"""Personalizer on real RAVDESS audio with a cheap log-mel embedder (store/logic, not accuracy)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapt.errors import (AudioError, LabelExistsError, TooFewClipsError, TooShortAudioError, UnknownLabelError,
                          UnknownUserError)
from adapt.personal import Personalizer, PersonalizerConfig
from tests.helpers.personal import small_model

TARGET = "ravdess_10"  # never seen by the test head (fitted on speakers 01-03)


@pytest.fixture(scope="module")
def target(ravdess):
    recs = list(ravdess.filter(speakers=[TARGET]))
    enroll = [r for r in recs if r.text_id == "s01" and r.emotion in ("angry", "sad", "happy", "neutral")][:12]
    test = [r for r in recs if r.text_id == "s02"]  # sentence-disjoint from enrollment
    return enroll, test


@pytest.fixture()
def p(tmp_path, ravdess):
    emb, head = small_model()
    return Personalizer(emb, head, tmp_path / "profiles.db", config=PersonalizerConfig(tenant="tests"))


def test_unenrolled_user_gets_the_global_prediction(p, target):
    _, test = target
    r = p.predict("nobody", test[0].path)
    assert r.personalized is False and r.label in p.head.classes
    assert abs(sum(r.probabilities.values()) - 1) < 1e-5 and r.confidence == max(r.probabilities.values())
    assert not p.has_user("nobody")


def test_enroll_predict_and_profile_summary(p, target):
    enroll, test = target
    s = p.enroll("alice", [r.path for r in enroll], [r.emotion for r in enroll])
    want = {}
    for r in enroll:
        want[r.emotion] = want.get(r.emotion, 0) + 1
    assert s.counts == want and s.clips == len(enroll) and s.revision == 1
    preds = p.predict_batch("alice", [r.path for r in test])
    assert len(preds) == len(test) and all(x.personalized for x in preds)
    assert all(set(x.probabilities) == set(p.head.classes) for x in preds)
    assert p.summary("alice").counts == want and p.users() == ["alice"]


def test_enrollment_changes_alice_only_and_never_the_global_head(p, target):
    enroll, test = target
    head_state = json.dumps(p.head.get_state())
    before_bob = p.predict("bob", test[0].path)
    p.enroll("alice", [r.path for r in enroll], [r.emotion for r in enroll])
    p.enroll("carol", [enroll[0].path, enroll[1].path], [enroll[0].emotion, enroll[1].emotion])
    after_bob = p.predict("bob", test[0].path)
    assert after_bob == before_bob and json.dumps(p.head.get_state()) == head_state
    alice = p.predict("alice", test[0].path)
    assert alice.personalized and alice.probabilities != after_bob.probabilities
    p.update("alice", test[1].path, test[1].emotion)
    assert p.summary("carol").clips == 2  # unaffected by alice's update


def test_update_moves_the_prediction_toward_the_correction(p, target):
    enroll, test = target
    p.enroll("alice", [r.path for r in enroll], [r.emotion for r in enroll])
    clip = test[0]
    wrong = next(c for c in p.head.classes if c != p.predict("alice", clip.path).label)
    before = p.predict("alice", clip.path).probabilities[wrong]
    for _ in range(3):
        s = p.update("alice", clip.path, wrong)
    after = p.predict("alice", clip.path).probabilities[wrong]
    assert after > before and s.counts[wrong] >= 3


def test_add_emotion_is_private_to_the_user(p, target, ravdess):
    enroll, test = target
    p.enroll("alice", [r.path for r in enroll], [r.emotion for r in enroll])
    p.enroll("bob", [r.path for r in enroll[:2]], [r.emotion for r in enroll[:2]])
    whispers = [r.path for r in test if r.emotion == "calm"][:3]
    s = p.add_emotion("alice", "Sarcastic", whispers)
    assert "sarcastic" in s.custom_emotions and s.counts["sarcastic"] == 3
    r = p.predict("alice", whispers[0])
    assert "sarcastic" in r.probabilities
    assert "sarcastic" not in p.predict("bob", whispers[0]).probabilities
    assert "sarcastic" not in p.predict("nobody", whispers[0]).probabilities
    p.update("alice", whispers[0], "sarcastic")  # the new class now accepts corrections
    with pytest.raises(UnknownLabelError):
        p.update("bob", whispers[0], "sarcastic")
    with pytest.raises(LabelExistsError):
        p.add_emotion("alice", "sarcastic", whispers)
    with pytest.raises(LabelExistsError):
        p.add_emotion("alice", "angry", whispers)
    with pytest.raises(TooFewClipsError):
        p.add_emotion("alice", "smug", whispers[:1])


def test_forget_removes_everything(p, target):
    enroll, test = target
    p.enroll("alice", [r.path for r in enroll], [r.emotion for r in enroll])
    p.forget("alice")
    assert not p.has_user("alice") and p.users() == []
    assert p.predict("alice", test[0].path).personalized is False
    with pytest.raises(UnknownUserError):
        p.forget("alice")
    assert p.forget("alice", missing_ok=True) is False
    with pytest.raises(UnknownUserError):
        p.export_user("alice")


def test_export_import_roundtrip(p, target, tmp_path):
    enroll, test = target
    p.enroll("alice", [r.path for r in enroll], [r.emotion for r in enroll])
    p.add_emotion("alice", "sleepy", [r.path for r in test[:2]])
    data = json.loads(json.dumps(p.export_user("alice")))  # through real JSON
    emb, head = small_model()
    q = Personalizer(emb, head, tmp_path / "other.db")
    q.import_user(data, user="alice2")
    want = p.predict_batch("alice", [r.path for r in test[2:6]])
    got = q.predict_batch("alice2", [r.path for r in test[2:6]])
    for a, b in zip(want, got):
        assert a.label == b.label and np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)
    with pytest.raises(ValueError, match="already exists"):
        q.import_user(data, user="alice2")
    q.import_user(data, user="alice2", overwrite=True)
    bad = json.loads(json.dumps(data))
    bad["state"]["counts"][0] = float("nan")
    with pytest.raises(ValueError):
        q.import_user(bad, user="x")
    bad = json.loads(json.dumps(data))
    bad["state"]["dim"] = 7
    with pytest.raises(ValueError):
        q.import_user(bad, user="x")


def test_errors_are_specific(p, target):
    enroll, test = target
    paths = [r.path for r in enroll[:2]]
    with pytest.raises(UnknownLabelError, match="add_emotion"):
        p.enroll("alice", paths, ["angry", "smug"])
    with pytest.raises(UnknownLabelError):
        p.enroll("alice", paths, ["angry", ""])
    with pytest.raises(ValueError, match="2 clips but 1 labels"):
        p.enroll("alice", paths, ["angry"])
    with pytest.raises(TooFewClipsError):
        p.enroll("alice", [], [])
    with pytest.raises(UnknownUserError):
        p.update("ghost", paths[0], "angry")
    with pytest.raises(TooShortAudioError, match="clip 1"):
        p.enroll("alice", [paths[0], np.zeros(100, np.float32)], ["angry", "sad"], sr=16000)
    with pytest.raises(AudioError):
        p.predict("alice", b"definitely not audio")
    with pytest.raises(AudioError):
        p.predict("alice", np.full(16000, np.nan, np.float32), sr=16000)
    with pytest.raises(ValueError):
        p.predict("", paths[0])
    assert not p.has_user("alice")  # nothing half-written by the failed calls


def test_labels_are_harmonized_and_embeddings_api(p, target):
    enroll, _ = target
    X = p.embed([r.path for r in enroll])
    assert X.shape == (len(enroll), p.head.input_dim) and X.dtype == np.float32
    s = p.enroll_embeddings("dana", X[:2], ["Anger", "sadness"])
    assert set(s.counts) == {"angry", "sad"}
    with pytest.raises(ValueError, match="embeddings must be"):
        p.enroll_embeddings("dana", X[:2, :5], ["angry", "sad"])
    with pytest.raises(ValueError, match="NaN"):
        p.predict_embeddings("dana", np.full((1, p.head.input_dim), np.nan))


def test_uncertain_flag_follows_the_threshold(tmp_path, target):
    emb, head = small_model()
    _, test = target
    always = Personalizer(emb, head, ":memory:", config=PersonalizerConfig(uncertain_below=1.0))
    never = Personalizer(emb, head, ":memory:", config=PersonalizerConfig(uncertain_below=0.0))
    assert always.predict("u", test[0].path).uncertain is True
    assert never.predict("u", test[0].path).uncertain is False
    with pytest.raises(ValueError, match="uncertain_below"):
        PersonalizerConfig(uncertain_below=2.0)
    with pytest.raises(ValueError, match="tenant"):
        PersonalizerConfig(tenant="bad tenant")


def test_available_emotions_and_the_users_uncertain_threshold(tmp_path, target, ravdess):
    from dataclasses import replace

    from adapt.personal import Calibration

    emb, head = small_model()
    head = replace(head, calibration=Calibration(uncertain_unenrolled=0.3, uncertain_enrolled=0.6))
    p = Personalizer(emb, head, tmp_path / "profiles.db")
    enroll, test = target
    assert p.available_emotions("nobody") == tuple(head.classes)
    assert p.user_uncertain_threshold("nobody") == 0.3            # no profile: the unenrolled path
    p.observe("watcher", [test[0].path])
    assert p.user_uncertain_threshold("watcher") == 0.3           # observed only: still unenrolled
    p.enroll("alice", [r.path for r in enroll], [r.emotion for r in enroll])
    assert p.user_uncertain_threshold("alice") == 0.6
    p.add_emotion("alice", "sarcastic", [r.path for r in test if r.emotion == "calm"][:3])
    assert p.available_emotions("alice") == tuple(head.classes) + ("sarcastic",)
    assert "sarcastic" not in p.available_emotions("watcher")
    from adapt.errors import InvalidIdError

    with pytest.raises(InvalidIdError):
        p.available_emotions("a/b")
    with pytest.raises(InvalidIdError):
        p.user_uncertain_threshold("..")
