"""``ser-adapt train-head``: train the global head (``adapt/assets/global_head.npz``) on corpora.

The shipped head was made with exactly the command in ``adapt/assets/README.md``. By default the
head is calibrated (``scenarios.calibration.calibrate_head``): per-path temperatures and
``uncertain`` thresholds fitted by cross-fitting over the training corpora (leave one *training*
corpus out), stored in the file.
"""
from __future__ import annotations

from pathlib import Path

import typer

from ..corpora import SHARED_CORPORA


def train_global_head(corpora=SHARED_CORPORA, *, backbone=None, dim: int | None = 256, lda_shrinkage: float = 0.3,
                      calibrate: bool = True, target: float | None = None):
    """A format-2 ``GlobalHead`` fitted on the embedding tables of ``corpora`` (``scenarios.tables``);
    ``calibrate``: with a calibration cross-fitted on the same corpora (needs two or more), the
    ``uncertain`` thresholds aiming at ``target`` selective accuracy (default ``DEFAULT_TARGET``)."""
    import numpy as np

    from adapt.personal import GlobalHead

    from ..tables import FeatureTable

    fs = FeatureTable.from_corpora(list(corpora), backbone)
    info = {"backbone": fs.backbone, "layers": fs.layers, "corpora": list(corpora), "clips": int(len(fs.y)),
            "speakers": int(len(set(fs.speakers.tolist())))}
    head = GlobalHead.fit(fs.X, fs.y, speakers=np.asarray(fs.speakers), corpora=np.asarray(fs.corpora), dim=dim,
                          lda_shrinkage=lda_shrinkage, info=info)
    if not calibrate:
        return head
    from ..calibration import DEFAULT_TARGET, CalibrationConfig, calibrate_head

    cfg = CalibrationConfig(scheme="corpus", target=DEFAULT_TARGET if target is None else target, dim=dim,
                            lda_shrinkage=lda_shrinkage)
    return calibrate_head(fs, np.arange(len(fs.y)), cfg, head=head)


def register(app: typer.Typer) -> None:
    @app.command("train-head")
    def train_head(out: Path = typer.Option(Path("global_head.npz"), "--out", help="where to write the head (.npz, or .json)"),
                   corpora: str = typer.Option(",".join(SHARED_CORPORA), help="comma-separated corpus names"),
                   backbone: str = typer.Option(None, help="backbone name (default: the offline default)"),
                   dim: int = typer.Option(256, help="PCA dimensions kept"),
                   lda_shrinkage: float = typer.Option(0.3, help="weight of the identity in the LDA covariance"),
                   calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate",
                                                  help="fit temperatures and uncertain thresholds by leaving one "
                                                       "training corpus out (needs two or more corpora)"),
                   target: float = typer.Option(None, "--target", min=0.01, max=1.0,
                                                help="selective accuracy of non-flagged predictions (default 0.8)")) -> None:
        """Fit the global head on the shared corpora's cached embeddings and write it (.npz or .json)."""
        import json
        import shlex
        import sys

        head = train_global_head([c_.strip() for c_ in corpora.split(",") if c_.strip()], backbone=backbone,
                                 dim=dim, lda_shrinkage=lda_shrinkage, calibrate=calibrate, target=target)
        head.info["command"] = "ser-adapt " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        head.save(out)
        typer.echo(json.dumps({"out": str(out), "bytes": out.stat().st_size, "classes": list(head.classes),
                               "input_dim": head.input_dim, "dim": head.dim,
                               "calibration": {k: v for k, v in head.calibration.to_dict().items() if k != "info"}}))
