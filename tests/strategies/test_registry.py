"""The strategy registry: every entry trains on a tiny scenario; errors name what is wrong; plugins keep what they claim."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt.nn import MLPClassifier
from scenarios.continual import language_incremental
from strategies import (
    STRATEGIES, EmbeddingReplayPlugin, EmbeddingShapeError, NCMHead, PrototypeReplayPlugin, describe,
    make_strategy, predict_scores,
)
from tests.helpers.continual import conflict_task

torch.set_num_threads(1)

EXPECTED = {"naive", "joint", "cumulative", "ewc", "online-ewc", "si", "lwf", "replay", "replay-balanced", "gem",
            "agem", "gdumb", "embedding-replay", "prototype-replay", "ncm", "slda"}


@pytest.fixture(scope="module")
def tiny():
    return language_incremental(conflict_task(n_per_speaker=20, n_tasks=3, speakers_per_task=3, seed=3),
                                normalize="none", seed=0)


def test_registry_holds_the_promised_strategies():
    assert EXPECTED <= set(STRATEGIES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_strategy_trains_on_a_tiny_scenario(tiny, name):
    torch.manual_seed(0)
    model = MLPClassifier(input_size=tiny.input_size, num_classes=len(tiny.classes), hidden=32)
    strategy = make_strategy(name, model, epochs=2, batch_size=16)
    before = [p.detach().clone() for p in model.parameters()]
    if STRATEGIES[name].trains_jointly:
        strategy.train(tiny.benchmark.train_stream)
    else:
        for experience in tiny.benchmark.train_stream:
            strategy.train(experience)
    x, y = tiny.test_data[0]
    scores = predict_scores(strategy, x)
    assert scores.shape == (len(x), len(tiny.classes))
    assert torch.isfinite(scores.max(1).values).all()
    acc = (scores.argmax(1) == y).float().mean().item()
    assert acc > 1 / len(tiny.classes) - 0.15  # trained on something, never a constant wreck
    if name not in ("ncm", "slda"):  # those classify the embeddings; the MLP is only a size hint
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_unknown_strategy_lists_known_names():
    with pytest.raises(KeyError) as err:
        make_strategy("ewcc", MLPClassifier(input_size=4, num_classes=2))
    assert "ewcc" in str(err.value) and "ewc" in str(err.value) and "replay" in str(err.value)


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="mem_size"):
        make_strategy("ewc", MLPClassifier(input_size=4, num_classes=2), mem_size=10)


@pytest.mark.parametrize("opts", [{"lr": 0}, {"epochs": 0}, {"batch_size": 0}, {"weight_decay": -1.0}])
def test_bad_common_options_raise_value_error(opts):
    with pytest.raises(ValueError, match=list(opts)[0]):
        make_strategy("naive", MLPClassifier(input_size=4, num_classes=2), **opts)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="Module"):
        make_strategy("naive", "mlp")


def test_describe_lists_options_with_defaults():
    d = describe("ewc")
    assert d["options"] == {"ewc_lambda": 100.0}
    assert d["common"]["epochs"] == 10


def test_embedding_replay_class_balanced_buffer():
    plugin = EmbeddingReplayPlugin(mem_size=12, policy="class_balanced", seed=0)
    x = torch.randn(100, 5)
    plugin.update(x[:60], torch.tensor([0] * 50 + [1] * 10))
    assert sorted(torch.bincount(plugin.buffer_y).tolist()) == [6, 6]
    plugin.update(x[60:], torch.tensor([2] * 40))
    assert torch.bincount(plugin.buffer_y).tolist() == [4, 4, 4]
    assert plugin.buffer_x.dtype == torch.float16
    assert plugin.memory_bytes == 12 * 5 * 2 + 12 * 8
    # stored rows are real embeddings of the right class, not copies of one row
    for row, label in zip(plugin.buffer_x.float(), plugin.buffer_y):
        match = torch.nonzero((x.half().float() - row).abs().sum(1) < 1e-6).flatten()
        assert len(match) == 1
        assert (label == 2) == (match.item() >= 60)


def test_embedding_replay_reservoir_is_uniform_over_the_stream():
    counts = np.zeros(2)
    for seed in range(40):
        plugin = EmbeddingReplayPlugin(mem_size=20, policy="reservoir", seed=seed)
        plugin.update(torch.randn(100, 3), torch.zeros(100, dtype=torch.long))
        plugin.update(torch.randn(300, 3), torch.ones(300, dtype=torch.long))
        counts += torch.bincount(plugin.buffer_y, minlength=2).numpy()
    share = counts[1] / counts.sum()
    assert 0.68 < share < 0.82  # 300 of 400 clips came from class 1


def test_embedding_replay_rejects_audio_shaped_batches():
    class Exp:
        class dataset:  # noqa: N801 - a stand-in for an experience's dataset
            @staticmethod
            def eval():
                return torch.utils.data.TensorDataset(torch.randn(4, 1, 16000), torch.zeros(4, dtype=torch.long))

    class Strategy:
        experience = Exp()

    with pytest.raises(EmbeddingShapeError, match="embed"):
        EmbeddingReplayPlugin(mem_size=4).after_training_exp(Strategy())
    with pytest.raises(ValueError, match="policy"):
        EmbeddingReplayPlugin(policy="fifo")


def test_prototype_replay_statistics_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4)).astype(np.float32)
    y = np.array([0] * 30 + [1] * 60)
    plugin = PrototypeReplayPlugin()
    plugin.update(torch.from_numpy(x[:50]), torch.from_numpy(y[:50]))  # class 1 arrives in two parts
    plugin.update(torch.from_numpy(x[50:]), torch.from_numpy(y[50:]))
    classes, means, stds = plugin.prototypes()
    assert classes.tolist() == [0, 1]
    for c in (0, 1):
        np.testing.assert_allclose(means[c].numpy(), x[y == c].mean(0), atol=1e-5)
        np.testing.assert_allclose(stds[c].numpy(), x[y == c].std(0, ddof=1), atol=1e-5)
    assert plugin.memory_bytes == 2 * 2 * 4 * 4


def test_ncm_head_means_and_unseen_classes():
    head = NCMHead(input_size=3, num_classes=4, cosine=False)
    x = torch.tensor([[1.0, 0, 0], [3.0, 0, 0], [0, 2.0, 0]])
    head.accumulate(x, torch.tensor([0, 0, 2]))
    scores = head(torch.tensor([[2.0, 0, 0], [0, 2.0, 0]]))
    assert scores.argmax(1).tolist() == [0, 2]
    assert torch.isinf(scores[:, [1, 3]]).all()  # never predicts a class it has not seen
    assert scores[0, 0].item() == pytest.approx(0.0)


def test_minibatch_slda_matches_pooled_class_statistics():
    from strategies import MinibatchStreamingLDA

    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = rng.integers(0, 3, 120)
    s = MinibatchStreamingLDA(input_size=6, num_classes=3)
    for start in range(0, 120, 25):  # uneven minibatches, classes split across them
        s.fit_batch(torch.from_numpy(x[start:start + 25]), torch.from_numpy(y[start:start + 25]))
    means = np.stack([x[y == c].mean(0) for c in range(3)])
    pooled = sum((x[y == c] - means[c]).T @ (x[y == c] - means[c]) for c in range(3)) / len(x)
    np.testing.assert_allclose(s.muK.numpy(), means, atol=1e-5)
    np.testing.assert_allclose(s.Sigma.numpy(), pooled, atol=1e-4)
    assert s.cK.tolist() == np.bincount(y, minlength=3).tolist()
