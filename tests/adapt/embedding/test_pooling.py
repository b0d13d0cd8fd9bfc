"""Pooling, layer combination and learnable layer weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt.embedding.pooling import AttentiveStatsPooling, LayerWeights, combine_layers, pool, pooled_dim


def test_mean_and_meanstd_ignore_padding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 4, generator=g)
    lengths = torch.tensor([7, 3, 1])
    padded = x.clone()
    padded[:, 1, 3:] = 1e6  # garbage beyond the valid frames must not leak
    padded[:, 2, 1:] = -1e6
    for name in ("mean", "meanstd"):
        out = pool(padded, lengths, name)
        assert out.shape == (2, 3, pooled_dim(name, 4))
        for b, n in enumerate(lengths.tolist()):
            ref = x[:, b, :n]
            mu = ref.mean(1)
            torch.testing.assert_close(out[:, b, :4], mu)
            if name == "meanstd":
                torch.testing.assert_close(out[:, b, 4:], ref.std(1, unbiased=False).clamp_min(1e-5), atol=1e-4, rtol=1e-4)


def test_unknown_pooling_lists_known():
    with pytest.raises(KeyError, match="meanstd"):
        pool(torch.zeros(1, 1, 2, 2), torch.tensor([2]), "max")


def test_attentive_stats_pooling_masks_and_learns():
    torch.manual_seed(0)
    p = AttentiveStatsPooling(dim=4, hidden=8)
    x = torch.randn(2, 6, 4)
    lengths = torch.tensor([6, 2])
    out = p(x, lengths)
    x2 = x.clone()
    x2[1, 2:] = 99.0
    torch.testing.assert_close(p(x2, lengths), out)
    out.sum().backward()
    assert p.attention[0].weight.grad is not None


def test_layer_weights_start_uniform_and_train():
    lw = LayerWeights(num_layers=3)
    stacked = torch.stack([torch.full((2, 4), float(i)) for i in range(3)])
    torch.testing.assert_close(lw(stacked), torch.full((2, 4), 1.0))
    opt = torch.optim.SGD(lw.parameters(), lr=1.0)
    for _ in range(50):  # push the combination toward layer 2
        opt.zero_grad()
        loss = (lw(stacked) - 2.0).pow(2).mean()
        loss.backward()
        opt.step()
    assert int(lw.weights.argmax()) == 2
    with pytest.raises(ValueError, match="layers"):
        lw(torch.zeros(4, 2, 4))


def test_combine_layers_modes():
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    assert combine_layers(x, "all").shape == (2, 6)
    np.testing.assert_array_equal(combine_layers(x, -1), x[:, 2])
    np.testing.assert_array_equal(combine_layers(x, [0, 2]), np.concatenate([x[:, 0], x[:, 2]], 1))
    np.testing.assert_allclose(combine_layers(x, "mean"), x.mean(1))
    np.testing.assert_allclose(combine_layers(x, "weighted", [0, 0, 2]), x[:, 2])
    with pytest.raises(ValueError, match="out of range"):
        combine_layers(x, 3)
    with pytest.raises(ValueError, match="weights"):
        combine_layers(x, "weighted")
    with pytest.raises(TypeError):
        combine_layers(x, [0.5])
