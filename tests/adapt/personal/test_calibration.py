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
