"""onnxruntime versions of the exported models: ``OnnxBackbone`` (an ``adapt`` ``Backbone``) and
``OnnxHead``; both validate the model's metadata before running it.

``OnnxBackbone`` runs ``encoder.onnx`` (or ``encoder.int8.onnx``) one clip at a time (the graph
takes one waveform), so a padded batch equals one-by-one calls by construction, and returns the
same ``LayerStack`` as the torch backbone: ``adapt.embed``, the embedding cache and the
``Personalizer`` use it unchanged. Its ``spec.fingerprint`` is
``fingerprint_of("onnx", source fingerprint, precision, graph sha256)``: never the torch one, and
different for fp32 and int8, so the embedding cache never serves torch embeddings as ONNX ones.

Validation at load (``InvalidStateError`` naming the file): the ser-adapt format and its version,
every metadata key, the graph's sha256 against the recorded one (a model edited after export),
the declared layers / dim / sample rate against the graph's outputs, and, with
``expected_source``, the source fingerprint against the torch backbone it should match.

Example:
    >>> bb = OnnxBackbone("model-onnx/encoder.onnx", num_threads=2)   # doctest: +SKIP
    >>> adapt.embed(bb, ["clip.wav"]).shape                             # doctest: +SKIP
    (1, 1920)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..backbones.base import Backbone, BackboneSpec, LayerStack, fingerprint_of, pad_frames
from ..errors import EmbeddingShapeError, InvalidStateError
from .export import ENCODER_FILE, HEAD_FILE, require
from .metadata import (ENCODER_FORMAT, ENCODER_KEYS, HEAD_FORMAT, HEAD_KEYS, check_format, check_keys, get_metadata,
                       graph_sha256, json_value)

__all__ = ["OnnxBackbone", "OnnxHead", "load_checked", "resolve_model_path"]


def resolve_model_path(path: str | os.PathLike, default_file: str = ENCODER_FILE) -> Path:
    """A ``.onnx`` file, or ``default_file`` inside a folder written by ``ser-adapt export onnx``."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / default_file
    if not p.is_file():
        raise FileNotFoundError(f"no ONNX model at {p} (write one with `ser-adapt export onnx --out DIR`)")
    return p


def load_checked(path: Path, fmt: str, keys: tuple[str, ...]) -> tuple[Any, dict[str, str]]:
    """``(onnx.ModelProto, metadata)`` of ``path`` after the format, key and graph-hash checks."""
    require("onnx")
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted errors on a file that is not ONNX
        raise InvalidStateError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    meta = get_metadata(model)
    check_format(meta, fmt, str(path))
    check_keys(meta, keys, str(path))
    actual = graph_sha256(model)
    if actual != meta["graph_sha256"]:
        raise InvalidStateError(f"{path}: the graph's sha256 {actual[:16]}... is not the recorded "
                                f"{meta['graph_sha256'][:16]}...: the model was modified after export; re-export it")
    return model, meta


def _session(model: Any, num_threads: int | None) -> Any:
    require("onnxruntime")
    import onnxruntime as ort

    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads <= 0):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    if num_threads is not None:
        opts.intra_op_num_threads = num_threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def _output_shape(model: Any, name: str) -> list:
    for out in model.graph.output:
        if out.name == name:
            return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in out.type.tensor_type.shape.dim]
    raise InvalidStateError(f"the graph has no output {name!r}")


