"""Continual strategies train the sequence model on padded frame batches; buffers hold frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt.frames import select_layers
from strategies import make_strategy
from strategies.sequence import SequenceModel, frames_benchmark, pack_frames, unpack_frames
from tests.adapt.frames.tiny import tiny_frames


@pytest.fixture(scope="module")
def stream(data_dir):
    frames, y, corpora, _ = tiny_frames()
    X = [select_layers(f, "mean") for f in frames]
    classes = sorted(set(y.tolist()))
    t = np.array([classes.index(v) for v in y])
    exps = []
    for c in ("emodb", "emovo"):   # one experience per corpus (language-incremental, tiny)
        idx = np.flatnonzero(corpora == c)
        tr, te = idx[::2], idx[1::2]
        exps.append(([X[i] for i in tr], t[tr], [X[i] for i in te], t[te]))
    return X, exps, len(classes)


def test_pack_and_unpack_carry_the_mask():
    x = pack_frames([np.ones((2, 3)), np.ones((4, 3))], max_len=6)
    frames, lengths = unpack_frames(x)
    assert x.shape == (2, 6, 4) and lengths.tolist() == [2, 4] and frames.shape == (2, 4, 3)
    with pytest.raises(ValueError, match="truncate"):
        pack_frames([np.ones((7, 3))], max_len=6)


def test_model_on_packed_frames_equals_one_by_one(stream):
    X, _, n_classes = stream
    model = SequenceModel(arch="bigru", input_size=X[0].shape[1], num_classes=n_classes, hidden=16).eval()
    with torch.no_grad():
        batch = model(pack_frames(X[:5], max_len=200))
        alone = torch.cat([model(pack_frames([x])) for x in X[:5]])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["naive", "replay"])
def test_a_strategy_trains_over_two_experiences(stream, name):
    X, exps, n_classes = stream
    bench = frames_benchmark([(a, b) for a, b, _, _ in exps], [(c, d) for _, _, c, d in exps])
    flat = np.concatenate([x for x in exps[0][0]])
    model = SequenceModel(arch="cnn", input_size=X[0].shape[1], num_classes=n_classes, hidden=32,
                          mean=flat.mean(0), scale=flat.std(0) + 1e-6)
    opts = {"mem_size": 16} if name == "replay" else {}
    strategy = make_strategy(name, model, epochs=8, batch_size=8, lr=3e-3, **opts)
    before = [p.detach().clone() for p in model.parameters()]
    for exp in bench.train_stream:
        strategy.train(exp)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    if name == "replay":
        buffer = strategy.plugins[0].storage_policy.buffer if hasattr(strategy, "plugins") else None
        buffers = [p for p in strategy.plugins if hasattr(p, "storage_policy")]
        x0 = buffers[0].storage_policy.buffer[0][0]
        assert x0.shape == bench.train_stream[0].dataset[0][0].shape   # frames + mask channel, not audio
        assert x0[:, -1].sum() >= 1
        del buffer
    model.eval()
    with torch.no_grad():
        x_tr, y_tr = pack_frames(exps[1][0], max_len=bench.train_stream[0].dataset[0][0].shape[0]), exps[1][1]
        acc = (model(x_tr).argmax(1).numpy() == y_tr).mean()
    assert acc > 0.4, f"{name}: training accuracy {acc:.2f} on the last experience (chance 0.25)"
