"""``torchaudio.pipelines`` SSL bundles (``torchaudio:WAV2VEC2_BASE``, ``torchaudio:WAVLM_BASE_PLUS``...).

Weights are used only when already in the local torch hub cache
(``<torch.hub.get_dir()>/checkpoints/<file>``, i.e. ``$TORCH_HOME/hub/checkpoints``); nothing is
downloaded. Layers: 0 = the input of the first transformer block (projected CNN features plus
convolutional positions, layer-normed first in pre-LN models), ``i`` = block ``i``'s raw output
(torchaudio's ``extract_features`` convention). Padded batches: the CNN runs one clip at a time for
GroupNorm ("group_norm" extractor) bundles, batched otherwise; torchaudio zeroes and masks padded
frames in the transformer, so valid frames match one-by-one calls within float tolerance. WavLM
bundles run one clip at a time (torchaudio's WavLM attention takes no padding mask).

Example:
    >>> bb = get_backbone("torchaudio:WAVLM_BASE_PLUS")     # doctest: +SKIP
    >>> bb.spec.num_layers                                  # doctest: +SKIP
    13
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..cache import sha256_file
from ..errors import BackboneNotAvailableError
from .base import Backbone, BackboneSpec, LayerStack, fingerprint_of, pad_frames, per_clip

__all__ = ["TorchaudioBackbone", "bundle_weights_path", "ssl_bundle_names"]


def ssl_bundle_names() -> list[str]:
    """Names of the wav2vec2-family bundles in this torchaudio (pretrained, without ASR heads)."""
    from torchaudio import pipelines
    from torchaudio.pipelines import Wav2Vec2Bundle

    return sorted(n for n in dir(pipelines) if n.isupper() and "ASR" not in n
                  and type(getattr(pipelines, n)) is Wav2Vec2Bundle)


def bundle_weights_path(bundle) -> Path:
    """Where torchaudio keeps (and looks for) a bundle's weights in the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(bundle._path).name


class TorchaudioBackbone(Backbone):
    """A frozen torchaudio wav2vec2 / HuBERT / WavLM bundle.

    Arguments:
        bundle: a bundle name (``"WAV2VEC2_BASE"``) or a ``torchaudio.pipelines.Wav2Vec2Bundle``.
    """

    def __init__(self, *, bundle) -> None:
        super().__init__()
        from torchaudio import pipelines
        from torchaudio.pipelines import Wav2Vec2Bundle

        name = bundle if isinstance(bundle, str) else Path(getattr(bundle, "_path", "bundle")).stem
        if isinstance(bundle, str):
            known = ssl_bundle_names()
            if bundle not in known:
                raise KeyError(f"unknown torchaudio bundle {bundle!r}; known: {known}")
            bundle = getattr(pipelines, bundle)
        if not isinstance(bundle, Wav2Vec2Bundle):
            raise TypeError(f"expected a torchaudio Wav2Vec2Bundle, got {type(bundle).__name__}")
        weights = bundle_weights_path(bundle)
        if not weights.is_file():
            raise BackboneNotAvailableError(
                f"torchaudio:{name} weights are not in the torch hub cache ({weights}) and ser-adapt never "
                f"downloads. On a machine with network run `python -c \"import torchaudio; "
                f"torchaudio.pipelines.{name}.get_model()\"` and copy {weights.name} into {weights.parent} "
                f"(or point $TORCH_HOME at a folder holding hub/checkpoints/{weights.name})."
            )
        model = bundle.get_model()  # the file exists, so torch.hub loads it without downloading
        self.model = getattr(model, "model", model)  # unwrap torchaudio's waveform-normalising wrapper
        self.normalize = bool(bundle._normalize_waveform)
        self.cnn_per_clip = bundle._params.get("extractor_mode", "group_norm") == "group_norm"
        # torchaudio's WavLM attention refuses attention masks (it asserts mask is None), so WavLM
        # bundles run the transformer one clip at a time
        self.per_clip = bundle._model_type == "WavLM"
        params = bundle._params
        self.spec = BackboneSpec(
            name=f"torchaudio:{name}",
            sample_rate=int(bundle.sample_rate),
            num_layers=int(params["encoder_num_layers"]) + 1,
            dim=int(params["encoder_embed_dim"]),
            fingerprint=fingerprint_of("torchaudio", bundle._path, params, sha256_file(weights)),
        )
        self.freeze()

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> LayerStack:
        """``wavs`` ``(B, S)`` 16 kHz, ``lengths`` ``(B,)`` -> ``LayerStack`` ``(L, B, T, D)``."""
        wavs, lengths = self.check_inputs(wavs, lengths)
        if self.per_clip and wavs.shape[0] > 1:
            outs = [self._forward(wavs[b: b + 1, : int(lengths[b])], lengths[b: b + 1]) for b in range(wavs.shape[0])]
            feats, frame_len = pad_frames([o.features[:, 0] for o in outs], time_dim=1)   # (B, L, T, D)
            return LayerStack(features=feats.transpose(0, 1), lengths=frame_len)
        return self._forward(wavs, lengths)

    def transformer_layers(self) -> torch.nn.ModuleList:
        return self.model.encoder.transformer.layers  # layers are raw block outputs: no output norm

    def _forward(self, wavs: torch.Tensor, lengths: torch.Tensor) -> LayerStack:
        dev = self.device
        wavs = wavs.to(dev)
        if self.normalize:   # the bundle's per-utterance layer norm of the waveform
            wavs = per_clip(wavs, lengths, lambda x: torch.nn.functional.layer_norm(x, x.shape))
        fe = self.model.feature_extractor
        if self.cnn_per_clip:
            parts = [fe(wavs[b: b + 1, : int(lengths[b])], None)[0][0] for b in range(wavs.shape[0])]
            feats, frame_len = pad_frames(parts)
        else:
            feats, frame_len = fe(wavs, lengths.to(dev))
            frame_len = frame_len.long().cpu()
        layers = self.model.encoder.transformer.layers
        captured: list[torch.Tensor] = []
        hook = layers[0].register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            outs = self.model.encoder.extract_features(feats, None if self.per_clip else frame_len.to(dev))
        finally:
            hook.remove()
        return LayerStack(features=torch.stack([captured[0], *outs]).float(), lengths=frame_len)
