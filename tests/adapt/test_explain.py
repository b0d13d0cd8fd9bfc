"""adapt.explain on real clips: the torch head equals the numpy head, IG is complete, occlusion of
silence is zero, relevance covers the clip, deletion curves end where they must, cue Shapley values
are efficient."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("captum")

import adapt  # noqa: E402
from adapt.errors import UnknownLabelError, UnknownUserError  # noqa: E402
from adapt.explain.attribution import (  # noqa: E402
    deleted_baselines, deletion_masks, explain_time, integrated_gradients, layer_relevance, mel_baseline, occlusion,
    rereduced)
from adapt.explain.cues import CueModel, cue_family, permutation_cues  # noqa: E402
from adapt.explain.faithfulness import perturbation_curves, random_relevance  # noqa: E402
from adapt.explain.model import for_user, waveform_tensor  # noqa: E402
from adapt.explain.torch_head import TorchHead, scoring_params  # noqa: E402
from adapt.personal import Personalizer, TenantState, UserState  # noqa: E402


@pytest.fixture(scope="module")
def clips(ravdess):
    """Two short test clips of a RAVDESS speaker and four enrollment clips of the same speaker."""
    recs = list(ravdess.filter(speakers=["ravdess_07"]))
    by = {e: [str(r.path) for r in recs if r.emotion == e] for e in ("angry", "sad", "happy", "neutral")}
    enroll = [by["angry"][0], by["sad"][0], by["happy"][0], by["neutral"][0]]
    return {"test": [by["angry"][1], by["sad"][1]], "enroll": enroll, "labels": ["angry", "sad", "happy", "neutral"]}


@pytest.fixture(scope="module")
def personalizer(tmp_path_factory, clips):
    p = Personalizer.default(store=str(tmp_path_factory.mktemp("explain") / "p.db"))
    p.enroll("u7", clips["enroll"], clips["labels"])
    return p


@pytest.fixture(scope="module")
def short_wave(emodb):
    """The first 1.2 s of an EmoDB clip as a Waveform (short, so IG and occlusion stay fast)."""
    rec = next(r for r in emodb.filter(emotions=["angry"]))
    return adapt.load_audio(adapt.load_audio(rec.path).samples[:19200], sr=16000)


@pytest.mark.parametrize("user", [None, "u7"])
def test_torch_path_equals_personalizer_and_global_head(personalizer, clips, user):
    X = personalizer.embed(clips["test"])
    state = None if user is None else UserState.from_json(personalizer.export_user(user)["state"])
    probs = {}
    for i, clip in enumerate(clips["test"]):
        model, wave, pred = for_user(personalizer, user, clip)
        with torch.no_grad():
            P = model.probabilities(waveform_tensor(wave))[0].numpy()
        ref = np.array([pred.probabilities[c] for c in model.classes])
        np.testing.assert_allclose(P, ref, atol=1e-4)
        classes, Pn = personalizer.head.predict_proba(X[i:i + 1], state, None, model.classes)
        np.testing.assert_allclose(P, Pn[0], atol=1e-4)
        assert pred.personalized == (user is not None)
        probs[i] = dict(zip(model.classes, P))
    _PROBS[user] = probs
    if len(_PROBS) == 2:   # personalization changed the probabilities: two different heads were compared
        a, b = _PROBS[None][0], _PROBS["u7"][0]
        assert max(abs(a[c] - b[c]) for c in a if c in b) > 1e-3


_PROBS: dict = {}


def test_torch_head_matches_every_branch_on_real_embeddings(personalizer, clips):
    """Unenrolled, labelled user, observed-only user, tenant vote, and a label subset."""
    head = personalizer.head
    X = personalizer.embed(clips["enroll"] + clips["test"])
    labelled = UserState.empty(head.input_dim).add(X[:4], clips["labels"])
    observed = UserState.empty(head.input_dim).observe(X[:4])
    tenant = TenantState.empty(head.state_dim, head.dim)
    tenant = tenant.add_speaker(*head.speaker_head_sums(X[:4], clips["labels"]))
    cases = [(None, None, None), (labelled, None, None), (observed, None, None), (None, tenant, None),
             (labelled, tenant, ("sad", "angry")), (observed, tenant, None)]
    for state, ten, labels in cases:
        classes, P = head.predict_proba(X, state, ten, labels)
        th = TorchHead(scoring_params(head, state, ten, labels))
        assert th.classes == classes
        Pt = torch.softmax(th(torch.from_numpy(X)), dim=1).numpy()
        np.testing.assert_allclose(Pt, P, atol=1e-4)
    if hasattr(head, "calibration"):   # a calibrated head: the torch copy applies the path's temperature
        import dataclasses

        from adapt.personal.calibration import Calibration

        hot = dataclasses.replace(head, calibration=Calibration(temperature_unenrolled=2.5, temperature_enrolled=0.7))
        for state in (None, labelled):
            classes, P = hot.predict_proba(X, state)
            Pt = torch.softmax(TorchHead(scoring_params(hot, state))(torch.from_numpy(X)), dim=1).numpy()
            np.testing.assert_allclose(Pt, P, atol=1e-4)
    with pytest.raises(UnknownLabelError):
        scoring_params(head, None, None, ("no-such-emotion",))


def test_unknown_user_is_a_clear_error(personalizer, clips):
    with pytest.raises(UnknownUserError, match="no profile for user 'nobody'"):
        for_user(personalizer, "nobody", clips["test"][0])


@pytest.fixture(scope="module")
def model_and_wave(personalizer, short_wave):
    model, wave, pred = for_user(personalizer, None, short_wave)
    return model, wave, pred


def _log_p(model, mels, k):
    with torch.no_grad():
        return torch.log_softmax(model.head(model.layers_from_mel(mels).flatten(1)), dim=-1)[:, k]


def test_deleted_baselines_are_the_clip_with_windows_silenced(model_and_wave):
    """The default IG baselines are what the deletion curves produce: in each, the frames wholly
    inside a silenced window sit at the clip's floor (loudest bin - 2 normalized units, not the
    -1.5 of digital silence) when the loudest window is kept, and the kept windows are the clip."""
    model, wave, _ = model_and_wave
    x = waveform_tensor(wave)
    win = 3200
    K = int(np.ceil(x.shape[1] / win))
    masks = deletion_masks(K, 8, seed=3)
    assert masks.shape == (8, K) and masks.any(axis=1).all()
    assert masks.mean(axis=1)[:4].mean() < masks.mean(axis=1)[4:].mean()    # deleted fractions spread over (0, 1)
    with torch.no_grad():
        mel = model.mel(x)
        base = deleted_baselines(model, x, win, 8, seed=3)
    assert base.shape == (8, *mel.shape[1:])
    centre = int(mel[0].max(dim=0).values.argmax()) * 160       # the loudest frame spans centre +- 200 samples
    loudest = sorted({max(centre - 200, 0) // win, min(centre + 200, x.shape[1] - 1) // win})
    checked = 0
    for b, drop in zip(base, masks):
        if drop[loudest].any():
            continue
        assert float(b.max()) == pytest.approx(float(mel.max()), abs=1e-6)      # the normalization is kept
        for w in range(K - 1):
            frames = slice((w * win + 200) // 160 + 1, ((w + 1) * win - 200) // 160)
            if drop[w]:
                np.testing.assert_allclose(b[:, frames].numpy(), float(mel.max()) - 2.0, atol=1e-5)
                checked += 1
            elif not drop[w - 1] and not drop[w + 1] and w > 0:
                np.testing.assert_allclose(b[:, frames].numpy(), mel[0, :, frames].numpy(), atol=1e-4)
    assert checked >= 3
    # the single-baseline floor is the same value everywhere; digital silence is not it
    np.testing.assert_allclose(mel_baseline(mel, "floor").numpy(), float(mel.max()) - 2.0, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(mel_baseline(mel, "silence").numpy(), model.mel(torch.zeros_like(x)).numpy(),
                                   atol=1e-6)
    assert abs((float(mel.max()) - 2.0) - (-1.5)) > 0.5
    with pytest.raises(KeyError, match="unknown IG baseline"):
        mel_baseline(mel, "noise")


def test_integrated_gradients_is_complete_and_covers_the_clip(model_and_wave):
    model, wave, pred = model_and_wave
    r = integrated_gradients(model, wave, n_steps=32)
    assert r.target == pred.label and r.method == "ig" and r.attributed_to == "mel"
    x = waveform_tensor(wave)
    with torch.no_grad():
        mel = model.mel(x)
        base = deleted_baselines(model, x, 1600, 4, seed=0)
    # completeness of the default (log p, 4 deleted baselines): the attributions sum to
    # log p(clip) - mean log p(baseline), up to captum's convergence delta (mean over baselines)
    gap = float(_log_p(model, mel, r.target_index)[0] - _log_p(model, base, r.target_index).mean())
    assert abs(gap) > 1e-3
    assert abs(r.values.sum() - gap) == pytest.approx(r.delta, abs=1e-4)
    assert r.delta < 0.1 * abs(gap) + 0.02
    assert model.output == "prob"                      # attributing log p left the model as it was
    assert r.raw.shape == (80, len(wave.samples) // 160 // 2 * 2)
    # the windows tile the clip
    assert r.starts[0] == 0 and r.ends[-1] == pytest.approx(wave.duration_s)
    assert len(r.values) == int(np.ceil(wave.duration_s / 0.1 - 1e-9))
    np.testing.assert_allclose(r.starts[1:], r.ends[:-1])
    assert np.abs(r.values).max() > 0


def test_old_silence_baseline_and_the_other_variants_stay_reachable(model_and_wave):
    model, wave, _ = model_and_wave
    kw = {"n_steps": 16, "window_s": 0.2}
    old = integrated_gradients(model, wave, baseline="silence", output="prob", **kw)
    k = old.target_index
    with torch.no_grad():
        p_sil = float(model(torch.zeros(1, len(wave.samples)))[0, k])
        mel = model.mel(waveform_tensor(wave))
        p_floor = float(model.from_mel(mel_baseline(mel, "floor"))[0, k])
    # the old default: complete against p(clip) - p(silence); the floor against p(clip) - p(floor)
    assert abs(old.values.sum() - (old.probability - p_sil)) == pytest.approx(old.delta, abs=1e-4)
    floor = integrated_gradients(model, wave, baseline="floor", output="prob", target=k, **kw)
    assert abs(floor.values.sum() - (floor.probability - p_floor)) == pytest.approx(floor.delta, abs=1e-4)
    new = integrated_gradients(model, wave, target=k, **kw)
    assert not np.allclose(old.values, new.values, atol=1e-3)
    # log p from the floor: complete against log p(clip) - log p(floor)
    lg = integrated_gradients(model, wave, baseline="floor", target=k, **kw)
    gap = float(_log_p(model, mel, k)[0] - _log_p(model, mel_baseline(mel, "floor"), k)[0])
    assert abs(lg.values.sum() - gap) == pytest.approx(lg.delta, abs=1e-3)
    # the positive part per bin, re-summed from the raw attributions without a second IG run
    pos = integrated_gradients(model, wave, baseline="floor", output="prob", reduce="positive", target=k, **kw)
    assert (pos.values >= 0).all() and pos.values.sum() >= floor.values.sum()
    np.testing.assert_allclose(rereduced(model, floor, "positive").values, pos.values, atol=1e-6)
    np.testing.assert_allclose(rereduced(model, pos, "sum").values, floor.values, atol=1e-6)
    with pytest.raises(KeyError, match="unknown IG reduction"):
        integrated_gradients(model, wave, n_steps=2, reduce="abs")


def test_occlusion_of_a_silent_region_is_zero(model_and_wave):
    model, wave, _ = model_and_wave
    pad = np.zeros(12800, np.float32)            # 0.8 s of digital silence after the speech
    padded = np.concatenate([wave.samples, pad])
    r = occlusion(model, padded, window_s=0.2)
    n_speech = int(np.ceil(len(wave.samples) / 3200))
    silent = r.values[n_speech:]                  # windows lying wholly in the padding
    assert len(silent) >= 3
    assert np.abs(silent).max() < 1e-6          # float32 batching noise only
    assert np.abs(r.values[:n_speech]).max() > 1e-5
    assert r.ends[-1] == pytest.approx(len(padded) / 16000)


def test_deletion_and_insertion_curves_end_at_clip_and_silence(model_and_wave):
    model, wave, _ = model_and_wave
    r = explain_time(model, wave, "occlusion", window_s=0.2)
    rand = random_relevance(r, seed=0)
    assert not np.array_equal(np.argsort(-rand.values), np.argsort(-r.values))
    curves = perturbation_curves(model, wave, [r, rand], fractions=(0.0, 0.5, 1.0))
    assert [(c.method, c.kind) for c in curves] == [("occlusion", "deletion"), ("occlusion", "insertion"),
                                                   ("random:0", "deletion"), ("random:0", "insertion")]
    with torch.no_grad():
        p_sil = float(model(torch.zeros(1, len(wave.samples)))[0, r.target_index])
    for c in curves:
        start, end = (r.probability, p_sil) if c.kind == "deletion" else (p_sil, r.probability)
        assert c.probs[0] == pytest.approx(start, abs=1e-5) and c.probs[-1] == pytest.approx(end, abs=1e-5)
        assert 0.0 <= c.auc <= 1.0
    # deleting the single most relevant window by occlusion costs exactly its occlusion relevance
    one = perturbation_curves(model, wave, [r], kinds=("deletion",), fractions=(0.0, 1 / len(r.values)))[0]
    assert r.probability - one.probs[1] == pytest.approx(r.values.max(), abs=1e-4)


def test_layer_relevance_names_every_layer(model_and_wave):
    model, wave, pred = model_and_wave
    L = layer_relevance(model, wave, n_steps=32, output="prob")
    assert L.layers == ("L0", "L1", "L2", "L3", "L4") and L.target == pred.label
    with torch.no_grad():
        emb = model.embed(waveform_tensor(wave))
        k = model.classes.index(pred.label)
        gap = float(model.head_output(emb)[0, k] - model.head_output(model.head.mu[None])[0, k])
    assert L.integrated_gradients.sum() == pytest.approx(gap, abs=0.02)
    assert np.isfinite(L.ablation).all() and np.abs(L.ablation).max() > 0


def test_cue_model_on_real_egemaps(emodb, tmp_path):
    pytest.importorskip("opensmile")
    import opensmile

    recs = [r for r in emodb.filter(emotions=["angry", "sad"])][:24]
    X = adapt.embed(adapt.get_backbone("egemaps"), [r.path for r in recs])
    y = np.array([r.emotion for r in recs])
    names = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).feature_names
    m = CueModel.fit(X, y, feature_names=names)
    m.save(tmp_path / "cues.npz")
    m2 = CueModel.load(tmp_path / "cues.npz")
    np.testing.assert_allclose(m2.predict_proba(X), m.predict_proba(X))
    k = m.classes.index("angry")
    sv = m.attributions(X[0], "angry", n_samples=4)
    # efficiency: the Shapley values share out p(clip) - p(average training clip) exactly
    p_x, p_mean = m.predict_proba(X[:1])[0, k], m.predict_proba(m.mean[None])[0, k]
    assert sv.sum() == pytest.approx(p_x - p_mean, abs=1e-6)
    top = m.top_cues(X[0], "angry", k=3, n_samples=4)
    assert len(top) == 3 and top[0][3] == pytest.approx(sv.max())
    assert all(cue_family(n) != "other" for n in names)
    imp = permutation_cues(m, X, y, n_repeats=2, k=5)
    assert len(imp) == 5 and imp[0][2] >= imp[-1][2]


def test_cue_families():
    assert cue_family("F0semitoneFrom27.5Hz_sma3nz_amean") == "pitch"
    assert cue_family("loudnessPeaksPerSec") == "rhythm"
    assert cue_family("shimmerLocaldB_sma3nz_amean") == "voice quality"
    assert cue_family("F2bandwidth_sma3nz_amean") == "formants"
    assert cue_family("hammarbergIndexV_sma3nz_amean") == "spectral balance"
    assert cue_family("unknown") == "other"
