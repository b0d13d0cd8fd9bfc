"""Waveform -> emotion probabilities as one differentiable torch module (backbone + pooling + head).

``ClipModel`` chains the frozen backbone's ``forward`` (outside ``torch.inference_mode``, so
gradients reach the waveform), masked mean pooling of every layer's frames, the concatenation of
all layers (``adapt.embedding.DEFAULT_LAYERS == "all"``: layer 0 first) and ``TorchHead``. For the
Whisper backbones the front end (STFT, mel filters, log10, the max - 8 floor) is built from torch
ops, so the waveform itself is differentiable; that is what integrated gradients attribute to.

``for_user`` builds one for a ``Personalizer`` user (or the unenrolled model) from public API only:
the user's statistics come from ``export_user``, the tenant's from ``export_tenant``, and the
scored classes from the ``Personalizer``'s own prediction on the clip (so the label-set rules are
not copied here). It returns that prediction too, as the reference the torch path must equal.

Example:
    >>> from adapt import Personalizer                              # doctest: +SKIP
    >>> p = Personalizer.default(store=":memory:")                  # doctest: +SKIP
    >>> model, wave, pred = for_user(p, None, "clip.wav")           # doctest: +SKIP
    >>> model.probabilities(torch.from_numpy(wave.samples)[None])   # doctest: +SKIP
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..embedding import pool
from .torch_head import TorchHead, scoring_params

__all__ = ["ClipModel", "for_user", "OUTPUTS"]

#: what ``ClipModel.forward`` returns: probabilities, log-probabilities, or raw LDA logits
OUTPUTS = ("prob", "logprob", "logit")


def _output(z: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "prob":
        return torch.softmax(z, dim=-1)
    if kind == "logprob":
        return torch.log_softmax(z, dim=-1)
    return z


class ClipModel(nn.Module):
    """``backbone`` (an ``adapt`` Backbone) + ``TorchHead``: waveforms ``(B, S)`` at the backbone's
    rate -> logits ``(B, C)``. ``output`` chooses what ``forward`` returns: ``"prob"``
    (softmax, the default: attributions explain the predicted probability) or ``"logit"``."""

    def __init__(self, backbone: Any, head: TorchHead, *, output: str = "prob") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
        self.backbone = backbone
        self.head = head
        self.output = output
        self.classes = head.classes

    @property
    def num_layers(self) -> int:
        return int(self.backbone.spec.num_layers)

    @property
    def sample_rate(self) -> int:
        return int(self.backbone.spec.sample_rate)

    @property
    def has_mel(self) -> bool:
        """True for the Whisper backbones: the model also runs from a log-mel input (``from_mel``)."""
        from ..backbones.whisper import WhisperBackbone

        return isinstance(self.backbone, WhisperBackbone)

    def mel(self, wavs: torch.Tensor) -> torch.Tensor:
        """Whisper log-mel ``(B, 80, F)`` of equal-length waveforms ``(B, S)`` (``F = S // 160``, even)."""
        from ..backbones.whisper import whisper_log_mel

        filters = self.backbone.mel_filters
        return torch.stack([whisper_log_mel(w, filters) for w in wavs])

    def layers_from_mel(self, mels: torch.Tensor) -> torch.Tensor:
        """Per-layer pooled vectors ``(B, L, D)`` from unpadded log-mels ``(B, 80, F)``.

        The encoder part of ``WhisperBackbone.forward`` for a batch without padding (so without
        masks): conv front end, positions, the blocks, the final layer norm on the last one. The
        tests check that it equals the backbone (``Personalizer.predict``) within 1e-4."""
        enc = self.backbone.encoder
        x = torch.nn.functional.gelu(enc.conv1(mels))
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        h = x + enc.embed_positions.weight[: x.shape[1]]
        states = [h]
        for layer in enc.layers:
            h = layer(h, None)
            h = h[0] if isinstance(h, tuple) else h
            states.append(h)
        states[-1] = enc.layer_norm(states[-1])
        return torch.stack([s.mean(dim=1) for s in states], dim=1)

    def from_mel(self, mels: torch.Tensor) -> torch.Tensor:
        """``forward``'s output from log-mels ``(B, 80, F)``."""
        e = self.layers_from_mel(mels)
        return self.head_output(e.reshape(e.shape[0], -1))

    def layer_embeddings(self, wavs: torch.Tensor) -> torch.Tensor:
        """Per-layer mean-pooled frames ``(B, L, D)`` (what ``adapt.embed_layers`` caches)."""
        if self.has_mel:
            return self.layers_from_mel(self.mel(wavs))
        stack = self.backbone(wavs)
        return pool(stack.features, stack.lengths, "mean").permute(1, 0, 2)

    def embed(self, wavs: torch.Tensor) -> torch.Tensor:
        """Utterance embeddings ``(B, L*D)``: all layers concatenated, layer 0 first."""
        e = self.layer_embeddings(wavs)
        return e.reshape(e.shape[0], -1)

    def logits(self, wavs: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(wavs))

    def probabilities(self, wavs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(wavs), dim=-1)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        return _output(self.logits(wavs), self.output)

    def head_output(self, emb: torch.Tensor) -> torch.Tensor:
        """``forward``'s output from embeddings ``(B, L*D)`` (for layer attribution)."""
        return _output(self.head(emb), self.output)


def _user_state(personalizer: Any, user: str | None):
    from ..errors import UnknownUserError
    from ..personal import UserState

    if user is None:
        return None
    if not personalizer.has_user(user):
        raise UnknownUserError(f"no profile for user {user!r}: enroll the user first, or explain the "
                               f"unenrolled model (no --user)")
    return UserState.from_json(personalizer.export_user(user)["state"])


def for_user(personalizer: Any, user: str | None, clip: Any, *, sr: int | None = None,
             output: str = "prob") -> tuple[ClipModel, Any, Any]:
    """``(ClipModel, Waveform, Prediction)`` for ``user`` of a ``Personalizer`` (``None``: a user
    never seen, the unenrolled model) on ``clip`` (path, bytes, array with ``sr``, ``Waveform``).

    Raises ``UnknownUserError`` for a named user without a profile (an explanation of a
    personalized model needs the profile), ``AudioError`` for bad audio, ``TypeError`` when the
    Personalizer's backbone is not an ``adapt`` Backbone (a plain callable has no gradients).
    """
    from ..audio import load_audio
    from ..backbones import Backbone
    from ..personal import TenantState

    bb = personalizer.backbone
    if not isinstance(bb, Backbone):
        raise TypeError(f"explanations need an adapt Backbone in the Personalizer, got {type(bb).__name__}")
    state = _user_state(personalizer, user)
    wave = personalizer.load(clip, sr)
    if wave.sample_rate != bb.spec.sample_rate:
        wave = load_audio(wave.samples, sr=wave.sample_rate, target_sr=bb.spec.sample_rate, max_seconds=None)
    n_max = bb.spec.max_samples
    if n_max is not None and len(wave.samples) > n_max:
        from ..errors import TooLongAudioError

        raise TooLongAudioError(f"explanations take clips up to {n_max / bb.spec.sample_rate:.0f} s "
                                f"({bb.spec.name}'s window), got {wave.duration_s:.1f} s")
    # the Personalizer's own answer (its label-set rules decide the scored classes); a copy with
    # adapt_on_predict off, so explaining never writes to the user's profile
    quiet = copy.copy(personalizer)
    quiet.config = replace(personalizer.config, adapt_on_predict=False)
    pred = quiet.predict(user if user is not None else _unseen_id(personalizer), wave)
    tenant = None
    if personalizer.has_tenant_profile():
        tenant = TenantState.from_json(personalizer.export_tenant()["state"])
    scoring = scoring_params(personalizer.head, state, tenant, tuple(pred.probabilities))
    model = ClipModel(bb, TorchHead(scoring).to(bb.device), output=output)
    return model, wave, pred


def _unseen_id(personalizer: Any) -> str:
    """A user id with no profile in this tenant (the Personalizer's route to the unenrolled model)."""
    name, k = "__explain_unenrolled__", 0
    while personalizer.has_user(name if k == 0 else f"{name}{k}"):
        k += 1
    return name if k == 0 else f"{name}{k}"


def waveform_tensor(wave: Any) -> torch.Tensor:
    """``(1, S)`` float32 tensor of a ``Waveform`` or 1-D array."""
    samples = getattr(wave, "samples", wave)
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
