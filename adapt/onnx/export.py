"""Export the default encoder (waveform in, every layer and the pooled embedding out) and the global
head to ONNX, with their metadata; optional dynamic int8 quantization of the encoder.

The encoder graph (``WaveformEncoder``) starts from the raw 16 kHz waveform, so a device needs no
feature code: Whisper's log-mel is computed inside the graph. The STFT is written as a strided
``Conv1d`` with fixed windowed-DFT kernels (201 cosine and 201 sine rows of a periodic Hann
window, reflect padding of ``n_fft // 2`` as ``torch.stft(center=True)``), not as ONNX's ``STFT``
/ ``DFT`` operators: those are missing from reduced-operator onnxruntime builds (mobile, web) and
from several other runtimes, while ``Conv`` runs everywhere; it costs about 0.3 M multiply-adds per
20 ms frame against the encoder's ~8 M (4 %, by counting). Everything after the log-mel is
the torch ``WhisperBackbone`` itself (its ``transformers`` ``WhisperEncoder`` modules), traced by
``torch.onnx.export``. Outputs: ``hidden_states`` ``(layers, frames, dim)`` (layer 0 = conv front
end + positions, as ``adapt.backbones.whisper``) and ``embedding`` ``(layers * dim,)``: every layer
mean-pooled over time and concatenated, which is what the shipped head expects
(``adapt.embedding.DEFAULT_LAYERS = "all"``, ``DEFAULT_POOLING = "mean"``).

The head graph is built directly with ``onnx.helper`` (a few matrix products; no tracing): the
global head's unenrolled path, ``softmax(((x - center) / scale) @ M + b) / T)``, with the
speaker-normalization ``center`` / ``scale`` as *overridable* inputs (defaults: the training
speakers' prior, i.e. a user never seen; feed a user's own statistics to normalize them).

Example:
    >>> paths = export_onnx("model-onnx", int8=True)          # doctest: +SKIP
    >>> sorted(p.name for p in paths.values())                 # doctest: +SKIP
    ['encoder.int8.onnx', 'encoder.onnx', 'head.onnx']
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BackboneNotAvailableError, InvalidStateError
from .metadata import ENCODER_FORMAT, FORMAT_VERSION, HEAD_FORMAT, set_metadata

__all__ = ["WaveformEncoder", "export_encoder", "export_head", "quantize_int8", "export_onnx", "cached_encoder", "require",
           "ENCODER_FILE", "ENCODER_INT8_FILE", "HEAD_FILE", "OPSET", "FP32_BLOCKS"]


ENCODER_FILE, ENCODER_INT8_FILE, HEAD_FILE = "encoder.onnx", "encoder.int8.onnx", "head.onnx"
OPSET = 18
#: transformer blocks that stay fp32 in the int8 encoder (see ``quantize_int8``)
FP32_BLOCKS = 1
_HINT = "pip install 'ser-adapt[onnx]'"


def require(*modules: str) -> None:
    """Import ``modules`` or raise ``BackboneNotAvailableError`` naming the ``onnx`` extra."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise BackboneNotAvailableError(f"ONNX export/runtime needs {name!r} ({exc}): {_HINT}") from None


