"""adapt.metrics against hand-computed examples, scikit-learn, and bootstrap properties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from adapt import metrics as M

labels = st.lists(st.sampled_from(["angry", "sad", "happy", "neutral"]), min_size=1, max_size=60)


def test_hand_example():
    # angry: 2/3 recalled, sad: 1/1, happy: 0/2 -> UA = (2/3 + 1 + 0) / 3; WA = 3/6
    t = ["angry", "angry", "angry", "sad", "happy", "happy"]
    p = ["angry", "angry", "sad", "sad", "sad", "angry"]
    assert M.unweighted_average_recall(t, p) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert M.weighted_accuracy(t, p) == pytest.approx(0.5)
    # F1: angry P=2/3 R=2/3 -> 2/3; sad P=1/3 R=1 -> 0.5; happy 0
    assert M.macro_f1(t, p) == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert M.per_class_recall(t, p) == pytest.approx({"angry": 2 / 3, "happy": 0.0, "sad": 1.0})
    c = M.confusion(t, p, labels=["angry", "sad", "happy"])
    assert c.tolist() == [[2, 1, 0], [0, 1, 0], [1, 1, 0]]
    cn = M.confusion(t, p, labels=["angry", "sad", "happy", "fear"], normalize="true")
    np.testing.assert_allclose(cn.sum(axis=1), [1, 1, 1, 0])  # absent class: a zero row, no NaN


def test_ua_ignores_classes_only_predicted():
    # "fear" never occurs in y_true: UA averages over the true classes only (the SER convention)
    assert M.unweighted_average_recall(["a", "b"], ["a", "fear"]) == pytest.approx(0.5)


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from("ABCD"), st.sampled_from("ABCDE")), min_size=1, max_size=80))
def test_against_sklearn(pairs):
    t = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    present = np.unique(t)
    assert M.unweighted_average_recall(t, p) == pytest.approx(
        recall_score(t, p, labels=present, average="macro", zero_division=0))
    if set(p) <= set(t):  # balanced accuracy is UA whenever no extra class is predicted
        assert M.unweighted_average_recall(t, p) == pytest.approx(balanced_accuracy_score(t, p))
    assert M.weighted_accuracy(t, p) == pytest.approx(np.mean(t == p))
    assert M.macro_f1(t, p) == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    assert np.array_equal(M.confusion(t, p), confusion_matrix(t, p))
    assert np.allclose(M.confusion(t, p, normalize="true"),
                       np.nan_to_num(confusion_matrix(t, p, normalize="true")))


def test_input_errors():
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        M.unweighted_average_recall(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="0 predictions"):
        M.weighted_accuracy([], [])
    with pytest.raises(ValueError, match="1D"):
        M.macro_f1([["a"]], [["a"]])
    with pytest.raises(ValueError, match="normalize"):
        M.confusion(["a"], ["a"], normalize="all")


# ---- accuracy matrices ------------------------------------------------------------------------

R = np.array([
    [0.80, 0.10, 0.20],
    [0.60, 0.90, 0.30],
    [0.50, 0.70, 0.95],
])


def test_accuracy_matrix_hand_example():
    assert M.average_accuracy(R) == pytest.approx((0.50 + 0.70 + 0.95) / 3)
    # BWT: (R[2,0]-R[0,0] + R[2,1]-R[1,1]) / 2 = (-0.30 - 0.20) / 2
    assert M.backward_transfer(R) == pytest.approx(-0.25)
    # forgetting: exp0 max(0.80, 0.60) - 0.50 = 0.30; exp1 0.90 - 0.70 = 0.20
    assert M.forgetting(R) == pytest.approx(0.25)
    # FWT: (R[0,1]-b1 + R[1,2]-b2) / 2 with baseline (0, 0.25, 0.25) = (-0.15 + 0.05) / 2
    assert M.forward_transfer(R, [0.0, 0.25, 0.25]) == pytest.approx(-0.05)


def test_forgetting_uses_the_best_earlier_score():
    # experience 0 peaks after step 1 (0.9), not when first learned (0.7): forgetting 0.9 - 0.4
    r = [[0.7, 0.0, 0.0], [0.9, 0.8, 0.0], [0.4, 0.8, 0.9]]
    assert M.forgetting(r) == pytest.approx(((0.9 - 0.4) + 0.0) / 2)
    assert M.backward_transfer(r) == pytest.approx(((0.4 - 0.7) + 0.0) / 2)


def test_accuracy_matrix_edge_cases():
    assert M.forgetting([[0.7]]) == 0.0 and M.backward_transfer([[0.7]]) == 0.0
    assert M.average_accuracy([[0.7]]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="square"):
        M.average_accuracy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="square"):
        M.forgetting(np.zeros((0, 0)))
    with pytest.raises(ValueError, match="non-finite"):
        M.average_accuracy([[0.5, np.nan], [0.5, 0.5]])
    with pytest.raises(ValueError, match="baseline needs 3"):
        M.forward_transfer(R, [0.1, 0.2])


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.lists(st.lists(st.floats(0, 1), min_size=n, max_size=n), min_size=n, max_size=n)))
def test_accuracy_matrix_properties(rows):
    r = np.array(rows)
    # the best earlier score is at least the score right after learning: forgetting >= -BWT
    assert M.forgetting(r) >= -M.backward_transfer(r) - 1e-12
    assert 0.0 <= M.average_accuracy(r) <= 1.0


# ---- bootstrap ---------------------------------------------------------------------------------

def _synthetic(n_speakers: int, per: int, acc: float, seed: int):
    rng = np.random.default_rng(seed)
    t = rng.choice(["a", "b", "c"], size=n_speakers * per)
    wrong = rng.random(len(t)) > acc
    p = np.where(wrong, rng.choice(["a", "b", "c"], size=len(t)), t)
    g = np.repeat([f"s{i}" for i in range(n_speakers)], per)
    return t, p, g


def test_bootstrap_properties():
    t, p, g = _synthetic(12, 30, 0.7, 0)
    est, lo, hi = M.bootstrap_ci(t, p, g, n_boot=300, seed=1)
    assert est == pytest.approx(M.unweighted_average_recall(t, p))
    assert lo <= est <= hi and lo < hi
    assert M.bootstrap_ci(t, p, g, n_boot=300, seed=1) == (est, lo, hi)  # deterministic under seed
    _, lo90, hi90 = M.bootstrap_ci(t, p, g, n_boot=300, level=0.5, seed=1)
    assert lo <= lo90 <= hi90 <= hi  # a lower level gives a narrower interval on the same draws
    est_wa, lo_wa, hi_wa = M.bootstrap_ci(t, p, g, metric=M.weighted_accuracy, n_boot=200)
    assert est_wa == pytest.approx(M.weighted_accuracy(t, p)) and lo_wa <= hi_wa


def test_bootstrap_resamples_groups_not_clips():
    # one group: every resample is that group, so the interval collapses onto the estimate
    t, p, _ = _synthetic(1, 50, 0.6, 2)
    est, lo, hi = M.bootstrap_ci(t, p, ["only"] * len(t), n_boot=50)
    assert lo == hi == pytest.approx(est)
    # perfect predictions: a point interval at 1
    assert M.bootstrap_ci(t, t, np.arange(len(t)) % 5, n_boot=50) == (1.0, 1.0, 1.0)


def test_bootstrap_errors():
    t, p, g = _synthetic(3, 5, 0.5, 0)
    with pytest.raises(ValueError, match="one entry per prediction"):
        M.bootstrap_ci(t, p, g[:-1])
    with pytest.raises(ValueError, match="level"):
        M.bootstrap_ci(t, p, g, level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        M.bootstrap_ci(t, p, g, n_boot=0)


def test_summarize():
    t = ["a", "a", "b", "b"]
    p = ["a", "b", "b", "b"]
    s = M.summarize(t, p)
    assert s == {"ua": pytest.approx(0.75), "wa": pytest.approx(0.75), "macro_f1": pytest.approx(M.macro_f1(t, p)), "n": 4}
