"""Hugging Face SSL speech encoders: wav2vec2, HuBERT, WavLM, data2vec-audio, via ``transformers``.

``get_backbone("hf:<local dir>")`` loads a folder written by ``save_pretrained``;
``get_backbone("hf:<hub id>")`` loads from the local Hugging Face cache only (``local_files_only``):
nothing is ever downloaded. Where the weights are missing the error says how to obtain them.

Layers follow ``output_hidden_states``: 0 = the input of the first transformer block (CNN features,
projected, plus convolutional positions, layer-normed in post-LN models), ``i`` = block ``i``'s
output, the last one after the final layer norm in pre-LN ("stable layer norm") models.

Input: each clip is normalised to zero mean, unit variance over its own samples when the model's
feature extractor says ``do_normalize`` (default True).

Padded batches: the convolutional feature encoder of wav2vec2-base-style models uses GroupNorm over
time, so zero padding changes every frame and these models have no attention mask. This backbone
therefore runs the CNN one clip at a time for GroupNorm models (it is batched for LayerNorm ones,
whose valid frames do not see padding), then runs the transformer on the padded batch with an
explicit frame mask (HF zeroes padded frames before the positional convolution and masks them in
attention). Valid frames then match one-by-one calls within float tolerance (tested per family).

Example:
    >>> bb = get_backbone("hf:/models/wavlm-base-plus")     # doctest: +SKIP
    >>> bb.spec.num_layers, bb.spec.dim                     # doctest: +SKIP
    (13, 768)
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..cache import sha256_files
from ..errors import BackboneNotAvailableError
from .base import Backbone, BackboneSpec, LayerStack, fingerprint_of, pad_frames, per_clip

__all__ = ["HFBackbone", "SUPPORTED_MODEL_TYPES"]

SUPPORTED_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _howto(source: str) -> str:
    return (
        f"'{source}' is neither a local folder nor in the local Hugging Face cache, and ser-adapt never "
        f"downloads. On a machine with network run `huggingface-cli download {source}` (fills the cache; "
        f"set $HF_HOME to share it) or `AutoModel.from_pretrained('{source}').save_pretrained('<dir>')` "
        f"and use 'hf:<dir>'."
    )


def _weights_digest(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.name in _WEIGHT_FILES or p.name.endswith(".safetensors"))
    return sha256_files([folder / n for n in names])


class HFBackbone(Backbone):
    """A frozen ``transformers`` SSL speech encoder; see the module docstring.

    Arguments:
        source: a local folder (``save_pretrained`` output) or a hub id present in the local cache.
    """

    def __init__(self, *, source: str) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if not source:
            raise ValueError("hf: needs a hub id or a local folder, e.g. 'hf:microsoft/wavlm-base-plus'")
        folder = Path(source).expanduser()
        try:
            config = AutoConfig.from_pretrained(str(folder) if folder.is_dir() else source, local_files_only=True)
            model = AutoModel.from_pretrained(str(folder) if folder.is_dir() else source, local_files_only=True,
                                              config=config)
        except (OSError, ValueError) as err:
            if folder.is_dir():
                raise BackboneNotAvailableError(f"cannot load a transformers model from {folder}: {err}") from err
            raise BackboneNotAvailableError(_howto(source)) from err
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"hf:{source} is a {config.model_type!r} model; supported: {list(SUPPORTED_MODEL_TYPES)}")
        self.model = model
        self.do_normalize = self._do_normalize(folder if folder.is_dir() else None, source)
        self.cnn_per_clip = any(isinstance(m, torch.nn.GroupNorm) for m in model.feature_extractor.modules())
        resolved = Path(getattr(model, "name_or_path", "") or source)
        digest = _weights_digest(resolved) if resolved.is_dir() else source
        self.spec = BackboneSpec(
            name=f"hf:{source}",
            sample_rate=16_000,
            num_layers=config.num_hidden_layers + 1,
            dim=config.hidden_size,
            fingerprint=fingerprint_of("hf", config.to_dict(), digest, self.do_normalize),
            frame_rate=16_000 / float(torch.tensor(config.conv_stride).prod()),
        )
        self.freeze()

    @staticmethod
    def _do_normalize(folder: Path | None, source: str) -> bool:
        try:
            from transformers import AutoFeatureExtractor

            fe = AutoFeatureExtractor.from_pretrained(str(folder) if folder else source, local_files_only=True)
            return bool(getattr(fe, "do_normalize", True))
        except Exception:  # noqa: BLE001 - no preprocessor_config.json: use the family default
            if folder is not None and (folder / "preprocessor_config.json").is_file():
                return bool(json.loads((folder / "preprocessor_config.json").read_text()).get("do_normalize", True))
            return True

    def transformer_layers(self) -> torch.nn.ModuleList:
        return self.model.encoder.layers

    def output_norm(self) -> torch.nn.Module | None:
        # pre-LN ("stable layer norm") encoders norm the last block's output; post-LN ones norm the
        # input of the first block instead, which is not part of the top layer
        return self.model.encoder.layer_norm if getattr(self.model.config, "do_stable_layer_norm", False) else None

    def _features(self, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        fe = self.model.feature_extractor
        if not self.cnn_per_clip:
            return fe(wavs).transpose(1, 2)
        parts = [fe(wavs[b: b + 1, : int(lengths[b])]).transpose(1, 2)[0] for b in range(wavs.shape[0])]
        return pad_frames(parts)[0]

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> LayerStack:
        """``wavs`` ``(B, S)`` 16 kHz, ``lengths`` ``(B,)`` -> ``LayerStack`` ``(L, B, T, D)``."""
        wavs, lengths = self.check_inputs(wavs, lengths)
        dev = self.device
        wavs = wavs.to(dev)
        if self.do_normalize:   # Wav2Vec2FeatureExtractor's zero-mean unit-variance, per clip
            wavs = per_clip(wavs, lengths, lambda x: (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7))
        frame_len = self.model._get_feat_extract_output_lengths(lengths).long().cpu()
        if int(frame_len.min()) < 1:
            raise ValueError(f"clips too short for {self.spec.name}: lengths {lengths.tolist()} give no frames")
        feats = self._features(wavs, lengths)
        t = feats.shape[1]
        mask = torch.arange(t)[None, :] < frame_len[:, None]
        proj = self.model.feature_projection(feats)
        hidden = proj[0] if isinstance(proj, tuple) else proj
        layers = self.model.encoder.layers
        captured: list[torch.Tensor] = []

        def pre(_mod, args, kwargs):
            captured.append(args[0] if args else kwargs["hidden_states"])

        def post(_mod, _args, output):
            captured.append(output[0] if isinstance(output, tuple) else output)

        def zero_pad(_mod, _args, output):
            # data2vec-audio stacks several positional conv layers; HF zeroes padded frames only
            # before the first, so later layers would leak padding into valid frames
            return output * mask.to(output.device)[:, None, :].to(output.dtype)

        handles = [layers[0].register_forward_pre_hook(pre, with_kwargs=True)]
        handles += [layer.register_forward_hook(post) for layer in layers]
        pos_layers = getattr(getattr(self.model.encoder, "pos_conv_embed", None), "layers", None)
        if pos_layers is not None and len(pos_layers) > 1:
            handles += [layer.register_forward_hook(zero_pad) for layer in pos_layers]
        try:
            out = self.model.encoder(hidden, attention_mask=mask.to(dev))
        finally:
            for h in handles:
                h.remove()
        last = out[0] if isinstance(out, tuple) else out.last_hidden_state
        captured[-1] = last  # pre-LN models apply a final layer norm after the last block
        if len(captured) != self.spec.num_layers:
            raise RuntimeError(f"captured {len(captured)} layers from {self.spec.name}, expected {self.spec.num_layers}")
        return LayerStack(features=torch.stack(captured).float(), lengths=frame_len)