class WaveformEncoder(torch.nn.Module):
    """The exported graph: waveform ``(samples,)`` -> ``hidden_states`` ``(L, T, D)``, ``embedding`` ``(L*D,)``.

    Built from a ``WhisperBackbone`` (shares its modules); see the module docstring for the STFT.
    """

    def __init__(self, backbone: Any) -> None:
        super().__init__()
        from ..backbones.whisper import HOP, N_FFT

        self.n_fft, self.hop = N_FFT, HOP
        self.encoder = backbone.encoder
        n = torch.arange(N_FFT, dtype=torch.float64)
        k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        angle = 2.0 * math.pi * k[:, None] * n[None, :] / N_FFT
        kernels = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])   # (2F, n_fft)
        self.register_buffer("dft", kernels[:, None, :].float())
        self.register_buffer("mel_filters", backbone.mel_filters.detach().clone().float())

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nf = self.n_fft // 2 + 1
        x = torch.nn.functional.pad(waveform[None, None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        spec = torch.nn.functional.conv1d(x, self.dft, stride=self.hop)            # (1, 2F, S // hop + 1)
        re, im = spec[:, :nf, :-1], spec[:, nf:, :-1]                              # drop the last frame
        mel = torch.matmul(self.mel_filters, re * re + im * im)                    # (1, 80, S // hop)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        log_spec = (log_spec + 4.0) / 4.0
        frames = (log_spec.shape[-1] // 2) * 2                                     # even, as whisper_log_mel
        enc = self.encoder
        h = torch.nn.functional.gelu(enc.conv1(log_spec[..., :frames]))
        h = torch.nn.functional.gelu(enc.conv2(h)).permute(0, 2, 1)                # (1, T, D), 50 Hz
        h = h + enc.embed_positions.weight[: h.shape[1]]
        states = [h]
        for layer in enc.layers:
            h = layer(h, None)
            if isinstance(h, tuple):
                h = h[0]
            states.append(h)
        states[-1] = enc.layer_norm(states[-1])
        hidden = torch.cat(states, dim=0)                                          # (L, T, D)
        return hidden, hidden.mean(dim=1).reshape(-1)


def _encoder_metadata(bb: Any, precision: str) -> dict[str, Any]:
    from .. import __version__
    from ..backbones.whisper import HOP, MEL_VERSION, N_FFT, N_MELS, WHISPER_TINY_EN, WHISPER_BASE
    from ..embedding import DEFAULT_LAYERS, DEFAULT_POOLING

    s = bb.spec
    source = {WHISPER_TINY_EN.name: WHISPER_TINY_EN, WHISPER_BASE.name: WHISPER_BASE}[s.name]
    return {
        "ser_adapt.format": ENCODER_FORMAT, "ser_adapt.format_version": FORMAT_VERSION,
        "ser_adapt.version": __version__, "backbone": s.name, "source_fingerprint": s.fingerprint,
        "source_sha256": source.sha256, "precision": precision, "sample_rate": str(s.sample_rate),
        "max_samples": str(s.max_samples), "frame_rate": str(s.frame_rate),
        "preprocessing": {
            "input": "waveform: float32 [samples], mono, 16 kHz, full scale [-1, 1]; the log-mel is in the graph",
            "kind": "whisper-log-mel", "mel_version": MEL_VERSION, "n_fft": N_FFT, "hop_length": HOP,
            "n_mels": N_MELS, "window": "hann (periodic)", "center": "reflect pad n_fft // 2",
            "mel_scale": "slaney", "mel_norm": "slaney", "power": 2,
            "log": "log10(max(mel, 1e-10)); max(x, max(x) - 8); (x + 4) / 4",
            "frames": "samples // hop, cut to even; no padding to 30 s",
            "min_samples": 2 * HOP, "max_samples": s.max_samples},
        "layers": {"num_layers": s.num_layers, "dim": s.dim,
                   "layer0": "gelu(conv2(gelu(conv1(log-mel)))) + positional embeddings",
                   "last": "output of the last block after the final layer norm"},
        "pooling": {"time": DEFAULT_POOLING, "layers": DEFAULT_LAYERS,
                    "embedding": f"mean over frames of each layer, layers 0..{s.num_layers - 1} concatenated "
                                 f"({s.num_layers * s.dim} values)"},
        "inputs": {"waveform": ["samples"]},
        "outputs": {"hidden_states": [s.num_layers, "frames", s.dim], "embedding": [s.num_layers * s.dim]},
    }


def _strip_debug(model: Any) -> None:
    """Drop torch's per-node debugging metadata (fx node names, stack traces with local paths): it
    differs from one export to the next, which would change ``graph_sha256`` and the fingerprint of
    the same weights every time."""
    for container in (model.graph.node, model.graph.value_info, model.graph.initializer, model.graph.input,
                      model.graph.output):
        for item in container:
            if len(getattr(item, "metadata_props", ())):
                del item.metadata_props[:]


def export_encoder(path: str | os.PathLike, backbone: Any = None) -> Path:
    """Export a Whisper backbone (default: the offline default) to ``path`` as fp32 ONNX with metadata."""
    require("onnx", "onnxscript")
    import onnx

    from ..backbones import get_backbone
    from ..backbones.whisper import HOP, WhisperBackbone

    bb = get_backbone() if backbone is None else backbone
    if not isinstance(bb, WhisperBackbone):
        raise TypeError(f"ONNX export supports the Whisper backbones (WhisperBackbone), got {type(bb).__name__}")
    module = WaveformEncoder(bb.cpu()).eval()
    example = torch.zeros(16_000)
    example[::7] = 0.1   # a non-silent example (a constant input would make log-mel degenerate)
    samples = torch.export.Dim("samples", min=4 * HOP, max=int(bb.spec.max_samples))
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(module, (example,), None, input_names=["waveform"],
                                    output_names=["hidden_states", "embedding"], opset_version=OPSET,
                                    dynamic_shapes=({0: samples},), dynamo=True, external_data=False,
                                    verbose=False, optimize=True)
    model = program.model_proto
    _strip_debug(model)
    model.producer_name, model.doc_string = "ser-adapt", f"{bb.spec.name} encoder: waveform -> all layers, pooled"
    set_metadata(model, _encoder_metadata(bb, "fp32"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, *, fp32_blocks: int = FP32_BLOCKS) -> Path:
    """Dynamic int8 quantization of an exported encoder (``onnxruntime.quantization.quantize_dynamic``).

    Only ``MatMul`` nodes with a constant weight (attention projections and MLPs) become int8, per
    tensor; the STFT and mel products, the convolutions, layer norms and attention scores stay fp32,
    and so do the first ``fp32_blocks`` transformer blocks. Why (``benchmarks.onnx``, measured on
    120 clips of *training* speakers, six corpora, with heads fit on those speakers; no test clip
    used): quantizing everything moved the head's logits by 0.56 on average; keeping block 1 in fp32
    halved that (0.25; top-1 agreement 97.5 % -> 99.2 %), keeping block 2, 3 or 4 instead changed
    nothing (0.54-0.56), per-channel weights were worse (1.11), and keeping only block 1's q/k/v,
    output projection or one MLP matrix did not help (0.47-0.53): the first block's error is
    carried into every later layer, and all layers are concatenated in the embedding. Metadata is
    copied with ``precision = int8``, a ``quantization`` entry and a new ``graph_sha256``.
    """
    require("onnx", "onnxruntime")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .metadata import get_metadata, json_value

    model = onnx.load(str(src))
    meta = get_metadata(model)
    if meta.get("ser_adapt.format") != ENCODER_FORMAT or meta.get("precision") != "fp32":
        raise InvalidStateError(f"{src} is not an fp32 ser-adapt encoder (format {meta.get('ser_adapt.format')!r}, "
                                f"precision {meta.get('precision')!r})")
    init = {i.name for i in model.graph.initializer}
    weighted = [n for n in model.graph.node if n.op_type == "MatMul" and any(i in init for i in n.input)]
    front = [n.name for n in weighted if any("mel" in i for i in n.input if i in init)]
    blocks = int(json_value(meta, "layers", str(src))["num_layers"]) - 1
    body = [n.name for n in weighted if n.name not in front]          # graph order = block order
    if blocks <= 0 or len(body) % blocks or not 0 <= fp32_blocks <= blocks:
        raise InvalidStateError(f"{src}: {len(body)} weight MatMuls do not split into {blocks} blocks "
                                f"(or fp32_blocks={fp32_blocks} is out of range)")
    keep = front + body[: fp32_blocks * (len(body) // blocks)]
    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=False, nodes_to_exclude=keep, extra_options={"MatMulConstBOnly": True})
        q = onnx.load(str(out))
    _strip_debug(q)
    q.producer_name, q.doc_string = "ser-adapt", model.doc_string + " (dynamic int8)"
    meta.pop("graph_sha256")
    meta["precision"] = "int8"
    meta["quantization"] = json.dumps({
        "method": "onnxruntime.quantization.quantize_dynamic", "weights": "int8, per tensor",
        "activations": "uint8, dynamic per tensor", "ops": "MatMul with a constant weight",
        "fp32": f"log-mel front end, convolutions, attention scores, transformer blocks 1..{fp32_blocks}"})
    set_metadata(q, meta)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(q, str(dst))
    return dst


def export_head(path: str | os.PathLike, head: Any = None, *, encoder_fingerprint: str | None = None) -> Path:
    """Write the global head's unenrolled path (default: the shipped head) as ONNX with its label map."""
    require("onnx")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .. import __version__
    from ..personal.global_head import GlobalHead
    from ..personal.personalizer import default_head_path

    head = GlobalHead.load(default_head_path()) if head is None else head
    if isinstance(head, (str, os.PathLike)):
        head = GlobalHead.load(head)
    if not isinstance(head, GlobalHead):
        raise TypeError(f"head must be a GlobalHead or a path to one, got {type(head).__name__}")
    pca_center, W = (np.asarray(a, np.float64) for a in head.projection)
    means, prec = np.asarray(head.means, np.float64), np.asarray(head.precision, np.float64)
    AM = means @ prec                                            # [C, d]
    M = W @ AM.T                                                 # [D, C]: projection and LDA folded
    bias = -pca_center @ M - 0.5 * np.einsum("cd,cd->c", AM, means)
    temperature = float(head.calibration.temperature(False))
    D, C = M.shape
    inits = [numpy_helper.from_array(head.prior_mean.astype(np.float32), "center"),
             numpy_helper.from_array(np.sqrt(head.prior_var).astype(np.float32), "scale"),
             numpy_helper.from_array(M.astype(np.float32), "weight"),
             numpy_helper.from_array(bias.astype(np.float32), "bias"),
             numpy_helper.from_array(np.array(temperature, np.float32), "temperature")]
    nodes = [helper.make_node("Sub", ["embedding", "center"], ["centered"]),
             helper.make_node("Div", ["centered", "scale"], ["standardized"]),
             helper.make_node("MatMul", ["standardized", "weight"], ["scores"]),
             helper.make_node("Add", ["scores", "bias"], ["logits"]),
             helper.make_node("Div", ["logits", "temperature"], ["calibrated"]),
             helper.make_node("Softmax", ["calibrated"], ["probabilities"], axis=-1)]
    term = head.calibration.terms(False).get("log_distance")
    if term is not None:
        # the unenrolled temperature of adapt.personal.calibration (Calibration.temperature with
        # calibration_features' log_distance): log T = log T0 + slope * (clip(log(h'Ah / d), low, high) - centre)
        from ..personal.calibration import T_BOUNDS

        centre, slope = float(term[0]), float(term[1])
        # the range of log_distance the fit saw (older calibrations: none, so a very wide one)
        q_lo, q_hi = (float(term[2]), float(term[3])) if len(term) == 4 else (-1e30, 1e30)
        offset = -pca_center @ W - means.mean(axis=0)
        f32 = lambda a, n: numpy_helper.from_array(np.asarray(a, np.float32), n)   # noqa: E731
        inits += [f32(W, "pca_weight"), f32(offset, "pca_offset"), f32(prec, "lda_precision"),
                  f32(np.ones((W.shape[1], 1)) / W.shape[1], "mean_weight"), f32(1e-6, "q_floor"),
                  f32(centre, "t_centre"), f32(slope, "t_slope"), f32(np.log(temperature), "t_log0"),
                  f32(np.log(T_BOUNDS[0]), "t_log_lo"), f32(np.log(T_BOUNDS[1]), "t_log_hi"),
                  f32(q_lo, "q_log_lo"), f32(q_hi, "q_log_hi")]
        nodes = nodes[:4] + [
            helper.make_node("MatMul", ["standardized", "pca_weight"], ["h_raw"]),
            helper.make_node("Add", ["h_raw", "pca_offset"], ["h"]),
            helper.make_node("MatMul", ["h", "lda_precision"], ["hA"]),
            helper.make_node("Mul", ["hA", "h"], ["hAh"]),
            helper.make_node("MatMul", ["hAh", "mean_weight"], ["q_raw"]),
            helper.make_node("Max", ["q_raw", "q_floor"], ["q"]),
            helper.make_node("Log", ["q"], ["log_q_raw"]),
            helper.make_node("Max", ["log_q_raw", "q_log_lo"], ["log_q_low"]),
            helper.make_node("Min", ["log_q_low", "q_log_hi"], ["log_q"]),
            helper.make_node("Sub", ["log_q", "t_centre"], ["dq"]),
            helper.make_node("Mul", ["dq", "t_slope"], ["dlog_t"]),
            helper.make_node("Add", ["dlog_t", "t_log0"], ["log_t_raw"]),
            helper.make_node("Max", ["log_t_raw", "t_log_lo"], ["log_t_lo"]),
            helper.make_node("Min", ["log_t_lo", "t_log_hi"], ["log_t"]),
            helper.make_node("Exp", ["log_t"], ["temperature_row"]),
            helper.make_node("Div", ["logits", "temperature_row"], ["calibrated"]),
            helper.make_node("Softmax", ["calibrated"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(
        nodes, "ser_adapt_global_head",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", D]),
         helper.make_tensor_value_info("center", TensorProto.FLOAT, [D]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, [D])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", C]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", C])],
        initializer=inits)
    # IR version 10 (onnx 1.16+): what onnxruntime reads; onnx 1.23's default (14) is newer than onnxruntime 1.31 accepts
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ser-adapt",
                              ir_version=10, doc_string="ser-adapt global head, unenrolled path (speaker-standardized LDA)")
    onnx.checker.check_model(model)
    info = dict(head.info)
    set_metadata(model, {
        "ser_adapt.format": HEAD_FORMAT, "ser_adapt.format_version": FORMAT_VERSION, "ser_adapt.version": __version__,
        "labels": list(head.classes), "input_dim": str(D), "temperature": repr(temperature), "precision": "fp32",
        "source_fingerprint": encoder_fingerprint or str(info.get("backbone_fingerprint", "")),
        "head": info, "calibration": head.calibration.to_dict(),
        "normalization": {"center": "overridable input [D]; default: the training speakers' prior mean",
                          "scale": "overridable input [D]; default: sqrt of the prior within-speaker variance",
                          "user": "feed a user's own centre and scale (GlobalHead.normalizer) to normalize them"},
        "inputs": {"embedding": ["batch", D], "center": [D], "scale": [D]},
        "outputs": {"probabilities": ["batch", C], "logits": ["batch", C]},
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def _atomic(target: Path, write) -> Path:
    """``write(tmp_path)`` then rename onto ``target``, so concurrent first uses never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def cached_encoder(source: Any, *, int8: bool = False) -> Path:
    """The exported encoder of torch backbone ``source`` under ``<cache>/onnx/``, exported (and
    quantized) on first use. The folder is keyed by the backbone's fingerprint, this library's
    version and a hash of this module's source, so a change of weights, feature code or exporter
    never serves an old file."""
    import hashlib

    from .. import __version__
    from ..cache import cache_dir

    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]
    folder = cache_dir("onnx") / f"{source.spec.name}-{source.spec.fingerprint}-{__version__}-{code}"
    fp32 = folder / ENCODER_FILE
    if not fp32.is_file():
        _atomic(fp32, lambda tmp: export_encoder(tmp, source))
    if not int8:
        return fp32
    q = folder / ENCODER_INT8_FILE
    if not q.is_file():
        _atomic(q, lambda tmp: quantize_int8(fp32, tmp))
    return q


def export_onnx(out: str | os.PathLike, *, int8: bool = False, backbone: Any = None, head: Any = None,
                cache: bool = True) -> dict[str, Path]:
    """Write ``encoder.onnx`` (+ ``encoder.int8.onnx`` with ``int8``) and ``head.onnx`` into ``out``.

    Returns ``{"encoder": path, "encoder_int8": path, "head": path}`` (the int8 entry only with
    ``int8``). ``backbone``: a ``WhisperBackbone`` (default: the offline default); ``head``: a
    ``GlobalHead`` or its path (default: the shipped head). ``cache``: copy the encoders from
    ``<cache>/onnx/`` (``cached_encoder``: exported there on first use) instead of exporting again.
    """
    import shutil

    from ..backbones import get_backbone

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a folder, {out} is a file")
    bb = get_backbone() if backbone is None else backbone
    out.mkdir(parents=True, exist_ok=True)
    if cache:
        paths = {"encoder": Path(shutil.copyfile(cached_encoder(bb), out / ENCODER_FILE))}
        if int8:
            paths["encoder_int8"] = Path(shutil.copyfile(cached_encoder(bb, int8=True), out / ENCODER_INT8_FILE))
    else:
        paths = {"encoder": export_encoder(out / ENCODER_FILE, bb)}
        if int8:
            paths["encoder_int8"] = quantize_int8(paths["encoder"], out / ENCODER_INT8_FILE)
    paths["head"] = export_head(out / HEAD_FILE, head, encoder_fingerprint=bb.spec.fingerprint)
    return paths
