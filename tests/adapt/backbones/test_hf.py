"""hf: backbones from tiny random-init configs of every family, saved and loaded by path."""
from __future__ import annotations

import pytest
import torch

from adapt.backbones import get_backbone, pad_batch
from adapt.backbones.hf import HFBackbone
from adapt.errors import BackboneNotAvailableError

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)

FAMILIES = {
    # wav2vec2-base style: GroupNorm feature encoder, no attention mask in the original recipe
    "wav2vec2-base-style": ("Wav2Vec2Config", "Wav2Vec2Model", {}),
    "wav2vec2-large-style": ("Wav2Vec2Config", "Wav2Vec2Model", dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "hubert": ("HubertConfig", "HubertModel", {}),
    "wavlm": ("WavLMConfig", "WavLMModel", {}),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel", dict(num_conv_pos_embeddings=5)),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tiny_dir(request, tmp_path_factory):
    import transformers

    cfg_name, model_name, extra = FAMILIES[request.param]
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(getattr(transformers, cfg_name)(**{**TINY, **extra}))
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return folder


def test_loads_by_path_with_contract(tiny_dir):
    bb = get_backbone(f"hf:{tiny_dir}", reuse=False)
    assert isinstance(bb, HFBackbone)
    assert (bb.spec.num_layers, bb.spec.dim) == (3, 32)
    x = torch.randn(2, 4000)
    with torch.inference_mode():
        out = bb(x, torch.tensor([4000, 2500]))
    assert out.features.shape[:2] == (3, 2) and out.features.shape[-1] == 32
    # conv strides 5*4*4 = 80 samples per frame
    assert out.lengths.tolist() == [int(bb.model._get_feat_extract_output_lengths(n)) for n in (4000, 2500)]
    assert torch.isfinite(out.item(0)).all()


def test_padded_batch_equals_one_by_one(tiny_dir):
    bb = get_backbone(f"hf:{tiny_dir}", reuse=False)
    g = torch.Generator().manual_seed(1)
    waves = [torch.randn(n, generator=g) for n in (4000, 3000, 3333, 1777)]
    x, lengths = pad_batch(waves)
    with torch.inference_mode():
        batch = bb(x, lengths)
        for i, w in enumerate(waves):
            torch.testing.assert_close(batch.item(i), bb(w[None]).item(0), atol=1e-4, rtol=1e-4)


def test_fingerprint_changes_with_weights(tmp_path):
    import transformers

    fps = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        folder = tmp_path / f"m{seed}"
        transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY)).save_pretrained(folder)
        fps.append(get_backbone(f"hf:{folder}", reuse=False).spec.fingerprint)
    assert fps[0] != fps[1]


def test_hub_id_not_in_cache_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BackboneNotAvailableError, match="huggingface-cli download"):
        get_backbone("hf:someone/not-a-cached-model", reuse=False)


def test_non_speech_model_type_is_refused(tmp_path):
    import transformers

    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    transformers.BertModel(cfg).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="bert"):
        get_backbone(f"hf:{tmp_path}", reuse=False)
