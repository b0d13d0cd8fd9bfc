"""Calibration fitted on training speakers only, and the fairness report, on real embeddings."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapt.metrics import unweighted_average_recall
from scenarios.calibration import CalibrationConfig, calibrate_head, cross_fit, fit_calibration, heldout_predictions
from scenarios.fairness import condition_from_predictions, speaker_spread

SMALL = ("emodb", "emovo", "urdu")


@pytest.fixture(scope="module")
def small(six_table):
    corpora = np.asarray(six_table.corpora).astype(str)
    return six_table.subset(np.isin(corpora, SMALL))


def test_calibration_is_a_function_of_the_training_speakers_only(small):
    corpora = np.asarray(small.corpora).astype(str)
    train = np.flatnonzero(corpora != "emovo")           # emovo's speakers are the test speakers
    test = np.flatnonzero(corpora == "emovo")
    cfg = CalibrationConfig(scheme="corpus")            # inner: emodb <-> urdu
    head = calibrate_head(small, train, cfg)
    # scramble everything about the test speakers: embeddings, labels; the fit must not move
    rng = np.random.default_rng(0)
    X = small.X.copy()
    X[test] = rng.normal(size=X[test].shape).astype(X.dtype) * 50
    y = small.y.copy()
    y[test] = rng.permutation(y[test])
    scrambled = small.with_X(X)
    object.__setattr__(scrambled, "y", y)
    head2 = calibrate_head(scrambled, train, cfg)
    assert head2.calibration == head.calibration
    np.testing.assert_array_equal(head2.means, head.means)
    held = cross_fit(small, train, cfg)
    assert set(held.speaker.tolist()) <= set(small.speakers[train].tolist())
    # every feature term carries the range of that feature on the cross-fitted training rows
    for p in ("unenrolled", "enrolled"):
        for name, (_, _, lo, hi) in head.calibration.terms(p == "enrolled").items():
            scored = np.isfinite(held.logits[np.arange(len(held)), held.y_index])   # the rows the fit used
            v = held.features[name][(held.path == p) & scored & np.isfinite(held.features[name])]
            assert (lo, hi) == pytest.approx((v.min(), v.max()))
    assert not set(held.speaker.tolist()) & set(small.speakers[test].tolist())


def test_calibration_improves_held_out_fit_and_reaches_the_target_on_training(small):
    from adapt.metrics import brier_score

    corpora = np.asarray(small.corpora).astype(str)
    train = np.flatnonzero(corpora != "emodb")
    cfg = CalibrationConfig(scheme="corpus")
    held = cross_fit(small, train, cfg)
    cal = fit_calibration(held, cfg)
    assert cal.temperature_unenrolled != 1.0 and cal.temperature_enrolled != 1.0
    for path in ("unenrolled", "enrolled"):
        h = held.select(held.path == path)
        # the fitted temperature is the Brier optimum on these predictions: better than T = 1
        assert brier_score(h.y, h.proba(cal), h.classes) <= brier_score(h.y, h.proba(), h.classes)
        info = cal.info[path]
        if info["feasible"]:
            assert info["selective_accuracy"] >= cfg.target
    # unenrolled and K = 5 enrolled rows score the same test clips of each speaker
    u, e = held.select(held.path == "unenrolled"), held.select((held.path == "enrolled") & (held.shots == 5))
    assert (u.speaker == e.speaker).all() and (u.y == e.y).all()
    assert set(held.shots[held.path == "enrolled"].tolist()) == set(cfg.shots_grid)
    assert (held.shots[held.path == "unenrolled"] == 0).all()
    # temperature scaling (no bias) never changes a prediction
    assert not cal.bias_unenrolled and not cal.bias_enrolled
    assert (held.proba(cal).argmax(1) == held.proba().argmax(1)).all()
    # the default form: the unenrolled T depends on the clip's distance, the enrolled T on K
    assert set(cal.terms_unenrolled) == {"log_distance"} and set(cal.terms_enrolled) == {"log_shots"}


def test_heldout_proba_is_what_the_head_predicts_for_that_user(small):
    """The calibrated probabilities the benchmark scores (``HeldOut.proba``) are the ones
    ``GlobalHead.predict_proba`` (the Personalizer's path) gives the same user and clips."""
    from dataclasses import replace

    from adapt.personal import Calibration, UserState
    from scenarios.fewshot.unseen import _first_k, speaker_splits

    corpora = np.asarray(small.corpora).astype(str)
    train = np.flatnonzero(corpora != "emovo")
    cfg = CalibrationConfig(scheme="corpus", shots_grid=(2,), bias=("enrolled",))
    head = calibrate_head(small, train, cfg)
    assert head.calibration.bias_enrolled and head.calibration.terms_enrolled
    spk = small.speakers[corpora == "emovo"][0]
    rows = np.flatnonzero(small.speakers == spk)
    held = heldout_predictions(head, small, rows, shots=2)
    labels = sorted(set(small.y[corpora == "emovo"].tolist()))
    (_, enroll, test, _), = list(speaker_splits(small, rows, 2, 0))
    e = _first_k(enroll, small.y, 2)
    ye = small.y[e].tolist()
    st = UserState.empty(head.input_dim).add(small.X[e], ye, custom=[c for c in ye if c not in head.classes])
    for path, state in (("unenrolled", None), ("enrolled", st)):
        avail = head.available_classes(state)
        cls_, P = head.predict_proba(small.X[test], state, None, [c for c in labels if c in avail])
        h = held.select(held.path == path)
        Ph = h.proba(head.calibration)[:, [h.classes.index(c) for c in cls_]]
        np.testing.assert_allclose(Ph, P, atol=1e-5)
    # an uncalibrated head: HeldOut.proba without a calibration is the same
    raw = replace(head, calibration=Calibration())
    cls0, P0 = raw.predict_proba(small.X[test], st, None, [c for c in labels if c in head.available_classes(st)])
    h = held.select(held.path == "enrolled")
    np.testing.assert_allclose(h.proba()[:, [h.classes.index(c) for c in cls0]], P0, atol=1e-5)


def test_worst_ten_percent_and_groups_by_hand():
    # speakers a (UA 1), b (UA 0.5), c (UA 0): 3 speakers -> the worst 10 % is one speaker, c
    y = ["x", "y", "x", "y", "x", "y"]
    pred = ["x", "y", "x", "x", "y", "x"]
    spk = ["a", "a", "b", "b", "c", "c"]
    s = speaker_spread(y, pred, spk)
    assert s.scores == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert s.n_worst == 1 and s.worst == 0.0 and s.mean == pytest.approx(0.5) and s.gap_worst == pytest.approx(0.5)
    c = condition_from_predictions("u", y, pred, speakers=spk, attributes={"gender": ["f", "f", "m", "m", "", ""]},
                                   n_boot=50)
    g = c.groupings[0]
    assert [x.group for x in g.groups] == ["f", "m"]              # unknown gender ("") is left out
    assert g.worst.group == "m" and g.worst.ua == 0.5 and g.gap == pytest.approx(0.5)
    assert c.ua.ua == pytest.approx(unweighted_average_recall(y, pred))
    assert speaker_spread(list("xy") * 10, list("xy") * 10, np.repeat([str(i) for i in range(20)], 1)).n_worst == 2


def test_report_fairness_command_on_real_clips(small, tmp_path):
    from typer.testing import CliRunner

    from adapt.cli import app

    res = CliRunner().invoke(app, ["report", "fairness", "--corpus", "emovo", "--train", "emodb,urdu",
                                   "--n-boot", "50", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    md = (tmp_path / "fairness_emovo.md").read_text()
    assert (tmp_path / "fairness_emovo.png").stat().st_size > 10_000
    assert "| unenrolled |" in md and "| K5 |" in md and "UA by gender" in md
    assert set(out["conditions"]) == {"unenrolled", "K5"}
    for c in out["conditions"].values():
        assert 0 <= c["worst10"] <= c["ua"] + 1e-9
    bad = CliRunner().invoke(app, ["report", "fairness", "--corpus", "nope", "--train", "emodb", "--out", str(tmp_path)])
    assert bad.exit_code != 0
