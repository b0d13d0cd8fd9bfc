"""Calibration metrics of ``adapt.metrics`` against values computed by hand."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapt.metrics import (brier_score, expected_calibration_error, reliability_curve, risk_coverage_curve,
                           selective_accuracy)

# four predictions, two classes: confidences 0.9 (right), 0.8 (wrong), 0.65 (right), 0.55 (wrong)
Y = np.array([0, 1, 1, 1])
P = np.array([[0.9, 0.1], [0.8, 0.2], [0.35, 0.65], [0.55, 0.45]])


def test_ece_by_hand():
    # 10 bins: 0.9 -> (0.8, 0.9], 0.8 -> (0.7, 0.8], 0.65 -> (0.6, 0.7], 0.55 -> (0.5, 0.6]; one each
    # |1 - 0.9| + |0 - 0.8| + |1 - 0.65| + |0 - 0.55| = 0.1 + 0.8 + 0.35 + 0.55 = 1.8, / 4
    assert expected_calibration_error(Y, P, n_bins=10) == pytest.approx(0.45)
    # 2 bins: all four in (0.5, 1]: mean confidence 0.725, accuracy 0.5
    assert expected_calibration_error(Y, P, n_bins=2) == pytest.approx(0.225)
    # 1 bin is |accuracy - mean confidence|
    assert expected_calibration_error(Y, P, n_bins=1) == pytest.approx(abs(0.5 - 0.725))


def test_ece_bins_are_right_closed():
    # a confidence exactly on an edge (0.7 with 10 bins) belongs to the bin ending there
    r = reliability_curve([0], [[0.7, 0.3]], n_bins=10)
    assert r["count"][6] == 1 and r["count"].sum() == 1
    assert np.isnan(r["accuracy"][0]) and r["accuracy"][6] == 1.0 and r["confidence"][6] == 0.7


def test_ece_with_named_classes_and_a_label_set():
    # a row not scored on a class has probability 0 there; the true label may be such a class
    P3 = np.array([[0.6, 0.4, 0.0], [0.0, 0.3, 0.7]])
    assert expected_calibration_error(["a", "a"], P3, ["a", "b", "c"], n_bins=5) == pytest.approx((0.4 + 0.7) / 2)


def test_brier_by_hand():
    # (0.1^2 + 0.1^2) + (0.8^2 + 0.8^2) + (0.35^2 + 0.35^2) + (0.55^2 + 0.55^2), / 4
    expected = (0.02 + 1.28 + 0.245 + 0.605) / 4
    assert brier_score(Y, P) == pytest.approx(expected)
    assert brier_score(["x"], [[1.0, 0.0]], ["x", "y"]) == 0.0
    assert brier_score(["y"], [[1.0, 0.0]], ["x", "y"]) == pytest.approx(2.0)


def test_brier_matches_scikit_learn():
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(0)
    Pr = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, size=50)
    assert brier_score(y, Pr) == pytest.approx(brier_score_loss(y, Pr, labels=[0, 1, 2, 3]))


def test_selective_accuracy_by_hand():
    assert selective_accuracy(Y, P, threshold=0.6) == (pytest.approx(2 / 3), 0.75)   # keeps 0.9, 0.8, 0.65
    assert selective_accuracy(Y, P, threshold=0.85) == (1.0, 0.25)
    assert selective_accuracy(Y, P, threshold=0.0) == (0.5, 1.0)
    acc, cov = selective_accuracy(Y, P, threshold=0.95)
    assert np.isnan(acc) and cov == 0.0
    with pytest.raises(ValueError, match="threshold"):
        selective_accuracy(Y, P, threshold=1.5)


def test_risk_coverage_curve_by_hand():
    r = risk_coverage_curve(Y, P)
    np.testing.assert_allclose(r["coverage"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(r["accuracy"], [1.0, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(r["threshold"], [0.9, 0.8, 0.65, 0.55])
    assert r["aurc"] == pytest.approx(np.mean([0.0, 0.5, 1 / 3, 0.5]))


def test_risk_coverage_keeps_ties_together():
    r = risk_coverage_curve([0, 1], [[0.7, 0.3], [0.7, 0.3]])
    np.testing.assert_allclose(r["accuracy"], [0.5, 0.5])


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="one entry per row"):
        expected_calibration_error([0], P)
    with pytest.raises(ValueError, match="column indices"):
        brier_score([0, 1, 2, 1], P)
    with pytest.raises(ValueError, match="not among classes"):
        brier_score(["a"], [[1.0, 0.0]], ["b", "c"])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(Y, P, n_bins=0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(2, 5), st.integers(0, 10_000))
def test_ece_is_bounded_and_zero_for_perfectly_calibrated_bins(n, c, seed):
    rng = np.random.default_rng(seed)
    Pr = rng.dirichlet(np.ones(c), size=n)
    y = rng.integers(0, c, size=n)
    ece = expected_calibration_error(y, Pr)
    assert 0.0 <= ece <= 1.0
    # always right with confidence 1: perfectly calibrated
    onehot = np.eye(c)[y]
    assert expected_calibration_error(y, onehot) == 0.0 and brier_score(y, onehot) == 0.0
    assert 0.0 <= risk_coverage_curve(y, Pr)["aurc"] <= 1.0
