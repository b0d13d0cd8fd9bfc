"""torchaudio: bundles: the missing-weights error, and loading a tiny state saved where the bundle looks."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from adapt.backbones import get_backbone, pad_batch
from adapt.backbones.torchaudio_bundle import TorchaudioBackbone, bundle_weights_path, ssl_bundle_names
from adapt.errors import BackboneNotAvailableError

TINY = dict(extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2), (16, 3, 2)], encoder_embed_dim=32,
            encoder_num_layers=2, encoder_num_heads=2, encoder_ff_interm_features=37,
            encoder_pos_conv_kernel=16, encoder_pos_conv_groups=2)


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


def test_missing_weights_error_says_where(hub_dir):
    with pytest.raises(BackboneNotAvailableError, match="wav2vec2_fairseq_base_ls960.pth"):
        get_backbone("torchaudio:WAV2VEC2_BASE", reuse=False)


def test_unknown_bundle_lists_known():
    assert "WAVLM_BASE_PLUS" in ssl_bundle_names()
    with pytest.raises(KeyError, match="WAV2VEC2_BASE"):
        get_backbone("torchaudio:NOT_A_BUNDLE", reuse=False)


@pytest.mark.parametrize("base_name", ["WAV2VEC2_BASE", "WAVLM_BASE", "WAV2VEC2_LARGE_LV60K"])
def test_tiny_bundle_from_hub_cache(hub_dir, base_name):
    from torchaudio import pipelines
    from torchaudio.pipelines._wav2vec2 import utils

    base = getattr(pipelines, base_name)
    params = {**base._params, **TINY}
    bundle = dataclasses.replace(base, _path=f"tiny_{base_name.lower()}.pth", _params=params)
    torch.manual_seed(0)
    path = bundle_weights_path(bundle)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(utils._get_model(bundle._model_type, params).state_dict(), path)
    bb = TorchaudioBackbone(bundle=bundle)
    assert str(hub_dir) in str(path)
    assert (bb.spec.num_layers, bb.spec.dim) == (3, 32)
    g = torch.Generator().manual_seed(2)
    waves = [torch.randn(n, generator=g) for n in (4000, 3000, 3333)]
    x, lengths = pad_batch(waves)
    with torch.inference_mode():
        batch = bb(x, lengths)
        for i, w in enumerate(waves):
            torch.testing.assert_close(batch.item(i), bb(w[None]).item(0), atol=1e-4, rtol=1e-4)
