"""LinearHead, MLPHead and the classical heads on synthetic clusters: the shared head contract."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapt.errors import NotFittedError, UnknownLabelError
from adapt.heads import GMMHead, KNNHead, LinearHead, MLPHead, SVMHead, head_from_state, make_head

HEADS = {
    "linear": lambda: LinearHead(),
    "mlp": lambda: MLPHead(hidden=(32,), max_iter=30),
    "svm": lambda: SVMHead(),
    "knn": lambda: KNNHead(n_neighbors=3),
    "gmm": lambda: GMMHead(n_components=1),
}


def clusters(rng, n_per=25, n_classes=4, dim=12, spread=0.6):
    centres = rng.normal(size=(n_classes, dim)) * 2.0
    X = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    y = np.repeat([f"e{i}" for i in range(n_classes)], n_per).astype(object)
    return X, y


@pytest.fixture
def data(rng):
    X, y = clusters(rng)
    perm = rng.permutation(len(y))
    return X[perm[:60]], y[perm[:60]], X[perm[60:]], y[perm[60:]]


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_contract(name, data):
    Xtr, ytr, Xte, yte = data
    head = HEADS[name]()
    with pytest.raises(NotFittedError):
        head.predict(Xte)
    head.fit(Xtr, ytr)
    assert head.score(Xte, yte) > 0.9
    proba = head.predict_proba(Xte)
    assert proba.shape == (len(yte), len(head.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (head.classes_[proba.argmax(1)] == head.predict(Xte)).all()
    state = json.loads(json.dumps(head.get_state()))
    again = head_from_state(state)
    assert type(again) is type(head)
    np.testing.assert_allclose(again.predict_proba(Xte), proba, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="12"):
        head.predict(Xte[:, :4])
    with pytest.raises(UnknownLabelError, match="zzz"):
        head.score(Xte[:1], ["zzz"])
    with pytest.raises(ValueError):
        head.fit(Xtr, ytr[:-2])


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_learns_new_class_incrementally(name, data, rng):
    Xtr, ytr, Xte, yte = data
    head = HEADS[name]().fit(Xtr, ytr)
    centre = rng.normal(size=12) * 3.0
    Xn = (centre + 0.5 * rng.normal(size=(30, 12))).astype(np.float32)
    # replay a little old data with the new class, as any sensible incremental use does
    head.partial_fit(np.concatenate([Xn[:10], Xtr[:20]]), np.concatenate([["new"] * 10, ytr[:20]]))
    assert "new" in head.classes_.tolist()
    assert (head.predict(Xn[10:]) == "new").mean() >= 0.8
    assert head.score(Xte, yte) > 0.8


def test_linear_class_and_sample_weights(rng):
    X, y = clusters(rng, n_per=40, n_classes=2, spread=3.0)    # overlapping classes
    keep = np.concatenate([np.flatnonzero(y == "e0"), np.flatnonzero(y == "e1")[:5]])
    Xu, yu = X[keep], y[keep]
    plain = LinearHead(class_weight=None).fit(Xu, yu)
    balanced = LinearHead(class_weight="balanced").fit(Xu, yu)
    rec = lambda h: (h.predict(X[y == "e1"]) == "e1").mean()   # noqa: E731
    assert rec(balanced) > rec(plain)
    w = np.where(yu == "e1", 20.0, 1.0)
    weighted = LinearHead(class_weight=None).fit(Xu, yu, sample_weight=w)
    assert rec(weighted) > rec(plain)
    with pytest.raises(ValueError, match="sample_weight"):
        LinearHead().fit(Xu, yu, sample_weight=-w)


def test_linear_finetune_stays_near_anchor(data):
    """partial_fit pulls toward the previous weights: strong pull = almost no change."""
    Xtr, ytr, Xte, yte = data
    base = LinearHead().fit(Xtr, ytr)
    before = base.get_state()["weights"]["weight"]
    stiff = LinearHead.from_state(base.get_state())
    stiff.weight_decay = 100.0
    stiff.partial_fit(Xte[:4], yte[:4])
    loose = LinearHead.from_state(base.get_state())
    loose.weight_decay = 1e-6
    loose.partial_fit(Xte[:4], yte[:4])
    move = lambda h: np.abs(np.asarray(h.get_state()["weights"]["weight"]) - before).max()   # noqa: E731
    assert move(stiff) < move(loose)


def test_config_errors(data):
    """Parameters are stored as given and checked by fit (scikit-learn style), with the same messages."""
    Xtr, ytr, _, _ = data
    bad = [(LinearHead(class_weight="auto"), "class_weight"), (LinearHead(max_iter=0), "max_iter"),
           (MLPHead(hidden=()), "hidden"), (MLPHead(hidden=("a",)), "hidden"), (MLPHead(dropout=1.0), "dropout"),
           (SVMHead(kernel="poly"), "kernel"), (SVMHead(C=0), "C must be"), (KNNHead(n_neighbors=0), "n_neighbors"),
           (GMMHead(covariance_type="round"), "covariance_type")]
    for head, match in bad:
        assert head.get_params()   # constructing never raises
        with pytest.raises(ValueError, match=match):
            head.fit(Xtr, ytr)
        with pytest.raises(ValueError, match=match):
            head.partial_fit(Xtr, ytr)
    assert MLPHead(hidden=[8]).get_params()["hidden"] == [8]   # kept as given, not converted
    with pytest.raises(KeyError, match="known heads"):
        make_head("xgboost")
    assert isinstance(make_head("svm", C=2.0), SVMHead)


def test_gmm_and_knn_single_shot(rng):
    X, y = clusters(rng, n_per=1, n_classes=3)
    for head in (GMMHead(), KNNHead()):
        head.fit(X, y)
        assert (head.predict(X) == y).all()
