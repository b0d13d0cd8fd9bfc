"""The heads inside scikit-learn: clone, Pipeline, GridSearchCV, cross_val_score by speaker, label
types, seeded randomness that leaves the global RNGs alone, and a prior that survives ``clone``."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline

from adapt.errors import NotFittedError, UnknownLabelError
from adapt.heads import GMMHead, KNNHead, LinearHead, MLPHead, PrototypeHead, SVMHead, head_from_state
from adapt.metrics import unweighted_average_recall
from adapt.normalization import SpeakerNormalizer

HEADS = {
    "prototype": lambda: PrototypeHead(),
    "linear": lambda: LinearHead(),
    "mlp": lambda: MLPHead(hidden=(16,), max_iter=15),
    "svm": lambda: SVMHead(),
    "knn": lambda: KNNHead(n_neighbors=3),
    "gmm": lambda: GMMHead(n_components=1),
}


def speakers_data(rng, n_spk=6, n_cls=3, per=6, dim=10):
    """Emotion clusters plus a per-speaker offset; labels are ints 0..n_cls-1."""
    centres = rng.normal(size=(n_cls, dim)) * 2.0
    shift = rng.normal(size=(n_spk, dim))
    X, y, spk = [], [], []
    for s in range(n_spk):
        for c in range(n_cls):
            X.append(centres[c] + shift[s] + 0.5 * rng.normal(size=(per, dim)))
            y += [c] * per
            spk += [f"s{s}"] * per
    return np.concatenate(X).astype(np.float32), np.array(y), np.array(spk)


def _rng_states():
    return torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


# -- parameters and clone ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(HEADS))
def test_clone_gives_an_unfitted_copy_with_the_same_params(name, rng):
    X, y, _ = speakers_data(rng)
    head = HEADS[name]().fit(X, y)
    copy = clone(head)
    assert copy.get_params() == head.get_params()
    assert not hasattr(copy, "classes_")
    with pytest.raises(NotFittedError):
        copy.predict(X)
    np.testing.assert_allclose(copy.fit(X, y).predict_proba(X), head.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_set_params_takes_effect_at_the_next_fit(rng):
    X, y, _ = speakers_data(rng)
    head = LinearHead().set_params(class_weight="auto")      # stored as given ...
    with pytest.raises(ValueError, match="class_weight"):    # ... and checked by fit
        head.fit(X, y)
    assert head.set_params(class_weight=None).fit(X, y).score(X, y) > 0.9


# -- label types -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(HEADS))
def test_labels_keep_their_type(name, rng):
    X, y, _ = speakers_data(rng)
    y_int = y + 10                                              # ints 10, 11, 12
    head = HEADS[name]().fit(X, y_int)
    assert head.classes_.tolist() == [10, 11, 12] and head.classes_.dtype.kind == "i"
    pred = head.predict(X)
    assert pred.dtype.kind == "i" and set(pred.tolist()) <= {10, 11, 12}
    again = head_from_state(json.loads(json.dumps(head.get_state())))
    assert again.classes_.tolist() == head.classes_.tolist() and again.predict(X).dtype.kind == "i"
    np.testing.assert_array_equal(again.predict(X), pred)
    # a new int class is appended after the fitted ones
    new = (X[:6] + 8.0).astype(np.float32)
    head.partial_fit(np.concatenate([new, X[::3]]), np.concatenate([[99] * 6, y_int[::3]]))
    assert head.classes_.tolist() == [10, 11, 12, 99]
    with pytest.raises(TypeError, match="int|number"):
        head.partial_fit(X[:2], ["a", "b"])                     # one head, one kind of label
    # strings (numpy <U or object) come back as an object array of str
    names = np.array(["angry", "happy", "sad"])[y]
    s_head = HEADS[name]().fit(X, names)
    assert s_head.classes_.dtype == object and s_head.classes_.tolist() == ["angry", "happy", "sad"]
    assert isinstance(s_head.predict(X[:1])[0], str)


def test_label_errors(rng):
    X, y, _ = speakers_data(rng)
    with pytest.raises(UnknownLabelError, match="empty label"):
        PrototypeHead().fit(X[:3], ["a", " ", "b"])
    with pytest.raises(TypeError, match="one kind"):
        LinearHead().fit(X[:3], np.array(["a", 1, "b"], dtype=object))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        SVMHead().fit(X[:3], [0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match="requires y"):
        KNNHead().fit(X[:3], None)
    # whole floats are class ids, and stay floats
    assert PrototypeHead().fit(X[:4], [1.0, 2.0, 1.0, 2.0]).classes_.dtype.kind == "f"


# -- score, decision_function ------------------------------------------------------------------
def test_score_is_unweighted_average_recall_not_accuracy(rng):
    X, y, _ = speakers_data(rng, n_cls=2)
    head = PrototypeHead(metric="euclidean").fit(X, y)
    Xt = np.concatenate([X[y == 0][:9], X[y == 1][:1] * 0 + X[y == 0][:1]])   # 10 clips: 9 of class 0
    yt = np.array([0] * 9 + [1])                                          # the class-1 clip looks like 0
    pred = head.predict(Xt)
    assert head.score(Xt, yt) == unweighted_average_recall(yt, pred)
    assert head.score(Xt, yt) != pytest.approx((pred == yt).mean())
    with pytest.raises(ValueError, match="sample_weight"):
        head.score(Xt, yt, sample_weight=np.ones(10))


def test_binary_decision_function_follows_sklearn(rng):
    X, y, _ = speakers_data(rng, n_cls=2)
    for head in (LinearHead().fit(X, y), PrototypeHead().fit(X, y), SVMHead().fit(X, y)):
        d = head.decision_function(X)
        assert d.shape == (len(X),)                              # [N] for two classes: classes_[1] vs [0]
        np.testing.assert_array_equal(head.classes_[(d > 0).astype(int)], head.predict(X))
        logp = head.predict_log_proba(X)
        assert logp.shape == (len(X), 2)
        np.testing.assert_allclose(np.exp(logp), head.predict_proba(X), rtol=1e-6, atol=1e-9)
    X3, y3, _ = speakers_data(rng, n_cls=3)
    assert LinearHead().fit(X3, y3).decision_function(X3).shape == (len(X3), 3)


def test_linear_sample_weight_is_repetition(rng):
    """An integer weight is the same as repeating the clip (loss and input statistics)."""
    X, y, _ = speakers_data(rng)
    w = rng.integers(0, 3, size=len(y))
    w[:3] = 1                                                   # every class keeps some weight
    weighted = LinearHead(class_weight=None, max_iter=200).fit(X, y, sample_weight=w)
    rep = np.repeat(np.arange(len(y)), w)
    repeated = LinearHead(class_weight=None, max_iter=200).fit(X[rep], y[rep])
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=1e-3)
    with pytest.raises(ValueError, match="zero"):
        LinearHead().fit(X, y, sample_weight=np.zeros(len(y)))


def test_class_weight_dict(rng):
    X, y, _ = speakers_data(rng, n_cls=2)
    X = X + rng.normal(size=X.shape).astype(np.float32) * 3.0     # overlapping classes
    favour_1 = LinearHead(class_weight={0: 1.0, 1: 50.0}).fit(X, y)
    favour_0 = LinearHead(class_weight={0: 50.0, 1: 1.0}).fit(X, y)
    assert (favour_1.predict(X) == 1).mean() > (favour_0.predict(X) == 1).mean()
    with pytest.raises(ValueError, match="class_weight"):
        LinearHead(class_weight={0: -1.0}).fit(X, y)


# -- randomness --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: MLPHead(hidden=(16,), max_iter=10, dropout=0.3), lambda: LinearHead(),
                                  lambda: GMMHead(n_components=2)], ids=["mlp", "linear", "gmm"])
def test_fit_is_seeded_and_leaves_global_rng_alone(make, rng):
    X, y, _ = speakers_data(rng)
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    before = _rng_states()
    a = make().fit(X, y)
    a.partial_fit(X[:5], y[:5])
    after = _rng_states()
    assert torch.equal(before[0], after[0]) and (before[1] == after[1]).all() and before[2] == after[2]
    b = make().fit(X, y).partial_fit(X[:5], y[:5])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))      # bit-identical
    if isinstance(a, MLPHead):
        c = MLPHead(hidden=(16,), max_iter=10, dropout=0.3, seed=1).fit(X, y)
        assert not np.array_equal(a.module_[0].weight.detach().numpy(), c.module_[0].weight.detach().numpy())


def test_meta_fit_is_seeded_and_leaves_global_rng_alone(rng):
    pytest.importorskip("learn2learn")
    from adapt.heads import MAMLHead, ProtoNetHead

    X, y, spk = speakers_data(rng)
    for make in (lambda: ProtoNetHead(dim=8, hidden=16, episodes=10, shots=2, queries=2),
                 lambda: MAMLHead(algorithm="maml", hidden=(8,), episodes=4, meta_batch=2, shots=2, queries=2)):
        before = _rng_states()
        a = make().meta_fit(X, y, spk).fit(X[::4], y[::4])
        after = _rng_states()
        assert torch.equal(before[0], after[0]) and (before[1] == after[1]).all() and before[2] == after[2]
        b = make().meta_fit(X, y, spk).fit(X[::4], y[::4])
        np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
        assert a.classes_.dtype.kind == "i"
        # clone is unfitted: it must be meta-trained again before fit
        with pytest.raises(NotFittedError, match="meta_fit"):
            clone(a).fit(X[::4], y[::4])


# -- a fitted prior and clone ------------------------------------------------------------------
def test_frozen_prior_survives_clone(rng):
    X, y, spk = speakers_data(rng)
    global_head = PrototypeHead().fit(X[spk != "s0"], y[spk != "s0"])
    user_X, user_y = X[spk == "s0"][::4], y[spk == "s0"][::4]
    head = PrototypeHead(prior=FrozenEstimator(global_head), shrinkage=2.0).fit(user_X, user_y)
    copy = clone(head)
    assert copy.prior is head.prior                              # FrozenEstimator is kept as is by clone
    np.testing.assert_allclose(copy.fit(user_X, user_y).predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(copy.predict(X), head.predict(X))
    # same prototypes as with the plain prior
    plain = PrototypeHead(prior=global_head, shrinkage=2.0).fit(user_X, user_y)
    np.testing.assert_allclose(plain.prototypes_, head.prototypes_)
    # clone of a plain fitted prior drops its fit: fit says what to do
    with pytest.raises(NotFittedError, match="FrozenEstimator"):
        clone(plain).fit(user_X, user_y)
    # the state keeps the frozen form
    again = head_from_state(json.loads(json.dumps(head.get_state())))
    assert isinstance(again.prior, FrozenEstimator)
    np.testing.assert_allclose(again.predict_proba(X), head.predict_proba(X))
    # and GridSearchCV can tune the shrinkage toward it
    search = GridSearchCV(PrototypeHead(prior=FrozenEstimator(global_head)), {"shrinkage": [0.5, 4.0]},
                          cv=GroupKFold(2)).fit(X[spk == "s0"], y[spk == "s0"],
                                                 groups=np.arange(int((spk == "s0").sum())) % 2)
    assert search.best_params_["shrinkage"] in (0.5, 4.0)


# -- Pipeline, GridSearchCV, cross_val_score by speaker -----------------------------------------
def _sklearn_tour(X, y, groups, *, min_ua: float):
    pipe = Pipeline([("norm", SpeakerNormalizer()), ("head", LinearHead())])
    assert pipe.fit(X, y).score(X, y) > min_ua                  # Pipeline.score is the head's UA
    assert pipe.predict(X[:3]).dtype == np.asarray(pipe.named_steps["head"].classes_).dtype
    scores = cross_val_score(LinearHead(), X, y, groups=groups, cv=GroupKFold(3))
    assert scores.shape == (3,) and scores.min() > min_ua
    search = GridSearchCV(pipe, {"head__weight_decay": [1e-3, 1e-1]}, cv=GroupKFold(3))
    search.fit(X, y, groups=groups)
    assert search.best_params_["head__weight_decay"] in (1e-3, 1e-1) and search.best_score_ > min_ua
    assert 0 <= search.score(X, y) <= 1
    protos = cross_val_score(PrototypeHead(), X, y, groups=groups, cv=GroupKFold(3))
    assert protos.min() > min_ua - 0.2


def test_pipeline_gridsearch_cross_val_on_synthetic_speakers(rng):
    X, y, spk = speakers_data(rng)
    _sklearn_tour(X, y, spk, min_ua=0.8)


@pytest.fixture(scope="module")
def emodb_features(data_dir):
    from scenarios.tables import corpus_features

    return corpus_features("emodb")


def test_pipeline_gridsearch_cross_val_on_real_emodb(emodb_features):
    fs = emodb_features
    _sklearn_tour(fs.X, fs.y, fs.speakers, min_ua=0.6)          # 7 emotions: chance is 0.14


# -- states written before the heads became estimators -----------------------------------------
def test_states_written_by_the_previous_code_still_load():
    """``data/v1_states.json``: one state per head written by the code before this change (commit
    750aed3), with its ``predict_proba``; the current code must load each and predict the same."""
    from pathlib import Path

    saved = json.loads((Path(__file__).parent / "data" / "v1_states.json").read_text())
    X = np.asarray(saved.pop("X"), dtype=np.float32)
    for name, entry in saved.items():
        if name in ("protonet", "maml"):
            pytest.importorskip("learn2learn")
        head = head_from_state(entry["state"])
        assert head.classes_.dtype == object, name                 # old states hold str labels
        np.testing.assert_allclose(head.predict_proba(X), entry["proba"], atol=1e-5, err_msg=name)
        again = head_from_state(json.loads(json.dumps(head.get_state())))
        np.testing.assert_allclose(again.predict_proba(X), entry["proba"], atol=1e-5, err_msg=name)
