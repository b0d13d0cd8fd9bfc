"""Classical (non-learned) backbones: eGeMAPS via openSMILE, log-mel and MFCC frames.

Each returns a one-layer ``LayerStack`` so the rest of the pipeline treats them like encoders:

* ``egemaps``: the 88 eGeMAPSv02 functionals per clip, as a single "frame" (``T = 1``); mean pooling
  returns them unchanged. Needs ``opensmile`` (``pip install 'ser-adapt[classical]'``).
* ``egemaps-lld``: the 25 eGeMAPSv02 low-level descriptors per 10 ms frame.
* ``logmel``: natural log of an 80-band mel power spectrogram (25 ms window, 10 ms hop).
* ``mfcc``: 40 MFCCs from the same mel front end.

Every clip is processed on its own valid samples, so padded batches equal one-by-one calls exactly.

Example:
    >>> import torch
    >>> bb = make_classical("mfcc")
    >>> bb(torch.randn(2, 16000), torch.tensor([16000, 8000])).lengths.tolist()
    [101, 51]
"""
from __future__ import annotations

import torch

from ..errors import BackboneNotAvailableError
from .base import Backbone, BackboneSpec, LayerStack, fingerprint_of, pad_frames

__all__ = ["ClassicalBackbone", "make_classical", "CLASSICAL_KINDS"]

SR = 16_000
CLASSICAL_KINDS = ("egemaps", "egemaps-lld", "logmel", "mfcc")


def _opensmile(level: str):
    try:
        import opensmile
    except ImportError:  # optional extra
        raise BackboneNotAvailableError(
            "the eGeMAPS backbones need openSMILE: pip install 'ser-adapt[classical]' (or pip install opensmile)"
        ) from None
    feature_level = opensmile.FeatureLevel.Functionals if level == "func" else opensmile.FeatureLevel.LowLevelDescriptors
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=feature_level), opensmile.__version__


class ClassicalBackbone(Backbone):
    """One of ``CLASSICAL_KINDS``; build with ``make_classical(kind)`` or ``get_backbone(kind)``."""

    def __init__(self, *, kind: str) -> None:
        super().__init__()
        if kind not in CLASSICAL_KINDS:
            raise KeyError(f"unknown classical backbone {kind!r}; known: {list(CLASSICAL_KINDS)}")
        self.kind = kind
        self._smile = None
        version = "torchaudio"
        if kind.startswith("egemaps"):
            self._smile, version = _opensmile("func" if kind == "egemaps" else "lld")
            dim = 88 if kind == "egemaps" else 25
            frame_rate = None if kind == "egemaps" else 100.0
        else:
            import torchaudio.transforms as T

            mel = dict(n_fft=400, hop_length=160, n_mels=80, f_max=SR / 2)
            self.transform = T.MelSpectrogram(SR, **mel) if kind == "logmel" else T.MFCC(SR, n_mfcc=40, melkwargs=mel)
            dim = 80 if kind == "logmel" else 40
            frame_rate = 100.0
        self.spec = BackboneSpec(name=kind, sample_rate=SR, num_layers=1, dim=dim,
                                 fingerprint=fingerprint_of("classical", kind, version, dim), frame_rate=frame_rate)
        self.freeze()

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        if self._smile is not None:
            df = self._smile.process_signal(wave.detach().cpu().numpy(), SR)
            return torch.tensor(df.to_numpy(), dtype=torch.float32).reshape(-1, self.spec.dim)
        out = self.transform(wave.float())  # (n_mels | n_mfcc, frames)
        if self.kind == "logmel":
            out = torch.log(out + 1e-6)
        return out.T

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> LayerStack:
        """``wavs`` ``(B, S)`` 16 kHz -> ``LayerStack`` ``(1, B, T, D)``."""
        wavs, lengths = self.check_inputs(wavs, lengths)
        out, frame_len = pad_frames([self._one(wavs[b, : int(lengths[b])]).float() for b in range(wavs.shape[0])])
        return LayerStack(features=out[None], lengths=frame_len)


def make_classical(kind: str) -> ClassicalBackbone:
    """A classical backbone by kind: one of ``CLASSICAL_KINDS``."""
    return ClassicalBackbone(kind=kind)
