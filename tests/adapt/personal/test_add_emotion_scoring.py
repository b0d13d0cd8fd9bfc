"""How a user's own emotion is scored (``Shrinkage.own_tau`` / ``own_offset`` / ``own_centre``, issue 18)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from adapt.personal import GlobalHead, Shrinkage, UserState, load_head

OFF = dict(own_tau=0.0, own_offset=0.0, own_centre=0.0)


def _world(seed=0, D=12):
    rng = np.random.default_rng(seed)
    classes = np.array(["angry", "sad", "happy", "calm"])
    y = np.resize(classes, 240)
    sig = np.zeros((240, D))
    sig[np.arange(240), np.searchsorted(np.sort(classes), y)] = 2.5
    X = (rng.normal(size=(240, D)) + sig).astype(np.float32)
    spk = np.repeat(list("abcdef"), 40)
    keep = y != "calm"                             # "calm" is the emotion the head never saw
    head = GlobalHead.fit(X[keep], y[keep], speakers=spk[keep], dim=8)
    return head, X, y


def _user(head, X, y, k=5):
    calm = np.flatnonzero(y == "calm")
    st = UserState.empty(head.input_dim).observe(X[:40]).add(X[calm[:k]], ["calm"] * k, custom=["calm"])
    return st, np.setdiff1d(np.arange(len(y)), calm[:k])


def _pred(head, X, st):
    classes, logits = head.predict_logits(X, st)
    return np.asarray(classes)[logits.argmax(1)]


def test_with_every_setting_off_the_own_emotion_is_the_users_plain_mean():
    head, X, y = _world()
    head = replace(head, shrinkage=replace(head.shrinkage, **OFF))
    st, test = _user(head, X, y)
    classes, logits = head.predict_logits(X[test], st)
    mu, sd = head.normalizer(st.n, st.mean, st.m2, labelled=True)
    means = np.vstack([head.means, head.to_head_space(st.sums[:1] / st.counts[:1, None], mu, sd)])
    assert classes[-1] == "calm"
    np.testing.assert_allclose(logits, head.logits(head.to_head_space(X[test], mu, sd), means), rtol=1e-4, atol=1e-3)


def test_the_offset_trades_new_class_predictions_monotonically():
    head, X, y = _world()
    st, test = _user(head, X, y)
    shares = []
    for b in (0.0, 2.0, 8.0, 64.0):
        h = replace(head, shrinkage=replace(head.shrinkage, **{**OFF, "own_offset": b}))
        shares.append(np.mean(_pred(h, X[test], st) == "calm"))
    assert shares == sorted(shares, reverse=True) and shares[-1] < shares[0]
    assert shares[-1] == 0.0


def test_own_centre_keeps_the_unlabelled_centre_for_a_user_with_only_own_emotions():
    head, X, y = _world()
    st, test = _user(head, X, y)
    on = replace(head, shrinkage=replace(head.shrinkage, **{**OFF, "own_centre": 1.0, "own_offset": 1e6}))
    # the own emotion is never chosen, so predictions are those of the unlabelled centre
    mu, sd = on.normalizer(st.n, st.mean, st.m2, labelled=False)
    expect = np.asarray(on.classes)[on.logits(on.to_head_space(X[test], mu, sd), on.means).argmax(1)]
    assert (_pred(on, X[test], st) == expect).all()
    # a labelled clip of a global emotion switches back to the labelled centre
    st2 = st.add(X[:1], [y[0]])
    mu2, _ = on.normalizer(st2.n, st2.mean, st2.m2, labelled=True)
    mu_off, _ = on.normalizer(st2.n, st2.mean, st2.m2, labelled=False)
    assert not np.allclose(mu2, mu_off)


def test_a_head_file_without_the_new_fields_loads_with_the_defaults(tmp_path):
    head, _, _ = _world()
    d = head.get_state()
    for name in OFF:
        del d["shrinkage"][name]                   # what a head written before issue 18 holds
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    old = load_head(path)
    assert old.shrinkage == replace(head.shrinkage, **{k: getattr(Shrinkage(), k) for k in OFF})
    tuned = replace(head, shrinkage=replace(head.shrinkage, own_tau=3.0, own_offset=1.5, own_centre=1.0))
    tuned.save(tmp_path / "new.npz")
    assert load_head(tmp_path / "new.npz").shrinkage == tuned.shrinkage
    with pytest.raises(ValueError, match="own_offset"):
        Shrinkage(own_offset=-1.0)
