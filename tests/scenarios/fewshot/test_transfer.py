"""Transfer candidates: every one trains and scores on the global head's features; the gradient
reversal reverses; group DRO leans toward the worst corpus; DANN transfers to real EMOVO."""
from __future__ import annotations

import numpy as np
import pytest

from scenarios.fewshot import transfer as tr


def _toy(rng, corpora=("a", "b", "c"), spk_per=3, per=12, emotions=("angry", "happy", "sad"), D=12):
    centres = {e: rng.normal(size=D) * 2 for e in emotions}
    X, y, spk, corp = [], [], [], []
    for c in corpora:
        shift = rng.normal(size=D) * 3
        for s in range(spk_per):
            voice = rng.normal(size=D)
            for i in range(per):
                e = emotions[i % len(emotions)]
                X.append(centres[e] + shift + voice + rng.normal(size=D)); y.append(e)
                spk.append(f"{c}_{s}"); corp.append(c)
    return np.asarray(X, np.float32), np.asarray(y), np.asarray(spk), np.asarray(corp)


@pytest.mark.parametrize("name", tr.CANDIDATES)
def test_each_candidate_trains_and_returns_probabilities_over_the_requested_labels(name, rng):
    X, y, spk, corp = _toy(rng)
    cfg = tr.TorchConfig(hidden=16, epochs=3, batch=32)
    scorer = tr.fit_candidate(name, X, y, spk, corp, dim=6, torch_config=cfg)
    assert scorer.classes == ("angry", "happy", "sad")
    for pool in (None, X[:5]):
        labels, P = scorer.predict_proba(X[:7], pool, ["sad", "angry"])
        assert labels == ("sad", "angry") and P.shape == (7, 2)
        assert np.all(P >= 0) and np.allclose(P.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        scorer.predict_proba(X[:2], None, ["boredom"])


def test_training_head_space_matches_the_global_head_on_a_labelled_speaker(rng):
    # a training speaker standardized with their own balanced moments = a user with exactly those moments
    X, y, spk, corp = _toy(rng)
    scorer = tr.fit_candidate("lda", X, y, spk, corp, dim=6)
    H = tr.training_head_space(scorer.head, X, y, spk, corp)
    rows = spk == "a_0"
    mu, var = tr._balanced_moments(X[rows].astype(np.float64), y[rows])
    ref = scorer.head.to_head_space(X[rows], mu.astype(np.float32), np.sqrt(var).astype(np.float32))
    assert np.allclose(H[rows], ref, atol=1e-3)


def test_user_head_space_uses_the_prior_without_clips_and_the_user_moments_with_them(rng):
    X, y, spk, corp = _toy(rng)
    head = tr.fit_candidate("lda", X, y, spk, corp, dim=6).head
    mu, sd = head.normalizer(0, None, None, labelled=False)
    assert np.allclose(tr.user_head_space(head, X[:3]), head.to_head_space(X[:3], mu, sd))
    assert not np.allclose(tr.user_head_space(head, X[:3], X[:10]), head.to_head_space(X[:3], mu, sd))


def test_gradient_reversal_is_identity_forward_and_reverses_the_gradient():
    import torch

    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    out = tr.grad_reverse(x, 0.5)
    assert torch.equal(out.detach(), x.detach())
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def test_group_dro_weights_move_toward_the_worst_group():
    q = np.full(3, 1 / 3)
    losses = np.array([0.2, 1.5, 0.7])
    for _ in range(20):
        q = tr.dro_update(q, losses, 0.1)
    assert np.isclose(q.sum(), 1.0) and np.argmax(q) == 1 and q[1] > 1 / 3 > q[0]
    assert np.all(np.diff(q[[0, 2, 1]]) > 0)       # ordered like the losses
    import torch

    qt = tr.dro_update(torch.full((2,), 0.5), torch.tensor([1.0, 0.0]), 1.0)
    assert qt[0] > qt[1] and torch.isclose(qt.sum(), torch.tensor(1.0))


def test_speaker_halves_are_disjoint_stratified_and_cover_every_clip():
    y = np.array(["a"] * 5 + ["b"] * 2 + ["c"])
    test, pool = tr.speaker_halves(y, seed=3)
    assert not set(test) & set(pool) and sorted([*test, *pool]) == list(range(len(y)))
    assert [(y[test] == c).sum() for c in "abc"] == [3, 1, 1]


def test_inner_selection_never_reads_the_held_out_corpus(rng):
    X, y, spk, corp = _toy(rng, corpora=("a", "b", "c", "d"), spk_per=2)
    from types import SimpleNamespace

    table = SimpleNamespace(X=X, y=y, speakers=spk, corpora=corp)
    cache = tr.ModelCache(table, dim=6, torch_config=tr.TorchConfig(hidden=8, epochs=2, batch=32))
    chosen, scored = tr.select_inner(table, "d", cache=cache, candidates=("lda", "logreg"))
    assert chosen["lda"] == {} and chosen["logreg"] in tr.GRIDS["logreg"]
    assert len(scored["logreg"]) == len(tr.GRIDS["logreg"])
    trained_on = {c for key in cache._models for c in key[0]}
    assert "d" not in trained_on
    rows = tr.loco_transfer(table, "d", chosen, cache=cache)
    assert {r.corpus for r in rows} == {"d"} and all(0 <= v <= 1 for r in rows for v in r.scores.values())


@pytest.mark.corpora
def test_dann_transfers_to_emovo_above_chance(six_table):
    corp = np.asarray(six_table.corpora).astype(str)
    cache = tr.ModelCache(six_table)
    rows = tr.loco_transfer(six_table, "emovo", {"dann": {"grl": 1.0}}, cache=cache, unlabelled=(0,))
    classes = set(np.asarray(six_table.y)[corp == "emovo"].tolist()) & set(cache.get(
        sorted(set(corp.tolist()) - {"emovo"}), "lda").classes)
    mean_ua = float(np.mean([r.scores["dann@U0"] for r in rows]))
    assert len(rows) == 6
    assert mean_ua > 1.0 / len(classes), (mean_ua, len(classes))
