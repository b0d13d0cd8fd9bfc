"""PrototypeHead and SpeakerNormalizer on synthetic Gaussian clusters."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapt.errors import NotFittedError, UnknownLabelError
from adapt.heads import PrototypeHead, head_from_state, make_head
from adapt.normalization import SpeakerNormalizer, standardize_by_speaker


def clusters(rng, n_per=20, n_classes=4, dim=16, spread=0.3, offset=None):
    centres = rng.normal(size=(n_classes, dim)) * 2.0
    X = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres])
    y = np.repeat([f"e{i}" for i in range(n_classes)], n_per)
    if offset is not None:
        X = X + offset
    return X.astype(np.float32), y, centres


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_prototype_separates_clusters(rng, metric):
    X, y, _ = clusters(rng)
    perm = rng.permutation(len(y))
    tr, te = perm[:40], perm[40:]
    head = PrototypeHead(metric=metric).fit(X[tr], y[tr])
    assert head.score(X[te], y[te]) > 0.95
    proba = head.predict_proba(X[te])
    assert proba.shape == (len(te), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # arg-max of proba and predict agree, and columns follow classes_
    assert (head.classes_[proba.argmax(axis=1)] == head.predict(X[te])).all()


def test_prototype_equals_class_mean_euclidean(rng):
    X, y, _ = clusters(rng, n_per=5)
    head = PrototypeHead(metric="euclidean").fit(X, y)
    for i, c in enumerate(head.classes_):
        np.testing.assert_allclose(head.prototypes_[i], X[y == c].mean(axis=0), rtol=1e-5, atol=1e-5)


def test_partial_fit_matches_fit_and_adds_classes(rng):
    X, y, _ = clusters(rng, n_per=10)
    full = PrototypeHead(metric="euclidean").fit(X, y)
    inc = PrototypeHead(metric="euclidean")
    for start in range(0, len(y), 7):                  # chunks cut across classes
        inc.partial_fit(X[start:start + 7], y[start:start + 7])
    assert sorted(inc.classes_) == sorted(full.classes_)
    order = [list(inc.classes_).index(c) for c in full.classes_]
    np.testing.assert_allclose(inc.prototypes_[order], full.prototypes_, atol=1e-5)
    # a brand-new class learned from 3 shots is recognised without touching the old ones
    new_centre = rng.normal(size=16) * 3.0
    Xn = (new_centre + 0.2 * rng.normal(size=(8, 16))).astype(np.float32)
    inc.partial_fit(Xn[:3], ["new"] * 3)
    assert inc.classes_[-1] == "new"
    assert (inc.predict(Xn[3:]) == "new").mean() >= 0.8
    assert inc.class_counts()["new"] == 3


def test_prior_shrinkage_weight_decreases_with_shots(rng):
    X, y, _ = clusters(rng, n_per=30, dim=8)
    prior = PrototypeHead(metric="euclidean").fit(X, y)
    shift = np.full(8, 5.0, dtype=np.float32)
    user_X = X[y == "e0"][:10] + shift
    dists = []
    for k in (1, 3, 10):
        user = PrototypeHead(metric="euclidean", prior=prior, shrinkage=2.0).fit(user_X[:k], ["e0"] * k)
        proto = user.prototypes_[list(user.classes_).index("e0")]
        expected = (user_X[:k].sum(axis=0) + 2.0 * prior.prototypes_[0]) / (k + 2.0)
        np.testing.assert_allclose(proto, expected, rtol=1e-5)
        dists.append(np.linalg.norm(proto - user_X[:k].mean(axis=0)))
        # classes the user did not enroll come from the prior
        assert set(user.classes_) == set(prior.classes_)
    assert dists[0] > dists[1] > dists[2]


def test_state_round_trip_through_json(rng):
    X, y, _ = clusters(rng)
    prior = PrototypeHead().fit(X, y)
    head = PrototypeHead(temperature=0.05, prior=prior, shrinkage=1.5).fit(X[:25], y[:25])
    head.partial_fit(X[-3:], ["extra"] * 3)
    state = json.loads(json.dumps(head.get_state()))
    again = head_from_state(state)
    assert isinstance(again, PrototypeHead)
    assert again.classes_.tolist() == head.classes_.tolist()
    np.testing.assert_allclose(again.predict_proba(X), head.predict_proba(X), rtol=1e-6)


def test_errors(rng):
    X, y, _ = clusters(rng)
    head = PrototypeHead()
    with pytest.raises(NotFittedError):
        head.predict(X)
    with pytest.raises(NotFittedError):
        head.get_state()
    head.fit(X, y)
    with pytest.raises(ValueError, match="16"):
        head.predict(X[:, :5])
    with pytest.raises(ValueError, match="2D"):
        head.predict(X[0])
    with pytest.raises(ValueError, match="rows"):
        head.fit(X, y[:-1])
    with pytest.raises(UnknownLabelError, match="nope"):
        head.score(X[:2], ["e0", "nope"])
    with pytest.raises(UnknownLabelError):
        head.forget_classes(["nope"])
    with pytest.raises(ValueError, match="NaN"):
        head.predict(np.full((1, 16), np.nan))
    # parameters are checked by fit / partial_fit (scikit-learn style), with the same messages
    with pytest.raises(ValueError, match="metric"):
        PrototypeHead(metric="manhattan").fit(X, y)
    with pytest.raises(ValueError, match="temperature"):
        PrototypeHead(temperature=0).fit(X, y)
    with pytest.raises(ValueError, match="shrinkage"):
        PrototypeHead(shrinkage=-1.0).partial_fit(X, y)
    with pytest.raises(ValueError, match="metric"):
        PrototypeHead(metric="euclidean", prior=head).fit(X, y)
    with pytest.raises(TypeError, match="prior"):
        PrototypeHead(prior="global").fit(X, y)
    with pytest.raises(NotFittedError, match="FrozenEstimator"):
        PrototypeHead(prior=PrototypeHead()).fit(X, y)
    with pytest.raises(KeyError, match="prototype"):
        make_head("nearest")


def test_forget_classes(rng):
    X, y, _ = clusters(rng)
    head = PrototypeHead().fit(X, y).forget_classes(["e1"])
    assert "e1" not in head.classes_.tolist()
    assert head.predict_proba(X).shape[1] == 3


def test_normalizer_removes_speaker_offset(rng):
    X, y, _ = clusters(rng, n_per=10, dim=8)
    off = rng.normal(size=8) * 10
    norm = SpeakerNormalizer(std_shrinkage=0.0, std_floor=0.0).fit(X + off)
    Z = norm.transform(X + off)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1.0, rtol=1e-3)
    # labelled variant: classes weigh equally, so an unbalanced enrollment keeps the same centre
    lab = SpeakerNormalizer().fit(np.concatenate([X[:10], X[:10], X[10:]]),
                                  np.concatenate([y[:10], y[:10], y[10:]]))
    bal = SpeakerNormalizer().fit(X, y)
    np.testing.assert_allclose(lab.mean_, bal.mean_, atol=1e-5)
    unl = SpeakerNormalizer().fit(np.concatenate([X[:10], X[:10], X[10:]]))
    assert np.abs(unl.mean_ - bal.mean_).max() > 1e-3


def test_normalizer_makes_speakers_comparable(rng):
    """A head trained on normalized speakers transfers to a shifted, rescaled new speaker."""
    X, y, _ = clusters(rng, n_per=20, dim=8, spread=0.5)
    spk = np.tile(np.repeat(["a", "b"], 10), 4)
    shift = {"a": rng.normal(size=8) * 4, "b": rng.normal(size=8) * 4}
    Xs = X + np.stack([shift[s] for s in spk])
    head_raw = PrototypeHead(metric="euclidean").fit(Xs, y)
    head_norm = PrototypeHead(metric="euclidean").fit(standardize_by_speaker(Xs, spk, y), y)
    X2, y2, _ = X.copy(), y, None
    target = X2 * 1.5 + rng.normal(size=8) * 6
    enroll = np.concatenate([np.flatnonzero(y2 == c)[:2] for c in np.unique(y2)])
    norm = SpeakerNormalizer().fit(target[enroll], y2[enroll])
    ua_raw = head_raw.score(target, y2)
    ua_norm = head_norm.score(norm.transform(target), y2)
    assert ua_norm > ua_raw + 0.2


def test_normalizer_state_and_errors(rng):
    X, _, _ = clusters(rng, n_per=3, dim=4)
    with pytest.raises(NotFittedError):
        SpeakerNormalizer().transform(X)
    norm = SpeakerNormalizer().fit(X)
    again = SpeakerNormalizer.from_state(json.loads(json.dumps(norm.get_state())))
    np.testing.assert_allclose(again.transform(X), norm.transform(X))
    with pytest.raises(ValueError, match="4"):
        norm.transform(X[:, :3])
    with pytest.raises(ValueError, match="std_shrinkage"):
        SpeakerNormalizer(std_shrinkage=-1).fit(X)   # scikit-learn style: parameters are checked in fit
    one = SpeakerNormalizer().fit(X[:1])                # a single clip: centre only, finite output
    assert np.isfinite(one.transform(X)).all()


def test_single_emotion_speakers_get_pooled_statistics(rng):
    """A speaker who only ever sounds angry must not be centred on 'angry' (that erases the label)."""
    X, y, _ = clusters(rng, n_per=10, n_classes=2, dim=6)
    spk = np.array(["mixed"] * 5 + ["only_e0"] * 5 + ["mixed"] * 5 + ["only_e1"] * 5)
    Z = standardize_by_speaker(X, spk, y)
    gap = np.linalg.norm(Z[spk == "only_e0"].mean(0) - Z[spk == "only_e1"].mean(0))
    assert gap > 1.0                                   # the two emotions stay apart
    Z_unl = standardize_by_speaker(X, spk)             # without labels every speaker uses its own stats
    assert np.linalg.norm(Z_unl[spk == "only_e0"].mean(0) - Z_unl[spk == "only_e1"].mean(0)) < 1e-4
