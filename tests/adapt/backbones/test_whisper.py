"""The offline default backbone: pinned real Whisper tiny.en weights on real clips."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from adapt.audio import load_audio
from adapt.backbones import get_backbone, pad_batch
from adapt.backbones.ct2 import CT2FormatError, read_ct2_model
from adapt.backbones.whisper import WHISPER_TINY_EN, WhisperBackbone, whisper_log_mel
from adapt.errors import BackboneNotAvailableError


@pytest.fixture(scope="module")
def whisper():
    torch.set_num_threads(2)
    return get_backbone()


@pytest.fixture(scope="module")
def ravdess_waves(ravdess):
    # three speakers, different emotions, different lengths
    picks = [ravdess.records[i] for i in (0, 100, 700)]
    return [load_audio(r.path).samples for r in picks]


def test_default_is_pinned_whisper_tiny(whisper):
    assert whisper.spec.name == "whisper-tiny.en"
    assert (whisper.spec.num_layers, whisper.spec.dim, whisper.spec.sample_rate) == (5, 384, 16000)
    assert WHISPER_TINY_EN.digest() == WHISPER_TINY_EN.sha256
    assert all(not p.requires_grad for p in whisper.parameters())


def test_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_ADAPT_CACHE", str(tmp_path))
    bad = dataclasses.replace(WHISPER_TINY_EN, sha256="0" * 64)
    with pytest.raises(BackboneNotAvailableError, match="sha256"):
        WhisperBackbone(source=bad)


def test_missing_package_says_how_to_install():
    ghost = dataclasses.replace(WHISPER_TINY_EN, name="ghost", files=(("no_such_pkg_xyz", "model/model.bin"),))
    with pytest.raises(BackboneNotAvailableError, match="pip install"):
        WhisperBackbone(source=ghost)


def test_ct2_reader_rejects_garbage(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"\xff\xff\xff\xff garbage")
    with pytest.raises(CT2FormatError):
        read_ct2_model(f)
    f.write_bytes(b"\x06\x00\x00\x00\x05\x00ab")  # truncated string
    with pytest.raises(CT2FormatError):
        read_ct2_model(f)


def test_ct2_reader_reads_encoder_only():
    spec, tensors = read_ct2_model(WHISPER_TINY_EN.paths()[0], prefix="encoder/")
    assert spec == "WhisperSpec"
    assert all(k.startswith("encoder/") for k in tensors)
    assert tensors["encoder/conv1/weight"].shape == (384, 80, 3)
    assert tensors["encoder/conv1/weight"].dtype == np.float32


def test_log_mel_matches_whisper_recipe(ravdess_waves):
    wave = torch.from_numpy(ravdess_waves[0])
    mel = whisper_log_mel(wave)
    assert mel.shape[0] == 80 and mel.shape[1] % 2 == 0
    assert mel.shape[1] in (len(wave) // 160, len(wave) // 160 - 1)
    # log10 power clamped to max - 8, then (x + 4) / 4: the dynamic range is exactly 2 after scaling
    assert float(mel.max() - mel.min()) <= 2.0 + 1e-5


def test_real_clips_give_sane_deterministic_embeddings(whisper, ravdess_waves):
    with torch.inference_mode():
        outs = [whisper(torch.from_numpy(w)[None]) for w in ravdess_waves]
        again = whisper(torch.from_numpy(ravdess_waves[0])[None])
    for w, o in zip(ravdess_waves, outs):
        assert o.features.shape[:2] == (5, 1)
        assert int(o.lengths[0]) == (len(w) // 160 - (len(w) // 160) % 2) // 2  # 50 frames per second
        assert torch.isfinite(o.features).all()
    assert torch.equal(outs[0].features, again.features)
    pooled = [o.features[:, 0].mean(1) for o in outs]  # (L, D)
    # different clips differ, and layers differ from each other
    assert float((pooled[0] - pooled[1]).abs().max()) > 1e-2
    assert float((pooled[0][1] - pooled[0][4]).abs().max()) > 1e-2
    # the last layer is layer-normed: per-frame mean ~ 0 before the affine part is impossible to
    # check exactly, but its scale differs from the raw block outputs
    assert float(outs[0].features[-1].std()) != pytest.approx(float(outs[0].features[-2].std()), rel=1e-3)


def test_padded_batch_equals_one_by_one(whisper, ravdess_waves):
    waves = [ravdess_waves[0], ravdess_waves[1][:20000], ravdess_waves[2][:33333]]
    x, lengths = pad_batch(waves)
    with torch.inference_mode():
        batch = whisper(x, lengths)
        for i, w in enumerate(waves):
            single = whisper(torch.from_numpy(w)[None])
            assert int(batch.lengths[i]) == int(single.lengths[0])
            torch.testing.assert_close(batch.item(i), single.item(0), atol=2e-4, rtol=1e-4)


def test_too_long_input_is_refused_with_a_hint(whisper):
    with pytest.raises(ValueError, match="chunks longer clips"):
        whisper(torch.zeros(1, whisper.spec.max_samples + 160))


def test_unknown_backbone_lists_known_names():
    with pytest.raises(KeyError, match="whisper-tiny.en"):
        get_backbone("no-such-backbone")
