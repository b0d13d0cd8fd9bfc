"""``ser-adapt train-head``: train the global head (``adapt/assets/global_head.npz``) on corpora.

The shipped head was made with exactly the command in ``adapt/assets/README.md``.
"""
from __future__ import annotations

from pathlib import Path

import typer

from ..corpora import DEV_CORPORA


def train_global_head(corpora=DEV_CORPORA, *, backbone=None, dim: int | None = 256,
                      temperature: float = 0.1, linear: bool = True, C: float = 0.1, norm_prior: float = 4.0):
    """A ``GlobalHead`` fitted on the embedding tables of ``corpora`` (``scenarios.tables``)."""
    import numpy as np

    from adapt.personal import GlobalHead

    from ..tables import FeatureTable

    fs = FeatureTable.from_corpora(list(corpora), backbone)
    info = {"backbone": fs.backbone, "layers": fs.layers, "corpora": list(corpora), "clips": int(len(fs.y)),
            "speakers": int(len(set(fs.speakers.tolist()))), "dim": dim, "C": C, "temperature": temperature,
            "norm_prior": norm_prior}
    return GlobalHead.fit(fs.X, fs.y, speakers=np.asarray(fs.speakers), temperature=temperature, linear=linear,
                          C=C, dim=dim, norm_prior=norm_prior, info=info)


def register(app: typer.Typer) -> None:
    @app.command("train-head")
    def train_head(out: Path = typer.Option(Path("global_head.npz"), "--out", help="where to write the head (.npz, or .json)"),
                   corpora: str = typer.Option("ravdess,emodb,emovo,urdu", help="comma-separated corpus names"),
                   backbone: str = typer.Option(None, help="backbone name (default: the offline default)"),
                   dim: int = typer.Option(256, help="PCA dimensions kept (0: no projection)"),
                   temperature: float = typer.Option(0.1, help="softmax temperature of the cosine scores"),
                   c: float = typer.Option(0.1, "--C", help="inverse L2 strength of the linear layer"),
                   linear: bool = typer.Option(True, "--linear/--no-linear",
                                               help="linear layer for users without enrollment")) -> None:
        """Fit the global head on the shared corpora's cached embeddings and write it (.npz or .json)."""
        import json
        import shlex
        import sys

        head = train_global_head([c_.strip() for c_ in corpora.split(",") if c_.strip()], backbone=backbone,
                                 dim=dim or None, temperature=temperature, linear=linear, C=c)
        head.info["command"] = "ser-adapt " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        head.save(out)
        typer.echo(json.dumps({"out": str(out), "bytes": out.stat().st_size, "classes": list(head.classes),
                               "input_dim": head.input_dim, "dim": head.dim}))
