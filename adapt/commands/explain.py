"""``ser-adapt explain FILE``: why the model predicted what it did for one clip.

Prints the predicted emotion, the most relevant time segments (integrated gradients or
occlusion over 100 ms windows of the waveform, ``adapt.explain.attribution``), the encoder
layers the head relied on, and the eGeMAPS cues that speak for the emotion
(``adapt.explain.cues``); ``--out`` writes a PNG (waveform, spectrogram, relevance, cues).
``--user`` explains that user's personalized model (the user must have a profile); without it,
the unenrolled model. Needs the ``explain`` extra (captum); without it the command fails with
the install hint (exit status 2).
"""
from __future__ import annotations

from pathlib import Path

import typer

from ._shared import cli_errors, cli_personalizer, store_option


@cli_errors
def explain(file: Path = typer.Argument(..., help="audio file"),
            user: str = typer.Option(None, "--user", help="user id with a profile (default: the unenrolled model)"),
            out: Path = typer.Option(None, "--out", help="write a PNG here (waveform, spectrogram, relevance, cues)"),
            method: str = typer.Option("ig", "--method", help="ig (integrated gradients) or occlusion"),
            steps: int = typer.Option(32, "--steps", min=2, help="integrated-gradients steps"),
            top: int = typer.Option(5, "--top", min=1, help="segments and cues to print"),
            store: str = store_option(),
            tenant: str = typer.Option("default", "--tenant", help="tenant namespace in the store"),
            backbone: str = typer.Option(None, "--backbone", help="backbone name (default: the offline default)"),
            head: str = typer.Option(None, "--head", help="global head file (default: the shipped one)")) -> None:
    """Explain one prediction: top time segments, encoder layers and acoustic cues (optionally a PNG)."""
    from ..explain import explain_clip
    from ..explain.attribution import METHODS, require_captum

    if method not in METHODS:
        raise typer.BadParameter(f"unknown method {method!r}; known: {list(METHODS)}", param_hint="'--method'")
    require_captum()
    if not file.is_file():
        raise FileNotFoundError(f"no such audio file: {file}")
    p = cli_personalizer(store, tenant, backbone, head)
    e = explain_clip(p, str(file), user=user, method=method, n_steps=steps, top_cues=top)
    pred, r = e.prediction, e.relevance
    who = f"user {user!r}" if user else "unenrolled model"
    typer.echo(f"{file}: {pred.label} (p={pred.confidence:.3f}, {who}{', uncertain' if pred.uncertain else ''})")
    extra = f", convergence delta {r.delta:.3f}" if r.delta is not None else ""
    typer.echo(f"top segments ({'integrated gradients' if r.method == 'ig' else 'occlusion'}, relevance to "
               f"{'log p' if r.output == 'logprob' else r.output if r.output == 'logit' else 'p'}({pred.label}){extra}):")
    for s, t, v in r.top_segments(top):
        typer.echo(f"  {s:6.2f}-{t:5.2f} s  {v:+.4f}")
    L = e.layers
    typer.echo("layers (drop in log p when ablated): " + ", ".join(f"{n} {v:+.3f}" for n, v in zip(L.layers, L.ablation)))
    typer.echo(f"top cues ({e.cue_note}):")
    for name, family, z, v in e.cues:
        typer.echo(f"  {name:<44} {family:<22} z={z:+.2f}  {v:+.4f}")
    if out is not None:
        from ..explain.plot import save_png

        typer.echo(f"wrote {save_png(e, out)}")


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
