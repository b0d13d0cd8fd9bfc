"""Opt-in feedback aggregation into gated global head versions (issue 18, ``adapt.personal.feedback``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapt.errors import InvalidStateError, UnknownUserError
from adapt.personal import GlobalHead, Personalizer, PersonalizerConfig, UserState
from adapt.personal.feedback import SHARED, ConsentError, FeedbackAggregator, FrozenSet

EMOTIONS = np.array(["angry", "happy", "sad"])


def _speakers(rng, n_spk, per=30, D=10, shift=0.0):
    """Synthetic speakers: emotion directions + a per-speaker offset (+ a domain ``shift``)."""
    X, y, s = [], [], []
    for k in range(n_spk):
        off = rng.normal(scale=2.0, size=D) + shift
        lab = np.resize(EMOTIONS, per)
        sig = np.zeros((per, D))
        sig[np.arange(per), np.searchsorted(EMOTIONS, lab)] = 2.0
        X.append(rng.normal(size=(per, D)) + sig + off)
        y.append(lab), s.append(np.full(per, f"s{shift:g}-{k}"))
    return np.vstack(X).astype(np.float32), np.concatenate(y), np.concatenate(s)


@pytest.fixture
def world(tmp_path):
    rng = np.random.default_rng(0)
    X, y, s = _speakers(rng, 12)
    head = GlobalHead.fit(X[:240], y[:240], speakers=s[:240], dim=6)
    frozen = FrozenSet(X[240:], y[240:], s[240:])
    agg = FeedbackAggregator(tmp_path / "fb", head, frozen, min_users=2)
    return agg, head, rng


def _state(X, y):
    return UserState.empty(X.shape[1]).add(X, list(y))


def test_submit_needs_the_tenant_and_the_user_to_opt_in(world):
    agg, head, rng = world
    X, y, _ = _speakers(rng, 1)
    with pytest.raises(ConsentError, match="not enabled"):
        agg.submit("acme", "alice", _state(X, y))
    agg.set_tenant_policy("acme", enabled=True)
    with pytest.raises(ConsentError, match="not consented"):
        agg.submit("acme", "alice", _state(X, y))
    agg.set_consent("acme", "alice", True)
    agg.submit("acme", "alice", _state(X, y))
    assert agg.pending("acme") == 1
    with pytest.raises(InvalidStateError, match="dimension"):
        agg.submit("acme", "alice", UserState.empty(3).add(X[:2, :3], ["sad", "sad"]))
    with pytest.raises(ValueError):
        agg.set_tenant_policy("acme", enabled=True, scope="everyone")


def test_forget_and_withdrawn_consent_remove_pending_statistics(world):
    agg, head, rng = world
    agg.set_tenant_policy("acme", enabled=True)
    for u in ("alice", "bob"):
        X, y, _ = _speakers(rng, 1)
        agg.set_consent("acme", u, True)
        agg.submit("acme", u, _state(X, y))
    files = list((agg.root / "acme" / "pending").iterdir())
    assert len(files) == 2 and not any("alice" in f.name or "bob" in f.name for f in files)  # ids are hashed
    assert agg.forget("acme", "alice") and agg.pending("acme") == 1
    assert not agg.has_consent("acme", "alice")          # forget drops the consent record too
    consent = json.loads((agg.root / "acme" / "consent.json").read_text())
    assert len(consent) == 1                              # only bob's (hashed) record is left
    with pytest.raises(UnknownUserError):
        agg.forget("acme", "alice")
    agg.set_consent("acme", "bob", False)
    assert agg.pending("acme") == 0 and not agg.has_consent("acme", "bob")
    with pytest.raises(ValueError, match="min_users"):
        agg.fold("acme")


def test_fold_versions_are_listed_gated_and_isolated_per_tenant(world, tmp_path):
    _, head, rng = world
    Xf, yf, sf = _speakers(rng, 4, shift=1.5)           # the earlier data of this deployment's domain
    agg = FeedbackAggregator(tmp_path / "fb2", head, FrozenSet(Xf, yf, sf), min_users=2)
    agg.set_tenant_policy("acme", enabled=True)
    for u in range(3):
        X, y, _ = _speakers(rng, 1, shift=1.5)
        agg.set_consent("acme", f"u{u}", True)
        agg.submit("acme", f"u{u}", _state(X, y))
    v = agg.fold("acme")
    assert v.number == 1 and v.parent == 0 and v.users == 3 and v.clips == 90
    assert set(v.gate["paths"]) == {"unenrolled", "observed"}
    assert v.accepted, v.gate                             # the users' centres move the prior toward the domain
    assert v.gate["paths"]["unenrolled"]["candidate"] > v.gate["paths"]["unenrolled"]["base"]
    assert [x.number for x in agg.versions("acme")] == [1] and agg.pending("acme") == 0
    new = agg.head("acme")
    assert np.allclose(new.means, head.means, atol=1e-6)        # defaults: class means frozen ...
    assert not np.allclose(new.prior_mean, head.prior_mean)     # ... the normalization prior moves
    assert agg.head("other") is head and agg.versions("other") == []      # another tenant is untouched


def test_a_harmful_candidate_is_rejected_and_the_current_version_keeps_serving(world):
    agg, head, rng = world
    agg.prior_clips, agg.prior_speakers = 0.0, float("inf")   # the users' class means replace the head's
    agg.set_tenant_policy("acme", enabled=True)
    for u in range(3):
        X, y, _ = _speakers(rng, 1, per=300)
        wrong = np.roll(y, 1)                       # every label shifted: corrections that teach nonsense
        agg.set_consent("acme", f"u{u}", True)
        agg.submit("acme", f"u{u}", _state(X, wrong))
    v = agg.fold("acme")
    assert not v.accepted, v.gate
    assert v.gate["candidate"] < v.gate["reference"] - agg.tolerance
    assert agg.head("acme") is head and agg.pending("acme") == 3
    assert [x.accepted for x in agg.versions("acme")] == [False]


def test_shared_scope_reaches_other_tenants_and_rollback_returns_to_the_base(world):
    agg, head, rng = world
    agg.tolerance = 1.0                              # accept anything: this test is about routing
    agg.set_tenant_policy("acme", enabled=True, scope="shared")
    for u in range(2):
        X, y, _ = _speakers(rng, 1)
        agg.set_consent("acme", f"u{u}", True)
        agg.submit("acme", f"u{u}", _state(X, y))
    v = agg.fold("acme")
    assert v.accepted and v.chain == SHARED
    shared = agg.head("beta")
    assert shared is not head and np.allclose(shared.means, agg.head("acme").means)
    agg.rollback(SHARED, 0)
    assert agg.head("beta") is head
    with pytest.raises(KeyError):
        agg.rollback(SHARED, 7)


def test_existing_profiles_score_under_a_new_version(world, tmp_path):
    agg, head, rng = world
    agg.tolerance = 1.0
    p = Personalizer(None, head, tmp_path / "p.db", config=PersonalizerConfig(tenant="acme"))
    X, y, _ = _speakers(rng, 1)
    p.enroll_embeddings("carol", X[:9], list(y[:9]))
    before = p.predict_embeddings("carol", X[9:])
    agg.set_tenant_policy("acme", enabled=True)
    for u in range(2):
        Xu, yu, _ = _speakers(rng, 1)
        agg.set_consent("acme", f"u{u}", True)
        agg.submit("acme", f"u{u}", _state(Xu, yu))
    agg.fold("acme")
    p2 = Personalizer(None, agg.head("acme"), tmp_path / "p.db", config=PersonalizerConfig(tenant="acme"))
    after = p2.predict_embeddings("carol", X[9:])      # the same stored profile, the new version
    assert len(after) == len(before) and p2.summary("carol").counts == p.summary("carol").counts


@pytest.mark.slow
def test_feedback_from_an_unseen_corpus_helps_its_next_users(six_table):
    """Real embeddings: EMOVO held out of the head; with the default settings its feeders'
    statistics raise the unenrolled UA of its other speakers, and the frozen set of training
    speakers gates the version."""
    from scenarios.lifelong import feedback_transfer

    (r,) = feedback_transfer(six_table, "emovo")
    assert r.feeders == 3 and r.next_users == 3
    assert r.accepted and r.next_after == r.next_candidate
    assert r.gain > 0 and r.forgetting <= 0.01 + 1e-9


def test_personalizer_shares_feedback_and_forget_removes_it(world, tmp_path):
    agg, head, rng = world
    p = Personalizer(None, head, tmp_path / "share.db", config=PersonalizerConfig(tenant="acme"), feedback=agg)
    X, y, _ = _speakers(rng, 1)
    p.enroll_embeddings("alice", X[:9], list(y[:9]))
    with pytest.raises(ConsentError):                     # enrolled, but no consent yet
        p.share_feedback("alice")
    agg.set_tenant_policy("acme", enabled=True)
    agg.set_consent("acme", "alice", True)
    p.share_feedback("alice")
    assert agg.pending("acme") == 1
    with pytest.raises(UnknownUserError):
        p.share_feedback("bob")                           # no profile: nothing to share
    assert p.forget("alice")
    assert agg.pending("acme") == 0 and not agg.has_consent("acme", "alice") and not p.has_user("alice")
    with pytest.raises(InvalidStateError, match="no feedback aggregator"):
        Personalizer(None, head, tmp_path / "share.db").share_feedback("alice")
