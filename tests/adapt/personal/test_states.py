"""UserState / TenantState codecs: compact, backward compatible, and strict about what they read."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from adapt.errors import InvalidStateError
from adapt.personal import TenantState, UserState

LABELS = ["angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def _state(dim=1920, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(40, dim)) * scale).astype(np.float32)
    return UserState.empty(dim).add(X, LABELS * 5).observe(X[:7]).with_labelset(["angry", "sad"])


def test_blob_of_8_emotions_in_1920_dims_is_under_64_kB_and_roundtrips():
    st = _state()
    blob = st.to_bytes()
    assert len(blob) <= 64 * 1024
    back = UserState.from_bytes(blob)
    assert back.labels == st.labels and back.n == 47 and back.labelled == 40 and back.labelset == ("angry", "sad")
    assert np.allclose(back.sums, st.sums, rtol=2e-3, atol=2e-3)          # class means kept as float16
    assert np.allclose(back.mean, st.mean, atol=1e-6) and np.allclose(back.m2, st.m2, rtol=1e-5)


def test_values_too_large_for_float16_are_kept_as_float32():
    st = _state(dim=16, scale=1e5)
    back = UserState.from_bytes(st.to_bytes())
    assert np.isfinite(back.sums).all() and np.allclose(back.sums, st.sums, rtol=1e-6)


def test_format_1_blobs_of_the_first_release_still_decode():
    rng = np.random.default_rng(1)
    sums, mean, m2 = rng.normal(size=(2, 4)).astype("<f4"), rng.normal(size=4), rng.random(4)
    header = json.dumps({"v": 1, "dim": 4, "labels": ["angry", "sad"], "counts": [3.0, 2.0], "custom": [],
                         "n": 5}).encode()
    blob = b"SAU1" + struct.pack("<I", len(header)) + header + sums.tobytes() + mean.astype("<f8").tobytes() \
        + m2.astype("<f8").tobytes()
    st = UserState.from_bytes(blob)
    assert st.labels == ("angry", "sad") and st.n == 5 and st.labelset is None
    assert np.allclose(st.sums, sums) and np.allclose(st.mean, mean) and np.allclose(st.m2, m2)


@pytest.mark.parametrize("mutate", [lambda b: b"XXXX" + b[4:], lambda b: b[:40], lambda b: b[:8] + b"}" + b[9:]])
def test_corrupt_blobs_raise_invalid_state(mutate):
    with pytest.raises(InvalidStateError):
        UserState.from_bytes(mutate(_state(dim=8).to_bytes()))


def test_tampered_json_states_are_refused():
    d = _state(dim=8).to_json()
    for key, value in [("n", 3), ("labelset", "angry"), ("counts", [-1.0] * 8)]:
        bad = dict(d, **{key: value})
        with pytest.raises(InvalidStateError):
            UserState.from_json(bad)


def test_tenant_state_is_additive_and_roundtrips():
    rng = np.random.default_rng(2)
    t = TenantState.empty(6, 3)
    t = t.add_speaker(("angry", "sad"), np.array([2.0, 3.0]), rng.normal(size=(2, 3)), (np.ones(6), np.full(6, 2.0)))
    t = t.add_speaker(("sad", "boredom"), np.array([1.0, 4.0]), rng.normal(size=(2, 3)), None)
    assert t.labels == ("angry", "sad", "boredom") and t.counts.tolist() == [2, 4, 4] and t.n_speakers == 1
    mean, var = t.prior()
    assert np.allclose(mean, 1.0) and np.allclose(var, 2.0)
    for back in (TenantState.from_bytes(t.to_bytes()), TenantState.from_json(json.loads(json.dumps(t.to_json())))):
        assert back.labels == t.labels and np.allclose(back.head_sums, t.head_sums) and back.n_speakers == 1
    with pytest.raises(InvalidStateError):
        TenantState.from_bytes(b"SAU1" + t.to_bytes()[4:])
    assert TenantState.empty(4, 2).prior() is None


def test_any_imported_state_that_is_accepted_predicts_finite_probabilities(tmp_path_factory):
    """Fuzzing the exported JSON (hypothesis): an import either raises an ``adapt.errors`` error
    or the user's predictions are finite and sum to 1 (review defect 5: huge, zero and
    near-overflow counts and values made every later prediction NaN)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as hs

    from adapt.errors import SerAdaptError
    from adapt.personal import Personalizer
    from tests.helpers.personal import small_model

    emb, head = small_model()
    p = Personalizer(emb, head, ":memory:")
    rng = np.random.default_rng(0)
    labels = list(head.classes[:3]) * 2
    p.enroll_embeddings("seed", rng.normal(0, 1, (len(labels), head.input_dim)), labels)
    exported = p.export_user("seed")
    probe = rng.normal(0, 1, (2, head.input_dim))
    big = hs.one_of(hs.floats(allow_nan=False, allow_infinity=False), hs.sampled_from([0.0, 1e308, 3e38, -1e6, 1e-300]),
                    hs.integers(-10, 10**12))
    fields = hs.sampled_from(["counts", "sums", "mean", "m2", "n"])

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(field=fields, value=big, index=hs.integers(0, 5))
    def check(field, value, index):
        state = json.loads(json.dumps(exported["state"]))
        if field == "n":
            state["n"] = value
        elif field == "sums":
            state["sums"][index % len(state["sums"])][index] = value
        else:
            state[field][index % len(state[field])] = value
        try:
            p.import_user({"state": state}, user="fuzzed", overwrite=True)
        except SerAdaptError:
            return
        for pred in p.predict_embeddings("fuzzed", probe):
            values = np.array(list(pred.probabilities.values()))
            assert np.isfinite(values).all() and abs(values.sum() - 1) < 1e-6, (field, value)

    check()