class OnnxBackbone(Backbone):
    """An exported encoder run by onnxruntime; see the module docstring.

    Arguments:
        path: ``encoder.onnx`` / ``encoder.int8.onnx`` or a folder holding ``encoder.onnx``.
        num_threads: onnxruntime intra-op threads (``None``: onnxruntime's default, one per core).
        expected_source: the torch backbone fingerprint the model must have been exported from
            (``None``: not checked; ``get_backbone(name, runtime="onnx")`` passes it).
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None,
                 expected_source: str | None = None) -> None:
        super().__init__()
        require("onnx", "onnxruntime")
        self.path = resolve_model_path(path)
        model, meta = load_checked(self.path, ENCODER_FORMAT, ENCODER_KEYS)
        where = str(self.path)
        layers = json_value(meta, "layers", where)
        try:
            num_layers, dim, rate = int(layers["num_layers"]), int(layers["dim"]), int(meta["sample_rate"])
            max_samples, frame_rate = int(meta["max_samples"]), float(meta["frame_rate"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidStateError(f"{where}: malformed metadata ({exc})") from None
        hidden = _output_shape(model, "hidden_states")
        if len(hidden) != 3 or hidden[0] != num_layers or hidden[2] != dim:
            raise InvalidStateError(f"{where}: metadata says {num_layers} layers x {dim}, but the graph's "
                                    f"hidden_states output is {hidden}")
        if _output_shape(model, "embedding") != [num_layers * dim]:
            raise InvalidStateError(f"{where}: the graph's embedding output is not [{num_layers * dim}]")
        if expected_source is not None and meta["source_fingerprint"] != expected_source:
            raise InvalidStateError(f"{where} was exported from backbone fingerprint {meta['source_fingerprint']}, "
                                    f"not {expected_source} (other weights or feature code); re-export it")
        self.metadata = meta
        self.precision = meta["precision"]
        self.session = _session(model, num_threads)
        self.spec = BackboneSpec(
            name=f"{meta['backbone']}@onnx" + ("" if self.precision == "fp32" else f"-{self.precision}"), sample_rate=rate, num_layers=num_layers, dim=dim,
            fingerprint=fingerprint_of("onnx", meta["source_fingerprint"], self.precision, meta["graph_sha256"]),
            max_samples=max_samples, frame_rate=frame_rate)
        self.min_samples = int(json_value(meta, "preprocessing", where).get("min_samples", 320))

    def _check_min(self, lengths: torch.Tensor) -> None:
        if int(lengths.min()) < self.min_samples:
            raise ValueError(f"clips must be at least {self.min_samples} samples long for {self.spec.name}, "
                             f"got lengths {lengths.tolist()}")

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> LayerStack:
        """``wavs`` ``(B, S)`` at 16 kHz, ``lengths`` ``(B,)`` -> LayerStack ``(L, B, T, D)`` (clip by clip)."""
        wavs, lengths = self.check_inputs(wavs, lengths)
        self._check_min(lengths)
        x = wavs.detach().cpu().numpy()
        parts = []
        for b in range(x.shape[0]):
            (hidden,) = self.session.run(["hidden_states"], {"waveform": np.ascontiguousarray(x[b, : int(lengths[b])])})
            parts.append(torch.from_numpy(hidden).permute(1, 0, 2))      # (T, L, D)
        frames, frame_len = pad_frames(parts, time_dim=0)                 # (B, T, L, D)
        return LayerStack(features=frames.permute(2, 0, 1, 3).contiguous(), lengths=frame_len)

    def embedding(self, wave: np.ndarray) -> np.ndarray:
        """The graph's own pooled output for one clip ``(samples,)`` -> ``(L * D,)`` (what the head takes)."""
        wave = np.ascontiguousarray(np.asarray(wave, dtype=np.float32))
        if wave.ndim != 1:
            raise ValueError(f"one clip (samples,) expected, got shape {wave.shape}")
        self.check_inputs(torch.from_numpy(wave), None)
        self._check_min(torch.tensor([len(wave)]))
        return self.session.run(["embedding"], {"waveform": wave})[0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, path={str(self.path)!r}"


class OnnxHead:
    """``head.onnx`` run by onnxruntime: ``predict_proba(X)`` -> ``(labels, P [N, C])``, the global
    head's unenrolled path (optionally with a user's ``center`` / ``scale``).

    Example:
        >>> head = OnnxHead("model-onnx")                     # doctest: +SKIP
        >>> labels, P = head.predict_proba(X)                 # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = 1) -> None:
        require("onnx", "onnxruntime")
        self.path = resolve_model_path(path, HEAD_FILE)
        model, meta = load_checked(self.path, HEAD_FORMAT, HEAD_KEYS)
        labels = json_value(meta, "labels", str(self.path))
        if not isinstance(labels, list) or not labels or len(set(map(str, labels))) != len(labels):
            raise InvalidStateError(f"{self.path}: metadata 'labels' must be a list of distinct names, got {labels!r}")
        out = _output_shape(model, "probabilities")
        if out[-1] != len(labels):
            raise InvalidStateError(f"{self.path}: {len(labels)} labels in the metadata, {out[-1]} graph outputs")
        self.labels: tuple[str, ...] = tuple(map(str, labels))
        self.input_dim = int(meta["input_dim"])
        self.metadata = meta
        self.session = _session(model, num_threads)

    def predict_proba(self, X: np.ndarray, *, center: Sequence[float] | None = None,
                      scale: Sequence[float] | None = None) -> tuple[tuple[str, ...], np.ndarray]:
        """``(labels, P [N, C])`` for embeddings ``X`` ``[N, D]`` (``center`` / ``scale``: a user's)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise EmbeddingShapeError(f"{self.path} takes embeddings [N, {self.input_dim}], got shape {X.shape}")
        feeds = {"embedding": X}
        for name, v in (("center", center), ("scale", scale)):
            if v is not None:
                arr = np.asarray(v, dtype=np.float32)
                if arr.shape != (self.input_dim,):
                    raise EmbeddingShapeError(f"{name} must be [{self.input_dim}], got shape {arr.shape}")
                feeds[name] = arr
        return self.labels, self.session.run(["probabilities"], feeds)[0]

    def predict(self, X: np.ndarray) -> list[str]:
        """The top label of each row of ``X``."""
        labels, P = self.predict_proba(X)
        return [labels[i] for i in P.argmax(axis=1)]
