"""The frame-sequence baselines: one HMM per emotion and the from-scratch 2-D CNN on log-mel."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapt.frames import FrameOptions, extract_frames, pad_sequences, select_layers
from adapt.heads import head_from_state
from adapt.heads.hmm import HMMHead
from adapt.heads.spectrogram import SpectrogramCNNHead
from tests.adapt.frames.tiny import tiny_frames, tiny_records


@pytest.fixture(scope="module")
def whisper_mean(data_dir):
    frames, y, _, _ = tiny_frames()
    return [select_layers(f, "mean") for f in frames], y


@pytest.fixture(scope="module")
def logmel(data_dir):
    recs = tiny_records()
    frames = extract_frames("logmel", [r.path for r in recs], options=FrameOptions(rate_factor=2))
    return [select_layers(f, 0) for f in frames], np.array([r.emotion for r in recs])


def test_hmm_per_emotion_fits_and_round_trips(whisper_mean):
    X, y = whisper_mean
    head = HMMHead(n_states=2, n_components=8, n_iter=10).fit(X, y)
    scores = head.decision_function(X)
    assert scores.shape == (len(X), 4) and np.isfinite(scores).all()
    assert head.score(X, y) > 0.5
    same = head_from_state(json.loads(json.dumps(head.get_state())))
    np.testing.assert_allclose(same.decision_function(X), scores, rtol=1e-6, atol=1e-6)
    padded, lengths = pad_sequences(X[:5])
    np.testing.assert_allclose(head.decision_function(padded, lengths=lengths), scores[:5], atol=1e-6)
    with pytest.raises(ValueError, match="n_states"):
        HMMHead(n_states=0).fit(X, y)


def test_spectrogram_cnn_learns_masks_and_round_trips(logmel):
    X, y = logmel
    head = SpectrogramCNNHead(channels=4, max_iter=30, batch_size=8, lr=5e-3).fit(X, y)
    assert head.score(X, y) > 0.5
    some = X[::8]   # EmoDB and EMOVO clips: lengths differ
    padded, lengths = pad_sequences(some)
    assert len(set(lengths.tolist())) > 1
    np.testing.assert_allclose(head.predict_proba(padded, lengths=lengths),
                               np.concatenate([head.predict_proba([x]) for x in some]), atol=1e-5)
    same = SpectrogramCNNHead.from_state(json.loads(json.dumps(head.get_state())))
    np.testing.assert_allclose(same.predict_proba(X), head.predict_proba(X), atol=1e-6)
    assert head.embed(X[:2]).shape == (2, 32)
