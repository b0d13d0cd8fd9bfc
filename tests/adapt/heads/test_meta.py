"""learn2learn paths on tiny synthetic data: episodes, ProtoNet adapter, MAML / MetaSGD / ANIL."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytest.importorskip("learn2learn")

from adapt.errors import NotFittedError, UnknownLabelError  # noqa: E402
from adapt.heads import MAMLHead, ProtoNetHead, head_from_state  # noqa: E402
from adapt.heads.episodes import EpisodeSampler  # noqa: E402


def speakers_data(rng, n_spk=6, n_cls=4, per=8, dim=16, spk_shift=2.0, noise=0.7):
    """Class clusters plus a per-speaker offset (the nuisance personalization must remove)."""
    centres = rng.normal(size=(n_cls, dim)) * 1.5
    shift = rng.normal(size=(n_spk, dim)) * spk_shift
    X, y, spk = [], [], []
    for s in range(n_spk):
        for c in range(n_cls):
            X.append(centres[c] + shift[s] + noise * rng.normal(size=(per, dim)))
            y += [f"e{c}"] * per
            spk += [f"s{s}"] * per
    return np.concatenate(X).astype(np.float32), np.array(y, dtype=object), np.array(spk)


def test_personal_episodes_stay_within_one_speaker(rng):
    X, y, spk = speakers_data(rng)
    sampler = EpisodeSampler(X, y, spk, ways=3, shots=2, queries=3, mode="personal", seed=0)
    row_of = {X[i].tobytes(): i for i in range(len(X))}
    for ep in sampler.take(10):
        assert ep.support_x.shape == (6, 16) and ep.query_x.shape == (9, 16)
        rows_s = [row_of[r.numpy().tobytes()] for r in ep.support_x]
        rows_q = [row_of[r.numpy().tobytes()] for r in ep.query_x]
        assert not set(rows_s) & set(rows_q)                       # no clip in both
        assert set(spk[rows_s + rows_q]) == {ep.speakers[0]}       # one speaker
        # labels are global indices that match the clips' real labels
        assert [sampler.classes[i] for i in ep.support_y.tolist()] == y[rows_s].tolist()
        assert set(ep.query_y.tolist()) == set(ep.support_y.tolist())


def test_cross_episodes_use_two_speakers_and_are_seeded(rng):
    X, y, spk = speakers_data(rng)
    a = EpisodeSampler(X, y, spk, ways=2, shots=3, queries=2, mode="cross", seed=5)
    state = random.getstate()
    eps = a.take(5)
    assert random.getstate() == state            # the caller's random state is untouched
    b = EpisodeSampler(X, y, spk, ways=2, shots=3, queries=2, mode="cross", seed=5).take(5)
    for e1, e2 in zip(eps, b):
        assert e1.speakers[0] != e1.speakers[1]
        assert e1.speakers == e2.speakers
        assert bool((e1.support_x == e2.support_x).all())


def test_sampler_errors(rng):
    X, y, spk = speakers_data(rng, per=2)
    with pytest.raises(ValueError, match="no speaker"):
        EpisodeSampler(X, y, spk, shots=5, queries=5)
    with pytest.raises(ValueError, match="mode"):
        EpisodeSampler(X, y, spk, mode="global")
    with pytest.raises(ValueError, match="shots"):
        EpisodeSampler(X, y, spk, shots=0)


META = {
    "protonet": lambda: ProtoNetHead(dim=16, hidden=32, episodes=60, shots=3, queries=3),
    "maml": lambda: MAMLHead(algorithm="maml", hidden=(16,), episodes=40, meta_batch=2, shots=3, queries=3),
    "fomaml": lambda: MAMLHead(algorithm="maml", first_order=True, hidden=(16,), episodes=40, meta_batch=2,
                               shots=3, queries=3),
    "metasgd": lambda: MAMLHead(algorithm="metasgd", hidden=(16,), episodes=40, meta_batch=2, shots=3, queries=3),
    "anil": lambda: MAMLHead(algorithm="anil", hidden=(16,), episodes=40, meta_batch=2, shots=3, queries=3),
}


@pytest.mark.parametrize("name", sorted(META))
def test_meta_heads_adapt_to_a_new_speaker(name, rng):
    X, y, spk = speakers_data(rng)
    train, target = spk != "s5", spk == "s5"
    head = META[name]()
    with pytest.raises(NotFittedError):
        head.predict(X[:2])
    with pytest.raises(NotFittedError):
        head.fit(X[:4], y[:4])
    head.meta_fit(X[train], y[train], spk[train])
    rows = np.flatnonzero(target)
    shots = np.concatenate([rows[y[rows] == c][:3] for c in np.unique(y)])
    rest = np.setdiff1d(rows, shots)
    head.fit(X[shots], y[shots])
    ua = head.score(X[rest], y[rest])
    assert ua > 0.6, f"{name}: UA {ua:.2f} on the new speaker after 3 shots (chance 0.25)"
    proba = head.predict_proba(X[rest])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    again = head_from_state(json.loads(json.dumps(head.get_state())))
    np.testing.assert_allclose(again.predict_proba(X[rest]), proba, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="16"):
        head.predict(X[:2, :3])


def test_maml_rejects_unknown_labels_protonet_accepts_new_class(rng):
    X, y, spk = speakers_data(rng)
    maml = META["anil"]().meta_fit(X, y, spk)
    with pytest.raises(UnknownLabelError, match="new"):
        maml.fit(X[:3], ["new"] * 3)
    proto = META["protonet"]().meta_fit(X, y, spk)
    proto.fit(X[:8], y[:8]).partial_fit(X[8:11] + 10.0, ["new"] * 3)
    assert "new" in proto.classes_.tolist()


def test_meta_config_errors(rng):
    X, y, spk = speakers_data(rng)
    with pytest.raises(ValueError, match="algorithm"):
        MAMLHead(algorithm="reptile").meta_fit(X, y, spk)
    with pytest.raises(ValueError, match="episodes"):
        ProtoNetHead(episodes=0).meta_fit(X, y, spk)
    with pytest.raises(ValueError, match="hidden"):
        MAMLHead(hidden=(0,)).meta_fit(X, y, spk)
    with pytest.raises(ValueError, match="mode"):
        ProtoNetHead(mode="global").meta_fit(X, y, spk)
    with pytest.raises(ValueError, match="2 classes"):
        ProtoNetHead().meta_fit(X[:8], y[:8], spk[:8])
