"""``ser-adapt embed``: embed a corpus folder or audio files with a backbone and save the vectors."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif"}


def _parse_layers(text: str):
    if text in ("all", "mean"):
        return text
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise typer.BadParameter(f"--layers must be 'all', 'mean', an int or a comma list of ints, got {text!r}") from None
    if not parts:
        raise typer.BadParameter(f"--layers got no layer in {text!r}")
    return parts[0] if len(parts) == 1 else parts


def register(app: typer.Typer) -> None:
    @app.command("embed")
    def embed_cmd(
        inputs: List[Path] = typer.Argument(..., help="a corpus folder (with metadata.csv), a folder of audio files, or audio files"),
        out: Path = typer.Option(..., "--out", "-o", help="output .npz (X plus clip ids / labels) or .npy (X only)"),
        backbone: str = typer.Option(None, "--backbone", "-b", help="backbone name (default: offline Whisper tiny.en); e.g. egemaps, hf:<dir>"),
        layers: str = typer.Option("all", help="'all' (concatenate), 'mean', a layer index, or a comma list"),
        pooling: str = typer.Option("mean", help="mean or meanstd"),
        per_layer: bool = typer.Option(False, "--per-layer", help="save per-layer vectors X[N, L, D] instead"),
        batch_size: int = typer.Option(16, help="clips per batch"),
        threads: int = typer.Option(None, help="torch CPU threads"),
        cache: bool = typer.Option(True, "--cache/--no-cache", help="use the on-disk embedding cache"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        use_ray: bool = typer.Option(False, "--ray", help="shard the clips over Ray workers (pip install 'ser-adapt[ray]'); "
                                                          "each loads the backbone once and uses --threads threads (default 1)"),
        address: str = typer.Option(None, "--address", help="with --ray: the Ray cluster to join (e.g. auto, "
                                                            "ray://head:10001; default $RAY_ADDRESS, else a local instance)"),
        workers: int = typer.Option(None, "--workers", min=1, help="with --ray: number of workers (default: the "
                                                                   "cluster's CPUs / threads)"),
    ) -> None:
        """Embed clips and write a matrix (one row per clip) to --out."""
        import numpy as np

        from adapt.embedding import combine_layers, embed_layers, resolve_backbone
        from adapt.errors import AudioError, BackboneNotAvailableError

        if out.suffix not in (".npz", ".npy"):
            raise typer.BadParameter(f"--out must end in .npz or .npy, got {out.name!r}")
        if (address is not None or workers is not None) and not use_ray:
            raise typer.BadParameter("--address and --workers go with --ray")
        run_opts: dict = {}
        if use_ray:
            from . import connect_ray_or_exit

            connect_ray_or_exit(address, lambda msg: typer.echo(f"error: {msg}", err=True))
            run_opts = {"executor": "ray", "workers": workers}
        sel = _parse_layers(layers)
        meta: dict[str, np.ndarray] = {}
        if len(inputs) == 1 and (inputs[0] / "metadata.csv").is_file():
            from ..corpora import load_corpus
            from ..tables import FeatureTable

            corpus = load_corpus(inputs[0])
            files = corpus.paths()
            t = FeatureTable.from_records(corpus.records)
            meta = {"clip_ids": t.clip_ids, "y": t.y, "speakers": t.speakers, "languages": t.languages}
        else:
            files = []
            for p in inputs:
                if p.is_dir():
                    files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
                elif p.is_file():
                    files.append(p)
                else:
                    typer.echo(f"error: no such file or folder: {p}", err=True)
                    raise typer.Exit(2)
            if not files:
                typer.echo(f"error: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in {[str(p) for p in inputs]}", err=True)
                raise typer.Exit(2)
            meta = {"paths": np.array([str(f) for f in files], dtype=str)}
        try:
            bb = resolve_backbone(backbone)
            # with Ray, each worker loads the backbone by name; the driver's copy gives the metadata
            per = embed_layers(backbone if use_ray else bb, files, pooling=pooling, batch_size=batch_size,
                               num_threads=threads, cache=cache, progress=progress, **run_opts)
        except (BackboneNotAvailableError, KeyError, AudioError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        X = per if per_layer else combine_layers(per, sel)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".npy":
            np.save(out, X)
        else:
            np.savez(out, X=X, backbone=np.array(bb.spec.name), fingerprint=np.array(bb.spec.fingerprint),
                     layers=np.array("per-layer" if per_layer else str(sel)), pooling=np.array(pooling), **meta)
        typer.echo(f"wrote {out}: X {X.shape} ({bb.spec.name}, layers={'per-layer' if per_layer else sel}, pooling={pooling})")
