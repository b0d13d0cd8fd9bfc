"""Temperature scaling and the uncertain threshold stored with a ``GlobalHead`` (issue 15)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from adapt.personal import Calibration, GlobalHead, Personalizer, PersonalizerConfig, UserState
from adapt.personal.calibration import fit_temperature, uncertain_threshold


def _head(seed=0, D=12):
    rng = np.random.default_rng(seed)
    y = np.array(["angry", "sad", "happy"] * 40)
    X = rng.normal(size=(120, D)) + 1.5 * (y[:, None] == np.array(["angry", "sad", "happy"])[None, :D]).repeat(4, 1)[:, :D]
    return GlobalHead.fit(X.astype("float32"), y, speakers=np.repeat(list("abcd"), 30), dim=6), X, y


def test_temperature_recovers_the_one_that_generated_the_labels():
    rng = np.random.default_rng(0)
    L = rng.normal(scale=3.0, size=(4000, 4))
    P = np.exp(L / 2.5) / np.exp(L / 2.5).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=p) for p in P])
    assert fit_temperature(L, y, objective="nll") == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(L, y) == pytest.approx(2.5, rel=0.15)


def test_temperature_ignores_unscored_columns():
    rng = np.random.default_rng(1)
    L = rng.normal(scale=3.0, size=(2000, 3))
    P = np.exp(L) / np.exp(L).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in P])
    wide = np.hstack([L, np.full((2000, 2), -np.inf)])           # two classes outside the label set
    assert fit_temperature(wide, y) == pytest.approx(fit_temperature(L, y), rel=1e-3)
    with pytest.raises(ValueError, match="finite logit"):
        fit_temperature(wide, np.full(2000, 4))


def test_threshold_is_the_lowest_that_reaches_the_target():
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    ok = np.array([1, 1, 1, 0, 1, 0], bool)
    # kept accuracy from the top: 1, 1, 1, 0.75, 0.8, 0.667
    assert uncertain_threshold(conf, ok, 0.8, min_kept=1) == 0.6
    assert uncertain_threshold(conf, ok, 0.9, min_kept=1) == 0.8
    assert uncertain_threshold(conf, ok, 0.9, min_kept=4) == 1.0      # infeasible: everything flagged
    assert uncertain_threshold(conf, ok, 0.5, min_kept=1) == 0.5


def test_calibration_validates_and_defaults_to_identity():
    assert Calibration().temperature(True) == 1.0 and Calibration().threshold(False) is None
    assert not Calibration().fitted and Calibration(temperature_enrolled=2.0).fitted
    with pytest.raises(ValueError, match="temperature_enrolled"):
        Calibration(temperature_enrolled=0.0)
    with pytest.raises(ValueError, match="uncertain_unenrolled"):
        Calibration(uncertain_unenrolled=1.5)


def test_temperature_changes_confidence_not_the_argmax():
    head, X, y = _head()
    hot = replace(head, calibration=Calibration(temperature_unenrolled=3.0, temperature_enrolled=0.5))
    c0, P0 = head.predict_proba(X[:20])
    c1, P1 = hot.predict_proba(X[:20])
    assert c0 == c1 and (P0.argmax(1) == P1.argmax(1)).all()
    assert (P1.max(1) < P0.max(1)).all()                        # T = 3 softens every row
    _, L = head.predict_logits(X[:20])
    np.testing.assert_allclose(P1, np.exp(L / 3) / np.exp(L / 3).sum(1, keepdims=True), atol=1e-5)
    st = UserState.empty(head.input_dim).add(X[:6], y[:6].tolist())
    _, Pe0 = head.predict_proba(X[20:40], st)
    _, Pe1 = hot.predict_proba(X[20:40], st)                    # the enrolled path uses its own T (0.5: sharper)
    assert (Pe1.max(1) >= Pe0.max(1) - 1e-6).all()
    _, Praw = hot.predict_proba(X[:20], calibrated=False)
    np.testing.assert_allclose(Praw, P0, atol=1e-6)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_calibration_round_trips_and_old_files_load_uncalibrated(tmp_path, suffix):
    head, X, _ = _head()
    cal = Calibration(temperature_unenrolled=1.7, temperature_enrolled=1.2, uncertain_unenrolled=0.6,
                      uncertain_enrolled=0.5, target=0.8, info={"scheme": "corpus"})
    path = tmp_path / f"h{suffix}"
    replace(head, calibration=cal).save(path)
    assert GlobalHead.load(path).calibration == cal
    # a head written before calibration existed (no "calibration" key) loads with T = 1
    head.save(path)
    if suffix == ".json":
        d = json.loads(path.read_text())
        d.pop("calibration")
        path.write_text(json.dumps(d))
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
        meta.pop("calibration")
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    old = GlobalHead.load(path)
    assert old.calibration == Calibration()
    np.testing.assert_allclose(old.predict_proba(X[:5])[1], head.predict_proba(X[:5])[1], atol=1e-3)


def test_personalizer_flags_with_the_heads_threshold_per_path():
    head, X, y = _head()
    emb = lambda waves: X[: len(waves)]                          # noqa: E731 (never called: embeddings API)
    cal = Calibration(uncertain_unenrolled=1.0, uncertain_enrolled=0.0)
    p = Personalizer(emb, replace(head, calibration=cal), ":memory:")
    assert p.uncertain_threshold(False) == 1.0 and p.uncertain_threshold(True) == 0.0
    assert all(r.uncertain for r in p.predict_embeddings("new", X[:5]))
    p.enroll_embeddings("u", X[:6], y[:6].tolist())
    assert not any(r.uncertain for r in p.predict_embeddings("u", X[10:15]))
    # the config overrides the head; an uncalibrated head falls back to 0.4
    p2 = Personalizer(emb, replace(head, calibration=cal), ":memory:", config=PersonalizerConfig(uncertain_below=0.0))
    assert not any(r.uncertain for r in p2.predict_embeddings("new", X[:5]))
    assert Personalizer(emb, head, ":memory:").uncertain_threshold(False) == 0.4


# -- per-class bias and feature-dependent temperatures ----------------------------------------
from adapt.personal.calibration import FEATURES, calibration_features, fit_scaling  # noqa: E402


def _sample(P, rng):
    c = P.cumsum(1)
    return (rng.random((len(P), 1)) < c).argmax(1)


def test_scaling_recovers_a_known_temperature_and_bias():
    rng = np.random.default_rng(3)
    L = rng.normal(scale=4.0, size=(6000, 3))
    b_true = np.array([0.8, 0.0, -0.8])
    Z = L / 2.0 + b_true
    y = _sample(np.exp(Z) / np.exp(Z).sum(1, keepdims=True), rng)
    T, slopes, centres, b = fit_scaling(L, y, bias=True, l2=0.0, objective="nll")
    assert T == pytest.approx(2.0, rel=0.1)
    # a softmax bias is defined up to a constant: compare differences
    assert b[0] - b[2] == pytest.approx(1.6, abs=0.25) and b[0] - b[1] == pytest.approx(0.8, abs=0.25)
    assert slopes.shape == (0,) and centres.shape == (0,)
    # the penalty pulls the bias toward 0
    _, _, _, b_reg = fit_scaling(L, y, bias=True, l2=1.0)
    assert np.abs(b_reg).sum() < np.abs(b).sum()


def test_scaling_recovers_a_temperature_that_depends_on_a_feature():
    rng = np.random.default_rng(4)
    L = rng.normal(scale=4.0, size=(8000, 4))
    f = rng.uniform(-1, 1, size=8000)
    T_i = 2.0 * np.exp(0.7 * f)                     # log T = log 2 + 0.7 f (f has mean ~ 0)
    Z = L / T_i[:, None]
    y = _sample(np.exp(Z) / np.exp(Z).sum(1, keepdims=True), rng)
    T, slopes, centres, _ = fit_scaling(L, y, features=f[:, None], objective="nll")
    assert centres[0] == pytest.approx(f.mean())
    assert slopes[0] == pytest.approx(0.7, abs=0.15)
    assert T * np.exp(-slopes[0] * centres[0]) == pytest.approx(2.0, rel=0.12)


def test_scaling_keeps_unscored_columns_out():
    rng = np.random.default_rng(5)
    L = rng.normal(scale=3.0, size=(3000, 3))
    y = _sample(np.exp(L) / np.exp(L).sum(1, keepdims=True), rng)
    wide = np.hstack([L, np.full((3000, 1), -np.inf)])
    T, _, _, b = fit_scaling(wide, y, bias=True)
    assert b[3] == 0.0                              # no row scored on it: no bias
    cal = Calibration(temperature_unenrolled=T, bias_unenrolled={"a": b[0], "b": b[1], "c": b[2], "d": b[3]})
    Z = cal.apply(wide, ("a", "b", "c", "d"), False)
    assert np.isneginf(Z[:, 3]).all()
    np.testing.assert_allclose(Z[:, :3], L / T + b[:3])
    with pytest.raises(ValueError, match="features must be finite"):
        fit_scaling(L, y, features=np.full((3000, 1), np.nan))


def test_calibration_terms_and_bias_by_hand():
    cal = Calibration(temperature_unenrolled=2.0, temperature_enrolled=4.0,
                      bias_enrolled={"sad": 0.5}, terms_enrolled={"log_shots": [1.0, -0.5]},
                      terms_unenrolled={"log_distance": [0.0, 1.0]})
    # enrolled: T = 4 * exp(-0.5 * (log_shots - 1)); log_shots = 3 -> 4 * e^-1
    assert cal.temperature(True, {"log_shots": 3.0}) == pytest.approx(4.0 * np.exp(-1.0))
    assert cal.temperature(True) == 4.0 and cal.temperature(True, {"log_shots": float("nan")}) == pytest.approx(4.0)
    np.testing.assert_allclose(cal.temperature(False, {"log_distance": np.array([0.0, np.log(3.0)])}), [2.0, 6.0])
    assert cal.temperature(False, {"log_distance": np.array([100.0])})[0] == 200.0     # clipped to T_BOUNDS
    Z = cal.apply(np.array([[4.0, 2.0]]), ("angry", "sad"), True, {"log_shots": 1.0})
    np.testing.assert_allclose(Z, [[1.0, 0.5 + 0.5]])
    with pytest.raises(ValueError, match="unknown feature"):
        Calibration(terms_enrolled={"nope": [0.0, 1.0]})
    with pytest.raises(ValueError, match="bias_unenrolled"):
        Calibration(bias_unenrolled={"sad": float("inf")})
    # the new fields round-trip through a dict; an older dict without them loads without them
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    old = Calibration.from_dict({"temperature_unenrolled": 2.0, "temperature_enrolled": 3.0})
    assert old.bias_enrolled == {} and old.terms_enrolled == {} and old.terms_unenrolled == {}
    assert old.temperature(True, {"log_shots": 5.0}) == 3.0


def test_feature_terms_never_extrapolate_beyond_their_fitted_range():
    # [centre, slope, low, high]: x is clipped to [low, high] before the slope applies
    cal = Calibration(temperature_unenrolled=2.0, temperature_enrolled=4.0,
                      terms_unenrolled={"log_distance": [0.0, 1.0, -1.0, 2.0]},
                      terms_enrolled={"log_shots": [1.0, -0.5, 0.0, np.log(10.0)]})
    d = np.array([-30.0, -1.0, 0.5, 2.0, 9.0])
    np.testing.assert_allclose(cal.temperature(False, {"log_distance": d}),
                               2.0 * np.exp([-1.0, -1.0, 0.5, 2.0, 2.0]))
    # 1000 shots per emotion get the temperature of 10, the most the fit saw
    assert cal.temperature(True, {"log_shots": np.log(1000.0)}) == pytest.approx(
        4.0 * np.exp(-0.5 * (np.log(10.0) - 1.0)))
    # a two-number term (a file written before the ranges) still extrapolates, as it did
    two = Calibration(temperature_unenrolled=2.0, terms_unenrolled={"log_distance": [0.0, 1.0]})
    assert two.temperature(False, {"log_distance": np.array([-1.5])})[0] == pytest.approx(2.0 * np.exp(-1.5))
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    with pytest.raises(ValueError, match="low <= high"):
        Calibration(terms_unenrolled={"log_distance": [0.0, 1.0, 2.0, 1.0]})
    with pytest.raises(ValueError, match="centre, slope"):
        Calibration(terms_unenrolled={"log_distance": [0.0, 1.0, 2.0]})


def test_features_by_hand():
    head, X, y = _head()
    st = UserState.empty(head.input_dim).add(X[:9], y[:9].tolist())          # 3 clips of each of 3 emotions
    f = calibration_features(head, X[20:23], st)
    assert set(f) == set(FEATURES) and all(v.shape == (3,) for v in f.values())
    assert f["log_shots"][0] == pytest.approx(np.log(3.0))
    # log_distance by hand: the clip in head space (the enrolled standardization), from the centre
    mu, sd = head.normalizer(st.n, st.mean, st.m2, labelled=True)
    h = head.to_head_space(X[20:21], mu, sd)[0] - head.means.mean(0)
    assert f["log_distance"][0] == pytest.approx(np.log(h @ head.precision @ h / head.dim), rel=1e-4)
    # log_separation by hand: mean over the 3 pairs of d2 / ((1/3 + 1/3) d)
    M = [head.to_head_space((st.sums[i] / st.counts[i])[None], mu, sd)[0].astype(np.float64) for i in range(3)]
    d2 = [(M[a] - M[b]) @ head.precision @ (M[a] - M[b]) / ((2 / 3) * head.dim) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert f["log_separation"][0] == pytest.approx(np.log(np.mean(d2)), rel=1e-4)
    # unenrolled: the prior standardization; no user numbers
    f0 = calibration_features(head, X[:2], None)
    mu0, sd0 = head.normalizer(0, None, None, labelled=False)
    h0 = head.to_head_space(X[:1], mu0, sd0)[0] - head.means.mean(0)
    assert f0["log_distance"][0] == pytest.approx(np.log(h0 @ head.precision @ h0 / head.dim), rel=1e-4)
    assert np.isnan(f0["log_shots"]).all() and np.isnan(f0["log_separation"]).all()
    one = UserState.empty(head.input_dim).add(X[[0, 3]], [y[0], y[3]])       # one emotion: no separation
    assert y[0] == y[3] and np.isnan(calibration_features(head, X[:1], one)["log_separation"]).all()


def test_personalizer_applies_the_feature_dependent_calibration(tmp_path):
    from scipy.special import softmax as sp_softmax

    head, X, y = _head()
    cal = Calibration(temperature_unenrolled=2.0, temperature_enrolled=1.5, bias_enrolled={"sad": 0.3},
                      terms_unenrolled={"log_distance": [0.5, 0.4]}, terms_enrolled={"log_shots": [1.0, 0.2]})
    hot = replace(head, calibration=cal)
    p = Personalizer(lambda w: None, hot, tmp_path / "p.db")
    # unenrolled: per-clip temperatures from the clip's distance
    r = p.predict_embeddings("new", X[30:34])
    classes, L = head.predict_logits(X[30:34])
    f = calibration_features(head, X[30:34])
    T = 2.0 * np.exp(0.4 * (f["log_distance"] - 0.5))
    np.testing.assert_allclose([x.confidence for x in r], sp_softmax(L / T[:, None], axis=1).max(1), atol=1e-5)
    # enrolled: T from the user's clips per emotion (10 clips over 3 emotions), then the bias
    p.enroll_embeddings("u", X[:10], y[:10].tolist())
    st = p._state("u")
    r = p.predict_embeddings("u", X[40:44])
    classes, L = head.predict_logits(X[40:44], st)
    T = 1.5 * np.exp(0.2 * (np.log(10 / 3) - 1.0))
    Z = L / T + np.array([0.3 if c == "sad" else 0.0 for c in classes])
    np.testing.assert_allclose([x.confidence for x in r], sp_softmax(Z, axis=1).max(1), atol=1e-5)
    assert [x.label for x in r] == [classes[i] for i in Z.argmax(1)]
    # a label set keeps the unscored classes out
    r = p.predict_embeddings("u", X[40:42], labels=["angry", "happy"])
    assert set(r[0].probabilities) == {"angry", "happy"}
