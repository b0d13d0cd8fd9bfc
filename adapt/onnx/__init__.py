"""ONNX export of the default encoder and the global head, and an onnxruntime backbone.

* ``export_onnx(out, int8=False)`` (``ser-adapt export onnx --out DIR [--int8]``) writes
  ``encoder.onnx`` (raw 16 kHz waveform in; every layer's frames and the pooled embedding the head
  expects out; Whisper's log-mel inside the graph), ``encoder.int8.onnx`` (dynamic int8) and
  ``head.onnx`` (the global head's unenrolled path, with its label map), each with its metadata
  (``adapt.onnx.metadata``: label map, sample rate, log-mel parameters, layers, pooling, source
  fingerprint, ser-adapt version, graph sha256).
* ``OnnxBackbone`` / ``OnnxHead`` (``adapt.onnx.runtime``) run them with onnxruntime, after
  validating the metadata. By name: ``get_backbone("whisper-tiny.en", runtime="onnx")`` (or
  ``"onnx-int8"``; exported once into ``<cache>/onnx/``), ``get_backbone("whisper-tiny.en@onnx")``,
  or ``get_backbone("onnx:<folder or .onnx file>")`` for an exported model.

Needs the ``onnx`` extra (``pip install 'ser-adapt[onnx]'``: onnx, onnxruntime, and onnxscript for
torch's exporter); without it every entry point raises ``BackboneNotAvailableError`` naming it.

Example:
    >>> paths = export_onnx("model-onnx", int8=True)                        # doctest: +SKIP
    >>> bb = get_backbone("onnx:model-onnx")                                # doctest: +SKIP
    >>> labels, P = OnnxHead("model-onnx").predict_proba(adapt.embed(bb, ["a.wav"]))  # doctest: +SKIP
"""
from __future__ import annotations

from .export import (ENCODER_FILE, ENCODER_INT8_FILE, HEAD_FILE, WaveformEncoder, cached_encoder, export_encoder,
                     export_head, export_onnx, quantize_int8, require)
from .metadata import ENCODER_FORMAT, HEAD_FORMAT
from .runtime import OnnxBackbone, OnnxHead, load_checked

__all__ = ["export_onnx", "export_encoder", "export_head", "quantize_int8", "OnnxBackbone", "OnnxHead",
           "WaveformEncoder", "onnx_backbone", "cached_encoder", "load_checked", "require", "RUNTIMES", "ENCODER_FILE",
           "ENCODER_INT8_FILE", "HEAD_FILE", "ENCODER_FORMAT", "HEAD_FORMAT"]

#: ``get_backbone(..., runtime=...)`` values
RUNTIMES = ("torch", "onnx", "onnx-int8")


def onnx_backbone(name: str, *, int8: bool = False, num_threads: int | None = None) -> OnnxBackbone:
    """The registry backbone ``name`` on onnxruntime (``get_backbone(name, runtime="onnx")``).

    Exported from the torch backbone on first use into ``<cache>/onnx/`` (``cached_encoder``: about
    20 s on 2 idle cores, int8 adds the quantization), then loaded from there, checked against the
    torch backbone's fingerprint.
    """
    from ..backbones import get_backbone

    source = get_backbone(name)
    path = cached_encoder(source, int8=int8)
    return OnnxBackbone(path, num_threads=num_threads, expected_source=source.spec.fingerprint)
