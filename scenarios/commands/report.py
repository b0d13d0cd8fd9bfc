"""``ser-adapt report fairness``: the fairness report (Markdown + PNG) of one corpus, before and
after personalization (``scenarios.fairness``).

Example:
    ser-adapt report fairness --corpus emovo --out reports/emovo
    ser-adapt report fairness --corpus ravdess --method linear-ft+norm --shots 5 --out reports/ravdess
"""
from __future__ import annotations

from pathlib import Path

import typer

from ..corpora import SHARED_CORPORA


def register(app: typer.Typer) -> None:
    report = typer.Typer(help="Reports on held-out speakers (fairness).", no_args_is_help=True)

    @report.command("fairness")
    def fairness(corpus: str = typer.Option(..., "--corpus", help="held-out corpus (its speakers are the new users)"),
                 out: Path = typer.Option(..., "--out", "-o", help="folder for fairness_<corpus>.md and .png"),
                 method: str = typer.Option("global-head", "--method",
                                            help="personalization: global-head (the Personalizer's) or a recipe name"),
                 train: str = typer.Option(",".join(SHARED_CORPORA), "--train",
                                           help="comma list of corpora; the head trains on all but --corpus"),
                 shots: int = typer.Option(5, "--shots", min=1, help="labelled clips per emotion when enrolled"),
                 n_boot: int = typer.Option(1000, "--n-boot", min=10, help="bootstrap resamples"),
                 seed: int = typer.Option(0, "--seed"),
                 backbone: str = typer.Option(None, "--backbone", help="backbone name (default: the offline default)")) -> None:
        """UA per gender / language / speaker with bootstrap CIs, worst group, gap, worst-10 % speakers."""
        import json

        from ..fairness import fairness_report, plot_report, to_markdown
        from ..tables import FeatureTable

        names = list(dict.fromkeys([c.strip() for c in train.split(",") if c.strip()] + [corpus]))
        try:
            table = FeatureTable.from_corpora(names, backbone, progress=False)
            rep = fairness_report(table, corpus, method=method, shots=shots, n_boot=n_boot, seed=seed)
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0] if exc.args else exc)) from None
        out.mkdir(parents=True, exist_ok=True)
        png = plot_report(rep, out / f"fairness_{corpus}.png")
        md = out / f"fairness_{corpus}.md"
        md.write_text(to_markdown(rep, heading="#") + f"\n![per-speaker UA and groups]({png.name})\n", encoding="utf-8")
        typer.echo(json.dumps({"markdown": str(md), "png": str(png), "conditions": {
            n: {"ua": c.ua.ua, "worst10": c.speakers.worst, "gap_worst10": c.speakers.gap_worst}
            for n, c in rep.conditions.items()}}))

    app.add_typer(report, name="report")
