"""``ser-adapt export onnx --out DIR [--int8]``: the default encoder and the global head as ONNX.

Writes ``DIR/encoder.onnx`` (waveform in; all layers and the pooled embedding out; copied from
``<cache>/onnx/`` where an export of the same backbone and ser-adapt version exists, ``--fresh`` to
export again),
``DIR/encoder.int8.onnx`` with ``--int8`` (dynamic int8) and ``DIR/head.onnx`` (the global
head's unenrolled path with its label map), then loads each back with onnxruntime (the metadata
checks of ``adapt.onnx.runtime``) and prints one line per file. ``--check CLIP`` also embeds a clip
with torch and with every exported encoder and prints the max abs difference and each top label.
Needs the ``onnx`` extra; without it the command fails with the install hint (exit status 2).
"""
from __future__ import annotations

from pathlib import Path

import typer

from ._shared import cli_errors

export_app = typer.Typer(help="Export models for other runtimes (ONNX).", no_args_is_help=True)


@cli_errors
def onnx(out: Path = typer.Option(..., "--out", help="folder to write encoder.onnx, head.onnx (created)"),
         int8: bool = typer.Option(False, "--int8", help="also write encoder.int8.onnx (dynamic int8 quantization)"),
         head: str = typer.Option(None, "--head", help="global head file (default: the shipped one)"),
         check: Path = typer.Option(None, "--check", help="an audio clip to compare torch and ONNX on"),
         fresh: bool = typer.Option(False, "--fresh", help="export again instead of copying the cached export")) -> None:
    """Export the default encoder (all layers, mean-pooled) and the global head to ONNX with metadata."""
    from ..onnx import OnnxBackbone, OnnxHead, export_onnx, require

    require("onnx", "onnxruntime", "onnxscript")
    if check is not None and not check.is_file():
        raise FileNotFoundError(f"no such audio file: {check}")
    paths = export_onnx(out, int8=int8, head=head, cache=not fresh)
    encoders = [OnnxBackbone(paths[k], num_threads=2) for k in ("encoder", "encoder_int8") if k in paths]
    onnx_head = OnnxHead(paths["head"])
    for bb in encoders:
        meta = bb.metadata
        typer.echo(f"wrote {bb.path} ({bb.path.stat().st_size / 2**20:.1f} MiB, {bb.precision}): waveform at "
                   f"{meta['sample_rate']} Hz -> {bb.spec.num_layers} layers x {bb.spec.dim}, embedding "
                   f"{bb.spec.num_layers * bb.spec.dim}; fingerprint {bb.spec.fingerprint}")
    typer.echo(f"wrote {onnx_head.path} ({onnx_head.path.stat().st_size / 2**20:.1f} MiB): embedding "
               f"{onnx_head.input_dim} -> {len(onnx_head.labels)} labels ({', '.join(onnx_head.labels)})")
    if check is not None:
        _check(check, encoders, onnx_head, head)


def _check(clip: Path, encoders, onnx_head, head: str | None) -> None:
    import numpy as np

    from .. import embed
    from ..audio import load_audio
    from ..backbones import get_backbone
    from ..personal import GlobalHead
    from ..personal.personalizer import default_head_path

    wave = load_audio(str(clip)).samples
    ref = embed(get_backbone(), [wave], sr=16_000, cache=False)
    classes, P = GlobalHead.load(head or default_head_path()).predict_proba(ref)
    typer.echo(f"check {clip}: torch -> {classes[int(P.argmax())]} (p={float(P.max()):.3f})")
    for bb in encoders:
        X = embed(bb, [wave], sr=16_000, cache=False)
        labels, Q = onnx_head.predict_proba(X)
        typer.echo(f"check {clip}: {bb.spec.name} -> {labels[int(Q.argmax())]} (p={float(Q.max()):.3f}), "
                   f"max abs embedding difference {float(np.abs(X - ref).max()):.2e}")


def register(app: typer.Typer) -> None:
    export_app.command("onnx")(onnx)
    app.add_typer(export_app, name="export")
