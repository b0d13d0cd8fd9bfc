"""Sequence heads on frames: masking (a padded batch equals one-by-one), state round trips, every
architecture on a tiny real subset, objectives, the scikit-learn surface."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from adapt.errors import NotFittedError
from adapt.frames import pad_sequences, select_layers
from adapt.heads import make_head
from adapt.heads.objectives import grad_reverse
from adapt.heads.sequence import ARCHS, SequenceHead
from tests.adapt.frames.tiny import tiny_frames

SMALL = dict(hidden=16, max_iter=10, num_layers=5, batch_size=8)
MIXED = list(range(0, 48, 6))   # EmoDB (all 2 s) and EMOVO clips: lengths differ


@pytest.fixture(scope="module")
def data(data_dir):
    frames, y, corpora, speakers = tiny_frames()
    return [select_layers(f, "all") for f in frames], y, corpora, speakers


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    return {arch: SequenceHead(arch=arch, **SMALL).fit(X, y) for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_head_learns_the_tiny_real_subset(fitted, data, arch):
    X, y, _, _ = data
    head = fitted[arch]
    proba = head.predict_proba(X)
    assert proba.shape == (len(X), 4) and np.allclose(proba.sum(1), 1)
    assert head.score(X, y) > 0.5, f"{arch} did not fit its training clips (chance 0.25)"
    assert head.embed(X[:3]).shape == (3, head.module_.rep_dim)
    assert head.n_parameters() < 400_000


@pytest.mark.parametrize("arch", ARCHS)
def test_padded_batch_equals_one_by_one(fitted, data, arch):
    X, _, _, _ = data
    head = fitted[arch]
    some = [X[i] for i in MIXED]
    padded, lengths = pad_sequences(some)
    assert len(set(lengths.tolist())) > 1, "the subset must mix clip lengths"
    batch = head.predict_proba(padded, lengths=lengths)
    alone = np.concatenate([head.predict_proba([x]) for x in some])
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    mask = np.arange(padded.shape[1])[None, :] < lengths[:, None]
    np.testing.assert_allclose(head.embed(padded, mask=mask), head.embed(some), atol=1e-5)
    # the padding's values do not matter
    junk = padded.copy()
    junk[~mask] = 1e3
    np.testing.assert_allclose(head.predict_proba(junk, lengths=lengths), batch, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_state_round_trip_through_json(fitted, data, arch):
    X, _, _, _ = data
    head = fitted[arch]
    state = json.loads(json.dumps(head.get_state()))
    same = SequenceHead.from_state(state)
    np.testing.assert_allclose(same.predict_proba(X), head.predict_proba(X), atol=1e-6)
    assert same.get_params() == head.get_params()


def test_fitting_is_seeded_and_leaves_the_global_rng(data):
    X, y, _, _ = data
    before = torch.random.get_rng_state()
    a = SequenceHead(arch="attentive", hidden=16, max_iter=2, seed=3).fit(X, y)
    assert torch.equal(before, torch.random.get_rng_state())
    b = SequenceHead(arch="attentive", hidden=16, max_iter=2, seed=3).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)


def test_transformer_with_a_class_token(data):
    X, y, _, _ = data
    head = SequenceHead(arch="transformer", pooling="cls", **SMALL).fit(X, y)
    assert head.embed(X[:2]).shape == (2, 16)
    some = [X[i] for i in MIXED]
    padded, lengths = pad_sequences(some)
    np.testing.assert_allclose(head.predict_proba(padded, lengths=lengths),
                               np.concatenate([head.predict_proba([x]) for x in some]), atol=1e-5)


@pytest.mark.parametrize("objective", ["multitask", "adversarial"])
def test_objectives_train_with_auxiliary_targets(data, objective):
    X, y, corpora, speakers = data
    head = SequenceHead(arch="cnn", objective=objective, **SMALL)
    with pytest.raises(ValueError, match="needs auxiliary targets"):
        clone(head).fit(X, y)
    with pytest.raises(ValueError, match="one per clip"):
        clone(head).fit(X, y, aux={"corpus": corpora[:3]})
    head.fit(X, y, aux={"corpus": corpora, "speaker": speakers})
    assert head.score(X, y) > 0.5
    plain = SequenceHead(arch="cnn", **SMALL).fit(X, y)
    assert not np.allclose(head.predict_proba(X), plain.predict_proba(X))
    assert set(head.get_state()["weights"]) == set(plain.get_state()["weights"])   # aux heads are training-only


def test_gradient_reversal_flips_the_gradient():
    x = torch.ones(3, requires_grad=True)
    grad_reverse(x, 0.5).sum().backward()
    assert x.grad.tolist() == [-0.5, -0.5, -0.5]


def test_sklearn_surface_and_errors(data):
    X, y, _, _ = data
    head = make_head("sequence", arch="bigru", hidden=16, max_iter=1)
    assert clone(head).get_params()["arch"] == "bigru"
    with pytest.raises(NotFittedError):
        head.predict(X)
    with pytest.raises(ValueError, match="unknown arch"):
        SequenceHead(arch="lstm9").fit(X, y)
    with pytest.raises(ValueError, match="do not split"):
        SequenceHead(num_layers=7).fit(X, y)
    head.fit(X, y)
    with pytest.raises(ValueError, match="features per frame"):
        head.predict([x[:, :10] for x in X[:2]])
    with pytest.raises(ValueError, match="lengths must be in"):
        head.predict(np.zeros((2, 4, X[0].shape[1])), lengths=np.array([5, 1]))


@pytest.mark.parametrize("name", ["linear", "mlp"])
@pytest.mark.parametrize("objective", ["multitask", "adversarial"])
def test_pooled_heads_take_the_objectives_too(data, name, objective):
    X, y, corpora, _ = data
    pooled = np.stack([x.astype(np.float32).mean(0) for x in X])
    head = make_head(name, objective=objective, max_iter=10).fit(pooled, y, aux={"corpus": corpora})
    assert head.score(pooled, y) > 0.5
    same = type(head).from_state(json.loads(json.dumps(head.get_state())))
    np.testing.assert_allclose(same.predict_proba(pooled), head.predict_proba(pooled), atol=1e-6)
    assert make_head(name).get_params()["objective"] is None   # the default is unchanged


def test_input_pca_is_fit_on_training_frames_and_kept_in_the_state(data):
    X, y, _, _ = data
    X = [x[:, 384:768] for x in X[::2]]   # one layer of half the clips: a small SVD
    y = y[::2]
    head = SequenceHead(arch="attentive", hidden=16, max_iter=4, input_pca=24).fit(X, y)
    assert head.components_.shape == (24, 384) and head.module_.proj[0].in_features == 24
    same = SequenceHead.from_state(json.loads(json.dumps(head.get_state())))
    np.testing.assert_allclose(same.predict_proba(X), head.predict_proba(X), atol=1e-5)
    with pytest.raises(ValueError, match="exclude each other"):
        SequenceHead(input_pca=8, num_layers=5).fit(X, y)


@pytest.mark.parametrize("arch", ["attentive", "transformer", "bigru", "cnn"])
@pytest.mark.parametrize("options", [dict(utterance_norm="meanvar"), dict(input_stats=True),
                                     dict(utterance_norm="mean", input_stats=True), dict(frame_dropout=0.3)])
def test_utterance_norm_and_input_stats_keep_masking_and_the_state(data, arch, options):
    X, y, _, _ = data
    head = SequenceHead(arch=arch, **SMALL, **options).fit(X, y)
    if options.get("utterance_norm") != "mean":   # mean removal takes the clip's average frame away: slower to fit
        assert head.score(X, y) > 0.5, f"{arch} {options} did not fit its training clips (chance 0.25)"
    some = [X[i] for i in MIXED]
    padded, lengths = pad_sequences(some)
    junk = padded.copy()
    junk[~(np.arange(padded.shape[1])[None, :] < lengths[:, None])] = 1e3   # per-clip statistics must skip it
    batch = head.predict_proba(junk, lengths=lengths)
    np.testing.assert_allclose(batch, np.concatenate([head.predict_proba([x]) for x in some]), atol=1e-5)
    same = SequenceHead.from_state(json.loads(json.dumps(head.get_state())))
    assert same.get_params() == head.get_params() and same.utterance_norm == options.get("utterance_norm")
    assert same.input_stats == options.get("input_stats", False)
    assert same.frame_dropout == options.get("frame_dropout", 0.0)
    np.testing.assert_allclose(same.predict_proba(X), head.predict_proba(X), atol=1e-6)
    plain = SequenceHead(arch=arch, **SMALL).fit(X, y)
    assert not np.allclose(head.predict_proba(X), plain.predict_proba(X))   # the option changes the head


def test_input_stats_widen_the_representation_and_the_new_options_are_checked(data):
    X, y, _, _ = data
    head = SequenceHead(arch="attentive", hidden=16, max_iter=2, input_stats=True).fit(X, y)
    assert head.embed(X[:2]).shape == (2, 32) and head.module_.stats[0].in_features == 2 * X[0].shape[1]
    with pytest.raises(ValueError, match="utterance_norm must be one of"):
        SequenceHead(utterance_norm="speaker").fit(X, y)
    with pytest.raises(ValueError, match="input_stats must be True or False"):
        SequenceHead(input_stats="yes").fit(X, y)
    with pytest.raises(ValueError, match="frame_dropout must be"):
        SequenceHead(frame_dropout=1.0).fit(X, y)
